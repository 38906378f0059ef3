package semaphore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/worker"
	"github.com/sqsconsumer/sqsconsumer/worker/workertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) { workertest.Run(t, Factory()) }

func TestTooHeavyIsAnErrorNotADeadlock(t *testing.T) {
	s, err := New(4)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := s.Reserve(context.Background(), 1)
	err = s.Submit(context.Background(), worker.Task{Run: func() {}, Weight: 5})
	if !errors.Is(err, worker.ErrTooHeavy) {
		t.Fatalf("Submit weight 5 into capacity 4 = %v, want ErrTooHeavy", err)
	}
	s.Unreserve(n)
}

func TestWeightsBoundRunningTotal(t *testing.T) {
	s, err := New(5)
	if err != nil {
		t.Fatal(err)
	}
	var weight, peak atomic.Int64
	done := make(chan struct{}, 100)
	for i := range 100 {
		w := int64(1 + i%3)
		n, err := s.Reserve(context.Background(), 1)
		if err != nil || n != 1 {
			t.Fatal(n, err)
		}
		err = s.Submit(context.Background(), worker.Task{Weight: w, Run: func() {
			cur := weight.Add(w)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			weight.Add(-w)
			done <- struct{}{}
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		<-done
	}
	s.Close()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if peak.Load() > 5 {
		t.Fatalf("running weight peaked at %d, capacity 5", peak.Load())
	}
}

func TestSubmitWaitsForWeightUntilCtxEnds(t *testing.T) {
	s, _ := New(2)
	release := make(chan struct{})
	s.Reserve(context.Background(), 2)
	if err := s.Submit(context.Background(), worker.Task{Weight: 2, Run: func() { <-release }}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Submit(ctx, worker.Task{Run: func() {}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit while full with a cancelled ctx = %v", err)
	}
	s.Unreserve(1)
	close(release)
	s.Close()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPanicHandlerGetsValue(t *testing.T) {
	got := make(chan any, 1)
	s, _ := New(1, WithPanicHandler(func(v any) { got <- v }))
	s.Reserve(context.Background(), 1)
	s.Submit(context.Background(), worker.Task{Run: func() { panic("boom") }})
	if v := <-got; v != "boom" {
		t.Fatalf("panic handler got %v", v)
	}
	s.Close()
	s.Wait(context.Background())
}
