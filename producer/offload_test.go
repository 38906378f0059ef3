package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// stash is an Offloader keeping bodies over 100 bytes in a map and sending "stash:<key>".
type stash struct {
	mu      sync.Mutex
	stored  map[string]string
	unsent  []string
	seen    []producer.Message // what Offload was given
	running atomic.Int32
	peak    atomic.Int32
	gate    chan struct{} // when set, Offload waits on it
	fail    error
}

func (o *stash) Offload(ctx context.Context, m producer.Message) (producer.Message, error) {
	n := o.running.Add(1)
	defer o.running.Add(-1)
	for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
	}
	if o.gate != nil {
		<-o.gate
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, m)
	if o.fail != nil {
		return m, o.fail
	}
	if len(m.Body) <= 100 {
		return m, nil
	}
	key := fmt.Sprint("k", len(o.stored))
	if o.stored == nil {
		o.stored = map[string]string{}
	}
	o.stored[key] = m.Body
	m.Body = "stash:" + key
	return m, nil
}

func (o *stash) Unsent(ctx context.Context, m producer.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if key, ok := strings.CutPrefix(m.Body, "stash:"); ok {
		delete(o.stored, key)
		o.unsent = append(o.unsent, key)
	}
}

func TestWithOffload(t *testing.T) {
	if _, err := producer.New(sqstest.New(), "u", producer.WithOffload(nil)); !errors.Is(err, producer.ErrInvalidOption) {
		t.Fatalf("WithOffload(nil): %v", err)
	}
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", map[string]string{"MaximumMessageSize": "1024"})
		o := &stash{}
		p, _ := producer.New(s, url, producer.WithOffload(o))
		ctx := context.Background()
		big := strings.Repeat("x", 5000) // over the queue's limit: only its pointer is sent
		if _, err := p.Send(ctx, producer.Message{Body: big}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Send(ctx, producer.Message{Body: "small"}); err != nil {
			t.Fatal(err)
		}
		// Invalid messages are refused before the Offloader sees them: nothing to clean up.
		if _, err := p.Send(ctx, producer.Message{Body: big, Delay: time.Hour}); !errors.Is(err, producer.ErrInvalid) {
			t.Fatalf("invalid delay: %v", err)
		}
		if len(o.seen) != 2 {
			t.Fatalf("the Offloader saw %d messages, want 2", len(o.seen))
		}
		got, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		bodies := map[string]bool{}
		for _, m := range got.Messages {
			bodies[*m.Body] = true
		}
		if !bodies["stash:k0"] || !bodies["small"] || len(bodies) != 2 {
			t.Fatalf("sent %v", bodies)
		}
		if len(o.stored) != 1 || len(o.unsent) != 0 {
			t.Fatalf("stored %d, unsent %v", len(o.stored), o.unsent)
		}

		// The Offloader's error refuses the message as it is.
		o.fail = errors.New("S3 is down")
		if _, err := p.Send(ctx, producer.Message{Body: big}); !errors.Is(err, o.fail) {
			t.Fatalf("offload failure: %v", err)
		}
		o.fail = nil

		// A message the Offloader returned that SQS then refuses is handed back to Unsent.
		s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			return sqstest.EntryError("InvalidMessageContents", true)
		}})
		var se *producer.SendError
		if _, err := p.Send(ctx, producer.Message{Body: big + "2"}); !errors.As(err, &se) {
			t.Fatalf("refused by SQS: %v", err)
		}
		s.SetFaults(sqstest.Faults{})
		if err := p.Flush(ctx); err != nil { // the cleanup follows the batch
			t.Fatal(err)
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(o.unsent) != 1 || len(o.stored) != 1 {
			t.Fatalf("after a refused send: unsent %v, stored %d (want the refused body removed)", o.unsent, len(o.stored))
		}
		o.mu.Unlock()
		p.Close(ctx)
		_, err = p.Send(ctx, producer.Message{Body: big})
		o.mu.Lock()
		if !errors.Is(err, producer.ErrClosed) || len(o.seen) != 4 {
			t.Fatalf("after Close: %v, the Offloader saw %d (want ErrClosed before any upload)", err, len(o.seen))
		}
	})
}

func TestWithOffloadTooLargeAfterOffloadIsUnsent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", map[string]string{"MaximumMessageSize": "1024"})
		o := &stash{}
		p, _ := producer.New(s, url, producer.WithOffload(o))
		defer p.Close(context.Background())
		attrs := map[string]types.MessageAttributeValue{"a": {DataType: new("String"), StringValue: new(strings.Repeat("v", 2000))}}
		if _, err := p.Send(context.Background(), producer.Message{Body: strings.Repeat("x", 500), Attributes: attrs}); !errors.Is(err, producer.ErrTooLarge) {
			t.Fatalf("attributes over the limit: %v", err)
		}
		if len(o.unsent) != 1 || len(o.stored) != 0 {
			t.Fatalf("unsent %v, stored %d: the stored body must be handed back", o.unsent, len(o.stored))
		}
	})
}

func TestSendBatchOffloadsConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		o := &stash{gate: make(chan struct{})}
		p, _ := producer.New(s, url, producer.WithOffload(o))
		defer p.Close(context.Background())
		msgs := make([]producer.Message, 20)
		for i := range msgs {
			msgs[i] = producer.Message{Body: fmt.Sprint(i, strings.Repeat("x", 200))}
		}
		msgs[3].Body = "" // invalid: refused without an upload
		done := make(chan []producer.Result)
		go func() { done <- p.SendBatch(context.Background(), msgs) }()
		synctest.Wait()
		if n := o.running.Load(); n != 8 {
			t.Fatalf("%d uploads at once, want 8", n)
		}
		close(o.gate)
		results := <-done
		for i, r := range results {
			if (i == 3) != (r.Err != nil) {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
		if !errors.Is(results[3].Err, producer.ErrInvalid) || len(o.stored) != 19 || o.peak.Load() != 8 {
			t.Fatalf("invalid: %v; stored %d; peak %d", results[3].Err, len(o.stored), o.peak.Load())
		}
	})
}
