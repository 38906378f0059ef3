package sqsconsumer_test

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

func TestMain(m *testing.M) {
	code := runEmulatorTests(m) // starts the emulator for the integration tests, if they run
	if code == 0 {
		if err := goleak.Find(goleakIgnores...); err != nil {
			fmt.Println("goleak:", err)
			code = 1
		}
	}
	exitWith(code)
}

var strategies = map[string]worker.Factory{
	"pool":      pool.Factory(),
	"semaphore": semaphore.Factory(),
}

// sendN puts n messages with bodies "0".."n-1" on the queue.
func sendN(t testing.TB, s benchkit.Sender, url string, n int) {
	t.Helper()
	if err := benchkit.SendN(context.Background(), s, url, n); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// advance moves a synctest bubble's fake clock on by d (or waits d outside one). A zero d
// returns at once: <-time.After(0) inside a bubble crashed the runtime once under -race
// (SIGSEGV in runtime.(*timer).maybeRunChan, go1.26.8, one run in thousands).
func advance(d time.Duration) {
	if d <= 0 {
		return
	}
	<-time.After(d)
}

// errorsTo returns an option collecting the consumer's reported errors.
func errorsTo(t *testing.T) (sqsconsumer.Option, func() []error) {
	var mu sync.Mutex
	var errs []error
	return sqsconsumer.WithErrorHandler(func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}), func() []error {
			mu.Lock()
			defer mu.Unlock()
			return append([]error(nil), errs...)
		}
}

// running starts c.Run and returns a function that cancels it and returns its error.
func running(t *testing.T, c *sqsconsumer.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

func checkReportAddsUp(t *testing.T, c *sqsconsumer.Consumer) *sqsconsumer.Report {
	t.Helper()
	r := c.Report()
	if r == nil {
		t.Fatal("no report after Run returned")
	}
	sum := r.Succeeded + r.Failed + r.Released + r.Cancelled + r.LeaseLost
	if r.Received != sum || r.InFlight != 0 {
		t.Fatalf("report does not add up: received %d, ok+failed+released+cancelled+lost = %d, in flight %d: %+v", r.Received, sum, r.InFlight, r.Stats)
	}
	return r
}

func TestNewValidates(t *testing.T) {
	s := sqstest.New()
	h := func(context.Context, *sqsconsumer.Message) error { return nil }
	var nilServer *sqstest.Server
	cases := []struct {
		name   string
		client sqsconsumer.Client
		url    string
		h      sqsconsumer.Handler
		opts   []sqsconsumer.Option
	}{
		{"client", nil, "u", h, nil},
		{"client", nilServer, "u", h, nil},
		{"queueURL", s, " ", h, nil},
		{"handler", s, "u", nil, nil},
		{"WithConcurrency", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithConcurrency(0)}},
		{"WithPollers", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithPollers(0)}},
		{"WithWaitTime", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithWaitTime(21 * time.Second)}},
		{"WithWaitTime", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithWaitTime(-time.Second)}},
		{"WithWaitTime", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithWaitTime(1500 * time.Millisecond)}},
		{"WithReceiveBatchSize", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithReceiveBatchSize(11)}},
		{"WithReceiveBatchSize", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithReceiveBatchSize(0)}},
		{"WithAckBatchSize", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithAckBatchSize(11)}},
		{"WithAckFlushInterval", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithAckFlushInterval(-1)}},
		{"WithVisibilityTimeout", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithVisibilityTimeout(999 * time.Millisecond)}},
		{"WithVisibilityTimeout", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithVisibilityTimeout(12*time.Hour + time.Second)}},
		{"WithVisibilityTimeout", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithVisibilityTimeout(1500 * time.Millisecond)}},
		{"WithLogSummary", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithLogSummary(time.Millisecond)}},
		{"WithMaxLease", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithMaxLease(-time.Second)}},
		{"WithMaxLease", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithMaxLease(13 * time.Hour)}},
		{"WithShutdownTimeout", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithShutdownTimeout(-time.Second)}},
		{"WithBackoff", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithBackoff(nil)}},
		{"WithStrategy", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithStrategy(nil)}},
		{"WithStrategy", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithStrategy(pool.Factory(pool.WithMinWorkers(99)))}},
		{"WithWeight", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithWeight(nil)}},
		{"WithErrorHandler", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithErrorHandler(nil)}},
		{"WithHandlerTimeout", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithHandlerTimeout(-time.Second)}},
		{"WithSender", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithSender(nil)}},
		{"WithGroupLimit", s, "u", h, []sqsconsumer.Option{sqsconsumer.WithGroupLimit(-1)}},
		{"option", s, "u", h, []sqsconsumer.Option{nil}},
	}
	for _, tc := range cases {
		c, err := sqsconsumer.New(tc.client, tc.url, tc.h, tc.opts...)
		if c != nil || !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: New = %v, %v; want an ErrInvalidOption naming it", tc.name, c, err)
		}
	}
	if _, err := sqsconsumer.New(s, "u", h, sqsconsumer.WithVisibilityTimeout(2*time.Second), sqsconsumer.WithWaitTime(0)); err != nil {
		t.Fatalf("valid options: %v", err)
	}
}

func TestHandlesEverythingAndEmptiesTheQueue(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New(sqstest.WithStrict())
				url := s.MustCreateQueue("q", nil)
				const n = 1000
				sendN(t, s, url, n)
				var handled sync.Map
				var count atomic.Int64
				all := make(chan struct{})
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					if _, dup := handled.LoadOrStore(*m.Body, true); dup {
						t.Errorf("message %s handled twice", *m.Body)
					}
					advance(time.Duration(len(*m.Body)) * time.Millisecond) // 1..3 ms of "work"
					if count.Add(1) == n {
						close(all)
					}
					return nil
				}, sqsconsumer.WithConcurrency(16), sqsconsumer.WithStrategy(strategy))
				if err != nil {
					t.Fatal(err)
				}
				stop := running(t, c)
				<-all
				if err := stop(); err != nil {
					t.Fatalf("Run = %v", err)
				}
				r := checkReportAddsUp(t, c)
				if r.Succeeded != n || r.Acked != n || r.AckFailed != 0 {
					t.Fatalf("report %+v", r.Stats)
				}
				// Cost and use: about one receive and one delete per 10 messages, and the 16
				// slots busy nearly all the time (handlers of 1-3 ms on an instant fake SQS).
				if r.Requests != r.Receives+r.AbandonedReceives+s.Calls("DeleteMessageBatch") || r.RequestsPerMessage > 0.21 {
					t.Fatalf("requests %d (%.3f per message), receives %d, deletes %d: %+v", r.Requests, r.RequestsPerMessage, r.Receives, s.Calls("DeleteMessageBatch"), r.Stats)
				}
				if r.Utilisation < 0.9 || r.Utilisation > 1 {
					t.Fatalf("utilisation %.3f", r.Utilisation)
				}
				st, _ := s.Stats(url)
				if st.Visible+st.InFlight+st.Delayed != 0 || st.Deleted != n || st.StaleDeletes != 0 {
					t.Fatalf("queue after run: %+v", st)
				}
				// Batching: 1000 messages take about 100 receives and 100 deletes.
				if calls := s.Calls("DeleteMessageBatch"); calls > 110 {
					t.Fatalf("%d DeleteMessageBatch calls for %d messages", calls, n)
				}
			})
		})
	}
}

func TestSecondRunFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run with a cancelled ctx = %v", err)
		}
		if err := c.Run(context.Background()); !errors.Is(err, sqsconsumer.ErrAlreadyRun) {
			t.Fatalf("second Run = %v", err)
		}
	})
}

func TestFailedMessageBacksOffAndIsRedelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		type delivery struct {
			at    time.Time
			count int
		}
		deliveries := make(chan delivery, 10)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			deliveries <- delivery{time.Now(), m.ReceiveCount()}
			if m.ReceiveCount() < 3 {
				return errors.New("not yet")
			}
			return nil
		}, sqsconsumer.WithBackoff(func(n int) time.Duration { return time.Duration(n) * 7 * time.Second }))
		stop := running(t, c)
		d1, d2, d3 := <-deliveries, <-deliveries, <-deliveries
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if d1.count != 1 || d2.count != 2 || d3.count != 3 {
			t.Fatalf("receive counts %d %d %d", d1.count, d2.count, d3.count)
		}
		if gap := d2.at.Sub(d1.at); gap < 7*time.Second || gap > 8*time.Second {
			t.Fatalf("first retry after %v, want the policy's 7s", gap)
		}
		if gap := d3.at.Sub(d2.at); gap < 14*time.Second || gap > 15*time.Second {
			t.Fatalf("second retry after %v, want 14s", gap)
		}
		r := checkReportAddsUp(t, c)
		if r.Failed != 2 || r.Succeeded != 1 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

func TestRetryOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		times := make(chan time.Time, 10)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			times <- time.Now()
			switch m.ReceiveCount() {
			case 1:
				return fmt.Errorf("wrapped: %w", sqsconsumer.RetryAfter(42*time.Second, errors.New("busy")))
			case 2:
				return sqsconsumer.Keep(errors.New("leave it"))
			}
			return nil
		}, sqsconsumer.WithVisibilityTimeout(10*time.Second))
		stop := running(t, c)
		t1, t2, t3 := <-times, <-times, <-times
		stop()
		if gap := t2.Sub(t1); gap < 42*time.Second || gap > 43*time.Second {
			t.Fatalf("RetryAfter(42s): retried after %v", gap)
		}
		if gap := t3.Sub(t2); gap < 10*time.Second || gap > 11*time.Second {
			t.Fatalf("Keep: retried after %v, want the 10s visibility", gap)
		}
	})
}

func TestPanicIsRecoveredAndCounted(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				sendN(t, s, url, 20)
				var ok atomic.Int64
				done := make(chan struct{})
				c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					if m.ReceiveCount() == 1 {
						panic("boom " + *m.Body)
					}
					if ok.Add(1) == 20 {
						close(done)
					}
					return nil
				}, sqsconsumer.WithConcurrency(2), sqsconsumer.WithStrategy(strategy),
					sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
				stop := running(t, c)
				<-done
				stop()
				r := checkReportAddsUp(t, c)
				if r.Panics != 20 || r.Failed != 20 || r.Succeeded != 20 {
					t.Fatalf("report %+v", r.Stats)
				}
			})
		})
	}
}

func TestLeaseKeepsLongHandlerMessageInvisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 3)
		var calls sync.Map
		var done atomic.Int64
		all := make(chan struct{})
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if _, again := calls.LoadOrStore(*m.MessageId, true); again {
				t.Errorf("message %s delivered twice", *m.Body)
			}
			select {
			case <-time.After(20 * time.Second): // ten times the visibility
			case <-ctx.Done():
				t.Errorf("handler ctx ended: %v", context.Cause(ctx))
			}
			if done.Add(1) == 3 {
				close(all)
			}
			return nil
		}, sqsconsumer.WithVisibilityTimeout(2*time.Second))
		stop := running(t, c)
		<-all
		stop()
		r := checkReportAddsUp(t, c)
		if r.Succeeded != 3 || r.LeaseExtended < 3*9 {
			t.Fatalf("report %+v", r.Stats)
		}
		// One extension call covers every held message, not one call each.
		if calls := s.Calls("ChangeMessageVisibilityBatch"); calls > r.LeaseExtended/3+2 {
			t.Fatalf("%d visibility calls for %d extensions of 3 messages", calls, r.LeaseExtended)
		}
	})
}

func TestLeaseExpiresAtItsCapBeforeVisibilityLapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		cause := make(chan error, 1)
		var stillInvisible bool
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			<-ctx.Done()
			st, _ := s.Stats(url)
			stillInvisible = st.InFlight == 1
			cause <- context.Cause(ctx)
			return ctx.Err()
		}, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithMaxLease(10*time.Second))
		stop := running(t, c)
		if err := <-cause; !errors.Is(err, sqsconsumer.ErrLeaseExpired) {
			t.Fatalf("cause %v, want ErrLeaseExpired", err)
		}
		stop()
		if !stillInvisible {
			t.Fatal("handler was cancelled after the message became visible again")
		}
		if r := checkReportAddsUp(t, c); r.LeaseLost != 1 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

func TestLeaseLostWhenSQSRefusesExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			if op == "ChangeMessageVisibilityBatch" {
				return sqstest.EntryError("ReceiptHandleIsInvalid", true)
			}
			return nil
		}})
		cause := make(chan error, 1)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil // even success must not delete a message whose lease is lost
		}, sqsconsumer.WithVisibilityTimeout(4*time.Second))
		stop := running(t, c)
		err := <-cause
		stop()
		if !errors.Is(err, sqsconsumer.ErrLeaseLost) || !strings.Contains(err.Error(), "ReceiptHandleIsInvalid") {
			t.Fatalf("cause %v, want ErrLeaseLost with SQS's reason", err)
		}
		r := checkReportAddsUp(t, c)
		if r.LeaseLost != 1 || s.Calls("DeleteMessageBatch") != 0 {
			t.Fatalf("report %+v, deletes %d", r.Stats, s.Calls("DeleteMessageBatch"))
		}
	})
}

func TestShutdownReleasesWaitingMessagesAndLetsRunningFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 10)
		started := make(chan struct{})
		finish := make(chan struct{})
		var once sync.Once
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			once.Do(func() { close(started) })
			<-finish
			return nil
		}, sqsconsumer.WithConcurrency(2), sqsconsumer.WithStrategy(pool.Factory(pool.WithWaitingRoom(3))))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		<-started
		synctest.Wait()
		if st, _ := s.Stats(url); st.InFlight != 5 {
			t.Fatalf("holding %d messages, want concurrency 2 + room 3", st.InFlight)
		}
		cancel()
		advance(time.Second) // the releases' batch is flushed
		synctest.Wait()      // pollers stopped, waiting room released, two handlers still running
		st, _ := s.Stats(url)
		if st.InFlight != 2 || st.Visible != 8 {
			t.Fatalf("after cancel: %+v, want 2 in flight (running) and 8 visible", st)
		}
		close(finish)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st, _ = s.Stats(url)
		if st.InFlight != 0 || st.Visible != 8 || st.Deleted != 2 {
			t.Fatalf("after Run: %+v", st)
		}
		if r := checkReportAddsUp(t, c); r.Released != 3 || r.Succeeded != 2 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

// A receive in flight while handlers still finish may complete: what it brings is released.
func TestShutdownReleasesWhatAnInFlightReceiveBrings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		started, finish := make(chan struct{}), make(chan struct{})
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body != "0" {
				t.Error("handler ran during shutdown")
			}
			close(started)
			<-finish
			return nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		<-started
		synctest.Wait() // the next receive is waiting in its long poll
		cancel()
		synctest.Wait()
		sendN(t, s, url, 3) // arrives while the receive still waits and the handler still runs
		synctest.Wait()
		close(finish)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st, _ := s.Stats(url)
		if st.Visible != 3 || st.InFlight != 0 || st.Deleted != 1 {
			t.Fatalf("after Run: %+v; the receive's messages must be released, not orphaned", st)
		}
		if r := checkReportAddsUp(t, c); r.Received != 4 || r.Released != 3 || r.Succeeded != 1 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

// WithFinishReceives: the receive in flight at shutdown is waited for, and what it brings is
// released at once, never handled.
func TestShutdownWithFinishReceivesWaitsForTheReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			t.Error("handler ran during shutdown")
			return nil
		}, sqsconsumer.WithFinishReceives())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait() // the receive is waiting in its long poll
		cancel()
		synctest.Wait()
		sendN(t, s, url, 3) // arrives while the receive still waits
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		st, _ := s.Stats(url)
		if st.Visible != 3 || st.InFlight != 0 {
			t.Fatalf("after Run: %+v; the receive's messages must be released, not orphaned", st)
		}
		if r := checkReportAddsUp(t, c); r.Received != 3 || r.Released != 3 || r.AbandonedReceives != 0 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

// On an idle queue nothing is left to finish: the long poll in flight is abandoned, and Run
// returns at once instead of after the wait time.
func TestShutdownOnAnIdleQueueReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error { return nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		advance(5 * time.Second)
		synctest.Wait() // the receive is waiting in its long poll
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 0 {
			t.Fatalf("Run took %v to return on an idle queue", took)
		}
		if r := checkReportAddsUp(t, c); r.AbandonedReceives != 1 || r.ReceiveErrors != 0 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

func TestShutdownTimeoutCancelsHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 2)
		started := make(chan struct{}, 2)
		var cancelledAt atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			started <- struct{}{}
			<-ctx.Done()
			cancelledAt.Store(time.Now().UnixNano())
			if !errors.Is(context.Cause(ctx), sqsconsumer.ErrShutdownTimeout) {
				t.Errorf("cause %v", context.Cause(ctx))
			}
			if *m.Body == "0" {
				return nil // finished its work despite the cancel: deleted
			}
			return ctx.Err()
		}, sqsconsumer.WithShutdownTimeout(3*time.Second))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		<-started
		<-started
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Unix(0, cancelledAt.Load()).Sub(start); took != 3*time.Second {
			t.Fatalf("handlers cancelled %v after shutdown began, want the 3s timeout", took)
		}
		r := checkReportAddsUp(t, c)
		if !r.ShutdownTimedOut || r.Cancelled != 1 || r.Succeeded != 1 {
			t.Fatalf("report %+v timed out %v", r.Stats, r.ShutdownTimedOut)
		}
		if st, _ := s.Stats(url); st.Visible != 1 || st.Deleted != 1 {
			t.Fatalf("queue %+v", st)
		}
	})
}

// countingClient wraps a Client and tracks what the consumer holds.
type countingClient struct {
	sqsconsumer.Client
	mu       sync.Mutex
	asked    []int32
	held     int // received and not yet finished by the handler
	peakHeld int
}

func (c *countingClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := c.Client.ReceiveMessage(ctx, in, optFns...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, in.MaxNumberOfMessages)
	if err == nil {
		c.held += len(out.Messages)
		c.peakHeld = max(c.peakHeld, c.held)
	}
	return out, err
}

func (c *countingClient) finished() {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
}

func TestNeverHoldsMoreThanCapacity(t *testing.T) {
	cases := map[string]struct {
		strategy worker.Factory
		capacity int
	}{
		"pool":           {pool.Factory(pool.WithWaitingRoom(3)), 4 + 3},
		"pool no room":   {pool.Factory(pool.WithWaitingRoom(0)), 4},
		"semaphore":      {semaphore.Factory(), 4 + worker.DefaultWaitingRoom(4)},
		"semaphore room": {semaphore.Factory(semaphore.WithWaitingRoom(1)), 4 + 1},
		"pool 3 pollers": {pool.Factory(pool.WithWaitingRoom(1)), 4 + 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				sendN(t, s, url, 300)
				cc := &countingClient{Client: s}
				var n atomic.Int64
				all := make(chan struct{})
				pollers := 1
				if strings.Contains(name, "pollers") {
					pollers = 3
				}
				c, _ := sqsconsumer.New(cc, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					advance(time.Duration(1+len(*m.Body)%5) * time.Millisecond)
					cc.finished()
					if n.Add(1) == 300 {
						close(all)
					}
					return nil
				}, sqsconsumer.WithConcurrency(4), sqsconsumer.WithStrategy(tc.strategy), sqsconsumer.WithPollers(pollers))
				stop := running(t, c)
				<-all
				stop()
				if cc.peakHeld > tc.capacity {
					t.Fatalf("held %d messages at once, capacity %d", cc.peakHeld, tc.capacity)
				}
				if cc.peakHeld < 4 {
					t.Fatalf("never held more than %d: not using the concurrency", cc.peakHeld)
				}
				for _, a := range cc.asked {
					if a < 1 || int(a) > min(10, tc.capacity) {
						t.Fatalf("a receive asked for %d", a)
					}
				}
			})
		})
	}
}

func TestMissingQueueEndsRunWithError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, "https://sqstest.invalid/000000000000/nope", func(context.Context, *sqsconsumer.Message) error { return nil }, opt)
		err := c.Run(context.Background())
		var missing *types.QueueDoesNotExist
		if !errors.As(err, &missing) || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("Run = %v, want QueueDoesNotExist naming the queue", err)
		}
		if s.Calls("ReceiveMessage") != 3 || len(errs()) != 2 {
			t.Fatalf("%d receives, %d reported errors; want 3 tries, the first two reported", s.Calls("ReceiveMessage"), len(errs()))
		}
		if c.Report().Err != err {
			t.Fatal("report does not carry Run's error")
		}
	})
}

func TestReceiveErrorsBackOffWithoutSpinning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		var failing atomic.Bool
		failing.Store(true)
		s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
			if op == "ReceiveMessage" && failing.Load() {
				return sqstest.Throttled()
			}
			return nil
		}})
		got := make(chan struct{})
		opt, _ := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { close(got); return nil }, opt)
		stop := running(t, c)
		advance(time.Minute) // a minute of throttling
		calls := s.Calls("ReceiveMessage")
		if calls > 20 {
			t.Fatalf("%d receives in a minute of throttling: not backing off", calls)
		}
		failing.Store(false)
		<-got
		if err := stop(); err != nil {
			t.Fatalf("transient errors must not end Run: %v", err)
		}
		if r := c.Report(); r.ReceiveErrors != calls {
			t.Fatalf("receive errors %d, calls %d", r.ReceiveErrors, calls)
		}
	})
}

func TestIdleQueueIsNotPolledHot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		maxCalls int64
	}{
		{"long poll: at most one receive per 20s wait", 20 * time.Second, 6},
		{"short poll: pauses a second when empty", 0, 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.WithWaitTime(tc.wait))
				stop := running(t, c)
				advance(100 * time.Second)
				stop()
				if calls := s.Calls("ReceiveMessage"); calls > tc.maxCalls {
					t.Fatalf("%d receives of an idle queue in 100s, want at most %d", calls, tc.maxCalls)
				}
			})
		})
	}
}

func TestTooHeavyMessageIsReportedNotStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 5)
		var ran atomic.Int64
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { ran.Add(1); return nil },
			sqsconsumer.WithStrategy(semaphore.Factory()), sqsconsumer.WithConcurrency(3), opt,
			sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 {
				if *m.Body == "2" {
					return 4
				}
				return 2
			}))
		stop := running(t, c)
		for ran.Load() < 4 {
			advance(time.Second)
		}
		stop()
		found := false
		for _, err := range errs() {
			found = found || errors.Is(err, worker.ErrTooHeavy)
		}
		if !found {
			t.Fatalf("no ErrTooHeavy reported: %v", errs())
		}
		if r := checkReportAddsUp(t, c); r.Succeeded != 4 || r.Failed < 1 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

func TestFIFOGroupsRunInOrderOneAtATime(t *testing.T) {
	for _, tc := range []struct {
		name        string
		strategy    worker.Factory
		concurrency int
	}{
		{"pool", pool.Factory(), 8},
		{"semaphore", semaphore.Factory(), 8},
		{"pool/c=1", pool.Factory(), 1},
		{"semaphore/c=1", semaphore.Factory(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
				groups := []string{"a", "b", "c", "d"}
				const perGroup = 30
				for i := 0; i < perGroup; i++ {
					for _, g := range groups {
						s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("%s-%03d", g, i)), MessageGroupId: aws.String(g)})
					}
				}
				var mu sync.Mutex
				seen := map[string][]string{}
				active := map[string]int{}
				var parallel, peak int
				failed := map[string]bool{}
				done := make(chan struct{})
				total := 0
				c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					g := m.GroupID()
					mu.Lock()
					active[g]++
					parallel++
					peak = max(peak, parallel)
					if active[g] > 1 {
						t.Errorf("group %s has %d handlers at once", g, active[g])
					}
					mu.Unlock()
					advance(benchkit.LatencyOf(*m.Body) / 5) // 2..10 ms, fixed by the body
					mu.Lock()
					defer mu.Unlock()
					active[g]--
					parallel--
					if strings.HasSuffix(*m.Body, "7") && !failed[*m.Body] {
						failed[*m.Body] = true
						return errors.New("fail once: the rest of the group must wait for its retry")
					}
					seen[g] = append(seen[g], *m.Body)
					total++
					if total == perGroup*len(groups) {
						close(done)
					}
					return nil
				}, sqsconsumer.WithConcurrency(tc.concurrency), sqsconsumer.WithStrategy(tc.strategy),
					sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
				stop := running(t, c)
				<-done
				stop()
				for _, g := range groups {
					for i, body := range seen[g] {
						if want := fmt.Sprintf("%s-%03d", g, i); body != want {
							t.Fatalf("group %s: position %d handled %s (order %v)", g, i, body, seen[g])
						}
					}
				}
				if peak != min(tc.concurrency, len(groups)) {
					t.Fatalf("peak %d groups in parallel, want %d", peak, min(tc.concurrency, len(groups)))
				}
			})
		})
	}
}

// A finishing FIFO handler hands its group's next message on without blocking in Submit while
// it still holds the capacity (with the semaphore at concurrency 1 that would deadlock).
func TestFIFOSuccessorsDoNotDeadlockAFullStrategy(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
				const n = 40
				for i := 0; i < n; i++ {
					s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("%03d", i)), MessageGroupId: aws.String("only")})
				}
				var order []string
				done := make(chan struct{})
				c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					order = append(order, *m.Body) // one group: never concurrent
					if len(order) == n {
						close(done)
					}
					return nil
				}, sqsconsumer.WithConcurrency(1), sqsconsumer.WithStrategy(strategy))
				stop := running(t, c)
				<-done
				stop()
				for i, body := range order {
					if body != fmt.Sprintf("%03d", i) {
						t.Fatalf("position %d: %s", i, body)
					}
				}
				if r := checkReportAddsUp(t, c); r.Received > n+5 {
					t.Fatalf("report %+v", r.Stats)
				}
			})
		})
	}
}

func TestPollersAdaptToBacklogAndIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 5000)
		// Each call takes 20 ms, as over a network; handlers take 1 ms: one poller cannot keep
		// 64 slots fed. (The pacer measures the round trip on deletes, so they must be as far
		// away as the receives, as they are on SQS.)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			return 20 * time.Millisecond
		}})
		var n atomic.Int64
		c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(time.Millisecond)
			n.Add(1)
			return nil
		}, sqsconsumer.WithConcurrency(64), sqsconsumer.WithMaxPollers(4))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		var peak int64
		for n.Load() < 5000 {
			peak = max(peak, c.Stats().Pollers)
			advance(5 * time.Millisecond)
		}
		if peak != 4 {
			t.Fatalf("peak pollers %d at a deep backlog, want the maximum 4", peak)
		}
		// Idle now: back to one poller, one long poll per 20 s.
		advance(time.Minute)
		if p := c.Stats().Pollers; p != 1 {
			t.Fatalf("%d pollers on an idle queue, want 1", p)
		}
		before := s.Calls("ReceiveMessage")
		advance(100 * time.Second)
		if idle := s.Calls("ReceiveMessage") - before; idle > 6 {
			t.Fatalf("%d receives in 100 s of idle queue", idle)
		}
		stop()
		if r := checkReportAddsUp(t, c); r.Succeeded != 5000 || r.Pollers != 0 {
			t.Fatalf("report %+v", r.Stats)
		}
	})
}

func TestFixedPollerCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithPollers(3), sqsconsumer.WithMaxPollers(3))
		stop := running(t, c)
		advance(time.Minute)
		if p := c.Stats().Pollers; p != 3 {
			t.Fatalf("%d pollers, want a fixed 3", p)
		}
		stop()
		if _, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithPollers(3), sqsconsumer.WithMaxPollers(2)); !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), "WithMaxPollers") {
			t.Fatalf("max below min: %v", err)
		}
	})
}

// On a standard queue WithGroupLimit keeps one tenant (MessageGroupId) from taking every slot.
func TestGroupLimitSharesSlotsBetweenTenants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		send := func(tenant string, n int) {
			for i := 0; i < n; i++ {
				s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(tenant, i)), MessageGroupId: aws.String(tenant)})
			}
		}
		send("big", 300)
		send("small", 30)
		var mu sync.Mutex
		active := map[string]int{}
		peak := map[string]int{}
		var smallDone, bigAtSmallDone, total atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			g := m.GroupID()
			mu.Lock()
			active[g]++
			peak[g] = max(peak[g], active[g])
			mu.Unlock()
			latency := 5 * time.Millisecond
			if g == "big" {
				latency = 200 * time.Millisecond
			}
			advance(latency)
			mu.Lock()
			active[g]--
			mu.Unlock()
			if g == "small" && smallDone.Add(1) == 30 {
				bigAtSmallDone.Store(total.Load())
			}
			total.Add(1)
			return nil
		}, sqsconsumer.WithConcurrency(8), sqsconsumer.WithGroupLimit(2))
		stop := running(t, c)
		for total.Load() < 330 {
			advance(100 * time.Millisecond)
		}
		stop()
		if peak["big"] > 2 || peak["small"] > 2 {
			t.Fatalf("peak running per tenant %v, limit 2", peak)
		}
		if done := bigAtSmallDone.Load(); done > 150 {
			t.Fatalf("the small tenant finished only after %d messages: the big one starved it", done)
		}
		if r := checkReportAddsUp(t, c); r.Succeeded != 330 {
			t.Fatalf("report %+v", r.Stats)
		}
		if st, _ := s.Stats(url); st.Deleted != 330 {
			t.Fatalf("queue %+v", st)
		}
	})
}

// attemptClient records the ReceiveRequestAttemptId of each receive and fails the ones asked.
type attemptClient struct {
	sqsconsumer.Client
	mu       sync.Mutex
	attempts []string
	fail     map[int]bool // by call number, from 0
}

func (c *attemptClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.mu.Lock()
	call := len(c.attempts)
	c.attempts = append(c.attempts, aws.ToString(in.ReceiveRequestAttemptId))
	c.mu.Unlock()
	if c.fail[call] {
		return nil, sqstest.ServerError()
	}
	return c.Client.ReceiveMessage(ctx, in, optFns...)
}

func TestFIFOReceiveRetriesReuseTheAttemptID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageGroupId: aws.String("g")})
		ac := &attemptClient{Client: s, fail: map[int]bool{0: true, 1: true}}
		done := make(chan struct{})
		opt, _ := errorsTo(t)
		c, _ := sqsconsumer.New(ac, url, func(context.Context, *sqsconsumer.Message) error { close(done); return nil }, opt, sqsconsumer.WithWaitTime(time.Second))
		stop := running(t, c)
		<-done
		advance(3 * time.Second)
		stop()
		ac.mu.Lock()
		defer ac.mu.Unlock()
		if len(ac.attempts) < 4 {
			t.Fatalf("%d receives", len(ac.attempts))
		}
		a := ac.attempts
		if a[0] == "" || a[1] != a[0] || a[2] != a[0] || a[3] == a[0] {
			t.Fatalf("attempt ids %q: the retries of a failed receive must reuse its id, the next receive take a new one", a[:4])
		}
	})
}

func TestRerouteMovesToADelayQueueThenDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("work", nil)
		delayed := s.MustCreateQueue("work-delayed", nil)
		fifoTarget := s.MustCreateQueue("work-prio.fifo", map[string]string{"FifoQueue": "true"})
		for _, body := range []string{"saturated", "prio", "badfifo", "sendfails"} {
			s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body),
				MessageAttributes: map[string]types.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v-" + body)}}})
		}
		s.SetFaults(sqstest.Faults{Call: func(op string, in any) error {
			if op == "SendMessage" && aws.ToString(in.(*sqs.SendMessageInput).MessageBody) == "sendfails" {
				return sqstest.ServerError()
			}
			return nil
		}})
		opt, errs := errorsTo(t)
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			switch *m.Body {
			case "saturated", "sendfails":
				return sqsconsumer.Reroute(delayed, 2*time.Minute, errors.New("downstream saturated"))
			case "prio":
				return sqsconsumer.Reroute(fifoTarget, 0, nil)
			case "badfifo":
				return sqsconsumer.Reroute(fifoTarget, time.Minute, nil) // FIFO queues take no delay
			}
			return nil
		}, opt, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		stop := running(t, c)
		for c.Stats().Succeeded+c.Stats().Failed < 4 {
			advance(10 * time.Millisecond)
		}
		stop()
		r := checkReportAddsUp(t, c)
		if r.Rerouted != 2 || r.Succeeded != 2 || r.Failed != 2 {
			t.Fatalf("report %+v", r.Stats)
		}
		if st, _ := s.Stats(url); st.Deleted != 2 || st.InFlight != 2 {
			t.Fatalf("source %+v: the two that could not move must stay", st)
		}
		if st, _ := s.Stats(delayed); st.Delayed != 1 {
			t.Fatalf("delay queue %+v, want one message delayed", st)
		}
		advance(2 * time.Minute)
		out, _ := s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &delayed, MessageAttributeNames: []string{"All"}})
		if len(out.Messages) != 1 || *out.Messages[0].Body != "saturated" || *out.Messages[0].MessageAttributes["k"].StringValue != "v-saturated" {
			t.Fatalf("delay queue holds %+v", out.Messages)
		}
		out, _ = s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &fifoTarget})
		if len(out.Messages) != 1 || *out.Messages[0].Body != "prio" {
			t.Fatalf("FIFO target holds %+v", out.Messages)
		}
		var rerouteErrs int
		for _, err := range errs() {
			if errors.Is(err, sqsconsumer.ErrReroute) {
				rerouteErrs++
			}
		}
		if rerouteErrs != 2 {
			t.Fatalf("reported %v", errs())
		}
	})
}
