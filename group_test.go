package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// groupCounter counts handled messages per queue name, and the slots each queue holds.
type groupCounter struct {
	mu      sync.Mutex
	handled map[string]int
	active  map[string]int
	peak    map[string]int
	frozen  map[string]int // handled, as seen at the end of the measured window
}

func newGroupCounter() *groupCounter {
	return &groupCounter{handled: map[string]int{}, active: map[string]int{}, peak: map[string]int{}}
}

func (g *groupCounter) handler(name string, latency time.Duration) sqsconsumer.Handler {
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		g.mu.Lock()
		g.active[name]++
		g.peak[name] = max(g.peak[name], g.active[name])
		g.mu.Unlock()
		advance(latency)
		g.mu.Lock()
		g.active[name]--
		g.handled[name]++
		g.mu.Unlock()
		return nil
	}
}

func (g *groupCounter) snapshot() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.handled {
		out[k] = v
	}
	return out
}

func TestGroupSharesSlotsByWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		counter := newGroupCounter()
		g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(16))
		if err != nil {
			t.Fatal(err)
		}
		weights := map[string]int{"a": 1, "b": 2, "c": 1}
		backlog := map[string]int{"a": 5000, "b": 6000, "c": 20000} // skewed, and none runs dry in the window
		for _, name := range []string{"a", "b", "c"} {
			url := s.MustCreateQueue(name, nil)
			sendN(t, s, url, backlog[name])
			if err := g.Add(s, url, counter.handler(name, 20*time.Millisecond), sqsconsumer.Share{Weight: weights[name]}); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		advance(10 * time.Second)
		got := counter.snapshot()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		total := got["a"] + got["b"] + got["c"]
		for name, w := range weights {
			share := float64(got[name]) / float64(total)
			want := float64(w) / 4
			if math.Abs(share-want) > 0.1*want {
				t.Fatalf("queue %s handled %.3f of %d messages, want %.3f within 10%% (%v)", name, share, total, want, got)
			}
		}
		// 16 slots busy with 20 ms handlers for 10 s: about 8,000 messages, never more.
		if total < 7000 || total > 8000 {
			t.Fatalf("handled only %d in 10 s: slots left idle", total)
		}
		r := g.Report()
		if r == nil || len(r.Queues) != 3 || r.Total.Received != r.Total.Succeeded+r.Total.Failed+r.Total.Released+r.Total.Cancelled+r.Total.LeaseLost {
			t.Fatalf("report %+v", r)
		}
	})
}

func TestGroupPriorityIsStrictAndIdleQueuesHoldOneSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		counter := newGroupCounter()
		g, _ := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(8))
		high := s.MustCreateQueue("high", nil)
		low := s.MustCreateQueue("low", nil)
		idle := s.MustCreateQueue("idle", nil)
		sendN(t, s, high, 400)
		sendN(t, s, low, 400)
		g.Add(s, high, counter.handler("high", 20*time.Millisecond), sqsconsumer.Share{Priority: 1})
		g.Add(s, low, counter.handler("low", 20*time.Millisecond), sqsconsumer.Share{})
		g.Add(s, idle, counter.handler("idle", 20*time.Millisecond), sqsconsumer.Share{Priority: 2})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		var lowWhileHigh int
		for counter.snapshot()["high"] < 400 {
			advance(50 * time.Millisecond)
			if snap := counter.snapshot(); snap["high"] < 350 {
				lowWhileHigh = snap["low"]
			}
		}
		for counter.snapshot()["low"] < 400 {
			advance(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The low queue may slip in while the high one's last receives were in flight, not before.
		if lowWhileHigh > 40 {
			t.Fatalf("low priority handled %d while high still had a backlog", lowWhileHigh)
		}
		if counter.peak["high"] != 8 || counter.peak["high"]+counter.peak["low"] > 8+8 {
			t.Fatalf("high priority peaked at %d of 8 slots", counter.peak["high"])
		}
		// The idle queue has the highest priority; had its long polls held a batch's worth of
		// units, the high queue could not have reached all 8 slots.
		st := g.Stats()[idle]
		if st.Received != 0 {
			t.Fatalf("idle queue %+v", st)
		}
	})
}

func TestGroupRunErrorsStopTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		ok := s.MustCreateQueue("ok", nil)
		g, _ := sqsconsumer.NewGroup(sqsconsumer.WithErrorHandler(func(error) {}))
		g.Add(s, ok, func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.Share{})
		g.Add(s, "https://sqstest.invalid/000000000000/missing", func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.Share{})
		err := g.Run(context.Background())
		var missing *types.QueueDoesNotExist
		if !errors.As(err, &missing) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("Run = %v, want the missing queue's error", err)
		}
		if err := g.Run(context.Background()); !errors.Is(err, sqsconsumer.ErrAlreadyRun) {
			t.Fatalf("second Run = %v", err)
		}
		if err := g.Add(s, ok, func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.Share{}); err == nil {
			t.Fatal("Add after Run accepted")
		}
		if _, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(0)); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
			t.Fatalf("NewGroup with a bad option: %v", err)
		}
	})
}

func TestGroupPollsEveryIdleQueueAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 50 idle queues on the default capacity (concurrency 10 + a waiting room of 40): each
		// queue's long poll holds one unit, so all 50 are polled from the start, and a message
		// arriving on any of them is handled at once, not after other queues' polls return.
		s := sqstest.New()
		client := &perQueue{Server: s}
		g, err := sqsconsumer.NewGroup(quiet)
		if err != nil {
			t.Fatal(err)
		}
		handled := make(chan string, 1)
		var urls []string
		for i := range 50 {
			url := s.MustCreateQueue(fmt.Sprintf("q%02d", i), nil)
			urls = append(urls, url)
			if err := g.Add(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
				handled <- *m.Body
				return nil
			}, sqsconsumer.Share{}, quiet); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		advance(time.Second)
		synctest.Wait()
		for _, url := range urls {
			if n := client.receives(url); n < 1 {
				t.Errorf("%s: not polled in the first second", url)
			}
		}
		sent := time.Now()
		sendN(t, s, urls[49], 1)
		<-handled
		if took := time.Since(sent); took > time.Second {
			t.Errorf("a message on the last queue waited %v", took)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// perQueue counts ReceiveMessage calls by queue URL.
type perQueue struct {
	*sqstest.Server
	mu sync.Mutex
	n  map[string]int
}

func (p *perQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	p.mu.Lock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	p.n[*in.QueueUrl]++
	p.mu.Unlock()
	return p.Server.ReceiveMessage(ctx, in, o...)
}

func (p *perQueue) receives(url string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[url]
}
