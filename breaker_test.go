package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// breakerLog records a breaker's changes, in the order the hook hears them.
type breakerLog struct {
	mu      sync.Mutex
	changes []sqsconsumer.BreakerChange
}

func (l *breakerLog) OnBreaker(c sqsconsumer.BreakerChange) {
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.mu.Unlock()
}

func (l *breakerLog) states() []sqsconsumer.BreakerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []sqsconsumer.BreakerState
	for _, c := range l.changes {
		s = append(s, c.To)
	}
	return s
}

// checkChain fails unless every change starts where the last one ended, from closed.
func (l *breakerLog) checkChain(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	at := sqsconsumer.BreakerClosed
	for i, c := range l.changes {
		if c.From != at || c.From == c.To {
			t.Fatalf("change %d goes %v -> %v after the breaker was %v: %+v", i, c.From, c.To, at, l.changes)
		}
		at = c.To
	}
}

const redriveTo4 = `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"4"}`

// outageRun is what became of n messages whose handlers' downstream was down for a while.
type outageRun struct {
	dlq          int64         // moved to the dead-letter queue
	succeeded    int           // distinct messages handled successfully
	lastOK       time.Duration // from the downstream's return to the last success
	report       *sqsconsumer.Report
	log          *breakerLog
	peakInOutage int64 // handlers running at once while the downstream was down, after the first second
}

// runOutage runs n messages through a consumer whose handlers (5 ms each) fail with fail's
// error while the downstream is down, from the start for down, on a queue that dead-letters
// after 4 receives. Run stops when the queue has been idle for a minute. It runs inside a
// synctest bubble.
func runOutage(t *testing.T, n int, down time.Duration, fail func(error) error, opts ...sqsconsumer.Option) outageRun {
	t.Helper()
	s := sqstest.New()
	s.MustCreateQueue("dlq", nil)
	url := s.MustCreateQueue("q", map[string]string{"RedrivePolicy": redriveTo4})
	sendN(t, s, url, n)
	start := time.Now()
	back := start.Add(down)
	var (
		mu      sync.Mutex
		ok      = map[string]bool{}
		lastOK  time.Time
		running atomic.Int64
		peak    atomic.Int64
	)
	log := &breakerLog{}
	h := func(ctx context.Context, m *sqsconsumer.Message) error {
		r := running.Add(1)
		defer running.Add(-1)
		advance(5 * time.Millisecond)
		now := time.Now()
		if now.Before(back) {
			if now.Sub(start) > time.Second && r > peak.Load() {
				peak.Store(r)
			}
			return fail(errors.New("database down"))
		}
		mu.Lock()
		ok[*m.Body] = true
		lastOK = now
		mu.Unlock()
		return nil
	}
	c, err := sqsconsumer.New(s, url, h, append([]sqsconsumer.Option{quiet, sqsconsumer.WithHooks(log),
		sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(time.Minute))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := checkReportAddsUp(t, c)
	st, _ := s.Stats(url)
	if st.Visible+st.InFlight+st.Delayed != 0 {
		t.Fatalf("the queue still holds messages after Run: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	return outageRun{dlq: st.MovedToDLQ, succeeded: len(ok), lastOK: lastOK.Sub(back), report: r, log: log, peakInOutage: peak.Load()}
}

// The run, on sqstest: 200 messages, the downstream down for 20 s, a redrive policy of
// 4 receives. Without a breaker the consumer walks every message into the dead-letter queue;
// with the default breaker at most 5% may go there, and every other message is handled within
// 30 s of the downstream's return.
func TestBreakerOutageKeepsMessagesOutOfTheDLQ(t *testing.T) {
	plain := func(err error) error { return err }
	synctest.Test(t, func(t *testing.T) {
		before := runOutage(t, 200, 20*time.Second, plain)
		t.Logf("without a breaker: %d of 200 dead-lettered, %d handled", before.dlq, before.succeeded)
		if before.dlq < 150 {
			t.Errorf("without a breaker only %d of 200 were dead-lettered: the scenario does not reproduce the issue", before.dlq)
		}
	})
	for _, tc := range []struct {
		name string
		fail func(error) error
	}{
		{"plain errors", plain},
		{"marked downstream", sqsconsumer.Downstream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				after := runOutage(t, 200, 20*time.Second, tc.fail, sqsconsumer.WithBreaker(sqsconsumer.Breaker{}))
				t.Logf("with the breaker: %d of 200 dead-lettered, %d handled, the last %v after the downstream's return; opened %d times, %d probes; changes %v",
					after.dlq, after.succeeded, after.lastOK, after.report.BreakerOpened, after.report.Probed, after.log.states())
				if after.dlq > 10 {
					t.Errorf("%d of 200 dead-lettered; want at most 5%%", after.dlq)
				}
				if int64(after.succeeded)+after.dlq != 200 {
					t.Errorf("%d handled + %d dead-lettered of 200", after.succeeded, after.dlq)
				}
				if after.lastOK > 30*time.Second {
					t.Errorf("the last message was handled %v after the downstream came back; want within 30 s", after.lastOK)
				}
				if after.report.BreakerOpened == 0 || after.report.Breaker != sqsconsumer.BreakerClosed {
					t.Errorf("breaker opened %d times, ends %v", after.report.BreakerOpened, after.report.Breaker)
				}
				if after.peakInOutage > 1 {
					t.Errorf("%d handlers ran at once during the outage after the breaker opened; probes go one at a time", after.peakInOutage)
				}
				after.log.checkChain(t)
				if s := after.log.states(); s[len(s)-1] != sqsconsumer.BreakerClosed {
					t.Errorf("last change %v", s)
				}
			})
		})
	}
}

// A short blip amid steady traffic must not open the breaker: failures stay a small share of
// the window.
func TestBreakerIgnoresAShortBlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		start := time.Now()
		// 100 messages a second for 20 s; the downstream fails for 1 s from the 10th second.
		go func() {
			for i := range 2000 {
				_, _ = s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(i))})
				advance(10 * time.Millisecond)
			}
		}()
		var failed atomic.Int64
		log := &breakerLog{}
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			advance(20 * time.Millisecond)
			if since := time.Since(start); since > 10*time.Second && since < 11*time.Second {
				failed.Add(1)
				return errors.New("blip")
			}
			return nil
		}, quiet, sqsconsumer.WithHooks(log), sqsconsumer.WithBreaker(sqsconsumer.Breaker{}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(30*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		if failed.Load() < 50 {
			t.Fatalf("only %d handler calls failed in the blip", failed.Load())
		}
		if r.BreakerOpened != 0 || len(log.states()) != 0 {
			t.Errorf("a 1 s blip (%d failures) opened the breaker: %v", failed.Load(), log.states())
		}
		if r.Succeeded != 2000 {
			t.Errorf("succeeded %d of 2000", r.Succeeded)
		}
	})
}

// Poison messages, marked as the message's own fault in every way the consumer knows, never
// open the breaker: they still reach the dead-letter queue.
func TestBreakerLetsPoisonReachTheDLQ(t *testing.T) {
	faults := map[string]func(m *sqsconsumer.Message) error{
		"MessageFault": func(m *sqsconsumer.Message) error { return sqsconsumer.MessageFault(errors.New("bad")) },
		"DecodeError": func(m *sqsconsumer.Message) error {
			return &sqsconsumer.DecodeError{MessageID: *m.MessageId, Err: errors.New("bad json")}
		},
		"ErrNoRoute": func(m *sqsconsumer.Message) error {
			return &sqsconsumer.NoRouteError{MessageID: *m.MessageId, Key: "x"}
		},
	}
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				s.MustCreateQueue("dlq", nil)
				url := s.MustCreateQueue("q", map[string]string{"RedrivePolicy": redriveTo4})
				sendN(t, s, url, 100)
				c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					advance(5 * time.Millisecond)
					return fault(m)
				}, quiet, sqsconsumer.WithBreaker(sqsconsumer.Breaker{}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(time.Minute)))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				r := checkReportAddsUp(t, c)
				st, _ := s.Stats(url)
				if st.MovedToDLQ != 100 || r.BreakerOpened != 0 {
					t.Errorf("%d of 100 poison messages dead-lettered, breaker opened %d times", st.MovedToDLQ, r.BreakerOpened)
				}
			})
		})
	}
}

// The breaker opens at once on failures marked as the downstream's, releases the messages that
// wait for a worker (visible again at once) while the running handlers finish, and receives
// nothing more while open.
func TestBreakerOpensOnDownstreamAndReleasesWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 30)
		hold := make(chan struct{})
		var calls atomic.Int64
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if calls.Add(1) == 1 {
				<-hold // a long handler that outlives the opening
				return nil
			}
			return sqsconsumer.Downstream(errors.New("db down"))
		}, quiet, sqsconsumer.WithConcurrency(4), sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Hour}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(time.Second) // the releases' visibility changes are sent
		st := c.Stats()
		if st.Breaker != sqsconsumer.BreakerOpen || st.BreakerOpened != 1 {
			t.Fatalf("breaker %v, opened %d; want open once after 3 downstream failures", st.Breaker, st.BreakerOpened)
		}
		// The 3rd failure opens it; handlers that had started by then finish (and fail).
		if st.Failed < 3 || st.Failed > 3+2 {
			t.Errorf("%d failures; the breaker opens at the 3rd, with 3 other workers", st.Failed)
		}
		if st.InFlight != 1 {
			t.Errorf("%d messages held while open with one handler running; the waiting ones are released: %+v", st.InFlight, st)
		}
		q, _ := s.Stats(url)
		if int64(q.Visible) != 30-1-st.Failed {
			t.Errorf("%d visible; want every message but the running one and the failed ones (%+v)", q.Visible, q)
		}
		receives := s.Calls("ReceiveMessage")
		advance(10 * time.Minute)
		if n := s.Calls("ReceiveMessage"); n != receives {
			t.Errorf("%d receives while open", n-receives)
		}
		close(hold)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		if r.Succeeded != 1 || r.Acked != 1 {
			t.Errorf("the running handler's success was lost: %+v", r.Stats)
		}
	})
}

// Half-open runs one message at a time; closing ramps up: the messages held double with each
// round of successes instead of jumping to the whole capacity.
func TestBreakerProbesOneAtATimeAndRampsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 400)
		var down atomic.Bool
		down.Store(true)
		var running, peak atomic.Int64
		type start struct {
			at      time.Time
			running int64
		}
		var mu sync.Mutex
		var starts []start
		log := &breakerLog{}
		var c *sqsconsumer.Consumer
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			r := running.Add(1)
			defer running.Add(-1)
			mu.Lock()
			starts = append(starts, start{time.Now(), r})
			mu.Unlock()
			if c.Stats().Breaker == sqsconsumer.BreakerHalfOpen && r > peak.Load() {
				peak.Store(r)
			}
			advance(50 * time.Millisecond)
			if down.Load() {
				return sqsconsumer.Downstream(errors.New("down"))
			}
			return nil
		}, quiet, sqsconsumer.WithHooks(log), sqsconsumer.WithConcurrency(16), sqsconsumer.WithBreaker(sqsconsumer.Breaker{}),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(context.Background()) }()
		advance(5 * time.Second) // opened, probed at 2 s and failed, open for 4 s more
		down.Store(false)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		log.checkChain(t)
		states := log.states()
		if len(states) < 5 || !slices.Equal(states[:4], []sqsconsumer.BreakerState{sqsconsumer.BreakerOpen, sqsconsumer.BreakerHalfOpen, sqsconsumer.BreakerOpen, sqsconsumer.BreakerHalfOpen}) || states[len(states)-1] != sqsconsumer.BreakerClosed {
			t.Fatalf("changes %v; want open, half-open, open (the probe failed), half-open, ..., closed", states)
		}
		if peak.Load() > 1 {
			t.Errorf("%d handlers ran at once while half-open", peak.Load())
		}
		log.mu.Lock()
		for _, ch := range log.changes {
			if ch.To == sqsconsumer.BreakerOpen && ch.From == sqsconsumer.BreakerHalfOpen && ch.OpenFor != 4*time.Second {
				t.Errorf("reopened after a failed probe for %v; want twice the first 2 s", ch.OpenFor)
			}
		}
		log.mu.Unlock()
		r := checkReportAddsUp(t, c)
		if r.Succeeded != 400 {
			t.Fatalf("succeeded %d of 400", r.Succeeded)
		}
		// The last 400 starts are the successes: three probes one at a time, then at most
		// 1 + 3 messages held, then twice that, ...
		mu.Lock()
		defer mu.Unlock()
		first := make([]int64, 0, 400)
		for _, st := range starts[len(starts)-400:] {
			first = append(first, st.running)
		}
		if slices.Max(first[:3]) != 1 || slices.Max(first[3:7]) > 4 || slices.Max(first[7:15]) > 8 {
			t.Errorf("running at the first starts after the downstream came back: %v; want probes one at a time, then a slow start", first[:16])
		}
		if slices.Max(first) != 16 {
			t.Errorf("never reached the concurrency again: peak %d", slices.Max(first))
		}
	})
}
