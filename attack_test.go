package sqsconsumer_test

// Adversarial tests against DESIGN.md's invariants (reviewer's attack suite).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// attackChild runs scenario in a child process when it may kill the process (an unrecovered
// panic on a library goroutine), and fails with the child's panic text.
func attackChild(t *testing.T, name string, scenario func(t *testing.T)) {
	t.Helper()
	env := "SQSCONSUMER_ATTACK_CHILD_" + name
	if os.Getenv(env) == "1" {
		scenario(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		if i := strings.Index(text, "panic:"); i >= 0 {
			text = text[i:min(len(text), i+1200)]
		} else if len(text) > 2500 {
			text = text[len(text)-2500:]
		}
		t.Fatalf("the scenario's process failed (%v):\n%s", err, text)
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 1: never hold more than capacity, also when a receive brings more than it asked
// for. On a FIFO queue that happens for real: a retried receive reuses its
// ReceiveRequestAttemptId, and SQS then returns the original attempt's messages whatever
// MaxNumberOfMessages the retry asks for.

type overGivingClient struct {
	*sqstest.Server
	mu        sync.Mutex
	asked     []int32
	held      int
	peak      int
	extraSeen bool
}

func (c *overGivingClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	cp := *in
	cp.MaxNumberOfMessages = 10
	out, err := c.Server.ReceiveMessage(ctx, &cp, optFns...)
	if err == nil {
		c.mu.Lock()
		c.asked = append(c.asked, in.MaxNumberOfMessages)
		if int32(len(out.Messages)) > in.MaxNumberOfMessages {
			c.extraSeen = true
		}
		c.mu.Unlock()
	}
	return out, err
}

func TestAttackFIFOReceiveBringingMoreThanAskedKeepsTheBound(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			attackChild(t, "OVER_"+name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := sqstest.New()
					url := fifoQueue(s, "q")
					const n = 12
					for i := range n {
						sendGroup(t, s, url, "g", fmt.Sprintf("%02d", i))
					}
					cc := &overGivingClient{Server: s}
					var running, peak, handled atomic.Int64
					done := make(chan struct{})
					c, _ := sqsconsumer.New(cc, url, func(context.Context, *sqsconsumer.Message) error {
						r := running.Add(1)
						for {
							p := peak.Load()
							if r <= p || peak.CompareAndSwap(p, r) {
								break
							}
						}
						advance(10 * time.Millisecond)
						running.Add(-1)
						if handled.Add(1) == n {
							close(done)
						}
						return nil
					}, sqsconsumer.WithConcurrency(1), sqsconsumer.WithStrategy(strategy), sqsconsumer.WithWaitTime(time.Second), quiet)
					stop := running_(t, c)
					var maxHeld int64
					for {
						select {
						case <-done:
						case <-time.After(5 * time.Millisecond):
							maxHeld = max(maxHeld, c.Stats().InFlight)
							continue
						}
						break
					}
					if err := stop(); err != nil {
						t.Fatal(err)
					}
					checkReportAddsUp(t, c)
					capacity := int64(1 + worker.DefaultWaitingRoom(1)) // concurrency 1 + the pool's default waiting room
					if maxHeld > capacity {
						t.Fatalf("held %d messages at once (Stats.InFlight), capacity %d (receives asked for %v)", maxHeld, capacity, cc.asked)
					}
				})
			})
		})
	}
}

// running_ is running under another name (the handler above shadows it).
func running_(t *testing.T, c *sqsconsumer.Consumer) func() error { return running(t, c) }

// ---------------------------------------------------------------------------------------------
// Invariant 8: bad configuration is an error from New, never a panic.

func TestAttackNewWithAFactoryReturningNilStrategy(t *testing.T) {
	s := sqstest.New()
	url := s.MustCreateQueue("q", nil)
	var got error
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("New panicked on a factory returning (nil, nil): %v", v)
			}
		}()
		_, got = sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithStrategy(func(int) (worker.Strategy, error) { return nil, nil }))
	}()
	if !errors.Is(got, sqsconsumer.ErrInvalidOption) {
		t.Fatalf("New = %v, want ErrInvalidOption", got)
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 4: the lease extends every held message before its visibility lapses. With many
// messages held and ChangeMessageVisibilityBatch answering in 600 ms (slow, but well inside
// the call timeout), a lease that extends its batches one after the other loses most of them.

func TestAttackLeaseKeepsManyMessagesWithSlowExtensions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		const n = 110
		sendN(t, s, url, n)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "ChangeMessageVisibilityBatch" {
				return 600 * time.Millisecond
			}
			return 0
		}})
		release := make(chan struct{})
		var lost atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			select {
			case <-release:
			case <-ctx.Done():
				lost.Add(1)
			}
			return nil
		}, sqsconsumer.WithConcurrency(100), sqsconsumer.WithVisibilityTimeout(4*time.Second), quiet)
		stop := running(t, c)
		for c.Stats().Received < n {
			advance(10 * time.Millisecond)
		}
		advance(20 * time.Second)
		close(release)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		if r.LeaseLost != 0 || lost.Load() != 0 {
			t.Fatalf("%d leases lost (%d messages, each held until released) although SQS accepted every extension it was asked for, in 600 ms each: %+v", r.LeaseLost, n, r.Stats)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Invariant 11: user code on the message path is contained. A StopPolicy is user code too.

func TestAttackPanickingStopPolicyDoesNotKillTheProcess(t *testing.T) {
	attackChild(t, "STOPPANIC", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := sqstest.New()
			url := s.MustCreateQueue("q", nil)
			sendN(t, s, url, 3)
			var calls atomic.Int64
			c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
				sqsconsumer.WithStopPolicy(func(p sqsconsumer.Progress) bool {
					if calls.Add(1) >= 3 {
						panic("stop policy bug")
					}
					return false
				}), quiet)
			stop := running(t, c)
			advance(5 * time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkReportAddsUp(t, c)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Invariants 5/9/11: shutdown at every moment. Handlers succeed, fail, panic, overrun the handler
// timeout or the shutdown timeout, by body; the backoff is 0 so that every message that is not
// deleted must be visible again once Run returned. Cancel after k handler starts, or at a
// moment of fake time.

type sweepCase struct {
	name  string
	fifo  bool
	opts  []sqsconsumer.Option
	strat func() worker.Factory
}

func sweepCases() []sweepCase {
	var out []sweepCase
	for _, st := range []struct {
		name string
		f    func() worker.Factory
	}{
		{"pool", func() worker.Factory { return pool.Factory() }},
		{"pool-room0", func() worker.Factory { return pool.Factory(pool.WithWaitingRoom(0)) }},
		{"semaphore", func() worker.Factory { return semaphore.Factory() }},
	} {
		out = append(out,
			sweepCase{name: st.name + "/standard", strat: st.f},
			sweepCase{name: st.name + "/fifo", fifo: true, strat: st.f},
			sweepCase{name: st.name + "/grouplimit", strat: st.f, opts: []sqsconsumer.Option{sqsconsumer.WithGroupLimit(2)}},
			sweepCase{name: st.name + "/fifo-3pollers", fifo: true, strat: st.f, opts: []sqsconsumer.Option{sqsconsumer.WithPollers(3)}},
		)
	}
	return out
}

func sweepOnce(t *testing.T, tc sweepCase, cancelAtStart int, cancelAfter time.Duration, weights bool) {
	s := sqstest.New(sqstest.WithStrict())
	url := s.MustCreateQueue("q", nil)
	if tc.fifo {
		url = fifoQueue(s, "q")
	}
	const n = 40
	for i := range n {
		sendGroup(t, s, url, fmt.Sprintf("g%d", i%3), fmt.Sprintf("%02d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var starts, active atomic.Int64
	var returned atomic.Bool
	var mu sync.Mutex
	lastOK := map[string]int{} // FIFO: group -> last body index that succeeded
	h := func(hctx context.Context, m *sqsconsumer.Message) error {
		if returned.Load() {
			t.Errorf("handler for %s started after Run returned", *m.Body)
		}
		active.Add(1)
		defer active.Add(-1)
		if starts.Add(1) == int64(cancelAtStart) {
			cancel()
		}
		var i int
		fmt.Sscanf(*m.Body, "%d", &i)
		var err error
		advance(time.Millisecond) // every call takes fake time: a backoff of 0 must not spin the bubble
		switch i % 7 {
		case 0:
			advance(40 * time.Millisecond) // past the handler timeout, ignoring ctx
		case 1:
			err = errors.New("fail")
		case 2:
			panic("boom")
		case 3:
			select { // honours ctx, takes long
			case <-hctx.Done():
				err = hctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		default:
			advance(time.Duration(1+i%5) * time.Millisecond)
		}
		if err == nil && tc.fifo && hctx.Err() == nil {
			mu.Lock()
			if last, ok := lastOK[m.GroupID()]; ok && i < last {
				t.Errorf("FIFO group %s: %02d succeeded after %02d", m.GroupID(), i, last)
			}
			lastOK[m.GroupID()] = i
			mu.Unlock()
		}
		return err
	}
	opts := append([]sqsconsumer.Option{
		sqsconsumer.WithConcurrency(3), sqsconsumer.WithStrategy(tc.strat()),
		sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }),
		sqsconsumer.WithHandlerTimeout(25 * time.Millisecond), sqsconsumer.WithShutdownTimeout(100 * time.Millisecond),
		sqsconsumer.WithWaitTime(time.Second), quiet,
	}, tc.opts...)
	if weights {
		opts = append(opts, sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 {
			var i int
			fmt.Sscanf(*m.Body, "%d", &i)
			if i%11 == 5 {
				return 4 // heavier than the concurrency: refused, retried by the backoff
			}
			if i%13 == 6 {
				panic("weight bug")
			}
			return int64(1 + i%3)
		}))
	}
	c, err := sqsconsumer.New(s, url, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	if cancelAfter >= 0 {
		advance(cancelAfter)
		cancel()
	}
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(2 * time.Second):
		cancel()
		runErr = <-done
	}
	returned.Store(true)
	if a := active.Load(); a != 0 {
		t.Fatalf("%d handlers still running when Run returned", a)
	}
	if runErr != nil {
		t.Fatalf("Run = %v", runErr)
	}
	r := checkReportAddsUp(t, c)
	st, _ := s.Stats(url)
	if st.InFlight != 0 && len(tc.opts) > 0 && tc.opts[0] != nil && strings.Contains(tc.name, "grouplimit") {
		// A lane's overflow is handed back by design, also just before the shutdown, for 1 s on a
		// first delivery and four times longer on each later one (at most 15 min).
		advance(15*time.Minute + time.Millisecond)
		st, _ = s.Stats(url)
	}
	if st.InFlight != 0 {
		t.Fatalf("[%s cancelAtStart=%d cancelAfter=%v weights=%v] after Run returned %d messages are still invisible on SQS (report %+v; queue %+v)", tc.name, cancelAtStart, cancelAfter, weights, st.InFlight, r.Stats, st)
	}
	if int64(st.Deleted) != r.Acked || r.AckFailed != 0 || r.VisibilityFailed != 0 {
		t.Fatalf("deleted on SQS %d, Acked %d, AckFailed %d, VisibilityFailed %d", st.Deleted, r.Acked, r.AckFailed, r.VisibilityFailed)
	}
	synctest.Wait()
}

func TestAttackShutdownAtEveryHandlerStart(t *testing.T) {
	for _, tc := range sweepCases() {
		t.Run(tc.name, func(t *testing.T) {
			for k := 1; k <= 45; k++ {
				for _, w := range []bool{false, true} {
					if w && !strings.HasPrefix(tc.name, "semaphore") {
						continue
					}
					synctest.Test(t, func(t *testing.T) { sweepOnce(t, tc, k, -1, w) })
					if t.Failed() {
						t.Fatalf("k=%d weights=%v", k, w)
					}
				}
			}
		})
	}
}

func TestAttackShutdownAtEveryMoment(t *testing.T) {
	for _, tc := range sweepCases() {
		t.Run(tc.name, func(t *testing.T) {
			for ms := 0; ms <= 400; ms += 7 {
				for _, w := range []bool{false, true} {
					if w && !strings.HasPrefix(tc.name, "semaphore") {
						continue
					}
					synctest.Test(t, func(t *testing.T) { sweepOnce(t, tc, -1, time.Duration(ms)*time.Millisecond, w) })
					if t.Failed() {
						t.Fatalf("cancel at %dms weights=%v", ms, w)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 11: whatever a handler returns, the message leaves through the one exit. A typed nil
// error whose Unwrap dereferences its receiver (a classic Go mistake) panics inside judge's
// errors.As / errors.Is, after the handler's own recover: the message is then never counted,
// stays leased (extended for an hour), and InFlight never drops.

type nilUnwrapErr struct{ inner error }

func (e *nilUnwrapErr) Error() string { return "nilUnwrapErr" }
func (e *nilUnwrapErr) Unwrap() error { return e.inner }

func TestAttackTypedNilErrorStillLeavesThroughTheExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		handled := make(chan struct{})
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			defer close(handled)
			var e *nilUnwrapErr
			return e
		}, quiet, sqsconsumer.WithWaitTime(time.Second))
		stop := running(t, c)
		<-handled
		advance(2 * time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := c.Report()
		st, _ := s.Stats(url)
		if r.Received != r.Succeeded+r.Failed+r.Released+r.Cancelled+r.LeaseLost || r.InFlight != 0 {
			t.Fatalf("a handler returning a typed nil error: report %+v; queue %+v (the message never left through the exit and is still leased)", r.Stats, st)
		}
	})
}

// Invariant 11: a Sender (WithSender, user code) that panics during Reroute.
type panickingSender struct{}

func (panickingSender) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	panic("sender bug")
}

func TestAttackPanickingSenderStillLeavesThroughTheExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		other := s.MustCreateQueue("other", nil)
		sendN(t, s, url, 1)
		handled := make(chan struct{})
		var once sync.Once
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			once.Do(func() { close(handled) })
			return sqsconsumer.Reroute(other, 0, nil)
		}, quiet, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithSender(panickingSender{}))
		stop := running(t, c)
		<-handled
		advance(2 * time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := c.Report()
		if r.Received != r.Succeeded+r.Failed+r.Released+r.Cancelled+r.LeaseLost || r.InFlight != 0 {
			t.Fatalf("after a Sender panic: report %+v (the message never left through the exit)", r.Stats)
		}
	})
}

// Invariants 4/10: a FIFO message whose lease is lost while it waits behind its group's running
// message must not be started later (its ctx is already cancelled; it is no longer ours).
func TestAttackLeaseLostWhileWaitingInLaneIsNotStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := fifoQueue(s, "q")
		sendGroup(t, s, url, "g", "m1")
		sendGroup(t, s, url, "g", "m2")
		// SQS refuses every extension of m2's first receipt (key 2).
		s.SetFaults(sqstest.Faults{Entry: func(op, h string) *types.BatchResultErrorEntry {
			if op == "ChangeMessageVisibilityBatch" && h == "rh-2-1" {
				return sqstest.EntryError("ReceiptHandleIsInvalid", true)
			}
			return nil
		}})
		var m2StartedLost atomic.Bool
		var m2Starts atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "m1" {
				advance(10 * time.Second) // m2 waits behind m1 for longer than the visibility
				return nil
			}
			m2Starts.Add(1)
			if ctx.Err() != nil && *m.ReceiptHandle == "rh-2-1" {
				m2StartedLost.Store(true)
			}
			return nil
		}, quiet, sqsconsumer.WithVisibilityTimeout(4*time.Second), sqsconsumer.WithWaitTime(time.Second))
		stop := running(t, c)
		advance(30 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		if m2StartedLost.Load() {
			t.Fatalf("m2's handler was started with its lease already lost (ctx cancelled, cause %v); starts of m2: %d", sqsconsumer.ErrLeaseLost, m2Starts.Load())
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Invariant 1 across a Group: the queues share one capacity; with several pollers per queue the
// messages held (Stats.InFlight summed) never exceed it. Shutdown at a moment of fake time,
// then the report adds up and nothing is left invisible.

func TestAttackGroupNeverHoldsMoreThanCapacity(t *testing.T) {
	for name, strat := range map[string]func() worker.Factory{
		"pool":      func() worker.Factory { return pool.Factory(pool.WithWaitingRoom(2)) },
		"semaphore": func() worker.Factory { return semaphore.Factory(semaphore.WithWaitingRoom(2)) },
	} {
		t.Run(name, func(t *testing.T) {
			for ms := 0; ms < 300; ms += 13 {
				synctest.Test(t, func(t *testing.T) {
					s := sqstest.New(sqstest.WithStrict())
					urls := []string{s.MustCreateQueue("a", nil), fifoQueue(s, "b"), s.MustCreateQueue("c", nil)}
					for i := range 40 {
						for _, u := range urls {
							sendGroup(t, s, u, fmt.Sprintf("g%d", i%4), fmt.Sprintf("%02d", i))
						}
					}
					g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(4), sqsconsumer.WithStrategy(strat()),
						sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithShutdownTimeout(20*time.Millisecond),
						sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }), quiet)
					if err != nil {
						t.Fatal(err)
					}
					h := func(ctx context.Context, m *sqsconsumer.Message) error {
						var i int
						fmt.Sscanf(*m.Body, "%d", &i)
						advance(time.Duration(1+i%9) * time.Millisecond)
						if i%5 == 0 {
							return errors.New("fail")
						}
						return nil
					}
					for i, u := range urls {
						if err := g.Add(s, u, h, sqsconsumer.Share{Priority: i % 2, Weight: 1 + i}, sqsconsumer.WithPollers(2), sqsconsumer.WithMaxPollers(3)); err != nil {
							t.Fatal(err)
						}
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- g.Run(ctx) }()
					var peak int64
					for range ms {
						synctest.Wait() // the queues' counters at one quiet moment, not read while they move
						var held int64
						for _, st := range g.Stats() {
							held += st.InFlight
						}
						peak = max(peak, held)
						advance(time.Millisecond)
					}
					cancel()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if peak > 6 {
						t.Fatalf("[cancel at %dms] the group held %d messages at once, capacity 4 + room 2", ms, peak)
					}
					r := g.Report()
					for u, qr := range r.Queues {
						sum := qr.Succeeded + qr.Failed + qr.Released + qr.Cancelled + qr.LeaseLost
						if qr.Received != sum || qr.InFlight != 0 {
							t.Fatalf("[cancel at %dms] %s: report does not add up: %+v", ms, u, qr.Stats)
						}
						st, _ := s.Stats(u)
						if st.InFlight != 0 {
							t.Fatalf("[cancel at %dms] %s: %d messages invisible after Run: %+v", ms, u, st.InFlight, qr.Stats)
						}
					}
				})
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 3: a failed message becomes visible again as the retry policy says. A lease
// extension already in flight when the handler fails must not land after the retry's
// visibility change and override it (RetryAfter(2s) turning into a whole visibility timeout).

func TestAttackLeaseExtensionInFlightDoesNotOverrideTheRetryDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		const vis = 8 // seconds
		s.SetFaults(sqstest.Faults{Latency: func(op string, in any) time.Duration {
			if op == "ChangeMessageVisibilityBatch" {
				if e := in.(*sqs.ChangeMessageVisibilityBatchInput).Entries; len(e) > 0 && e[0].VisibilityTimeout == vis {
					return 1500 * time.Millisecond // the lease's extension is slow
				}
			}
			return 0
		}})
		var mu sync.Mutex
		var times []time.Time
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			times = append(times, time.Now())
			first := len(times) == 1
			mu.Unlock()
			if first {
				// The lease extends at 4 s (half the visibility left); fail while that call is out.
				advance(4*time.Second + 500*time.Millisecond)
				return sqsconsumer.RetryAfter(2*time.Second, errors.New("try again in two seconds"))
			}
			return nil
		}, quiet, sqsconsumer.WithVisibilityTimeout(vis*time.Second), sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithAckFlushInterval(0))
		stop := running(t, c)
		advance(30 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		mu.Lock()
		defer mu.Unlock()
		if len(times) < 2 {
			t.Fatalf("handled %d times", len(times))
		}
		failedAt := times[0].Add(4*time.Second + 500*time.Millisecond)
		if gap := times[1].Sub(failedAt); gap > 3*time.Second {
			t.Fatalf("RetryAfter(2s) came back %v after the failure: the lease's extension in flight overrode the retry delay", gap)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Invariants 5/11 on the real clock: shutdown races with real scheduling, hundreds of times.

func TestAttackShutdownRacesOnTheRealClock(t *testing.T) {
	cases := sweepCases()
	deadline := time.Now().Add(40 * time.Second)
	iter := 0
	for ; time.Now().Before(deadline) && iter < 3000; iter++ {
		tc := cases[iter%len(cases)]
		s := sqstest.New(sqstest.WithStrict())
		url := s.MustCreateQueue("q", nil)
		if tc.fifo {
			url = fifoQueue(s, "q")
		}
		for i := range 30 {
			sendGroup(t, s, url, fmt.Sprintf("g%d", i%3), fmt.Sprintf("%02d-%d", i, iter))
		}
		var active atomic.Int64
		var returned atomic.Bool
		h := func(ctx context.Context, m *sqsconsumer.Message) error {
			if returned.Load() {
				t.Errorf("iteration %d: handler started after Run returned", iter)
			}
			active.Add(1)
			defer active.Add(-1)
			switch len(*m.MessageId) % 4 {
			case 0:
				panic("boom")
			case 1:
				return errors.New("fail")
			}
			return nil
		}
		opts := append([]sqsconsumer.Option{
			sqsconsumer.WithConcurrency(3), sqsconsumer.WithStrategy(tc.strat()),
			sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }),
			sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithShutdownTimeout(50 * time.Millisecond), quiet,
		}, tc.opts...)
		c, err := sqsconsumer.New(s, url, h, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(time.Duration(iter%7) * 150 * time.Microsecond) // the moment of the cancel, not a wait for a condition
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("iteration %d (%s): Run = %v", iter, tc.name, err)
		}
		returned.Store(true)
		if a := active.Load(); a != 0 {
			t.Fatalf("iteration %d (%s): %d handlers running after Run returned", iter, tc.name, a)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if st.InFlight != 0 && !strings.Contains(tc.name, "grouplimit") {
			t.Fatalf("iteration %d (%s): %d invisible after Run: %+v / %+v", iter, tc.name, st.InFlight, st, r.Stats)
		}
	}
	t.Logf("%d iterations", iter)
}

// ---------------------------------------------------------------------------------------------
// Invariant 11: every hook, the logger, the error handler, the backoff and the weight panic on
// every call; the consumer goes on and the report adds up.

type allPanicHook struct{}

func (allPanicHook) OnRequest(string, string)     { panic("OnRequest") }
func (allPanicHook) OnReceive(string, int, error) { panic("OnReceive") }
func (allPanicHook) OnHandlerStart(context.Context, *sqsconsumer.Message) context.Context {
	panic("OnHandlerStart")
}
func (allPanicHook) OnHandlerEnd(context.Context, *sqsconsumer.Message, error, time.Duration) {
	panic("OnHandlerEnd")
}
func (allPanicHook) OnAck(string, int)                          { panic("OnAck") }
func (allPanicHook) OnAckFailure(string, *sqsconsumer.AckError) { panic("OnAckFailure") }
func (allPanicHook) OnLeaseExtended(string, int)                { panic("OnLeaseExtended") }
func (allPanicHook) OnLeaseLost(*sqsconsumer.Message, error)    { panic("OnLeaseLost") }

func TestAttackEveryUserCallbackPanics(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			attackChild(t, "ALLPANIC_"+name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := sqstest.New()
					url := fifoQueue(s, "q")
					for i := range 30 {
						sendGroup(t, s, url, fmt.Sprintf("g%d", i%2), fmt.Sprintf("%02d", i))
					}
					s.SetFaults(sqstest.Faults{Entry: func(op, h string) *types.BatchResultErrorEntry {
						if strings.HasSuffix(h, "3-1") { // some entries fail for good
							return sqstest.EntryError("ReceiptHandleIsInvalid", true)
						}
						return nil
					}})
					var handled atomic.Int64
					c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
						handled.Add(1)
						advance(3 * time.Second)
						if len(*m.Body)%2 == 0 && (*m.Body)[1] == '7' {
							return errors.New("fail")
						}
						return nil
					}, sqsconsumer.WithStrategy(strategy), sqsconsumer.WithConcurrency(2),
						sqsconsumer.WithVisibilityTimeout(2*time.Second), sqsconsumer.WithWaitTime(time.Second),
						sqsconsumer.WithHooks(allPanicHook{}),
						sqsconsumer.WithErrorHandler(func(error) { panic("error handler") }),
						sqsconsumer.WithLogger(slog.New(panicLogHandler{})),
						sqsconsumer.WithBackoff(func(int) time.Duration { panic("backoff") }),
						sqsconsumer.WithWeight(func(*sqsconsumer.Message) int64 { panic("weight") }),
						sqsconsumer.WithMaxLease(5*time.Second))
					if err != nil {
						t.Fatal(err)
					}
					stop := running(t, c)
					advance(2 * time.Minute)
					if err := stop(); err != nil {
						t.Fatal(err)
					}
					r := checkReportAddsUp(t, c)
					if handled.Load() < 30 {
						t.Fatalf("only %d handler calls: %+v", handled.Load(), r.Stats)
					}
				})
			})
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 5 with a BatchHandler: shutdown at every moment, the batch window longer or shorter
// than the shutdown timeout; no batch call after Run returned, nothing left invisible.

func TestAttackBatchShutdownAtEveryMoment(t *testing.T) {
	for _, fifo := range []bool{false, true} {
		for _, window := range []time.Duration{30 * time.Millisecond, time.Second} {
			t.Run(fmt.Sprintf("fifo=%v/window=%v", fifo, window), func(t *testing.T) {
				for ms := 0; ms < 400; ms += 9 {
					synctest.Test(t, func(t *testing.T) {
						s := sqstest.New(sqstest.WithStrict())
						url := s.MustCreateQueue("q", nil)
						if fifo {
							url = fifoQueue(s, "q")
						}
						for i := range 30 {
							sendGroup(t, s, url, fmt.Sprintf("g%d", i%5), fmt.Sprintf("%02d", i))
						}
						var returned atomic.Bool
						var active atomic.Int64
						bh := func(ctx context.Context, msgs []*sqsconsumer.Message) error {
							if returned.Load() {
								t.Error("batch handler called after Run returned")
							}
							active.Add(1)
							defer active.Add(-1)
							select {
							case <-ctx.Done():
							case <-time.After(15 * time.Millisecond):
							}
							f := sqsconsumer.BatchFailures{}
							for _, m := range msgs {
								if (*m.Body)[1] == '3' {
									f[*m.MessageId] = errors.New("no")
								}
							}
							if len(f) == 0 {
								return nil
							}
							return f
						}
						h, err := sqsconsumer.Batch(bh, 4, window)
						if err != nil {
							t.Fatal(err)
						}
						c, err := sqsconsumer.New(s, url, h, sqsconsumer.WithConcurrency(8),
							sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }),
							sqsconsumer.WithShutdownTimeout(100*time.Millisecond), sqsconsumer.WithWaitTime(time.Second), quiet)
						if err != nil {
							t.Fatal(err)
						}
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan error, 1)
						go func() { done <- c.Run(ctx) }()
						advance(time.Duration(ms) * time.Millisecond)
						cancel()
						if err := <-done; err != nil {
							t.Fatal(err)
						}
						returned.Store(true)
						if active.Load() != 0 {
							t.Fatalf("[%dms] a batch call still running after Run returned", ms)
						}
						r := checkReportAddsUp(t, c)
						if st, _ := s.Stats(url); st.InFlight != 0 {
							t.Fatalf("[%dms] %d invisible after Run: %+v", ms, st.InFlight, r.Stats)
						}
						synctest.Wait()
					})
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Group priority is strict (Share.Priority) also when the high-priority queue polls with
// several pollers: they share one place in the admission.

func TestAttackGroupPriorityStrictWithSeveralPollers(t *testing.T) {
	for _, pollers := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("pollers=%d", pollers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				counter := newGroupCounter()
				g, _ := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(8))
				high := s.MustCreateQueue("high", nil)
				low := s.MustCreateQueue("low", nil)
				sendN(t, s, high, 400)
				sendN(t, s, low, 400)
				g.Add(s, high, counter.handler("high", 20*time.Millisecond), sqsconsumer.Share{Priority: 1}, sqsconsumer.WithPollers(pollers))
				g.Add(s, low, counter.handler("low", 20*time.Millisecond), sqsconsumer.Share{})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error)
				go func() { done <- g.Run(ctx) }()
				var lowWhileHigh int
				for counter.snapshot()["high"] < 400 {
					advance(50 * time.Millisecond)
					if snap := counter.snapshot(); snap["high"] < 350 {
						lowWhileHigh = snap["low"]
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if lowWhileHigh > 40 {
					t.Fatalf("low priority handled %d while high (%d pollers) still had a backlog", lowWhileHigh, pollers)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Invariant 7: never spin. Short polls (wait 0) on idle queues, for a Consumer with many
// pollers and a Group; and a queue whose every receive brings a message of an overflowing lane.

func TestAttackShortPollsOnIdleQueuesDoNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		a := s.MustCreateQueue("a", nil)
		b := s.MustCreateQueue("b", nil)
		c, _ := sqsconsumer.New(s, a, func(context.Context, *sqsconsumer.Message) error { return nil },
			sqsconsumer.WithWaitTime(0), sqsconsumer.WithPollers(4), sqsconsumer.WithMaxPollers(8), quiet)
		g, _ := sqsconsumer.NewGroup(sqsconsumer.WithWaitTime(0), quiet)
		g.Add(s, b, func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.Share{}, sqsconsumer.WithPollers(3))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		go func() { done <- c.Run(ctx) }()
		go func() { done <- g.Run(ctx) }()
		advance(10 * time.Second)
		cancel()
		<-done
		<-done
		if n := s.Calls("ReceiveMessage"); n > (4+3)*11 {
			t.Fatalf("%d receives in 10 s of short polls on idle queues with 7 pollers", n)
		}
	})
}

// ---------------------------------------------------------------------------------------------
// WithGroupLimit: a busy tenant's overflow is handed back to SQS, and each hand-back is a
// receive. With a redrive policy, a tenant's messages reach the DLQ without ever failing.

func TestAttackGroupLimitOverflowDoesNotDeadLetterHealthyMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		dlq := s.MustCreateQueue("dlq", nil)
		_ = dlq
		url := s.MustCreateQueue("q", map[string]string{
			"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"5"}`,
		})
		const n = 40
		for i := range n {
			sendGroup(t, s, url, "tenant", fmt.Sprintf("%02d", i))
		}
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(time.Second)
			return nil
		}, sqsconsumer.WithConcurrency(10), sqsconsumer.WithGroupLimit(1), sqsconsumer.WithWaitTime(time.Second), quiet)
		stop := running(t, c)
		advance(2 * time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		st, _ := s.Stats(url)
		if st.MovedToDLQ > 0 || r.Failed > 0 {
			t.Fatalf("%d healthy messages of one tenant went to the DLQ (handlers never failed: Failed %d, Succeeded %d, Released %d)", st.MovedToDLQ, r.Failed, r.Succeeded, r.Released)
		}
	})
}
