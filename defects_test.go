package sqsconsumer_test

// Regression tests for the 13 core defects of issue 12, one test (or more) per defect. Each
// asserts the invariant of DESIGN.md the defect breaks, so it fails on the code that has the
// defect and passes once it is fixed.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// sendGroup sends body to url with the given MessageGroupId (FIFO queues deduplicate by
// content, so bodies must differ).
func sendGroup(t *testing.T, s *sqstest.Server, url, group, body string) {
	t.Helper()
	if _, err := s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body), MessageGroupId: aws.String(group)}); err != nil {
		t.Fatalf("send %s: %v", body, err)
	}
}

// quiet discards the consumer's log output (failed handlers log at Warn).
var quiet = sqsconsumer.WithLogger(slog.New(slog.DiscardHandler))

func fifoQueue(s *sqstest.Server, name string) string {
	return s.MustCreateQueue(name+".fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
}

// runCtx starts c.Run with a ctx the test cancels itself, and returns the cancel and Run's result.
func runCtx(c *sqsconsumer.Consumer) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- c.Run(ctx) }()
	return cancel, ch
}

// Invariants 1/2: every held message is leased from receipt (also behind a blocked Submit); Acked counts only real deletes.
func TestDefect01SemaphoreHeldBatchIsLeasedFromReceipt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 3) // one receive brings all three: concurrency 1 + room 2
		var handled atomic.Int64
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "0" {
				advance(9750 * time.Millisecond) // ~5 visibilities; "1" waits in Submit, "2" behind it
			}
			handled.Add(1)
			return nil
		}, sqsconsumer.WithStrategy(semaphore.Factory(semaphore.WithWaitingRoom(2))), sqsconsumer.WithConcurrency(1),
			sqsconsumer.WithVisibilityTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(5 * time.Second)
		// Another consumer of the same queue: everything this consumer holds must be invisible.
		out, err := s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 0 {
			t.Errorf("another consumer received %d held message(s) (body %q) at 5s: the batch's rest waited in Submit without a lease", len(out.Messages), aws.ToString(out.Messages[0].Body))
		}
		for handled.Load() < 3 {
			advance(100 * time.Millisecond)
		}
		advance(time.Second) // acks flushed
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := c.Report()
		st, _ := s.Stats(url)
		if r.Acked != st.Deleted || st.StaleDeletes != 0 {
			t.Errorf("Acked %d but SQS deleted %d (stale deletes %d): a delete with a superseded handle was counted as acked", r.Acked, st.Deleted, st.StaleDeletes)
		}
	})
}

// Invariant 10: a FIFO message never starts while an earlier one of its group failed and was not yet retried successfully.
func TestDefect02FIFOFailedHeadIsNotOvertaken(t *testing.T) {
	// scenario sends head ("a0"), fillers of other groups, then "a1" of the head's group, in
	// one receive; the head fails on its first delivery. It returns whether a1 overtook it.
	scenario := func(t *testing.T, fillers int, opts ...sqsconsumer.Option) (overtaken bool) {
		synctest.Test(t, func(t *testing.T) {
			s := sqstest.New()
			url := fifoQueue(s, "q")
			sendGroup(t, s, url, "a", "a0")
			for i := range fillers {
				sendGroup(t, s, url, fmt.Sprintf("f%d", i), fmt.Sprintf("f%d", i))
			}
			sendGroup(t, s, url, "a", "a1")
			var mu sync.Mutex
			headDone := false
			succeeded := 0
			all := make(chan struct{})
			h := func(ctx context.Context, m *sqsconsumer.Message) error {
				mu.Lock()
				defer mu.Unlock()
				switch *m.Body {
				case "a0":
					if m.ReceiveCount() == 1 {
						return errors.New("head fails once")
					}
					headDone = true
				case "a1":
					if !headDone {
						overtaken = true
					}
				}
				if succeeded++; succeeded == fillers+2 {
					close(all)
				}
				return nil
			}
			opts = append(opts, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }), quiet)
			c, err := sqsconsumer.New(s, url, h, opts...)
			if err != nil {
				t.Fatal(err)
			}
			stop := running(t, c)
			select {
			case <-all:
			case <-time.After(time.Minute):
				t.Errorf("not every message handled within a minute")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
		return overtaken
	}
	t.Run("semaphore/head too heavy", func(t *testing.T) {
		// Deterministic: the head is refused by Submit (too heavy on its first delivery) before
		// the poller has parked a1 behind it, so a1 finds its group free.
		var receives sync.Map
		heavy := sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 {
			if *m.Body == "a0" {
				if _, again := receives.LoadOrStore(*m.MessageId, true); !again {
					return 2 // more than the concurrency: refused, retried by the backoff policy
				}
			}
			return 1
		})
		// (The pool variant below is the race the issue describes; this one never depends on timing.)
		if scenario(t, 0, sqsconsumer.WithStrategy(semaphore.Factory()), sqsconsumer.WithConcurrency(1), heavy, sqsconsumer.WithErrorHandler(func(error) {})) {
			t.Fatal("a1 ran before its group's failed head a0 was retried")
		}
	})
	t.Run("pool/head fails (race)", func(t *testing.T) {
		// Eight other groups between a0 and a1 widen the window in which a0 fails before the
		// poller parks a1; it hits in ~3-15% of runs on 2 cores under -race.
		runs := 2000
		if testing.Short() {
			runs = 200
		}
		n := 0
		for range runs {
			if scenario(t, 8) {
				n++
			}
			if t.Failed() {
				return
			}
		}
		if n > 0 {
			t.Fatalf("a1 ran before its group's failed head a0 was retried in %d of %d runs", n, runs)
		}
	})
}

// Invariant 12: a task Submit accepted and Close did not return is waited for by Wait (never runs after Close+Wait).
func TestDefect03SubmitRacingCloseIsWaitedFor(t *testing.T) {
	for name, tc := range map[string]struct {
		build  func() (worker.Strategy, error)
		budget time.Duration
	}{
		"pool":      {func() (worker.Strategy, error) { return pool.New(4) }, 5 * time.Second},
		"semaphore": {func() (worker.Strategy, error) { return semaphore.New(4) }, time.Second},
	} {
		// The semaphore's window is wide; the pool's is a few instructions, so it loops up to 5 s.
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			deadline := time.Now().Add(tc.budget)
			iterations := 0
			for ; iterations < 200_000 && time.Now().Before(deadline); iterations++ {
				s, err := tc.build()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Reserve(ctx, 1); err != nil {
					t.Fatal(err)
				}
				var finished atomic.Bool
				ran := make(chan struct{})
				result := make(chan error, 1)
				start := make(chan struct{})
				go func() {
					<-start
					result <- s.Submit(ctx, worker.Task{Run: func() { finished.Store(true); close(ran) }})
				}()
				close(start)
				runtime.Gosched()
				parked := s.Close()
				_ = s.Wait(ctx)
				doneAtWait := finished.Load()
				if err := <-result; err != nil || len(parked) > 0 {
					continue // refused, or returned by Close: it never runs
				}
				<-ran // accepted: it runs, before Wait returned or (the defect) after
				if !doneAtWait {
					t.Fatalf("iteration %d: Submit returned nil and Close did not return the task, yet Wait returned before it ran", iterations+1)
				}
			}
			t.Logf("%d iterations without a violation", iterations)
		})
	}
}

// Invariants 5/11: WithGroupLimit shutdown never hands a group's next message to a closed channel (no process-killing panic).
// The panic kills the process, so the scenario runs in a child process.
func TestDefect04GroupLimitShutdownDoesNotPanic(t *testing.T) {
	const env = "SQSCONSUMER_DEFECT04_CHILD"
	if os.Getenv(env) == "1" {
		defect04Scenario(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDefect04GroupLimitShutdownDoesNotPanic$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		text := string(out)
		if i := strings.Index(text, "panic:"); i >= 0 {
			text = text[i:min(len(text), i+600)]
		} else if len(text) > 1500 {
			text = text[len(text)-1500:]
		}
		t.Fatalf("the scenario's process failed (%v):\n%s", err, text)
	}
}

// defect04Scenario: group "g", limit 1. A runs and H (too heavy) waits behind it; A ends and
// hands H on; H's refusal is reported to an error handler that blocks until Run has shut
// down, while W has been parked behind H. Settling H then hands W on.
func defect04Scenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendGroup(t, s, url, "g", "A")
		sendGroup(t, s, url, "g", "H")
		aStarted, finishA := make(chan struct{}), make(chan struct{})
		entered, release := make(chan struct{}), make(chan struct{})
		var blocked atomic.Bool
		onError := sqsconsumer.WithErrorHandler(func(err error) {
			if errors.Is(err, worker.ErrTooHeavy) && blocked.CompareAndSwap(false, true) {
				close(entered)
				<-release
			}
		})
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "A" {
				close(aStarted)
				<-finishA
			}
			return nil
		}, sqsconsumer.WithStrategy(semaphore.Factory()), sqsconsumer.WithConcurrency(2), sqsconsumer.WithGroupLimit(1),
			sqsconsumer.WithWaitTime(time.Second), onError,
			sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 {
				if *m.Body == "H" {
					return 3
				}
				return 1
			}))
		if err != nil {
			t.Fatal(err)
		}
		cancel, done := runCtx(c)
		<-aStarted
		synctest.Wait() // the poller has parked H behind A
		close(finishA)
		select {
		case <-entered:
		case <-time.After(time.Minute):
			t.Log("H's refusal was not reported while it held its group's slot; scenario not reached")
		}
		sendGroup(t, s, url, "g", "W")
		for i := 0; c.Stats().Received < 3 && i < 100; i++ {
			advance(100 * time.Millisecond)
		}
		synctest.Wait()
		cancel()
		advance(30 * time.Second) // Run shuts down as far as it can
		synctest.Wait()
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		checkReportAddsUp(t, c)
	})
}

// panicHook panics in OnHandlerStart or OnHandlerEnd the first time it sees body "0".
type panicHook struct {
	start  bool
	panics atomic.Bool
}

func (h *panicHook) maybe(m *sqsconsumer.Message) {
	if *m.Body == "0" && h.panics.CompareAndSwap(false, true) {
		panic("hook panic")
	}
}

type panicStartHook struct{ *panicHook }

func (h panicStartHook) OnHandlerStart(ctx context.Context, m *sqsconsumer.Message) context.Context {
	h.maybe(m)
	return ctx
}

type panicEndHook struct{ *panicHook }

func (h panicEndHook) OnHandlerEnd(ctx context.Context, m *sqsconsumer.Message, err error, took time.Duration) {
	h.maybe(m)
}

// panicLogHandler is a slog.Handler that panics on the first record it handles.
type panicLogHandler struct{ panics *atomic.Bool }

func (h panicLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h panicLogHandler) Handle(context.Context, slog.Record) error {
	if h.panics.CompareAndSwap(false, true) {
		panic("logger panic")
	}
	return nil
}
func (h panicLogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicLogHandler) WithGroup(string) slog.Handler      { return h }

// Invariants 6/11: a hook or logger panic is contained like a handler panic: the message is settled and its group moves on.
func TestDefect05HookAndLoggerPanicsAreContained(t *testing.T) {
	for name, opt := range map[string]func() sqsconsumer.Option{
		"OnHandlerStart": func() sqsconsumer.Option { return sqsconsumer.WithHooks(panicStartHook{&panicHook{}}) },
		"OnHandlerEnd":   func() sqsconsumer.Option { return sqsconsumer.WithHooks(panicEndHook{&panicHook{}}) },
		"logger": func() sqsconsumer.Option {
			return sqsconsumer.WithLogger(slog.New(panicLogHandler{new(atomic.Bool)}))
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := fifoQueue(s, "q")
				sendGroup(t, s, url, "g", "0")
				sendGroup(t, s, url, "g", "1")
				errOpt, _ := errorsTo(t)
				c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
					opt(), errOpt, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
				if err != nil {
					t.Fatal(err)
				}
				stop := running(t, c)
				for i := 0; i < 1200; i++ { // up to 2 minutes
					if st, _ := s.Stats(url); st.Deleted == 2 {
						break
					}
					advance(100 * time.Millisecond)
				}
				st, _ := s.Stats(url)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if st.Deleted != 2 {
					t.Errorf("after 2 minutes %d of 2 messages deleted (queue %+v): the panicking message was never settled and its group stayed blocked", st.Deleted, st)
				}
				r := c.Report()
				if sum := r.Succeeded + r.Failed + r.Released + r.Cancelled + r.LeaseLost; sum != r.Received || r.InFlight != 0 {
					t.Errorf("report does not add up: received %d, accounted for %d, in flight %d", r.Received, sum, r.InFlight)
				}
			})
		})
	}
}

// Reroute copies the message as received: behind Unwrap the copy keeps its SNS envelope.
func TestDefect06RerouteBehindUnwrapKeepsTheEnvelope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New(sqstest.WithStrict())
		src := s.MustCreateQueue("src", nil)
		target := s.MustCreateQueue("target", nil)
		envelopeBody := snsBody("arn:aws:sns:eu-west-1:123456789012:orders", "new", `{"id":1}`, nil)
		if _, err := s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &src, MessageBody: &envelopeBody}); err != nil {
			t.Fatal(err)
		}
		router := sqsconsumer.NewTopicRouter().Route("orders", func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(target, 0, errors.New("later"))
		})
		c, err := sqsconsumer.New(s, src, sqsconsumer.Chain(router.Handle, sqsconsumer.Unwrap()), quiet,
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for st := c.Stats(); st.Succeeded+st.Failed < 1; st = c.Stats() {
			advance(10 * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if r := checkReportAddsUp(t, c); r.Rerouted != 1 {
			t.Fatalf("report %+v: the reroute did not happen", r.Stats)
		}
		out, err := s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &target, MaxNumberOfMessages: 10})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("target holds %v, %v", out, err)
		}
		if got := aws.ToString(out.Messages[0].Body); got != envelopeBody {
			t.Fatalf("rerouted copy's body is %q, want the SNS envelope as received %q", got, envelopeBody)
		}
	})
}

// Invariant 5 (Group): at shutdown a message waiting for a group-wide slot is released at once and never runs.
func TestDefect07GroupReleasesMessageWaitingForSlotAtShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		q1 := s.MustCreateQueue("q1", nil)
		q2 := s.MustCreateQueue("q2", nil)
		sendN(t, s, q1, 1)
		sendN(t, s, q2, 1)
		var cancelled atomic.Bool
		var late atomic.Int64
		started := make(chan string, 2)
		release := make(chan struct{})
		h := func(ctx context.Context, m *sqsconsumer.Message) error {
			if cancelled.Load() {
				late.Add(1)
				return nil
			}
			started <- m.QueueURL()
			<-release
			return nil
		}
		// One slot for the two queues; a room of 10 lets both receive (11 units).
		g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(1), sqsconsumer.WithStrategy(pool.Factory(pool.WithWaitingRoom(10))),
			sqsconsumer.WithWaitTime(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{q1, q2} {
			if err := g.Add(s, q, h, sqsconsumer.Share{}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		for i := 0; i < 100; i++ {
			st := g.Stats()
			if st[q1].Received+st[q2].Received == 2 {
				break
			}
			advance(100 * time.Millisecond)
		}
		synctest.Wait()
		runningQ := <-started
		waitingQ := q1
		if runningQ == q1 {
			waitingQ = q2
		}
		cancelled.Store(true)
		cancel()
		advance(time.Second) // releases flushed
		synctest.Wait()
		if st, _ := s.Stats(waitingQ); st.Visible != 1 {
			t.Errorf("1s after the cancel the message waiting for the group's slot is not released: %+v", st)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := late.Load(); n != 0 {
			t.Errorf("%d handler(s) started after the cancel: the message waiting for a group slot ran instead of being released", n)
		}
	})
}

// Invariant 5 (Batch): gathered messages honour their ctx, so shutdown takes the shutdown timeout, not the batch window.
func TestDefect08BatchHonoursShutdownTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 2)
		handler, err := sqsconsumer.Batch(func(context.Context, []*sqsconsumer.Message) error { return nil }, 10, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sqsconsumer.New(s, url, handler, sqsconsumer.WithConcurrency(10),
			sqsconsumer.WithShutdownTimeout(5*time.Second), sqsconsumer.WithWaitTime(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for i := 0; c.Stats().Received < 2 && i < 100; i++ {
			advance(100 * time.Millisecond)
		}
		synctest.Wait() // both wait in the batch for its 10 min window
		start := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("Run returned %v after the cancel; want about the 5s shutdown timeout, not the 10 min batch window", took)
		}
		checkReportAddsUp(t, c)
	})
}

// Invariant 5: at shutdown, messages parked behind their group (FIFO or WithGroupLimit) are released at once.
func TestDefect09ShutdownReleasesGroupParkedMessagesAtOnce(t *testing.T) {
	for name, tc := range map[string]struct {
		fifo bool
		opts []sqsconsumer.Option
	}{
		"fifo":        {fifo: true},
		"group limit": {opts: []sqsconsumer.Option{sqsconsumer.WithGroupLimit(1)}},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				if tc.fifo {
					url = fifoQueue(s, "q")
				}
				sendGroup(t, s, url, "g", "running")
				sendGroup(t, s, url, "g", "parked")
				started, finish := make(chan struct{}), make(chan struct{})
				var parkedRan atomic.Bool
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					if *m.Body == "running" {
						close(started)
						<-finish
					} else {
						parkedRan.Store(true)
					}
					return nil
				}, append(tc.opts, sqsconsumer.WithWaitTime(time.Second))...)
				if err != nil {
					t.Fatal(err)
				}
				cancel, done := runCtx(c)
				<-started
				for i := 0; c.Stats().Received < 2 && i < 100; i++ {
					advance(100 * time.Millisecond)
				}
				synctest.Wait()
				cancel()
				advance(time.Second) // releases flushed
				synctest.Wait()
				st, _ := s.Stats(url)
				close(finish)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if parkedRan.Load() {
					t.Fatal("the parked message ran")
				}
				if st.Visible != 1 || st.InFlight != 1 {
					t.Errorf("1s after the cancel, with the group's handler still running: queue %+v; want the parked message released (1 visible, 1 in flight)", st)
				}
				checkReportAddsUp(t, c)
			})
		})
	}
}

// requestCounter is a HookRequest counting requests by op.
type requestCounter struct {
	mu  sync.Mutex
	ops map[string]int64
}

func (r *requestCounter) OnRequest(_, op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops[op]++
}

// HookRequest hears every request, the lease's extensions included: its count equals Stats().Requests.
func TestDefect10HookRequestHearsLeaseExtensions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		rc := &requestCounter{ops: map[string]int64{}}
		done := make(chan struct{})
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			advance(20 * time.Second) // ten visibilities: the lease extends it
			close(done)
			return nil
		}, sqsconsumer.WithVisibilityTimeout(2*time.Second), sqsconsumer.WithHooks(rc), sqsconsumer.WithWaitTime(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		<-done
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := c.Report()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var total int64
		for _, n := range rc.ops {
			total += n
		}
		if r.LeaseExtended == 0 {
			t.Fatalf("no lease extension happened: %+v", r.Stats)
		}
		if got, want := rc.ops["ChangeMessageVisibilityBatch"], s.Calls("ChangeMessageVisibilityBatch"); got != want {
			t.Errorf("HookRequest heard %d ChangeMessageVisibilityBatch requests, SQS answered %d", got, want)
		}
		if total != r.Requests {
			t.Errorf("HookRequest heard %d requests, Stats().Requests is %d (%v)", total, r.Requests, rc.ops)
		}
	})
}

// Stats: TimedOut <= Failed and Panics <= Failed, also for a handler returning after the shutdown timeout.
func TestDefect11TimedOutAndPanicsArePartsOfFailed(t *testing.T) {
	for name, tc := range map[string]struct {
		h    func(ctx context.Context, started chan<- struct{}) error
		opts []sqsconsumer.Option
	}{
		"timed out": {
			h: func(ctx context.Context, started chan<- struct{}) error {
				close(started)
				advance(10 * time.Second) // past its 2s timeout and the 4s shutdown timeout
				return nil
			},
			opts: []sqsconsumer.Option{sqsconsumer.WithHandlerTimeout(2 * time.Second), sqsconsumer.WithShutdownTimeout(4 * time.Second)},
		},
		"panicked": {
			h: func(ctx context.Context, started chan<- struct{}) error {
				close(started)
				<-ctx.Done() // the shutdown timeout
				panic("after the shutdown timeout")
			},
			opts: []sqsconsumer.Option{sqsconsumer.WithShutdownTimeout(time.Second)},
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				sendN(t, s, url, 1)
				started := make(chan struct{})
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					return tc.h(ctx, started)
				}, append(tc.opts, sqsconsumer.WithWaitTime(time.Second), quiet)...)
				if err != nil {
					t.Fatal(err)
				}
				cancel, done := runCtx(c)
				<-started
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				r := checkReportAddsUp(t, c)
				if r.Panics > r.Failed || r.TimedOut > r.Failed {
					t.Errorf("Panics %d, TimedOut %d, Failed %d (Cancelled %d): Panics and TimedOut must be parts of Failed", r.Panics, r.TimedOut, r.Failed, r.Cancelled)
				}
			})
		})
	}
}

// Stats: a panicking BatchHandler counts in Panics (a part of Failed), like a panicking Handler.
func TestDefect12BatchHandlerPanicCountsInPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 4)
		handler, _ := sqsconsumer.Batch(func(context.Context, []*sqsconsumer.Message) error { panic("boom") }, 4, time.Second)
		c, err := sqsconsumer.New(s, url, handler, sqsconsumer.WithConcurrency(4), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for c.Stats().Failed < 4 {
			advance(100 * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		if r.Failed != 4 || r.Panics < 1 || r.Panics > r.Failed {
			t.Errorf("Failed %d, Panics %d: the batch handler panicked, so Panics must count it (and stay within Failed)", r.Failed, r.Panics)
		}
	})
}

// Invariant 4: WithMaxLease below the visibility is enforced on time (1 min cap, 10 min visibility: ~1 min).
func TestDefect13MaxLeaseBelowVisibilityIsEnforcedOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 1)
		type ended struct {
			after time.Duration
			cause error
		}
		result := make(chan ended, 1)
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			start := time.Now()
			<-ctx.Done()
			result <- ended{time.Since(start), context.Cause(ctx)}
			return ctx.Err()
		}, sqsconsumer.WithMaxLease(time.Minute), sqsconsumer.WithVisibilityTimeout(10*time.Minute), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		e := <-result
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(e.cause, sqsconsumer.ErrLeaseExpired) {
			t.Errorf("cause %v, want ErrLeaseExpired", e.cause)
		}
		if e.after < 10*time.Second || e.after > 70*time.Second {
			t.Errorf("handler ctx ended %v after it started; want about the 1 min cap", e.after)
		}
	})
}
