package backoff

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestCeilingDoublesAndCaps(t *testing.T) {
	e := Exponential{Base: time.Second, Max: 15 * time.Minute}
	cases := map[int]time.Duration{
		-3: time.Second, 0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		10: 512 * time.Second, 11: 15 * time.Minute, 1000: 15 * time.Minute,
	}
	for attempt, want := range cases {
		if got := e.Ceiling(attempt); got != want {
			t.Errorf("Ceiling(%d) = %v, want %v", attempt, got, want)
		}
	}
}

func TestDelayIsJitteredWithinCeiling(t *testing.T) {
	e := Exponential{Base: 100 * time.Millisecond, Max: time.Second}
	seen := map[time.Duration]bool{}
	for i := 0; i < 1000; i++ {
		d := e.Delay(3)
		if d <= 0 || d > 400*time.Millisecond {
			t.Fatalf("Delay(3) = %v, outside (0, 400ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct delays in 1000 draws: not jittered", len(seen))
	}
	if (Exponential{}).Delay(5) != 0 {
		t.Fatal("zero policy must give zero delay")
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(nil, 3*time.Second) {
			t.Fatal("Sleep without done reported an interruption")
		}
		if time.Since(start) != 3*time.Second {
			t.Fatalf("slept %v", time.Since(start))
		}
		done := make(chan struct{})
		time.AfterFunc(time.Second, func() { close(done) })
		start = time.Now()
		if Sleep(done, time.Hour) {
			t.Fatal("Sleep ignored done")
		}
		if time.Since(start) != time.Second {
			t.Fatalf("interrupted after %v", time.Since(start))
		}
		if !Sleep(done, 0) {
			t.Fatal("zero sleep must report complete")
		}
	})
}
