package sqsconsumer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Pollers, a strategy and handlers race on the pacer the way the runner and the queue use it
// (gate, asking, admit's enqueued(+n) then asking(-n), roundTrip and update with a new want,
// the worker's enqueued(-1)).
// A missed wakeup leaves a poller in gate while queued + asked < want: synctest reports the
// bubble deadlocked.
func TestAttackPacerGateNeverMissesAWakeup(t *testing.T) {
	for round := range 200 {
		synctest.Test(t, func(t *testing.T) {
			var calls, busy atomic.Int64
			p := newPacer(4, calls.Load, busy.Load, true)
			work := make(chan struct{}, 1024)
			var workers sync.WaitGroup
			for range 3 {
				workers.Go(func() {
					for range work {
						p.enqueued(-1) // started
						runtime.Gosched()
						calls.Add(1)
						busy.Add(int64(rand.IntN(int(50 * time.Millisecond))))
					}
				})
			}
			var pollers sync.WaitGroup
			for range 6 {
				pollers.Go(func() {
					for range 100 {
						most := 1 + rand.IntN(maxBatch)
						if err := p.gate(context.Background(), most); err != nil {
							t.Error(err)
							return
						}
						n := 1 + rand.IntN(most)
						p.asking(n - most)
						runtime.Gosched()
						got := rand.IntN(n + 1)
						p.enqueued(int64(got)) // admit: what came is queued, then the ask given back
						p.asking(-n)
						for range got {
							work <- struct{}{}
						}
						p.roundTrip(time.Duration(rand.IntN(int(20 * time.Millisecond))))
						p.update()
					}
				})
			}
			pollers.Wait()
			close(work)
			workers.Wait()
			if q, a := p.queued.Load(), p.asked.Load(); q != 0 || a != 0 {
				t.Fatalf("round %d: queued %d, asked %d after everything finished", round, q, a)
			}
		})
	}
}

// messages puts n messages on the queue (in batches of 10), with the given group ids for FIFO.
func attackSend(t *testing.T, s *sqstest.Server, url string, n int, fifo bool) {
	t.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(n, i+10); j++ {
			e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(strconv.Itoa(j))}
			if fifo {
				e.MessageGroupId = aws.String(strconv.Itoa(j % 3))
				e.MessageDeduplicationId = aws.String(strconv.Itoa(j))
			}
			entries = append(entries, e)
		}
		if _, err := s.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
}

// After Run, the pacer's counts of messages waiting in the strategy and asked for by
// receives in flight are back to zero whatever path the messages took: a leak would close the
// gate for good on a consumer that keeps running (a Group's queue, or a leak while running).
// Each case also checks, while Run still runs and after the messages left, that nothing is
// counted that is not there.
func TestAttackPacerCountsComeBackToZero(t *testing.T) {
	quietLog := WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	noErrors := WithErrorHandler(func(error) {})
	cases := []struct {
		name string
		fifo bool
		opts []Option
		// handler, and what to do while running (nil: wait until every message left)
		h     func(ctx context.Context, m *Message) error
		setup func(s *sqstest.Server)
	}{
		{name: "handled", h: func(ctx context.Context, m *Message) error { time.Sleep(10 * time.Millisecond); return nil }},
		{name: "failures and panics", h: func(ctx context.Context, m *Message) error {
			if m.ReceiveCount() == 1 {
				if (*m.Body)[0]%2 == 0 {
					panic("boom")
				}
				return fmt.Errorf("fail")
			}
			return nil
		}},
		{name: "too heavy", opts: []Option{WithWeight(func(m *Message) int64 {
			if (*m.Body)[0]%3 == 0 && m.ReceiveCount() == 1 {
				return 1000
			}
			return 1
		})}, h: func(ctx context.Context, m *Message) error { return nil }},
		{name: "semaphore", opts: []Option{WithStrategy(semaphore.Factory())}, h: func(ctx context.Context, m *Message) error {
			time.Sleep(50 * time.Millisecond)
			return nil
		}},
		{name: "fifo", fifo: true, h: func(ctx context.Context, m *Message) error { time.Sleep(5 * time.Millisecond); return nil }},
		{name: "group limit", opts: []Option{WithGroupLimit(1)}, h: func(ctx context.Context, m *Message) error { time.Sleep(5 * time.Millisecond); return nil }},
		{name: "receive errors", h: func(ctx context.Context, m *Message) error { return nil },
			setup: func(s *sqstest.Server) {
				var n atomic.Int64
				s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
					if op == "ReceiveMessage" && n.Add(1)%2 == 0 {
						return sqstest.ServerError()
					}
					return nil
				}})
			}},
		{name: "lease lost while waiting", opts: []Option{WithVisibilityTimeout(2 * time.Second)},
			h: func(ctx context.Context, m *Message) error { time.Sleep(3 * time.Second); return nil },
			setup: func(s *sqstest.Server) {
				until := time.Now().Add(20 * time.Second) // then the queue drains
				s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
					if op == "ChangeMessageVisibilityBatch" && time.Now().Before(until) {
						return sqstest.EntryError("ReceiptHandleIsInvalid", true)
					}
					return nil
				}})
			}},
	}
	for _, tc := range cases {
		for _, strategy := range []string{"default", "semaphore"} {
			t.Run(tc.name+"/"+strategy, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := sqstest.New()
					name, attrs := "q", map[string]string(nil)
					if tc.fifo {
						name, attrs = "q.fifo", map[string]string{"FifoQueue": "true"}
					}
					url := s.MustCreateQueue(name, attrs)
					attackSend(t, s, url, 200, tc.fifo)
					if tc.setup != nil {
						tc.setup(s)
					}
					opts := append([]Option{WithConcurrency(3), WithWaitTime(time.Second), quietLog, noErrors}, tc.opts...)
					if strategy == "semaphore" {
						opts = append(opts, WithStrategy(semaphore.Factory()))
					}
					c, err := New(s, url, tc.h, opts...)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- c.Run(ctx) }()
					drained := false
					for range 3600 { // until the queue is empty and nothing is held
						time.Sleep(time.Second)
						qs, _ := s.Stats(url)
						if qs.Visible+qs.InFlight+qs.Delayed == 0 && c.q.stats.inFlight.Load() == 0 {
							drained = true
							break
						}
					}
					if !drained {
						t.Errorf("the queue did not drain in an hour")
					}
					time.Sleep(30 * time.Second) // idle long polls
					synctest.Wait()
					if q := c.q.pacer.queued.Load(); q != 0 {
						t.Errorf("while running, idle: %d messages counted as waiting in the strategy", q)
					}
					cancel()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if q, a := c.q.pacer.queued.Load(), c.q.pacer.asked.Load(); q != 0 || a != 0 {
						t.Errorf("after Run: queued %d, asked %d", q, a)
					}
				})
			})
		}
	}
}

// Shutdown in the middle of a backlog, with messages waiting in the strategy (the pool's
// room, the semaphore's Submit) and receives in flight: nothing stays counted.
func TestAttackPacerCountsAfterShutdownMidBacklog(t *testing.T) {
	for _, strategy := range []string{"default", "semaphore"} {
		for i := range 20 {
			t.Run(fmt.Sprintf("%s/%d", strategy, i), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := sqstest.New()
					url := s.MustCreateQueue("q", nil)
					attackSend(t, s, url, 300, false)
					opts := []Option{WithConcurrency(4), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithErrorHandler(func(error) {})}
					if strategy == "semaphore" {
						opts = append(opts, WithStrategy(semaphore.Factory()))
					}
					c, err := New(s, url, func(ctx context.Context, m *Message) error {
						time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
						return nil
					}, opts...)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- c.Run(ctx) }()
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
					cancel()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if q, a := c.q.pacer.queued.Load(), c.q.pacer.asked.Load(); q != 0 || a != 0 {
						t.Errorf("after Run: queued %d, asked %d", q, a)
					}
				})
			})
		}
	}
}
