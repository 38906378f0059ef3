package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Invariant 5 (+2): shutdown during a delete outage that outlasts it must return within about
// the shutdown timeout plus the flush bound (max(shutdown timeout, 5 s)), reporting the acks it
// gave up. With more pending deletes than the harvester's 16 sends in flight, handlers and the
// shutdown's own releases block in harvester.add; nothing gives up before the flush phase.
func TestAttack2ShutdownDuringDeleteOutageWithBackpressureReturnsInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 600)
		s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
			if op == "DeleteMessageBatch" {
				return sqstest.ServerError()
			}
			return nil
		}})
		const shutdown = 2 * time.Second
		c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithConcurrency(64), sqsconsumer.WithShutdownTimeout(shutdown),
			sqsconsumer.WithErrorHandler(func(error) {}), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(10 * time.Second)
		before := c.Stats()
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		r := checkReportAddsUp(t, c)
		bound := shutdown + 5*time.Second + 3*time.Second
		if took > bound {
			t.Fatalf("Run took %v after cancel during a delete outage (bound ~%v); before cancel: received %d succeeded %d in flight %d; report: succeeded %d acked %d ackFailed %d",
				took, bound, before.Received, before.Succeeded, before.InFlight, r.Succeeded, r.Acked, r.AckFailed)
		}
		if r.Acked+r.AckFailed != r.Succeeded {
			t.Fatalf("acked %d + ack failed %d != succeeded %d", r.Acked, r.AckFailed, r.Succeeded)
		}
	})
}

// Invariant 2: a delete SQS accepted with the current receipt handle must count as Acked. When
// the message's lease extension is in flight while the delete lands (the extension then meets a
// deleted message and is refused), settle's Remove waits for the extension, sees the lease
// "lost", and reports the accepted delete as failed (AckFailed, an *AckError, OnAckFailure).
func TestAttack2DeleteLandingWhileItsExtensionIsInFlightIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "ChangeMessageVisibilityBatch" {
				return 500 * time.Millisecond // a slowish extension, well inside the visibility
			}
			return 0
		}})
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(2100 * time.Millisecond) // returns while the extension sent at 2 s is in flight
			return nil
		}, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithWaitTime(time.Second), opt, quiet)
		stop := running(t, c)
		advance(10 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if st.Deleted != 1 || r.Acked != 1 || r.AckFailed != 0 {
			t.Fatalf("SQS deleted %d (stale deletes %d) with the current handle, but the report says acked %d, ack failed %d, lease lost %d; errors: %v",
				st.Deleted, st.StaleDeletes, r.Acked, r.AckFailed, r.LeaseLost, errs())
		}
	})
}

// Invariant 2: Acked counts only deletes SQS accepted with a current handle. The lease cap
// (ErrExpired) leaves the visibility ending at the cap; a delete that was pending then and lands
// after the visibility lapsed and the message was received again names a superseded handle,
// which (non-strict) SQS accepts without deleting. settle checks only ErrLeaseLost, so it is
// counted as Acked.
func TestAttack2DeleteLandingAfterTheLeaseCapLapsedIsNotAcked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New() // SQS's own rule: a stale handle's delete "succeeds"
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		start := time.Now()
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "DeleteMessageBatch" && time.Since(start) < 9*time.Second {
				return 3 * time.Second // the first delete lands after the cap (10 s)
			}
			return 0
		}})
		var mu sync.Mutex
		handled := 0
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			handled++
			mu.Unlock()
			if m.ReceiveCount() == 1 {
				advance(7500 * time.Millisecond) // done before the cap is enforced at 8 s
			}
			return nil
		}, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithMaxLease(10*time.Second),
			sqsconsumer.WithWaitTime(time.Second), opt, quiet)
		stop := running(t, c)
		advance(20 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if r.Acked > st.Deleted {
			t.Fatalf("Acked %d but SQS deleted %d (stale deletes accepted without effect: %d); handled %d times; report %+v; errors %v",
				r.Acked, st.Deleted, st.StaleDeletes, handled, r.Stats, errs())
		}
	})
}

// Invariant 5: the final flush gives acknowledgements max(shutdown timeout, 5 s); a delete call
// that hangs (a slow endpoint, a black-holed connection) is only cut by the 30 s per-call
// timeout, which holds Run well past that bound.
func TestAttack2ShutdownWithAHangingDeleteCallReturnsInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "DeleteMessageBatch" {
				return time.Hour // until the call's ctx ends
			}
			return 0
		}})
		const shutdown = time.Second
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithShutdownTimeout(shutdown), sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), quiet)
		stop := running(t, c)
		advance(3 * time.Second)
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		r := checkReportAddsUp(t, c)
		if bound := shutdown + 5*time.Second + 2*time.Second; took > bound {
			t.Fatalf("Run took %v after cancel (bound ~%v: shutdown timeout + flush bound); acked %d ack failed %d", took, bound, r.Acked, r.AckFailed)
		}
	})
}

// Invariant 1, and its documented limit: handlers and the waiting room never hold more than
// the capacity, and acknowledgements waiting in the harvester are bounded by its batch calls
// in flight (16 x 10 entries) plus one batch filling; when those are full, handlers wait to
// hand theirs over, so a delete outage cannot make the consumer hold messages without bound.
func TestAttack2DeleteOutageHoldsABoundedNumber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 400)
		s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
			if op == "DeleteMessageBatch" {
				return sqstest.ServerError()
			}
			return nil
		}})
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			return nil
		}, sqsconsumer.WithConcurrency(1), sqsconsumer.WithShutdownTimeout(time.Second), sqsconsumer.WithMaxLease(90*time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), quiet)
		stop := running(t, c)
		most := 0
		for range 300 {
			advance(100 * time.Millisecond)
			st, _ := s.Stats(url)
			most = max(most, st.InFlight)
		}
		capacity := 1 + worker.DefaultWaitingRoom(1) // concurrency 1, the pool's default waiting room
		const pendingAcks = 16*10 + 10 + 1           // calls in flight, a batch filling, one handing over
		_ = stop()
		if most > capacity+pendingAcks {
			t.Fatalf("held up to %d received, unacknowledged messages (invisible on SQS) during a delete outage; capacity %d + pending acks %d", most, capacity, pendingAcks)
		}
	})
}

// Invariant 5: variants of the shutdown-during-a-delete-outage hang: a FIFO queue (acks sent at
// once, one delete per batch: 17 groups suffice), no lease (WithMaxLease(0): the harvester keeps
// retrying while the visibility has not lapsed), and a Group whose one queue is in an outage.
func TestAttack2ShutdownDuringDeleteOutageVariants(t *testing.T) {
	outage := sqstest.Faults{Call: func(op string, _ any) error {
		if op == "DeleteMessageBatch" {
			return sqstest.ServerError()
		}
		return nil
	}}
	const shutdown = 2 * time.Second
	bound := shutdown + 5*time.Second + 3*time.Second
	t.Run("fifo", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := sqstest.New(sqstest.WithStrict())
			url := fifoQueue(s, "q")
			for g := range 60 {
				sendGroup(t, s, url, fmt.Sprintf("g%d", g), fmt.Sprintf("%d", g))
			}
			s.SetFaults(outage)
			c, _ := sqsconsumer.New(s, url, func(_ context.Context, m *sqsconsumer.Message) error {
				var i int
				fmt.Sscan(*m.Body, &i)
				advance(time.Duration(i) * 10 * time.Millisecond) // deletes one at a time: one batch each
				return nil
			},
				sqsconsumer.WithConcurrency(64), sqsconsumer.WithShutdownTimeout(shutdown), sqsconsumer.WithWaitTime(time.Second),
				sqsconsumer.WithErrorHandler(func(error) {}), quiet)
			stop := running(t, c)
			advance(5 * time.Second)
			t0 := time.Now()
			_ = stop()
			r := checkReportAddsUp(t, c)
			if took := time.Since(t0); took > bound {
				t.Fatalf("Run took %v after cancel (bound ~%v); succeeded %d acked %d ack failed %d", took, bound, r.Succeeded, r.Acked, r.AckFailed)
			}
		})
	})
	t.Run("no lease", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := sqstest.New(sqstest.WithStrict())
			url := s.MustCreateQueue("q", nil)
			sendN(t, s, url, 600)
			s.SetFaults(outage)
			c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
				sqsconsumer.WithConcurrency(64), sqsconsumer.WithShutdownTimeout(shutdown), sqsconsumer.WithMaxLease(0),
				sqsconsumer.WithVisibilityTimeout(10*time.Minute),
				sqsconsumer.WithErrorHandler(func(error) {}), quiet)
			stop := running(t, c)
			advance(5 * time.Second)
			t0 := time.Now()
			_ = stop()
			r := checkReportAddsUp(t, c)
			if took := time.Since(t0); took > bound {
				t.Fatalf("Run took %v after cancel (bound ~%v); succeeded %d acked %d ack failed %d", took, bound, r.Succeeded, r.Acked, r.AckFailed)
			}
		})
	})
	t.Run("group", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := sqstest.New(sqstest.WithStrict())
			a := s.MustCreateQueue("a", nil)
			b := s.MustCreateQueue("b", nil)
			sendN(t, s, a, 600)
			sendN(t, s, b, 600)
			s.SetFaults(sqstest.Faults{Call: func(op string, in any) error {
				if op == "DeleteMessageBatch" && *in.(*sqs.DeleteMessageBatchInput).QueueUrl == a {
					return sqstest.ServerError()
				}
				return nil
			}})
			g, _ := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(32), sqsconsumer.WithShutdownTimeout(shutdown),
				sqsconsumer.WithErrorHandler(func(error) {}), quiet)
			h := func(context.Context, *sqsconsumer.Message) error { advance(10 * time.Millisecond); return nil }
			if err := g.Add(s, a, h, sqsconsumer.Share{}); err != nil {
				t.Fatal(err)
			}
			if err := g.Add(s, b, h, sqsconsumer.Share{}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			advance(5 * time.Second)
			b1 := g.Stats()[b].Succeeded
			advance(5 * time.Second)
			b2 := g.Stats()[b].Succeeded
			t0 := time.Now()
			cancel()
			<-done
			took := time.Since(t0)
			r := g.Report()
			t.Logf("queue b (healthy) succeeded %d in the 5 s before, %d in the 5 s after queue a's outage filled the harvester; Run took %v after cancel", b1, b2-b1, took)
			if took > bound {
				t.Fatalf("Group.Run took %v after cancel (bound ~%v); a: %+v", took, bound, r.Queues[a].Stats)
			}
		})
	})
}

// Invariants 2, 5, 10, 11: shutdown at many moments while deletes, visibility changes or both
// are in an outage that ends before, around or long after the shutdown; few enough messages that
// the harvester's 16 sends are never all busy. Run must return within about shutdown timeout +
// max(shutdown timeout, 5 s); the report adds up; Acked+AckFailed == Succeeded; Acked never
// exceeds what SQS deleted; a FIFO group's message never runs before every earlier one of its
// group succeeded; nothing is lost (every message is deleted or comes back).
func TestAttack2ShutdownAtEveryMomentOfAnOutage(t *testing.T) {
	type tc struct {
		fifo     bool
		ops      []string
		cancelAt time.Duration
		outTo    time.Duration // outage from 300 ms to outTo
	}
	var cases []tc
	for _, fifo := range []bool{false, true} {
		for _, ops := range [][]string{{"DeleteMessageBatch"}, {"ChangeMessageVisibilityBatch"}, {"DeleteMessageBatch", "ChangeMessageVisibilityBatch"}} {
			for cancelAt := 200 * time.Millisecond; cancelAt < 4*time.Second; cancelAt += 350 * time.Millisecond {
				for _, outTo := range []time.Duration{cancelAt - 100*time.Millisecond, cancelAt + 2*time.Second, cancelAt + 7*time.Second, time.Hour} {
					cases = append(cases, tc{fifo, ops, cancelAt, outTo})
				}
			}
		}
	}
	for i, c := range cases {
		name := fmt.Sprintf("%d/fifo=%v/%v/cancel=%v/until=%v", i, c.fifo, c.ops, c.cancelAt, c.outTo)
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				attack2OutageShutdown(t, c.fifo, c.ops, c.cancelAt, c.outTo)
			})
		})
	}
}

func attack2OutageShutdown(t *testing.T, fifo bool, ops []string, cancelAt, outTo time.Duration) {
	s := sqstest.New(sqstest.WithStrict())
	const n, groups = 60, 6
	var url string
	if fifo {
		url = fifoQueue(s, "q")
		for i := range n {
			sendGroup(t, s, url, fmt.Sprintf("g%d", i%groups), fmt.Sprintf("%d", i))
		}
	} else {
		url = s.MustCreateQueue("q", nil)
		sendN(t, s, url, n)
	}
	start := time.Now()
	s.SetFaults(sqstest.Faults{Call: outagePhase(start, 300*time.Millisecond, outTo, ops...)})
	var mu sync.Mutex
	succeeded := map[int]int{}
	var violations []string
	const shutdown = 1500 * time.Millisecond
	c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		var i int
		fmt.Sscan(*m.Body, &i)
		mu.Lock()
		if fifo {
			for j := i % groups; j < i; j += groups {
				if succeeded[j] == 0 {
					violations = append(violations, fmt.Sprintf("%d started before %d of its group succeeded", i, j))
				}
			}
		}
		mu.Unlock()
		select {
		case <-time.After(time.Duration(50+(i*37)%400) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if i%7 == 3 && m.ReceiveCount() == 1 {
			return errors.New("first delivery fails")
		}
		mu.Lock()
		succeeded[i]++
		mu.Unlock()
		return nil
	}, sqsconsumer.WithVisibilityTimeout(6*time.Second), sqsconsumer.WithConcurrency(8), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithShutdownTimeout(shutdown), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }),
		sqsconsumer.WithErrorHandler(func(error) {}), quiet)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	advance(cancelAt)
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	r := checkReportAddsUp(t, c)
	if bound := shutdown + 5*time.Second + time.Second; took > bound {
		t.Errorf("Run took %v after cancel (bound ~%v); %+v", took, bound, r.Stats)
	}
	if r.Acked+r.AckFailed != r.Succeeded {
		t.Errorf("acked %d + ack failed %d != succeeded %d", r.Acked, r.AckFailed, r.Succeeded)
	}
	st, _ := s.Stats(url)
	if r.Acked > st.Deleted {
		t.Errorf("acked %d > deleted on SQS %d", r.Acked, st.Deleted)
	}
	s.SetFaults(sqstest.Faults{})
	advance(2 * time.Hour)
	st, _ = s.Stats(url)
	if int(st.Deleted)+st.Visible != n || st.InFlight+st.Delayed != 0 {
		t.Errorf("after everything lapsed: deleted %d + visible %d != %d (in flight %d, delayed %d)", st.Deleted, st.Visible, n, st.InFlight, st.Delayed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("FIFO order: %v", violations)
	}
}

// Invariant 2: Acked counts only deletes SQS accepted with a current handle. When extensions
// fail (an outage of ChangeMessageVisibilityBatch) the visibility lapses between two lease
// ticks; lease.Remove reports a loss only once a tick has marked it (unlike lease.Lost, it does
// not look at the expiry), so a delete sent before the lapse that lands after it, once the
// message was received again, is accepted by SQS without effect and counted as Acked.
func TestAttack2DeleteLandingAfterTheVisibilityLapsedBetweenTicksIsNotAcked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New() // SQS's own rule: a stale handle's delete "succeeds"
		url := s.MustCreateQueue("q", nil)
		start := time.Now()
		s.SetFaults(sqstest.Faults{
			Call: outagePhase(start, 0, time.Hour, "ChangeMessageVisibilityBatch"),
			Latency: func(op string, _ any) time.Duration {
				if op == "DeleteMessageBatch" && time.Since(start) < 4500*time.Millisecond {
					return 600 * time.Millisecond // sent at 4.1 s, lands at 4.7 s
				}
				return 0
			}})
		var mu sync.Mutex
		handled := 0
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			handled++
			mu.Unlock()
			if m.ReceiveCount() == 1 {
				advance(3500 * time.Millisecond) // received at 0.5 s, done at 4 s, visibility until 4.5 s
			}
			return nil
		}, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithWaitTime(time.Second), opt, quiet)
		stop := running(t, c)
		advance(500 * time.Millisecond) // off the lease's 1 s ticks
		sendN(t, s, url, 1)
		advance(10 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		mu.Lock()
		defer mu.Unlock()
		if r.Acked > st.Deleted {
			t.Fatalf("Acked %d but SQS deleted %d (stale deletes accepted without effect: %d); handled %d times; lease lost %d; errors %v",
				r.Acked, st.Deleted, st.StaleDeletes, handled, r.LeaseLost, errs())
		}
	})
}

// Invariant 5: shutdown returns within about the shutdown timeout + flush bound. The lease's
// extension calls time out only after the lease interval (visibility / 4); with a hanging
// ChangeMessageVisibilityBatch, Freeze (the shutdown's releases), settle's Remove and the lease
// goroutine itself wait for it: with a 2 h visibility, half an hour.
func TestAttack2ShutdownWithAHangingExtensionReturnsInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 3)
		start := time.Now()
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "ChangeMessageVisibilityBatch" && time.Since(start) > 50*time.Minute {
				return 24 * time.Hour // hangs until the call's ctx ends
			}
			return 0
		}})
		const shutdown = time.Second
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, _ *sqsconsumer.Message) error {
			<-ctx.Done()
			return ctx.Err()
		}, sqsconsumer.WithConcurrency(1), sqsconsumer.WithVisibilityTimeout(2*time.Hour), sqsconsumer.WithMaxLease(12*time.Hour),
			sqsconsumer.WithShutdownTimeout(shutdown), sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), quiet)
		stop := running(t, c)
		advance(time.Hour + time.Minute) // the extension due at 1 h hangs
		t0 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		checkReportAddsUp(t, c)
		if bound := shutdown + 5*time.Second + 2*time.Second; took > bound {
			t.Fatalf("Run took %v after cancel (bound ~%v)", took, bound)
		}
	})
}

// Invariant 10: FIFO order when a pending delete never lands: it fails for good (a sender
// fault) or the lease cap is reached while it is retried. The rest of the group goes back
// behind the head; the head runs again before its successors.
func TestAttack2FIFOOrderWhenTheDeleteNeverLands(t *testing.T) {
	for _, mode := range []string{"sender fault", "cap during outage"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New(sqstest.WithStrict())
				url := fifoQueue(s, "q")
				for i := range 4 {
					sendGroup(t, s, url, "g", fmt.Sprintf("m%d", i))
				}
				start := time.Now()
				var tries sync.Map
				s.SetFaults(sqstest.Faults{Entry: func(op, h string) *types.BatchResultErrorEntry {
					if op != "DeleteMessageBatch" {
						return nil
					}
					if mode == "sender fault" {
						if _, seen := tries.LoadOrStore(h, true); !seen && h == "rh-1-1" {
							return sqstest.EntryError("InvalidParameterValue", true)
						}
						return nil
					}
					if time.Since(start) < 30*time.Second {
						return sqstest.EntryError("InternalError", false)
					}
					return nil
				}})
				var mu sync.Mutex
				var order []string
				c, _ := sqsconsumer.New(s, url, func(_ context.Context, m *sqsconsumer.Message) error {
					mu.Lock()
					defer mu.Unlock()
					order = append(order, *m.Body)
					return nil
				}, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithMaxLease(10*time.Second),
					sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}), quiet)
				stop := running(t, c)
				advance(2 * time.Minute)
				_ = stop()
				checkReportAddsUp(t, c)
				st, _ := s.Stats(url)
				t.Logf("order %v; deleted %d", order, st.Deleted)
				if st.Deleted != 4 {
					t.Fatalf("deleted %d of 4; order %v", st.Deleted, order)
				}
				// A later message must not run before every earlier one's last run.
				last := map[string]int{}
				for k, b := range order {
					last[b] = k
				}
				for k, b := range order {
					var i int
					fmt.Sscanf(b, "m%d", &i)
					for j := range i {
						if l := last[fmt.Sprintf("m%d", j)]; l > k {
							t.Fatalf("%s ran (position %d) before m%d's last run (position %d): order %v", b, k, j, l, order)
						}
					}
				}
			})
		})
	}
}
