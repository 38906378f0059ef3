package sqsconsumer_test

import (
	"context"
	"errors"
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

// outagePhase makes every call of the given operations fail with a server error while the fake
// clock is within [from, to) of start.
func outagePhase(start time.Time, from, to time.Duration, ops ...string) func(op string, in any) error {
	return func(op string, _ any) error {
		at := time.Since(start)
		if at < from || at >= to {
			return nil
		}
		for _, o := range ops {
			if o == op {
				return sqstest.ServerError()
			}
		}
		return nil
	}
}

// Outages of deletes, of visibility changes, and of both, for 6 s inside a 20 s visibility (the
// whole backlog is handled meanwhile):
// no message succeeds twice, every one is deleted, nothing is left, and the report adds up.
// One message in ten fails its first delivery, so backoff visibility changes meet the outage too.
func TestAckOutagePhases(t *testing.T) {
	for name, ops := range map[string][]string{
		"deletes":            {"DeleteMessageBatch"},
		"visibility changes": {"ChangeMessageVisibilityBatch"},
		"both":               {"DeleteMessageBatch", "ChangeMessageVisibilityBatch"},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New(sqstest.WithStrict())
				url := s.MustCreateQueue("q", nil)
				const n = 400
				sendN(t, s, url, n)
				s.SetFaults(sqstest.Faults{Call: outagePhase(time.Now(), 200*time.Millisecond, 6200*time.Millisecond, ops...)})
				var mu sync.Mutex
				succeeded := map[string]int{}
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					advance(50 * time.Millisecond)
					if len(*m.Body) > 0 && (*m.Body)[len(*m.Body)-1] == '7' && m.ReceiveCount() == 1 {
						return errors.New("first delivery fails")
					}
					mu.Lock()
					succeeded[*m.Body]++
					mu.Unlock()
					return nil
				}, sqsconsumer.WithVisibilityTimeout(20*time.Second), sqsconsumer.WithConcurrency(16),
					sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }), quiet,
					sqsconsumer.WithErrorHandler(func(error) {}))
				if err != nil {
					t.Fatal(err)
				}
				stop := running(t, c)
				for {
					st, _ := s.Stats(url)
					if st.Deleted == n {
						break
					}
					advance(100 * time.Millisecond)
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				r := checkReportAddsUp(t, c)
				mu.Lock()
				defer mu.Unlock()
				twice := 0
				for _, k := range succeeded {
					if k > 1 {
						twice++
					}
				}
				st, _ := s.Stats(url)
				if twice != 0 || len(succeeded) != n || st.Deleted != n || st.Visible+st.InFlight+st.Delayed != 0 || r.Acked != n || r.AckFailed != 0 {
					t.Fatalf("%d of %d messages handled twice, %d succeeded; queue %+v; report %+v", twice, n, len(succeeded), st, r.Stats)
				}
				if r.AckRetries == 0 || r.Requests == 0 {
					t.Fatalf("the outage was not met: %+v", r.Stats)
				}
				t.Logf("%s: %d ack retries, %d requests for %d messages, done at %v", name, r.AckRetries, r.Requests, n, r.HandlerTime)
			})
		})
	}
}
