package sqslambda_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqslambda"
)

func event(arn string, n int) events.SQSEvent {
	var ev events.SQSEvent
	for i := 0; i < n; i++ {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: fmt.Sprint(i), EventSourceARN: arn,
			Attributes:        map[string]string{"ApproximateReceiveCount": "2", "MessageGroupId": "g"},
			MessageAttributes: map[string]events.SQSMessageAttribute{"type": {DataType: "String", StringValue: aws.String("order")}}})
	}
	return ev
}

func mustNew(t *testing.T, h sqsconsumer.Handler, opts ...sqslambda.Option) sqslambda.Handler {
	t.Helper()
	lh, err := sqslambda.New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return lh
}

func ids(r events.SQSEventResponse) string {
	var out []string
	for _, f := range r.BatchItemFailures {
		out = append(out, f.ItemIdentifier)
	}
	return fmt.Sprint(out)
}

func TestOnlyFailedRecordsAreReported(t *testing.T) {
	var running, peak atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
		cur := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		if m.ReceiveCount() != 2 || *m.MessageAttributes["type"].StringValue != "order" {
			t.Errorf("converted message %+v", m)
		}
		mu.Lock()
		seen[*m.Body] = true
		mu.Unlock()
		switch *m.Body {
		case "1":
			return errors.New("fails")
		case "3":
			panic("boom")
		}
		return nil
	}, sqslambda.WithConcurrency(3))
	resp, err := h(context.Background(), event("arn:aws:sqs:eu-west-1:1:orders", 8))
	if err != nil || ids(resp) != "[m1 m3]" {
		t.Fatalf("failures %s, %v", ids(resp), err)
	}
	if len(seen) != 8 || peak.Load() > 3 {
		t.Fatalf("ran %d records, peak %d at once", len(seen), peak.Load())
	}
}

func TestFIFOStopsAtTheFirstFailure(t *testing.T) {
	var ran []string
	h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
		ran = append(ran, *m.Body)
		if *m.Body == "2" {
			return errors.New("fails")
		}
		return nil
	}, sqslambda.WithConcurrency(8))
	resp, _ := h(context.Background(), event("arn:aws:sqs:eu-west-1:1:ledger.fifo", 5))
	if ids(resp) != "[m2 m3 m4]" || fmt.Sprint(ran) != "[0 1 2]" {
		t.Fatalf("failures %s, ran %v", ids(resp), ran)
	}
}

func TestCancelledContextReportsTheRest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
		if *m.Body == "1" {
			cancel() // the invocation is about to time out
		}
		return nil
	})
	resp, _ := h(ctx, event("arn:aws:sqs:eu-west-1:1:q", 4))
	if ids(resp) != "[m2 m3]" {
		t.Fatalf("failures %s", ids(resp))
	}
}
