// Package workertest is the conformance suite for worker.Strategy implementations. Every
// strategy in this module runs it, and so should a strategy written elsewhere:
//
//	func TestConformance(t *testing.T) {
//		workertest.Run(t, mystrategy.Factory())
//	}
package workertest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Run runs the conformance suite against strategies built by f. Each subtest builds its own.
func Run(t *testing.T, f worker.Factory) {
	t.Helper()
	build := func(t *testing.T, concurrency int) worker.Strategy {
		t.Helper()
		s, err := f(concurrency)
		if err != nil {
			t.Fatalf("factory(%d): %v", concurrency, err)
		}
		t.Cleanup(func() {
			s.Close()
			if err := s.Wait(context.Background()); err != nil {
				t.Errorf("Wait after test: %v", err)
			}
		})
		return s
	}
	t.Run("InvalidConcurrency", func(t *testing.T) {
		for _, n := range []int{0, -1} {
			if _, err := f(n); !errors.Is(err, worker.ErrInvalidConfig) {
				t.Errorf("factory(%d) error = %v, want ErrInvalidConfig", n, err)
			}
		}
	})
	t.Run("BoundNeverExceededAndEachTaskRunsOnce", func(t *testing.T) { testBound(t, build(t, 4), 4) })
	t.Run("ReserveBlocksWhenFull", func(t *testing.T) { testReserveBlocks(t, build(t, 3)) })
	t.Run("CloseReturnsUnstartedAndWaitWaits", func(t *testing.T) { testCloseAndWait(t, build(t, 2), 2) })
	t.Run("PanicDoesNotLeakSlot", func(t *testing.T) { testPanics(t, build(t, 2)) })
	t.Run("StoppedRefusesWork", func(t *testing.T) { testStopped(t, build(t, 2)) })
	t.Run("SubmitRacesCloseAndWait", func(t *testing.T) { testSubmitRacesClose(t, f) })
}

// submit reserves one unit and submits fn with it, failing the test on error.
func submit(t *testing.T, s worker.Strategy, fn func()) {
	t.Helper()
	n, err := s.Reserve(context.Background(), 1)
	if err != nil || n != 1 {
		t.Fatalf("Reserve(1) = %d, %v", n, err)
	}
	if err := s.Submit(context.Background(), worker.Task{Run: fn}); err != nil {
		s.Unreserve(1)
		t.Fatalf("Submit: %v", err)
	}
}

func testBound(t *testing.T, s worker.Strategy, concurrency int) {
	const tasks = 2000
	var running, peak atomic.Int64
	runs := make([]atomic.Int32, tasks)
	var done sync.WaitGroup
	done.Add(tasks)
	var producers sync.WaitGroup
	next := atomic.Int64{}
	for range 3 { // several producers, like several pollers
		producers.Go(func() {
			for {
				n, err := s.Reserve(context.Background(), 10)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if n < 1 || n > 10 {
					t.Errorf("Reserve(10) = %d", n)
				}
				for k := 0; k < n; k++ {
					i := next.Add(1) - 1
					if i >= tasks {
						s.Unreserve(n - k)
						return
					}
					err := s.Submit(context.Background(), worker.Task{Run: func() {
						defer done.Done()
						r := running.Add(1)
						for {
							p := peak.Load()
							if r <= p || peak.CompareAndSwap(p, r) {
								break
							}
						}
						runs[i].Add(1)
						for j := 0; j < 200; j++ { // a little work, so tasks overlap
							_ = j * j
						}
						running.Add(-1)
					}})
					if err != nil {
						t.Errorf("Submit: %v", err)
						s.Unreserve(n - k)
						return
					}
				}
			}
		})
	}
	producers.Wait()
	done.Wait()
	if p := peak.Load(); p > int64(concurrency) {
		t.Fatalf("peak running %d exceeds concurrency %d", p, concurrency)
	}
	for i := range runs {
		if c := runs[i].Load(); c != 1 {
			t.Fatalf("task %d ran %d times", i, c)
		}
	}
}

func testReserveBlocks(t *testing.T, s worker.Strategy) {
	total := s.Free()
	if total < 3 {
		t.Fatalf("Free() = %d on a fresh strategy of concurrency 3", total)
	}
	got, err := s.Reserve(context.Background(), total+5)
	if err != nil || got != total {
		t.Fatalf("Reserve(%d) = %d, %v; want all %d free units", total+5, got, err, total)
	}
	if s.Free() != 0 {
		t.Fatalf("Free() = %d after reserving everything", s.Free())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := s.Reserve(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve on a full strategy with a cancelled ctx = %d, %v", n, err)
	}
	// A blocked Reserve is released by a finishing task.
	release := make(chan struct{})
	if err := s.Submit(context.Background(), worker.Task{Run: func() { <-release }}); err != nil {
		t.Fatal(err)
	}
	s.Unreserve(total - 1)
	got2, err := s.Reserve(context.Background(), total) // the units just given back
	if err != nil || got2 != total-1 {
		t.Fatalf("Reserve after Unreserve = %d, %v", got2, err)
	}
	reserved := make(chan int)
	go func() {
		n, err := s.Reserve(context.Background(), 1)
		if err != nil {
			t.Errorf("blocked Reserve: %v", err)
		}
		reserved <- n
	}()
	close(release)
	if n := <-reserved; n != 1 {
		t.Fatalf("blocked Reserve returned %d", n)
	}
	s.Unreserve(total)
	if s.Free() != total {
		t.Fatalf("Free() = %d after all units came back, want %d", s.Free(), total)
	}
}

func testCloseAndWait(t *testing.T, s worker.Strategy, concurrency int) {
	total := s.Free()
	release := make(chan struct{})
	started := make(chan struct{}, total)
	var ran, stoppedSubmits atomic.Int32
	var submitters sync.WaitGroup
	for range total {
		n, err := s.Reserve(context.Background(), 1)
		if err != nil || n != 1 {
			t.Fatalf("Reserve(1) = %d, %v", n, err)
		}
		submitters.Go(func() { // Submit may block for backpressure
			err := s.Submit(context.Background(), worker.Task{Run: func() { started <- struct{}{}; ran.Add(1); <-release }})
			if err != nil {
				if !errors.Is(err, worker.ErrStopped) {
					t.Errorf("Submit: %v", err)
				}
				stoppedSubmits.Add(1)
				s.Unreserve(1)
			}
		})
	}
	for range concurrency { // the concurrency's worth start
		<-started
	}
	parked := s.Close()
	submitters.Wait()
	if got := len(parked) + int(stoppedSubmits.Load()) + concurrency; got != total {
		t.Fatalf("Close returned %d parked tasks, %d Submits were stopped, %d run; %d were submitted",
			len(parked), stoppedSubmits.Load(), concurrency, total)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with tasks running and a cancelled ctx = %v", err)
	}
	close(release)
	if err := s.Wait(context.Background()); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got := ran.Load(); got != int32(concurrency) {
		t.Fatalf("%d tasks ran, want only the %d started before Close", got, concurrency)
	}
	if s.Close() != nil {
		t.Fatal("second Close returned tasks")
	}
	if s.Free() != total {
		t.Fatalf("Free() = %d after everything returned, want %d", s.Free(), total)
	}
}

func testPanics(t *testing.T, s worker.Strategy) {
	total := s.Free()
	var wg sync.WaitGroup
	for range 50 * total {
		wg.Add(1)
		submit(t, s, func() { defer wg.Done(); panic("boom") })
	}
	wg.Wait()
	// Every unit comes back, and the strategy still runs work.
	ctx := context.Background()
	n, err := s.Reserve(ctx, total)
	for err == nil && n < total { // units of the last panicking tasks may still be on their way back
		var m int
		m, err = s.Reserve(ctx, total-n)
		n += m
	}
	if err != nil {
		t.Fatalf("Reserve after panics: %v", err)
	}
	s.Unreserve(n)
	done := make(chan struct{})
	submit(t, s, func() { close(done) })
	<-done
}

func testStopped(t *testing.T, s worker.Strategy) {
	n, err := s.Reserve(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Submit(context.Background(), worker.Task{Run: func() { t.Error("task ran after Close") }}); !errors.Is(err, worker.ErrStopped) {
		t.Fatalf("Submit after Close = %v, want ErrStopped", err)
	}
	s.Unreserve(n)
	if _, err := s.Reserve(context.Background(), 1); !errors.Is(err, worker.ErrStopped) {
		t.Fatalf("Reserve after Close = %v, want ErrStopped", err)
	}
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// testSubmitRacesClose holds a strategy to the contract when a Submit races Close and Wait, as
// happens when a consumer shuts down while a poller hands over a message. Many times over, a
// fresh strategy gets one task submitted while another goroutine calls Close then Wait. Whatever
// the order, a Submit returning nil means the task was either returned by Close (and never
// runs) or started early enough for Wait to wait for it: it neither runs while Wait returns nor
// starts after. A Submit that fails leaves a task that never runs, and every unit comes back.
// A strategy's window for such a race may be a few instructions wide, so the test is
// statistical: its 10,000 races catch, under the race detector, a strategy that breaks the
// contract once in a couple of thousand (a pool that counted a new worker after unlocking did).
func testSubmitRacesClose(t *testing.T, f worker.Factory) {
	const iterations = 10000
	var (
		violations int
		first      string
		stray      atomic.Int32 // tasks that ran after they were known never to run
	)
	for i := range iterations {
		if msg := submitRacesCloseOnce(t, f, i, &stray); msg != "" {
			if violations == 0 {
				first = fmt.Sprintf("iteration %d: %s", i, msg)
			}
			violations++
		}
	}
	if n := stray.Load(); n > 0 {
		t.Errorf("%d tasks that Close returned or Submit refused ran later", n)
	}
	if violations > 0 {
		t.Fatalf("%d of %d races of Submit with Close+Wait broke the contract; first, %s", violations, iterations, first)
	}
}

// submitRacesCloseOnce runs one race of Submit against Close+Wait and returns what went wrong,
// or "".
func submitRacesCloseOnce(t *testing.T, f worker.Factory, i int, stray *atomic.Int32) (msg string) {
	t.Helper()
	ctx := context.Background()
	s, err := f(1 + i%3)
	if err != nil {
		t.Fatalf("factory(%d): %v", 1+i%3, err)
	}
	total := s.Free()
	if n, err := s.Reserve(ctx, 1); err != nil || n != 1 {
		t.Fatalf("Reserve(1) = %d, %v", n, err)
	}
	var started, ended, waitReturned, startedAfterWait, mustNotRun atomic.Bool
	ran := make(chan struct{})
	key := new(int)
	task := worker.Task{Data: key, Run: func() {
		started.Store(true)
		if waitReturned.Load() {
			startedAfterWait.Store(true)
		}
		if mustNotRun.Load() {
			stray.Add(1)
		}
		ended.Store(true)
		close(ran)
	}}
	var (
		submitErr, waitErr error
		parked             []worker.Task
		runningAtWait      bool
		sides              sync.WaitGroup
	)
	// Both sides start together, then one of them yields its processor once: the Close side
	// three times in four, so that Close lands while the Submit is under way (a window that
	// may be a few instructions wide), and the Submit side every fourth time.
	submitYields, closeYields := 0, 1
	if i%4 == 3 {
		submitYields, closeYields = 1, 0
	}
	start := make(chan struct{})
	sides.Go(func() {
		<-start
		yield(submitYields)
		if submitErr = s.Submit(ctx, task); submitErr != nil {
			s.Unreserve(1)
		}
	})
	sides.Go(func() {
		<-start
		yield(closeYields)
		parked = s.Close()
		waitErr = s.Wait(ctx)
		// Sequentially consistent with the task's own flags: either the task sees waitReturned
		// or this sees started.
		waitReturned.Store(true)
		runningAtWait = started.Load() && !ended.Load()
	})
	close(start)
	sides.Wait()
	defer func() {
		if err := s.Wait(ctx); err != nil { // let a late task's goroutine finish before the next race
			t.Errorf("second Wait: %v", err)
		}
		if free := s.Free(); free != total && msg == "" {
			msg = fmt.Sprintf("Free() = %d after the race, want all %d units back", free, total)
		}
	}()

	if waitErr != nil {
		return fmt.Sprintf("Wait(Background) = %v", waitErr)
	}
	returned := false
	for _, p := range parked {
		if p.Data != key {
			return fmt.Sprintf("Close returned a task never submitted: %+v", p)
		}
		if returned {
			return "Close returned the task twice"
		}
		returned = true
	}
	switch {
	case submitErr != nil:
		mustNotRun.Store(true)
		if !errors.Is(submitErr, worker.ErrStopped) {
			return fmt.Sprintf("Submit racing Close = %v, want nil or ErrStopped", submitErr)
		}
		if returned {
			return fmt.Sprintf("Close returned a task whose Submit failed with %v", submitErr)
		}
		if started.Load() {
			return fmt.Sprintf("a task whose Submit failed with %v ran", submitErr)
		}
	case returned:
		mustNotRun.Store(true)
		if started.Load() {
			return "a task Close returned ran"
		}
	default: // accepted and not returned: it must run, and Wait must have waited for it
		select {
		case <-ran:
		case <-time.After(10 * time.Second): // a guard against a hang, not a wait
			return "an accepted task Close did not return never ran"
		}
		if startedAfterWait.Load() {
			return "an accepted task Close did not return started after Wait returned"
		}
		if runningAtWait {
			return "Wait returned while an accepted task was running"
		}
	}
	return ""
}

// yield yields the processor n times.
func yield(n int) {
	for range n {
		runtime.Gosched()
	}
}
