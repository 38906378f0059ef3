package sqsconsumer_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Invariant 2: transient delete failures are retried for as long as the message is still ours,
// not a fixed number of tries.
func TestAckDeleteRetriedWhileMessageIsStillOurs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		var tries atomic.Int64
		s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			if op == "DeleteMessageBatch" && tries.Add(1) <= 6 { // ~ a few seconds of SQS trouble
				return sqstest.EntryError("InternalError", false)
			}
			return nil
		}})
		var handled atomic.Int64
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			handled.Add(1)
			return nil
		}, opt, quiet) // default visibility 30 s: the message stays ours far longer than the retries
		stop := running(t, c)
		advance(20 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if r.Acked != 1 || r.AckFailed != 0 || st.Deleted != 1 || handled.Load() != 1 {
			t.Fatalf("a delete that failed transiently %d times within a 30 s visibility was given up: acked %d, ack failed %d, deleted on SQS %d, handled %d times; errors %v",
				min(tries.Load(), 6), r.Acked, r.AckFailed, st.Deleted, handled.Load(), errs())
		}
	})
}

// Invariants 1/2: a message whose delete is pending stays under the lease. A slow
// DeleteMessageBatch (3 s) with a 1 s visibility must not let the message be received and
// handled again, nor count a superseded handle's delete as Acked.
func TestAckPendingDeleteStaysUnderTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "DeleteMessageBatch" {
				return 3 * time.Second
			}
			return 0
		}})
		var handled atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			handled.Add(1)
			return nil
		}, sqsconsumer.WithVisibilityTimeout(time.Second), sqsconsumer.WithWaitTime(time.Second), quiet)
		stop := running(t, c)
		advance(10 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if handled.Load() != 1 || st.Deleted != 1 || r.Acked != st.Deleted {
			t.Fatalf("handled %d times (want 1), deleted on SQS %d, Acked %d, stale deletes %d: the message was not leased while its delete was pending",
				handled.Load(), st.Deleted, r.Acked, st.StaleDeletes)
		}
	})
}

// Invariant 10 (+2): on a FIFO queue, m2 must not be started while m1 is still held (its delete
// pending). When m1's delete keeps failing transiently for a few seconds (well inside the
// visibility), m1 comes back after m2 was handled: the group is processed out of order.
func TestAckFIFODeleteTroubleDoesNotReorderTheGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := fifoQueue(s, "q")
		sendGroup(t, s, url, "g", "m1")
		sendGroup(t, s, url, "g", "m2")
		var tries atomic.Int64
		s.SetFaults(sqstest.Faults{Entry: func(op, h string) *types.BatchResultErrorEntry {
			// m1's first receipt handle is rh-1-1 (see sqstest); fail its delete 6 times.
			if op == "DeleteMessageBatch" && h == "rh-1-1" && tries.Add(1) <= 6 {
				return sqstest.EntryError("InternalError", false)
			}
			return nil
		}})
		var mu sync.Mutex
		var order []string
		c, _ := sqsconsumer.New(s, url, func(_ context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			order = append(order, *m.Body)
			mu.Unlock()
			return nil
		}, sqsconsumer.WithVisibilityTimeout(5*time.Second), sqsconsumer.WithWaitTime(time.Second), quiet)
		stop := running(t, c)
		advance(20 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(order, ",") != "m1,m2" {
			t.Fatalf("group g handled in order %v; want m1,m2 (m2 started while m1's delete was pending)", order)
		}
	})
}
