package sqsconsumer_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

var chaosSeed = flag.Int64("chaos.seed", 0, "run TestChaos with this seed only")

// chaosMessages is how many messages each seed of the chaos suite moves.
const chaosMessages = 10000

// TestChaos runs a consumer against sqstest with every kind of fault injected, stops it at a
// moment chosen by the seed, lets a second consumer finish the queue through outage phases
// (every delete failing for 4 s, every visibility change, then both), and checks that nothing
// was lost: every message handled at least once and deleted exactly once (strict mode), nothing
// left invisible longer than its policy, and the reports adding up.
//
// The seed fixes every decision: each fault, latency and outcome is drawn from a hash of the
// seed and what it is for (a message id and receive count, a receipt handle and attempt, a
// receive's sequence number), not from the order in which goroutines happen to ask, and the
// run is on synctest's fake clock.
func TestChaos(t *testing.T) {
	seeds := []int64{1, 2, 3}
	if *chaosSeed != 0 {
		seeds = []int64{*chaosSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("rerun this seed: go test -race -run 'TestChaos/seed=%d$' -chaos.seed=%d .", seed, seed)
				}
			}()
			synctest.Test(t, func(t *testing.T) { runChaos(t, seed) })
		})
	}
}

// chaos draws the seed's decisions and counts the faults it injects.
type chaos struct {
	seed     int64
	mu       sync.Mutex
	attempts map[string]int // op+handle -> tries seen
	receives atomic.Int64
	fired    map[string]*atomic.Int64
	// outages, once set (UnixNano), schedules outage phases from then: every delete failing
	// for 4 s from +2 s, every visibility change from +8 s, both from +14 s.
	outages atomic.Int64
}

// outage reports whether every call of op fails now.
func (c *chaos) outage(op string) bool {
	from := c.outages.Load()
	if from == 0 {
		return false
	}
	at := time.Since(time.Unix(0, from))
	in := func(start, length time.Duration) bool { return at >= start && at < start+length }
	switch op {
	case "DeleteMessageBatch":
		return in(2*time.Second, 4*time.Second) || in(14*time.Second, 4*time.Second)
	case "ChangeMessageVisibilityBatch":
		// Longer: visibility calls are rarer (the prefetch keeps few messages waiting, so
		// fewer are extended), and the suite wants each fault to fire 50 times.
		return in(8*time.Second, 6*time.Second) || in(14*time.Second, 6*time.Second)
	}
	return false
}

var chaosKinds = []string{
	"receive throttled", "receive server error", "delete call error", "delete entry failure",
	"visibility call error", "visibility entry failure", "latency spike", "handler error",
	"handler panic", "slow handler", "delete outage", "visibility outage",
}

func newChaos(seed int64) *chaos {
	c := &chaos{seed: seed, attempts: map[string]int{}, fired: map[string]*atomic.Int64{}}
	for _, k := range chaosKinds {
		c.fired[k] = new(atomic.Int64)
	}
	return c
}

// roll returns a number in [0, 1) fixed by the seed and the parts.
func (c *chaos) roll(parts ...any) float64 {
	h := fnv.New64a()
	fmt.Fprint(h, c.seed)
	for _, p := range parts {
		fmt.Fprint(h, "|", p)
	}
	// FNV alone mixes a change in the last bytes poorly into the high bits; finish with
	// splitmix64's mixer so neighbouring inputs draw independent numbers.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func (c *chaos) fire(kind string) { c.fired[kind].Add(1) }

// attempt counts the tries of op on a handle, so a retry of the same entry draws anew.
func (c *chaos) attempt(op, handle string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts[op+handle]++
	return c.attempts[op+handle]
}

func firstHandle(in any) string {
	switch in := in.(type) {
	case *sqs.DeleteMessageBatchInput:
		return *in.Entries[0].ReceiptHandle
	case *sqs.ChangeMessageVisibilityBatchInput:
		return *in.Entries[0].ReceiptHandle
	}
	return ""
}

func (c *chaos) faults() sqstest.Faults {
	return sqstest.Faults{
		Call: func(op string, in any) error {
			switch op {
			case "ReceiveMessage":
				r := c.roll("receive", c.receives.Add(1))
				switch {
				case r < 0.08:
					c.fire("receive throttled")
					return sqstest.Throttled()
				case r < 0.16:
					c.fire("receive server error")
					return sqstest.ServerError()
				}
			case "DeleteMessageBatch":
				if c.outage(op) {
					c.fire("delete outage")
					return sqstest.ServerError()
				}
				h := firstHandle(in)
				if c.roll("delete call", h, c.attempt("delete call", h)) < 0.10 {
					c.fire("delete call error")
					return sqstest.ServerError()
				}
			case "ChangeMessageVisibilityBatch":
				if c.outage(op) {
					c.fire("visibility outage")
					return sqstest.ServerError()
				}
				h := firstHandle(in)
				if c.roll("visibility call", h, c.attempt("visibility call", h)) < 0.20 {
					c.fire("visibility call error")
					return sqstest.ServerError()
				}
			}
			return nil
		},
		Entry: func(op, handle string) *types.BatchResultErrorEntry {
			switch op {
			case "DeleteMessageBatch":
				if c.roll("delete entry", handle, c.attempt("delete entry", handle)) < 0.08 {
					c.fire("delete entry failure")
					return sqstest.EntryError("InternalError", false)
				}
			case "ChangeMessageVisibilityBatch":
				if c.roll("visibility entry", handle, c.attempt("visibility entry", handle)) < 0.15 {
					c.fire("visibility entry failure")
					return sqstest.EntryError("InternalError", false)
				}
			}
			return nil
		},
		Latency: func(op string, in any) time.Duration {
			key := firstHandle(in)
			if key == "" {
				key = fmt.Sprint(c.receives.Load())
			}
			r := c.roll("latency", op, key, c.attempt("latency "+op, key))
			spike := 0.03
			if op == "ReceiveMessage" {
				spike = 0.01 // a stalled receive stalls its poller: keep them rarer
			}
			if r < spike {
				c.fire("latency spike")
				return time.Second + time.Duration(r/spike*float64(2*time.Second))
			}
			return time.Duration(r * float64(2*time.Millisecond))
		},
	}
}

// handler handles a message by the seed's draw for its id and receive count: a latency of
// 1..50 ms (rarely 25 s, past the visibility timeout), then success, an error or a panic.
func (c *chaos) handler(handled *sync.Map) sqsconsumer.Handler {
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		id, n := *m.MessageId, m.ReceiveCount()
		r := c.roll("handler", id, n)
		latency := time.Millisecond + time.Duration(c.roll("handler latency", id, n)*float64(49*time.Millisecond))
		if r < 0.01 {
			c.fire("slow handler")
			latency = 25 * time.Second
		}
		select {
		case <-time.After(latency):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		switch {
		case r < 0.04 && r >= 0.01:
			c.fire("handler panic")
			panic("chaos: panic in " + id)
		case r < 0.10 && r >= 0.04:
			c.fire("handler error")
			return errors.New("chaos: error in " + id)
		}
		handled.Store(id, true)
		return nil
	}
}

func runChaos(t *testing.T, seed int64) {
	const visibility = 10 * time.Second
	const backoffCap = 5 * time.Second
	s := sqstest.New(sqstest.WithStrict())
	url := s.MustCreateQueue("chaos", nil)
	sendN(t, s, url, chaosMessages)
	ch := newChaos(seed)
	s.SetFaults(ch.faults())
	var handled sync.Map
	var reported, late atomic.Int64
	opts := []sqsconsumer.Option{
		sqsconsumer.WithConcurrency(32),
		sqsconsumer.WithPollers(2),
		sqsconsumer.WithVisibilityTimeout(visibility),
		sqsconsumer.WithBackoff(sqsconsumer.ExponentialBackoff(time.Second, backoffCap)),
		sqsconsumer.WithShutdownTimeout(2 * time.Second),
		sqsconsumer.WithErrorHandler(func(err error) {
			// Every delete SQS accepted after the lease was lost (Report.AckErrors keeps only
			// the first 100).
			if ae := (*sqsconsumer.AckError)(nil); errors.As(err, &ae) && ae.Code == "LeaseLost" && ae.Op == "delete" {
				late.Add(1)
			}
			if n := reported.Add(1); (n < 5 || n%100 == 0) && testing.Verbose() {
				t.Logf("reported: %v", err)
			}
		}),
	}

	// First consumer: stopped at a moment the seed picks, mid-stream.
	first, err := sqsconsumer.New(s, url, ch.handler(&handled), opts...)
	if err != nil {
		t.Fatal(err)
	}
	stopAt := 2*time.Second + time.Duration(ch.roll("shutdown")*float64(8*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), stopAt)
	defer cancel()
	if err := first.Run(ctx); err != nil {
		t.Fatalf("first Run = %v, want nil after a shutdown", err)
	}
	r1 := checkReportAddsUp(t, first)
	mid, _ := s.Stats(url)
	if mid.Deleted == 0 || mid.Deleted >= chaosMessages {
		t.Fatalf("the shutdown at %v was not mid-stream: %d of %d deleted", stopAt, mid.Deleted, chaosMessages)
	}

	// Nothing stays invisible longer than its policy: the lease's last extension (one
	// visibility timeout) or the backoff cap, whichever is longer.
	advance(max(visibility, backoffCap) + time.Second)
	if st, _ := s.Stats(url); st.InFlight != 0 {
		t.Fatalf("%d messages still invisible %v after the first Run returned", st.InFlight, max(visibility, backoffCap)+time.Second)
	}

	// Second consumer, faults still on and outage phases on top, finishes the queue.
	ch.outages.Store(time.Now().UnixNano())
	second, err := sqsconsumer.New(s, url, ch.handler(&handled), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx2) }()
	deadline := time.Now().Add(30 * time.Minute)
	for {
		st, _ := s.Stats(url)
		if st.Deleted == chaosMessages {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not finished after 30 fake minutes: %+v; consumer: %+v", st, second.Stats())
		}
		select {
		case err := <-done:
			t.Fatalf("second Run returned early: %v", err)
		case <-time.After(time.Second):
		}
	}
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("second Run = %v", err)
	}
	r2 := checkReportAddsUp(t, second)

	end, _ := s.Stats(url)
	if end.Deleted != chaosMessages || end.Visible+end.InFlight+end.Delayed != 0 {
		t.Fatalf("queue at the end: %+v; want all %d deleted exactly once", end, chaosMessages)
	}
	n := 0
	handled.Range(func(any, any) bool { n++; return true })
	if n != chaosMessages {
		t.Fatalf("%d of %d messages handled successfully", n, chaosMessages)
	}
	// A delete SQS accepted after the visibility the lease knew of had lapsed is not counted as
	// acked (the handle may have been superseded; in strict mode here it was still current):
	// it is reported as an AckError with code LeaseLost instead.
	if r1.Acked+r2.Acked+late.Load() != chaosMessages {
		t.Fatalf("acked %d + %d (+ %d accepted late), want %d: a delete was counted twice or missed", r1.Acked, r2.Acked, late.Load(), chaosMessages)
	}

	var lines []string
	for _, k := range chaosKinds {
		got := ch.fired[k].Load()
		lines = append(lines, fmt.Sprintf("%s=%d", k, got))
		if got < 50 {
			t.Errorf("fault %q fired %d times, want >= 50", k, got)
		}
	}
	sort.Strings(lines)
	t.Logf("seed %d: %d messages, stopped at %v with %d deleted; faults: %s", seed, chaosMessages, stopAt, mid.Deleted, strings.Join(lines, ", "))
	t.Logf("first run:  %+v", r1.Stats)
	t.Logf("second run: %+v", r2.Stats)
	t.Logf("stale deletes refused (strict): %d; errors reported to the handler: %d", end.StaleDeletes, reported.Load())
}
