package capacity

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReserveBounds(t *testing.T) {
	ctx := context.Background()
	u := New(5)
	for _, tc := range []struct{ atLeast, most, want int }{
		{0, 0, 1},  // both below 1 count as 1
		{3, 2, 2},  // atLeast is brought down to most
		{1, 10, 2}, // the rest of what is free
	} {
		if n, err := u.Reserve(ctx, tc.atLeast, tc.most); err != nil || n != tc.want {
			t.Fatalf("Reserve(%d, %d) = %d, %v; want %d", tc.atLeast, tc.most, n, err, tc.want)
		}
	}
	if u.Free() != 0 {
		t.Fatalf("Free() = %d after reserving all 5", u.Free())
	}
	u.Release(5)
	if n, err := u.Reserve(ctx, 9, 9); err != nil || n != 5 { // atLeast is brought down to the size
		t.Fatalf("Reserve(9, 9) of 5 = %d, %v", n, err)
	}
	u.Release(5)
	if u.Free() != 5 {
		t.Fatalf("Free() = %d after releasing everything", u.Free())
	}
}

func TestReserveWaitsInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		u := New(3)
		if n, _ := u.Reserve(ctx, 3, 3); n != 3 {
			t.Fatalf("Reserve(3, 3) = %d", n)
		}
		first, second := make(chan int), make(chan int)
		go func() { n, _ := u.Reserve(ctx, 2, 3); first <- n }()
		synctest.Wait()
		go func() { n, _ := u.Reserve(ctx, 1, 3); second <- n }()
		synctest.Wait()
		u.Release(1) // enough for the second, but the first waits ahead of it
		synctest.Wait()
		select {
		case n := <-second:
			t.Fatalf("a later Reserve took %d units while an earlier one waited", n)
		default:
		}
		u.Release(1)
		if n := <-first; n != 2 {
			t.Fatalf("first Reserve = %d, want the 2 it waited for and nothing more", n)
		}
		u.Release(1)
		if n := <-second; n != 1 {
			t.Fatalf("second Reserve = %d, want 1", n)
		}
		if u.Free() != 0 {
			t.Fatalf("Free() = %d", u.Free())
		}
	})
}

func TestReserveEndsWithCtxAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := New(1)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if n, err := u.Reserve(cancelled, 1, 1); !errors.Is(err, context.Canceled) || n != 0 {
			t.Fatalf("Reserve with a done ctx and free units = %d, %v", n, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if n, _ := u.Reserve(ctx, 1, 1); n != 1 {
			t.Fatal("Reserve(1, 1) of 1 failed")
		}
		errs := make(chan error, 2)
		go func() { _, err := u.Reserve(ctx, 1, 1); errs <- err }()
		synctest.Wait()
		cancel()
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("waiting Reserve after cancel = %v", err)
		}
		go func() { _, err := u.Reserve(context.Background(), 1, 1); errs <- err }()
		go func() { errs <- u.Acquire(context.Background(), 2) }() // more than the size
		synctest.Wait()
		if !u.Close() || u.Close() {
			t.Fatal("Close did not report the first call alone")
		}
		for range 2 {
			if err := <-errs; !errors.Is(err, worker.ErrStopped) {
				t.Fatalf("waiting Reserve or Acquire after Close = %v", err)
			}
		}
		u.Release(1)
		if _, err := u.Reserve(context.Background(), 1, 1); !errors.Is(err, worker.ErrStopped) {
			t.Fatalf("Reserve after Close with units free = %v", err)
		}
		if err := u.Acquire(context.Background(), 1); !errors.Is(err, worker.ErrStopped) {
			t.Fatalf("Acquire after Close = %v", err)
		}
		if u.Free() != 1 {
			t.Fatalf("Free() = %d, want the unit back", u.Free())
		}
	})
}

func TestRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r Running
		ctx := context.Background()
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("Wait with nothing running = %v", err)
		}
		if !r.TryStart() {
			t.Fatal("TryStart before Close refused")
		}
		r.Start()
		r.Close()
		if r.TryStart() {
			t.Fatal("TryStart after Close admitted a task")
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := r.Wait(cancelled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait with tasks running and a done ctx = %v", err)
		}
		waited := make(chan error)
		go func() { waited <- r.Wait(ctx) }()
		r.Done()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("Wait returned %v with a task still running", err)
		default:
		}
		r.Done()
		if err := <-waited; err != nil {
			t.Fatalf("Wait = %v", err)
		}
	})
}
