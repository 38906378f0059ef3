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
	"sync"
	"sync/atomic"
	"testing"

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
