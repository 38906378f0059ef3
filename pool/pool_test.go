package pool

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/worker"
	"github.com/sqsconsumer/sqsconsumer/worker/workertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) { workertest.Run(t, Factory()) }

func TestConformanceNoRoomMinWorkers(t *testing.T) {
	workertest.Run(t, Factory(WithWaitingRoom(0), WithMinWorkers(1), WithIdleTimeout(time.Millisecond)))
}

func TestInvalidOptions(t *testing.T) {
	for name, opts := range map[string][]Option{
		"min above max":  {WithMinWorkers(5)},
		"negative min":   {WithMinWorkers(-1)},
		"negative room":  {WithWaitingRoom(-1)},
		"zero idle time": {WithIdleTimeout(0)},
	} {
		if _, err := New(4, opts...); !errors.Is(err, worker.ErrInvalidConfig) {
			t.Errorf("%s: error = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestFreeCountsWorkersAndRoom(t *testing.T) {
	p, err := New(4, WithWaitingRoom(3))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Close(); p.Wait(context.Background()) }()
	if p.Free() != 7 {
		t.Fatalf("Free() = %d, want 4 workers + 3 room", p.Free())
	}
	if d, _ := New(32); d.Free() != 32+worker.DefaultWaitingRoom(32) {
		t.Fatalf("default room: Free() = %d, want 32 + %d", d.Free(), worker.DefaultWaitingRoom(32))
	}
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	for range 6 {
		p.Reserve(context.Background(), 1)
		p.Submit(context.Background(), worker.Task{Run: func() { started <- struct{}{}; <-release }})
	}
	for range 4 {
		<-started
	}
	if p.Busy() != 4 || p.Free() != 1 {
		t.Fatalf("busy %d free %d, want 4 busy and (4-4)+(3-2) free", p.Busy(), p.Free())
	}
	close(release)
}

func TestGrowsOnDemandAndShrinksWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(8, WithMinWorkers(2), WithIdleTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if p.Workers() != 0 {
			t.Fatal("New started workers")
		}
		release := make(chan struct{})
		for range 8 {
			p.Reserve(context.Background(), 1)
			p.Submit(context.Background(), worker.Task{Run: func() { <-release }})
		}
		synctest.Wait()
		if p.Workers() != 8 || p.Busy() != 8 {
			t.Fatalf("workers %d busy %d, want 8 and 8", p.Workers(), p.Busy())
		}
		close(release)
		synctest.Wait()
		if p.Workers() != 8 {
			t.Fatalf("workers %d before the idle timeout, want 8", p.Workers())
		}
		<-time.After(time.Second + time.Millisecond) // fake clock: advances to the idle timeout
		synctest.Wait()
		if p.Workers() != 2 {
			t.Fatalf("workers %d after idle timeout, want min 2", p.Workers())
		}
		// Idle workers are reused, not duplicated.
		done := make(chan struct{})
		p.Reserve(context.Background(), 1)
		p.Submit(context.Background(), worker.Task{Run: func() { close(done) }})
		<-done
		synctest.Wait()
		if p.Workers() != 2 {
			t.Fatalf("workers %d after a task on an idle pool, want 2", p.Workers())
		}
		p.Close()
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p.Workers() != 0 {
			t.Fatalf("workers %d after Close and Wait", p.Workers())
		}
	})
}
