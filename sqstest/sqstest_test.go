package sqstest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// advance moves a synctest bubble's fake clock on by d.
func advance(d time.Duration) { <-time.After(d) }

func send(t *testing.T, s *sqstest.Server, url, body string, opt ...func(*sqs.SendMessageInput)) string {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}
	for _, o := range opt {
		o(in)
	}
	out, err := s.SendMessage(ctx, in)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return *out.MessageId
}

func receive(t *testing.T, s *sqstest.Server, url string, max, vis int32) []types.Message {
	t.Helper()
	out, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: max, VisibilityTimeout: vis,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

func TestVisibilityReceiveCountAndHandles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", map[string]string{"VisibilityTimeout": "5"})
		id := send(t, s, url, "hello")
		first := receive(t, s, url, 10, 0)
		if len(first) != 1 || *first[0].MessageId != id || *first[0].Body != "hello" {
			t.Fatalf("first receive = %+v", first)
		}
		if got := first[0].Attributes["ApproximateReceiveCount"]; got != "1" {
			t.Fatalf("receive count %q", got)
		}
		if len(receive(t, s, url, 10, 0)) != 0 {
			t.Fatal("message visible while in flight")
		}
		advance(5 * time.Second)
		second := receive(t, s, url, 10, 0)
		if len(second) != 1 || second[0].Attributes["ApproximateReceiveCount"] != "2" {
			t.Fatalf("after the visibility lapsed: %+v", second)
		}
		if *second[0].ReceiptHandle == *first[0].ReceiptHandle {
			t.Fatal("receipt handle reused")
		}
		// The superseded handle: its visibility change is refused, its delete accepted without effect.
		_, err := s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: first[0].ReceiptHandle, VisibilityTimeout: 60})
		var invalid *types.ReceiptHandleIsInvalid
		if !errors.As(err, &invalid) {
			t.Fatalf("change with a superseded handle: %v", err)
		}
		if _, err := s.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: first[0].ReceiptHandle}); err != nil {
			t.Fatalf("stale delete: %v", err)
		}
		st, _ := s.Stats(url)
		if st.InFlight != 1 || st.Deleted != 0 || st.StaleDeletes != 1 {
			t.Fatalf("stats after stale delete: %+v", st)
		}
		// The current handle deletes.
		if _, err := s.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: second[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Stats(url); st.InFlight+st.Visible != 0 || st.Deleted != 1 {
			t.Fatalf("stats after delete: %+v", st)
		}
	})
}

func TestStrictModeFailsStaleDeletes(t *testing.T) {
	s := sqstest.New(sqstest.WithStrict())
	url := s.MustCreateQueue("q", nil)
	send(t, s, url, "x")
	m := receive(t, s, url, 1, 0)[0]
	out, err := s.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("0"), ReceiptHandle: m.ReceiptHandle},
		{Id: aws.String("1"), ReceiptHandle: m.ReceiptHandle},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 1 || len(out.Failed) != 1 || *out.Failed[0].Id != "1" || *out.Failed[0].Code != "ReceiptHandleIsInvalid" {
		t.Fatalf("double delete in strict mode: %+v", out)
	}
}

func TestChangeVisibilityRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		send(t, s, url, "x")
		m := receive(t, s, url, 1, 2)[0]
		change := func(secs int32) error {
			_, err := s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: secs})
			return err
		}
		if err := change(10); err != nil {
			t.Fatal(err)
		}
		advance(9 * time.Second)
		if len(receive(t, s, url, 1, 0)) != 0 {
			t.Fatal("extension did not hold")
		}
		advance(2 * time.Second)
		var notInflight *types.MessageNotInflight
		if err := change(10); !errors.As(err, &notInflight) {
			t.Fatalf("change after the visibility lapsed: %v", err)
		}
		m = receive(t, s, url, 1, 0)[0]
		if err := change(43200); err != nil {
			t.Fatalf("12 h from receipt is allowed: %v", err)
		}
		advance(time.Second)
		if err := change(43200); err == nil {
			t.Fatal("a change past 12 h from receipt was accepted")
		}
		if err := change(0); err != nil {
			t.Fatal(err)
		}
		if len(receive(t, s, url, 1, 0)) != 1 {
			t.Fatal("visibility 0 did not release")
		}
	})
}

func TestLongPollWaitsForSendAndForVisibility(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		start := time.Now()
		out, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 3})
		if err != nil || len(out.Messages) != 0 || time.Since(start) != 3*time.Second {
			t.Fatalf("empty long poll: %v after %v", err, time.Since(start))
		}
		time.AfterFunc(time.Second, func() { send(t, s, url, "late") })
		start = time.Now()
		out, _ = s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20, VisibilityTimeout: 2})
		if len(out.Messages) != 1 || time.Since(start) != time.Second {
			t.Fatalf("long poll got %d after %v", len(out.Messages), time.Since(start))
		}
		start = time.Now()
		out, _ = s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20})
		if len(out.Messages) != 1 || time.Since(start) != 2*time.Second {
			t.Fatalf("long poll across a visibility lapse got %d after %v", len(out.Messages), time.Since(start))
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := s.ReceiveMessage(c, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled long poll: %v", err)
		}
	})
}

func TestRedriveToDLQ(t *testing.T) {
	s := sqstest.New()
	dlq := s.MustCreateQueue("dlq", nil)
	url := s.MustCreateQueue("q", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"2"}`})
	send(t, s, url, "poison")
	for i := 0; i < 2; i++ {
		m := receive(t, s, url, 1, 0)
		if len(m) != 1 {
			t.Fatalf("receive %d: %d messages", i+1, len(m))
		}
		s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m[0].ReceiptHandle})
	}
	if m := receive(t, s, url, 1, 0); len(m) != 0 {
		t.Fatal("message received a third time despite maxReceiveCount 2")
	}
	moved := receive(t, s, dlq, 1, 0)
	if len(moved) != 1 || *moved[0].Body != "poison" {
		t.Fatalf("DLQ holds %+v", moved)
	}
	if st, _ := s.Stats(url); st.MovedToDLQ != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFIFOGroupsInOrderSeveralPerReceive(t *testing.T) {
	s := sqstest.New()
	url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	for i := 0; i < 3; i++ {
		for _, g := range []string{"a", "b"} {
			send(t, s, url, fmt.Sprintf("%s%d", g, i), func(in *sqs.SendMessageInput) { in.MessageGroupId = aws.String(g) })
		}
	}
	// A duplicate within the window is accepted and not enqueued.
	send(t, s, url, "a0", func(in *sqs.SendMessageInput) { in.MessageGroupId = aws.String("a") })
	got := receive(t, s, url, 4, 0)
	var bodies []string
	for _, m := range got {
		bodies = append(bodies, *m.Body)
	}
	if fmt.Sprint(bodies) != "[a0 b0 a1 b1]" {
		t.Fatalf("first receive %v", bodies)
	}
	// Both groups have messages in flight: nothing more until they are done.
	if rest := receive(t, s, url, 10, 0); len(rest) != 0 {
		t.Fatalf("received %d while both groups are in flight", len(rest))
	}
	// Releasing a0 makes group a receivable from a0 again; a1 is still in flight, so a2 waits.
	s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: got[0].ReceiptHandle})
	again := receive(t, s, url, 10, 0)
	if len(again) != 1 || *again[0].Body != "a0" || again[0].Attributes["MessageGroupId"] != "a" {
		t.Fatalf("after releasing a0: %+v", again)
	}
	if _, err := s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")}); err == nil {
		t.Fatal("FIFO send without group id accepted")
	}
}

func TestBatchLimitsAndFaults(t *testing.T) {
	s := sqstest.New()
	url := s.MustCreateQueue("q", nil)
	var entries []types.DeleteMessageBatchRequestEntry
	for i := 0; i < 11; i++ {
		entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String("rh-1-1")})
	}
	var tooMany *types.TooManyEntriesInBatchRequest
	if _, err := s.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); !errors.As(err, &tooMany) {
		t.Fatalf("11 entries: %v", err)
	}
	var dup *types.BatchEntryIdsNotDistinct
	entries[1].Id = aws.String("0")
	if _, err := s.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries[:2]}); !errors.As(err, &dup) {
		t.Fatalf("duplicate ids: %v", err)
	}
	var missing *types.QueueDoesNotExist
	if _, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url + "x")}); !errors.As(err, &missing) {
		t.Fatalf("missing queue: %v", err)
	}

	send(t, s, url, "a")
	send(t, s, url, "b")
	s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
		if op == "ReceiveMessage" {
			return sqstest.Throttled()
		}
		return nil
	}})
	var throttled *types.RequestThrottled
	if _, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url}); !errors.As(err, &throttled) {
		t.Fatalf("injected throttling: %v", err)
	}
	s.SetFaults(sqstest.Faults{})
	got := receive(t, s, url, 10, 0)
	n := 0
	s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
		n++
		if n == 1 {
			return sqstest.EntryError("InternalError", false)
		}
		return nil
	}})
	out, err := s.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []types.DeleteMessageBatchRequestEntry{
		{Id: aws.String("0"), ReceiptHandle: got[0].ReceiptHandle}, {Id: aws.String("1"), ReceiptHandle: got[1].ReceiptHandle},
	}})
	if err != nil || len(out.Failed) != 1 || *out.Failed[0].Id != "0" || out.Failed[0].SenderFault {
		t.Fatalf("partial failure: %+v %v", out, err)
	}
	if st, _ := s.Stats(url); st.Deleted != 1 || st.InFlight != 1 {
		t.Fatalf("a failed entry must leave its message: %+v", st)
	}
	if s.Calls("ReceiveMessage") != 3 || s.Calls("") < 6 {
		t.Fatalf("calls: receive %d, all %d", s.Calls("ReceiveMessage"), s.Calls(""))
	}
}

func TestNondeterminism(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithNondeterminism(1))
		url := s.MustCreateQueue("q", nil)
		var sent []string
		for i := range 20 {
			sent = append(sent, fmt.Sprint(i))
			send(t, s, url, sent[i])
		}
		var got []string
		var short, empty int
		for len(got) < len(sent) && short < 1000 {
			ms := receive(t, s, url, 2, 300)
			short++
			if len(ms) == 0 {
				empty++
			}
			for _, m := range ms {
				got = append(got, *m.Body)
			}
		}
		if len(got) != len(sent) {
			t.Fatalf("short polls received %d of %d", len(got), len(sent))
		}
		if fmt.Sprint(got) == fmt.Sprint(sent) || empty == 0 {
			t.Errorf("no reordering or no empty short poll: %v, %d empty of %d", got, empty, short)
		}
		send(t, s, url, "late")
		out, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20, MaxNumberOfMessages: 10})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("long poll: %v %v", out, err)
		}
	})
}
