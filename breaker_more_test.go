package sqsconsumer_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestBreakerAndRateLimitOptionsValidate(t *testing.T) {
	s := sqstest.New()
	h := func(context.Context, *sqsconsumer.Message) error { return nil }
	for name, o := range map[string]sqsconsumer.Option{
		"ratio above 1":           sqsconsumer.WithBreaker(sqsconsumer.Breaker{FailureRatio: 1.5}),
		"ratio below 0":           sqsconsumer.WithBreaker(sqsconsumer.Breaker{FailureRatio: -0.1}),
		"ratio NaN":               sqsconsumer.WithBreaker(sqsconsumer.Breaker{FailureRatio: math.NaN()}),
		"min calls":               sqsconsumer.WithBreaker(sqsconsumer.Breaker{MinCalls: -1}),
		"window":                  sqsconsumer.WithBreaker(sqsconsumer.Breaker{Window: -time.Second}),
		"downstream failures":     sqsconsumer.WithBreaker(sqsconsumer.Breaker{DownstreamFailures: -1}),
		"open for":                sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: -time.Second}),
		"max open for":            sqsconsumer.WithBreaker(sqsconsumer.Breaker{MaxOpenFor: -time.Second}),
		"max open below open for": sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Minute, MaxOpenFor: time.Second}),
		"probes":                  sqsconsumer.WithBreaker(sqsconsumer.Breaker{Probes: -1}),
		"rate 0":                  sqsconsumer.WithRateLimit(0, 1),
		"rate NaN":                sqsconsumer.WithRateLimit(math.NaN(), 1),
		"rate Inf":                sqsconsumer.WithRateLimit(math.Inf(1), 1),
		"burst 0":                 sqsconsumer.WithRateLimit(10, 0),
	} {
		_, err := sqsconsumer.New(s, "https://sqs.us-east-1.amazonaws.com/1/q", h, o)
		if !errors.Is(err, sqsconsumer.ErrInvalidOption) {
			t.Errorf("%s: %v; want ErrInvalidOption", name, err)
			continue
		}
		if want := map[bool]string{true: "WithRateLimit", false: "WithBreaker"}[strings.HasPrefix(name, "rate") || strings.HasPrefix(name, "burst")]; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v does not name %s", name, err, want)
		}
	}
	// A MaxOpenFor of zero follows a long OpenFor.
	if _, err := sqsconsumer.New(s, "https://sqs.us-east-1.amazonaws.com/1/q", h, sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Hour})); err != nil {
		t.Errorf("OpenFor 1h alone: %v", err)
	}
}

// Shutdown while the breaker is open: Run returns promptly, the messages it held are released
// and the report adds up.
func TestBreakerOpenAtShutdown(t *testing.T) {
	for _, stopAt := range []string{"open", "half-open probe running"} {
		t.Run(stopAt, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				sendN(t, s, url, 50)
				probing := make(chan struct{})
				var once sync.Once
				var c *sqsconsumer.Consumer
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					if c.Stats().Breaker == sqsconsumer.BreakerHalfOpen {
						once.Do(func() { close(probing) })
						<-ctx.Done() // a probe that hangs until the shutdown timeout
						return ctx.Err()
					}
					advance(10 * time.Millisecond)
					return sqsconsumer.Downstream(errors.New("down"))
				}, quiet, sqsconsumer.WithConcurrency(4), sqsconsumer.WithBreaker(sqsconsumer.Breaker{}),
					sqsconsumer.WithShutdownTimeout(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				stop := running(t, c)
				if stopAt == "open" {
					advance(time.Second)
					if st := c.Stats(); st.Breaker != sqsconsumer.BreakerOpen {
						t.Fatalf("breaker %v", st.Breaker)
					}
				} else {
					<-probing
				}
				began := time.Now()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				took := time.Since(began)
				r := checkReportAddsUp(t, c)
				if limit := map[string]time.Duration{"open": time.Second, "half-open probe running": 5*time.Second + time.Second}[stopAt]; took > limit {
					t.Errorf("Run took %v to return", took)
				}
				advance(2 * time.Second) // backoffs of at most 1 s lapse
				q, _ := s.Stats(url)
				if q.Visible != 50 || q.Deleted != 0 {
					t.Errorf("after the shutdown: %+v; want all 50 visible again (%+v)", q, r.Stats)
				}
			})
		})
	}
}

// With Probe set, the breaker never receives a message to probe: it calls Probe until it
// succeeds Probes times in a row.
func TestBreakerProbeFuncReceivesNothingWhileOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 20)
		var up atomic.Bool
		var probes atomic.Int64
		log := &breakerLog{}
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if !up.Load() {
				return sqsconsumer.Downstream(errors.New("down"))
			}
			return nil
		}, quiet, sqsconsumer.WithHooks(log), sqsconsumer.WithConcurrency(2), sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }),
			sqsconsumer.WithBreaker(sqsconsumer.Breaker{Probe: func(ctx context.Context) error {
				probes.Add(1)
				if !up.Load() {
					return errors.New("ping: refused")
				}
				return nil
			}}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(context.Background()) }()
		advance(time.Second)
		receives := s.Calls("ReceiveMessage")
		advance(20 * time.Second) // probes at 2, 6, 14 s (each failure doubles the wait)
		if n := s.Calls("ReceiveMessage"); n != receives {
			t.Errorf("%d receives while open with a Probe func", n-receives)
		}
		if p := probes.Load(); p != 3 {
			t.Errorf("%d probes in 20 s; want 3 (after 2, 4 and 8 s open)", p)
		}
		up.Store(true)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		if r.Succeeded != 20 || r.Breaker != sqsconsumer.BreakerClosed || r.Probed != probes.Load() {
			q, _ := s.Stats(url)
			t.Errorf("succeeded %d, breaker %v, probed %d (Probe called %d times); %+v; queue %+v", r.Succeeded, r.Breaker, r.Probed, probes.Load(), r.Stats, q)
		}
		log.checkChain(t)
		log.mu.Lock()
		defer log.mu.Unlock()
		if last := log.changes[len(log.changes)-1]; last.To != sqsconsumer.BreakerClosed || !strings.Contains(last.Reason, "3 probes") {
			t.Errorf("last change %+v", last)
		}
		for _, ch := range log.changes {
			if ch.To == sqsconsumer.BreakerOpen && ch.From == sqsconsumer.BreakerHalfOpen && !strings.Contains(ch.Reason, "refused") {
				t.Errorf("a failed probe's change does not say why: %+v", ch)
			}
		}
	})
}

// In a Group each queue has its own breaker: one failing downstream does not stop the others.
func TestBreakerPerQueueInAGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		bad := s.MustCreateQueue("bad", nil)
		good := s.MustCreateQueue("good", nil)
		sendN(t, s, bad, 100)
		sendN(t, s, good, 100)
		g, err := sqsconsumer.NewGroup(quiet, sqsconsumer.WithConcurrency(8), sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Hour}),
			sqsconsumer.WithWaitTime(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var goodDone atomic.Int64
		all := make(chan struct{})
		if err := g.Add(s, bad, func(ctx context.Context, m *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			return sqsconsumer.Downstream(errors.New("its database is down"))
		}, sqsconsumer.Share{}); err != nil {
			t.Fatal(err)
		}
		if err := g.Add(s, good, func(ctx context.Context, m *sqsconsumer.Message) error {
			advance(10 * time.Millisecond)
			if goodDone.Add(1) == 100 {
				close(all)
			}
			return nil
		}, sqsconsumer.Share{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		<-all
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		r := g.Report()
		if b, gd := r.Queues[bad], r.Queues[good]; b.Breaker != sqsconsumer.BreakerOpen || gd.Breaker != sqsconsumer.BreakerClosed || gd.Succeeded != 100 || gd.BreakerOpened != 0 {
			t.Errorf("bad queue: breaker %v; good queue: breaker %v, succeeded %d", b.Breaker, gd.Breaker, gd.Succeeded)
		}
		if r.Total.Breaker != sqsconsumer.BreakerOpen || r.Total.BreakerOpened != 1 {
			t.Errorf("total: breaker %v, opened %d", r.Total.Breaker, r.Total.BreakerOpened)
		}
	})
}

// WithRateLimit: handler starts stay within the rate plus one burst in every window.
func TestRateLimitBoundsHandlerStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 300)
		var mu sync.Mutex
		var starts []time.Time
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			if len(*m.Body) == 2 && (*m.Body)[1] == '7' && m.ReceiveCount() == 1 {
				return errors.New("retried: takes a token again")
			}
			return nil
		}, quiet, sqsconsumer.WithConcurrency(32), sqsconsumer.WithRateLimit(50, 5),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(30*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		mu.Lock()
		defer mu.Unlock()
		if r.Received != int64(len(starts)) {
			t.Fatalf("%d starts, %d received", len(starts), r.Received)
		}
		for i := range starts {
			for j := i; j < len(starts) && starts[j].Sub(starts[i]) < time.Second; j++ {
				if n := j - i + 1; n > 50+5 {
					t.Fatalf("%d starts within a second from %v; want at most 55", n, starts[i].Sub(begin))
				}
			}
		}
		if took := starts[len(starts)-1].Sub(begin); took < time.Duration(float64(len(starts)-5)/50*float64(time.Second)) {
			t.Errorf("%d starts in %v: faster than 50 a second", len(starts), took)
		}
		if took := starts[len(starts)-1].Sub(begin); took > time.Duration(float64(len(starts))/50*float64(time.Second))+5*time.Second {
			t.Errorf("%d starts took %v: well below 50 a second", len(starts), took)
		}
	})
}
