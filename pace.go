package sqsconsumer

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// pacer sizes a queue's prefetch by what it measures (Little's law): enough received messages
// should wait for a worker, or be on their way in receives already sent, to keep the workers
// busy for one receive's round trip. A poller starts its next receive only while
//
//	queued + asked < rate x rtt, rounded up to whole batches of 10 (+ idle workers, at a backlog)
//
// where queued is the messages received and waiting to start (in the strategy, not behind their
// message group), asked the messages receives in flight asked for, rate the handler throughput
// the concurrency could sustain (concurrency / mean handler time) and rtt the round trip to SQS,
// measured on the delete and visibility calls (a receive's latency may be a long poll's wait),
// or what a receive into a backlog takes when that is longer. So with slow handlers and
// a near SQS the consumer keeps about a batch waiting; with fast handlers or a far SQS it keeps
// more, and more receives in flight, up to what the strategy's capacity (concurrency + waiting
// room) lets it reserve. Until both are measured it keeps a batch. While receives come back
// full, the workers idle now (concurrency minus the handlers running) are added: what comes for
// them starts at once, so at a start, or when handlers outrun the receives, receives fill them
// in parallel rather than one round trip after another.
type pacer struct {
	concurrency int
	maxRate     float64      // WithRateLimit's handler starts a second; 0: none
	calls, busy func() int64 // handler calls and their summed duration (ns), cumulative
	disabled    bool         // never holds a receive back (a Group's queue)

	queued  atomic.Int64 // handed to the strategy, not started
	asked   atomic.Int64 // asked for by receives in flight
	running atomic.Int64 // handlers running
	backlog atomic.Bool  // the last receive came back full: the queue has more
	want    atomic.Int64 // rate x rtt, rounded up; a batch until both are measured

	mu                  sync.Mutex
	rtt, handler        float64 // seconds, moving averages; 0 until measured
	recv                float64 // seconds, moving average of receives into a backlog; 0 until measured
	lastCalls, lastBusy int64
	wake                chan struct{} // closed when queued or asked drops; nil while nobody waits
	sleepers            atomic.Int32
}

// Weights of a new sample in the moving averages: a round trip is one receive, a handler
// sample the calls since the last receive.
const (
	rttWeight     = 0.2
	handlerWeight = 0.3
)

// newPacer returns a queue's pacer. A disabled one never holds a receive back: a queue of a
// Group leaves the choice of who receives next to the Group's admission (priorities and
// weights), which a queue not asking for capacity would defeat, so there only the capacity
// bounds the prefetch.
func newPacer(concurrency int, calls, busy func() int64, enabled bool) *pacer {
	p := &pacer{concurrency: concurrency, calls: calls, busy: busy, disabled: !enabled}
	p.want.Store(maxBatch)
	if p.disabled {
		p.want.Store(math.MaxInt64)
	}
	return p
}

// open reports whether another receive is wanted now.
func (p *pacer) open() bool {
	return p.queued.Load()+p.asked.Load() < p.target()
}

// target is how many messages may be waiting or asked for: want, plus, while the queue has a
// backlog (the last receive came back full), the workers idle now, which would start what
// comes at once (at a start, or when the handlers outrun the receives, the receives fill them
// in parallel instead of one round trip after another). Without a backlog the idle workers
// add nothing: a draining queue does not get a long poll per idle worker.
func (p *pacer) target() int64 {
	want := max(p.want.Load(), 1)
	if want == math.MaxInt64 || !p.backlog.Load() {
		return want
	}
	return want + max(int64(p.concurrency)-p.running.Load(), 0)
}

// room is how many more messages the pacer lets receives ask for now.
func (p *pacer) room() int64 {
	return p.target() - p.queued.Load() - p.asked.Load()
}

// received tells the pacer whether a receive came back full.
func (p *pacer) received(full bool) {
	if p.backlog.Swap(full) != full {
		p.signal()
	}
}

// started and finished count the handlers running.
func (p *pacer) started() { p.running.Add(1) }

func (p *pacer) finished() {
	p.running.Add(-1)
	p.signal()
}

// gate blocks until another receive is wanted, then counts a receive of n messages as asked
// for, in the same step as the check, so that one opening lets one poller through and not
// every poller waiting (they would all see it open and all receive). The caller corrects n
// with asking once it knows what it asks for; the reservation gives it back (reservation.ask),
// or asking(-n) when it does not receive after all. When ctx ends first gate returns ctx's
// error, having counted nothing.
func (p *pacer) gate(ctx context.Context, n int) error {
	for !p.claim(n) {
		if err := p.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// wait blocks until the counts or want change after it was called (or another receive is
// wanted already), or ctx ends (then it returns ctx's error).
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	ch := p.wake
	p.sleepers.Add(1)
	p.mu.Unlock()
	defer p.sleepers.Add(-1)
	if p.open() { // a change between the caller's check and the registration
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claim counts n more messages as asked for, if another receive is wanted now.
func (p *pacer) claim(n int) bool {
	for {
		asked := p.asked.Load()
		if p.queued.Load()+asked >= p.target() {
			return false
		}
		if p.asked.CompareAndSwap(asked, asked+int64(n)) {
			return true
		}
	}
}

// signal wakes the pollers waiting in gate, if any.
func (p *pacer) signal() {
	if p.sleepers.Load() == 0 {
		return
	}
	p.mu.Lock()
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
	p.mu.Unlock()
}

// enqueued counts a message handed to the strategy (n = 1) or taken out of it unstarted or
// started (n = -1).
func (p *pacer) enqueued(n int64) {
	p.queued.Add(n)
	if n < 0 {
		p.signal()
	}
}

// asking corrects what gate counted as asked for by n: a receive asks for fewer than it
// claimed (n < 0), or does not receive at all (n is minus the claim).
func (p *pacer) asking(n int) {
	p.asked.Add(int64(n))
	if n < 0 {
		p.signal()
	}
}

// roundTrip takes the duration of a call that does not long-poll (the first attempt of a
// delete or visibility change batch) as a sample of the round trip to SQS. Receives are not
// sampled: one that waited on an empty queue until messages arrived measures the wait.
func (p *pacer) roundTrip(took time.Duration) {
	p.mu.Lock()
	p.rtt = ewma(p.rtt, max(took.Seconds(), 1e-7), rttWeight)
	p.recompute()
	p.mu.Unlock()
	p.signal()
}

// receiveTrip takes the duration of a full receive that began while messages were waiting
// (one of them was sent well before: it did not wait on an empty queue) as a sample of how
// long a receive takes, which may be far longer than a delete (SQS gathers the messages).
func (p *pacer) receiveTrip(took time.Duration) {
	p.mu.Lock()
	p.recv = ewma(p.recv, max(took.Seconds(), 1e-7), rttWeight)
	p.recompute()
	p.mu.Unlock()
	p.signal()
}

// update takes the handler calls since the last update as a sample of the handler time; the
// runner calls it after every receive.
func (p *pacer) update() {
	p.mu.Lock()
	if calls, busy := p.calls(), p.busy(); calls > p.lastCalls {
		mean := float64(busy-p.lastBusy) / float64(calls-p.lastCalls) / float64(time.Second)
		p.handler = ewma(p.handler, max(mean, 1e-7), handlerWeight)
		p.lastCalls, p.lastBusy = calls, busy
		p.recompute()
	}
	p.mu.Unlock()
	p.signal()
}

// recompute sets want from the averages, once both are measured. p.mu is held.
func (p *pacer) recompute() {
	rtt := max(p.rtt, p.recv) // what a receive takes, at least a round trip
	if rtt > 0 && p.handler > 0 && !p.disabled {
		// Rounded up to whole batches, as receives bring them: the margin absorbs handler times
		// that vary about their mean.
		rate := float64(p.concurrency) / p.handler
		if p.maxRate > 0 {
			rate = min(rate, p.maxRate) // the handlers start no faster than the rate limit
		}
		batches := math.Ceil(min(rate*rtt, 1e9) / maxBatch)
		p.want.Store(int64(max(batches, 1)) * maxBatch)
	}
}

func ewma(avg, sample, weight float64) float64 {
	if avg == 0 {
		return sample
	}
	return avg + weight*(sample-avg)
}
