package sqsconsumer_test

// attack4: the fixes of 03e74b4/67f8c85 (breaker confirm, admit's whole release, start's
// breaker check and submit ctx, lanes.drain, WithRateLimit's token in handle, StopWhenIdle
// paused by an open breaker) against DESIGN.md's invariants and the doc comments on Breaker,
// WithRateLimit and StopWhenIdle. Each failing test's comment names the sentence it breaks.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Breaker: "Open: ... the messages it holds that have not started are released at once";
// WithRateLimit: "A message takes its token when a worker is about to run it; while it waits
// for one it is held (and leased)". A message whose worker waits for its token (handle, in
// gate.Wait on the intake ctx) has left the wait set, so releaseWaiting does not see it and
// the breaker's ctx does not end its wait: with a slow rate it stays held, unstarted and
// invisible, for as long as the bucket takes to reach it, while the breaker is open.
func TestAttack4OpenReleasesMessagesWaitingForATokenAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 20)
		var runningNow atomic.Int64
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			runningNow.Add(1)
			defer runningNow.Add(-1)
			advance(100 * time.Millisecond)
			return sqsconsumer.Downstream(errors.New("db down"))
		}, quiet, sqsconsumer.WithConcurrency(6), sqsconsumer.WithRateLimit(0.25, 1),
			sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Hour}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		// Tokens at 0, 4 s, 8 s: the third downstream failure opens the breaker at ~8.1 s.
		advance(9 * time.Second)
		st := c.Stats()
		if st.Breaker != sqsconsumer.BreakerOpen {
			stop()
			t.Fatalf("breaker %v: %+v", st.Breaker, st)
		}
		advance(time.Second)
		st = c.Stats()
		q, _ := s.Stats(url)
		if held := st.InFlight - runningNow.Load(); held > 0 {
			t.Errorf("1 s after opening the consumer still holds %d messages that have not started (waiting for a rate-limit token); SQS: %d visible, %d in flight",
				held, q.Visible, q.InFlight)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
	})
}

// Breaker: "After OpenFor the breaker is half-open: it receives one message at a time ... and
// runs it; Probes successes in a row close it". The probe's message enters its lane
// (WithGroupLimit) like any other: when its group's running place is held by a handler from
// before the opening (stuck on the dead downstream), the probe waits in the lane, unstarted
// and held, and the breaker (probeID set) lets no other probe out. The downstream comes back,
// yet the queue stays half-open, receiving nothing, until the stuck handler ends.
func TestAttack4ProbeParkedBehindItsGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		for i := range 4 {
			sendGroup(t, s, url, "a", fmt.Sprintf("a%d", i))
		}
		for i := range 3 {
			sendGroup(t, s, url, fmt.Sprintf("f%d", i), fmt.Sprintf("f%d", i))
		}
		hold := make(chan struct{})
		var runningNow, down atomic.Int64
		down.Store(1)
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			runningNow.Add(1)
			defer runningNow.Add(-1)
			if *m.Body == "a0" {
				<-hold // stuck on the dead downstream
				return nil
			}
			advance(100 * time.Millisecond)
			if down.Load() == 1 {
				return sqsconsumer.Downstream(errors.New("db down"))
			}
			return nil
		}, quiet, sqsconsumer.WithConcurrency(4), sqsconsumer.WithGroupLimit(1),
			sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Second}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(2 * time.Second)
		if st := c.Stats(); st.BreakerOpened == 0 {
			close(hold)
			stop()
			t.Fatalf("breaker never opened: %+v", st)
		}
		down.Store(0) // the downstream is back
		// More of tenant a's messages arrive: the probes find them (a0 still holds the group's
		// place), and must run, not wait behind a0.
		for i := 4; i < 8; i++ {
			sendGroup(t, s, url, "a", fmt.Sprintf("a%d", i))
		}
		advance(30 * time.Second)
		st := c.Stats()
		q, _ := s.Stats(url)
		t.Logf("stats %+v queue %+v running %d", st, q, runningNow.Load())
		if st.Breaker != sqsconsumer.BreakerClosed {
			t.Errorf("30 s after the downstream came back the breaker is %v (probed %d); %d held, %d running; SQS: %d visible",
				st.Breaker, st.Probed, st.InFlight, runningNow.Load(), q.Visible)
		}
		close(hold)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
	})
}

// WithRateLimit: "at shutdown a waiting message is released at once"; invariant 5: Run returns
// within about a second. Workers wait for tokens of a slow bucket when Run's ctx ends.
func TestAttack4RateLimitShutdownIsPrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 40)
		errOpt, errs := errorsTo(t)
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			return nil
		}, quiet, errOpt, sqsconsumer.WithConcurrency(8), sqsconsumer.WithRateLimit(0.01, 1),
			sqsconsumer.WithBreaker(sqsconsumer.Breaker{}))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(3 * time.Second)
		began := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took > 2*time.Second {
			t.Errorf("Run took %v to return", took)
		}
		checkReportAddsUp(t, c)
		if q, _ := s.Stats(url); q.InFlight != 0 {
			t.Errorf("after Run: %+v", q)
		}
		for _, e := range errs() {
			t.Errorf("reported: %v", e)
		}
	})
}

// Stress: the breaker opening and closing under lanes (FIFO or WithGroupLimit), both
// strategies, with and without a rate limit; every message leaves once (no "left twice"), the
// report adds up and SQS holds nothing in flight after Run.
func TestAttack4BreakerLanesStress(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 4))
				s := sqstest.New()
				var url string
				errOpt, errs := errorsTo(t)
				opts := []sqsconsumer.Option{quiet, errOpt, sqsconsumer.WithConcurrency(1 + rng.IntN(6)),
					sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Duration(100+rng.IntN(900)) * time.Millisecond, MinCalls: 4, Window: time.Second}),
					sqsconsumer.WithBackoff(func(rc int) time.Duration { return time.Duration(rc*97%500) * time.Millisecond }),
					// Longer than the longest hand-back (WithGroupLimit's overflow delay, 15 min
					// at most): messages handed back again and again as the breaker flaps are
					// not idleness.
					sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(20 * time.Minute))}
				if rng.IntN(2) == 0 {
					url = fifoQueue(s, "q")
				} else {
					url = s.MustCreateQueue("q", nil)
					opts = append(opts, sqsconsumer.WithGroupLimit(1+rng.IntN(2)))
				}
				if rng.IntN(2) == 0 {
					opts = append(opts, sqsconsumer.WithStrategy(semaphore.Factory(semaphore.WithWaitingRoom(rng.IntN(8)))))
				}
				if rng.IntN(3) == 0 {
					opts = append(opts, sqsconsumer.WithRateLimit(float64(5+rng.IntN(50)), 1+rng.IntN(5)))
				}
				n := 30 + rng.IntN(60)
				for i := range n {
					sendGroup(t, s, url, fmt.Sprintf("g%d", rng.IntN(5)), fmt.Sprintf("m%d", i))
				}
				start := time.Now()
				var rmu sync.Mutex
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					rmu.Lock()
					d := time.Duration(rng.IntN(300)) * time.Millisecond
					f := rng.IntN(10)
					rmu.Unlock()
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return ctx.Err()
					}
					if time.Since(start) < 5*time.Second && f < 7 {
						return sqsconsumer.Downstream(errors.New("down"))
					}
					return nil
				}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
				defer cancel()
				if err := c.Run(ctx); err != nil {
					t.Fatal(err)
				}
				r := checkReportAddsUp(t, c)
				q, _ := s.Stats(url)
				if q.InFlight != 0 || q.Visible != 0 || r.Succeeded < int64(n) {
					t.Errorf("after Run: SQS %+v, report %+v", q, r.Stats)
				}
				for _, e := range errs() {
					t.Errorf("reported: %v", e)
				}
			})
		})
	}
}

// StopWhenIdle: "stops after the queue has brought nothing for d ... Time while a breaker is
// open or half-open does not count: the queue is not idle then, only waiting for its
// downstream." (Arguable.) Half-open with nothing to receive (the failed messages wait out a
// 1 h backoff), the probes' long polls bring nothing, the breaker stays half-open for good
// ("a probe that brought no message decides nothing"), and StopWhenIdle(1 min) never stops:
// an idle queue keeps Run going for the whole backoff.
func TestAttack4StopWhenIdleHalfOpenEmptyQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 3)
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Downstream(errors.New("db down"))
		}, quiet, sqsconsumer.WithBreaker(sqsconsumer.Breaker{}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		began := time.Now()
		if err := c.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took > 5*time.Minute {
			t.Errorf("StopWhenIdle(1 min) on a queue with nothing to receive: Run returned after %v (breaker %v, probed %d)", took, c.Stats().Breaker, c.Stats().Probed)
		}
		checkReportAddsUp(t, c)
	})
}
