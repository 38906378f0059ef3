package sqsconsumer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestStopAfterNMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 200)
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			return nil
		}, sqsconsumer.WithStopPolicy(sqsconsumer.StopAfter(50)), sqsconsumer.WithConcurrency(4), sqsconsumer.WithWaitTime(time.Second))
		if err := c.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v, want nil when the policy ends it", err)
		}
		r := checkReportAddsUp(t, c)
		// Handlers already started or picked up from the waiting room when it fired finish too:
		// at most the capacity (4 + room 4) more.
		if handled := r.Succeeded + r.Failed; handled < 50 || handled > 50+8 {
			t.Fatalf("handled %d, want 50 plus at most the capacity: %+v", handled, r.Stats)
		}
		if st, _ := s.Stats(url); st.InFlight != 0 || st.Visible != 200-int(st.Deleted) {
			t.Fatalf("queue %+v", st)
		}
	})
}

func TestStopWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 20)
		var lastEnd atomic.Int64
		c, _ := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			lastEnd.Store(time.Now().UnixNano())
			return nil
		}, sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(5*time.Second)), sqsconsumer.WithWaitTime(2*time.Second))
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		stoppedAfter := time.Since(time.Unix(0, lastEnd.Load()))
		if r := checkReportAddsUp(t, c); r.Succeeded != 20 {
			t.Fatalf("report %+v", r.Stats)
		}
		// Idle for 5 s, checked 4 times a second, then the long poll in flight (2 s) completes.
		if stoppedAfter < 5*time.Second || stoppedAfter > 7500*time.Millisecond {
			t.Fatalf("Run returned %v after the last message", stoppedAfter)
		}
	})
}

func TestStopPolicyCombinations(t *testing.T) {
	idle := sqsconsumer.StopWhenIdle(time.Minute)
	many := sqsconsumer.StopAfter(10)
	cases := []struct {
		p    sqsconsumer.StopPolicy
		at   sqsconsumer.Progress
		stop bool
	}{
		{sqsconsumer.StopWhenAny(idle, many), sqsconsumer.Progress{Handled: 10}, true},
		{sqsconsumer.StopWhenAny(idle, many), sqsconsumer.Progress{IdleFor: time.Minute}, true},
		{sqsconsumer.StopWhenAny(idle, many), sqsconsumer.Progress{Handled: 9, IdleFor: time.Second}, false},
		{sqsconsumer.StopWhenAll(idle, many), sqsconsumer.Progress{Handled: 10}, false},
		{sqsconsumer.StopWhenAll(idle, many), sqsconsumer.Progress{Handled: 10, IdleFor: time.Hour}, true},
		{sqsconsumer.StopWhenAll(), sqsconsumer.Progress{Handled: 10}, false},
	}
	for i, c := range cases {
		if got := c.p(c.at); got != c.stop {
			t.Errorf("case %d: %v, want %v", i, got, c.stop)
		}
	}
	if _, err := sqsconsumer.New(sqstest.New(), "u", func(context.Context, *sqsconsumer.Message) error { return nil },
		sqsconsumer.WithStopPolicy(nil)); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
		t.Fatalf("nil policy: %v", err)
	}
}
