package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// Breaker configures a queue's circuit breaker (WithBreaker): when handler failures say that
// what the handlers depend on is down, the consumer stops receiving instead of walking every
// message through its receives into the dead-letter queue, and probes until it is back.
//
// While closed the breaker counts handler outcomes over a sliding Window. It opens when at
// least MinCalls outcomes fall within the window and the share of failures among them reaches
// FailureRatio, or at once when DownstreamFailures failures within the window were marked as
// the downstream's (Downstream). Failures marked as the message's own (MessageFault, a
// *DecodeError, ErrNoRoute, an envelope the consumer could not parse or verify) are not counted
// at all, so poison messages never open the breaker and still reach the dead-letter queue; nor
// are shutdown cancellations and messages whose lease was lost.
//
// Open: the queue receives nothing; the messages it holds that have not started are released
// at once (visibility 0: their receive was counted once by SQS, and no failure is added);
// running handlers finish, and their outcomes are not counted. After OpenFor the breaker is
// half-open: it receives one message at a time (or calls Probe instead, if set) and runs it;
// Probes successes in a row close it, a failure opens it again for twice as long as the last
// time, at most MaxOpenFor. A message fault or a probe that brought no message decides
// nothing: the next probe follows at once. A probe never waits behind its message group: with
// WithGroupLimit it runs even when its group is at the limit; on a FIFO queue, when its group
// is busy, it is handed back (visible again after a second, longer each time) and the next
// probe follows.
//
// Closed again, the queue ramps up (slow start): it holds at most 1 + Probes messages, and one
// more for each success since it closed, so the messages it holds (and so the handlers it runs)
// double with each round of successes, up to its whole capacity. A receive already sent when
// the breaker opens completes, and what it brings is released unstarted. A breaker that opens again
// within MaxOpenFor of closing waits twice as long as before; after that it starts again from
// OpenFor.
//
// The zero Breaker is the recommended settings; each zero field takes its default. Fields
// below zero, or a FailureRatio above 1, are an error from New.
type Breaker struct {
	// FailureRatio is the share of counted outcomes that must be failures to open the breaker.
	// Default 0.5.
	FailureRatio float64
	// MinCalls is how many outcomes the window must hold before the ratio can open the breaker,
	// so that a short blip on a quiet queue does not. Default 20.
	MinCalls int
	// Window is how far back outcomes count. Default 10 s.
	Window time.Duration
	// DownstreamFailures is how many failures marked with Downstream within the window open the
	// breaker at once, whatever the ratio and MinCalls. Default 3.
	DownstreamFailures int
	// OpenFor is how long the breaker stays open the first time before it probes. Default 2 s.
	OpenFor time.Duration
	// MaxOpenFor caps the time the breaker stays open as it doubles after failed probes.
	// Default 30 s. Each probe with a message is one receive of that message, counted by SQS
	// toward the dead-letter queue's maxReceiveCount: for outages of hours, raise it or set
	// Probe.
	MaxOpenFor time.Duration
	// Probes is how many probes in a row must succeed to close the breaker. Default 3.
	Probes int
	// Probe, if set, is called to probe instead of running a message: nil means the downstream
	// is back. It runs on a poller's goroutine with a ctx that ends at shutdown, and should
	// return within a few seconds. It lets a long outage pass without any message being
	// received (and counted toward the dead-letter queue) until the downstream is back.
	Probe func(ctx context.Context) error
}

// Defaults of Breaker's fields.
const (
	DefaultBreakerFailureRatio       = 0.5
	DefaultBreakerMinCalls           = 20
	DefaultBreakerWindow             = 10 * time.Second
	DefaultBreakerDownstreamFailures = 3
	DefaultBreakerOpenFor            = 2 * time.Second
	DefaultBreakerMaxOpenFor         = 30 * time.Second
	DefaultBreakerProbes             = 3
)

// resolved returns b with its defaults, or an error naming the bad field.
func (b Breaker) resolved() (Breaker, error) {
	switch {
	case b.FailureRatio < 0 || b.FailureRatio > 1 || b.FailureRatio != b.FailureRatio:
		return b, invalid("WithBreaker", "FailureRatio %v, want 0 (the default) or a ratio up to 1", b.FailureRatio)
	case b.MinCalls < 0:
		return b, invalid("WithBreaker", "MinCalls %d, want >= 0", b.MinCalls)
	case b.Window < 0:
		return b, invalid("WithBreaker", "Window %v, want >= 0", b.Window)
	case b.DownstreamFailures < 0:
		return b, invalid("WithBreaker", "DownstreamFailures %d, want >= 0", b.DownstreamFailures)
	case b.OpenFor < 0:
		return b, invalid("WithBreaker", "OpenFor %v, want >= 0", b.OpenFor)
	case b.MaxOpenFor < 0:
		return b, invalid("WithBreaker", "MaxOpenFor %v, want >= 0", b.MaxOpenFor)
	case b.Probes < 0:
		return b, invalid("WithBreaker", "Probes %d, want >= 0", b.Probes)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = DefaultBreakerFailureRatio
	}
	def(&b.MinCalls, DefaultBreakerMinCalls)
	def(&b.DownstreamFailures, DefaultBreakerDownstreamFailures)
	def(&b.Probes, DefaultBreakerProbes)
	defDur(&b.Window, DefaultBreakerWindow)
	defDur(&b.OpenFor, DefaultBreakerOpenFor)
	defDur(&b.MaxOpenFor, max(DefaultBreakerMaxOpenFor, b.OpenFor))
	if b.MaxOpenFor < b.OpenFor {
		return b, invalid("WithBreaker", "MaxOpenFor %v below OpenFor %v", b.MaxOpenFor, b.OpenFor)
	}
	return b, nil
}

// BreakerState is the state of a queue's breaker.
type BreakerState int32

// The breaker's states. A queue without a breaker is always BreakerClosed.
const (
	BreakerClosed   BreakerState = iota // receiving (possibly ramping up after it closed)
	BreakerHalfOpen                     // probing, one message at a time
	BreakerOpen                         // receiving nothing until the next probe
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", int32(s))
}

// BreakerChange is one change of a breaker's state, as HookBreaker hears of it.
type BreakerChange struct {
	QueueURL string
	From, To BreakerState
	// Reason says why, in words: the failures that opened it, the probe that closed it.
	Reason string
	// OpenFor is how long the breaker stays open before it probes (To == BreakerOpen).
	OpenFor time.Duration
	// Err is the last failure counted when the breaker opened; nil otherwise.
	Err error
}

// HookBreaker is told of every change of a queue's breaker state (WithBreaker), in order.
type HookBreaker interface {
	OnBreaker(c BreakerChange)
}

// DownstreamError marks a handler's failure as the downstream's (a database, an API the
// handler depends on), not the message's. Build it with Downstream.
type DownstreamError struct {
	Err error
}

// Downstream returns err marked as a failure of what the handler depends on, not of the
// message: with WithBreaker, DownstreamFailures of these within the window open the breaker at
// once. The message is retried as for any error; wrap a RetryError (Downstream(RetryAfter(d,
// err))) to say when. Without a breaker it is an error like any other.
func Downstream(err error) error { return &DownstreamError{Err: err} }

func (e *DownstreamError) Error() string {
	if e.Err == nil {
		return "sqsconsumer: downstream failure"
	}
	return "sqsconsumer: downstream failure: " + e.Err.Error()
}

// Unwrap returns the underlying failure.
func (e *DownstreamError) Unwrap() error { return e.Err }

// MessageFaultError marks a handler's failure as the message's own (it cannot be handled as
// it is, whatever the downstream does). Build it with MessageFault.
type MessageFaultError struct {
	Err error
}

// MessageFault returns err marked as the message's own fault: it never counts toward a breaker
// (WithBreaker), so a flood of such messages still reaches the dead-letter queue instead of
// stopping the consumer. *DecodeError, ErrNoRoute and an envelope that cannot be parsed or
// verified count as message faults without it. The message is retried as for any error.
func MessageFault(err error) error { return &MessageFaultError{Err: err} }

func (e *MessageFaultError) Error() string {
	if e.Err == nil {
		return "sqsconsumer: message fault"
	}
	return e.Err.Error()
}

// Unwrap returns the underlying failure.
func (e *MessageFaultError) Unwrap() error { return e.Err }

// verdict is what a message's outcome tells the breaker.
type verdict uint8

const (
	verdictNone       verdict = iota // nothing: did not run, shutdown, lease lost, message fault
	verdictSuccess                   // the handler succeeded
	verdictFailure                   // the handler failed, whoever's fault
	verdictDownstream                // the handler failed and said the downstream is down
)

// verdictOf classifies a handler's return for the breaker.
func verdictOf(err error) verdict {
	if err == nil {
		return verdictSuccess
	}
	var (
		mf *MessageFaultError
		de *DecodeError
		ds *DownstreamError
	)
	switch {
	case errors.As(err, &ds):
		return verdictDownstream
	case errors.As(err, &mf), errors.As(err, &de), errors.Is(err, ErrNoRoute), isEnvelopeFault(err):
		return verdictNone
	}
	return verdictFailure
}

// isEnvelopeFault reports whether err says the message's envelope is at fault: malformed, not
// signed or not verifiable as SNS's, from a topic not allowed, a confirmation nobody handles.
// A certificate that could not be fetched is not the message's fault.
func isEnvelopeFault(err error) bool {
	for _, e := range []error{envelope.ErrMalformed, envelope.ErrNotSigned, envelope.ErrCertURL, envelope.ErrCertificate,
		envelope.ErrBadSignature, envelope.ErrUnsupported, ErrTopicNotAllowed, ErrSNSConfirmation} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ticket is a poller's permission to receive: how many messages, in which epoch of the
// breaker, and whether it is the half-open state's probe.
type ticket struct {
	n     int
	epoch uint64
	probe uint64 // the probe's id; 0 when not a probe
}

// breaker is one queue's circuit breaker. Pollers ask it before each receive (permit), messages
// are stamped with the ticket's epoch and probe id, and every message's exit reports its
// verdict (record). Changes of state take effect at once: an open breaker makes handle release
// the messages that start, and onOpen releases those waiting in the strategy.
type breaker struct {
	cfg      Breaker
	capacity int64        // units of the queue's strategy: the ramp ends there
	held     func() int64 // messages the queue holds (received, not yet left)
	onOpen   func()       // release the messages waiting to start
	emit     func(BreakerChange)
	stats    *counters
	queueURL string

	mu        sync.Mutex
	state     BreakerState
	epoch     uint64 // changes with every change of state
	window    outcomeWindow
	openUntil time.Time
	openFor   time.Duration // the last time it opened for
	closedAt  time.Time
	probeID   uint64 // the probe out now, 0 when none
	probeSeq  uint64
	probeOK   int   // probes that succeeded in a row
	ramp      int64 // while ramping after closing, the messages the queue may hold; 0: no limit
	asked     int64 // messages asked for by receives in flight
	changed   chan struct{}
	pending   []BreakerChange
	emitMu    sync.Mutex // orders the emission of pending changes
	lastErr   error
	// Submits of the queue's messages run on runCtx, cancelled when the breaker opens, so a
	// message blocked in a strategy's Submit (the semaphore's backpressure) is released too.
	base      context.Context
	runCtx    context.Context
	cancelRun context.CancelFunc
}

// begin sets the ctx the queue's Submits derive from (the consumer's intake); Run calls it
// before any receive.
func (b *breaker) begin(base context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.base = base
	b.runCtx, b.cancelRun = context.WithCancel(base)
}

// submitCtx is the ctx for a Submit now: it ends when the breaker opens or intake stops.
func (b *breaker) submitCtx() context.Context {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runCtx
}

// current reports whether messages received with t may go on: t is from the breaker's
// present state, closed or (for its probe) half-open.
func (b *breaker) current(t ticket) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return t.epoch == b.epoch && (b.state == BreakerClosed || (b.state == BreakerHalfOpen && t.probe != 0 && t.probe == b.probeID))
}

// confirm checks a ticket again once its receive holds its capacity, just before it is sent:
// the breaker may have changed while the poller waited for capacity. It returns how many of n
// messages the receive may still ask for: 0 when the ticket is from an earlier state (the
// breaker opened since) or is not the probe any more; while ramping, what the ramp allows now.
func (b *breaker) confirm(t ticket, n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.epoch != b.epoch {
		return 0
	}
	switch b.state {
	case BreakerClosed:
		if b.ramp > 0 {
			n = int(min(int64(n), b.ramp-b.held()-(b.asked-int64(t.n))))
		}
		return max(n, 0)
	case BreakerHalfOpen:
		if t.probe != 0 && t.probe == b.probeID {
			return min(n, 1)
		}
	}
	return 0
}

func newBreaker(cfg Breaker, capacity int64, queueURL string, stats *counters, held func() int64, onOpen func(), emit func(BreakerChange)) *breaker {
	return &breaker{cfg: cfg, capacity: max(capacity, 1), queueURL: queueURL, stats: stats, held: held, onOpen: onOpen, emit: emit,
		changed: make(chan struct{}), window: newOutcomeWindow(cfg.Window)}
}

// notify wakes every poller waiting in permit. b.mu is held.
func (b *breaker) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// to changes the state and queues the change for emission. b.mu is held.
func (b *breaker) to(s BreakerState, reason string, now time.Time) {
	c := BreakerChange{QueueURL: b.queueURL, From: b.state, To: s, Reason: reason}
	b.state = s
	b.epoch++
	b.probeID, b.probeOK = 0, 0
	b.stats.breakerState.Store(int32(s))
	switch s {
	case BreakerOpen:
		switch {
		case c.From == BreakerHalfOpen, b.openFor != 0 && now.Sub(b.closedAt) <= b.cfg.MaxOpenFor:
			// a probe failed, or it failed again soon after closing: wait longer
			b.openFor = min(2*b.openFor, b.cfg.MaxOpenFor)
		default:
			b.openFor = b.cfg.OpenFor
		}
		b.openUntil = now.Add(b.openFor)
		b.stats.breakerOpened.Add(1)
		b.ramp = 0
		c.OpenFor, c.Err = b.openFor, b.lastErr
	case BreakerClosed:
		b.closedAt = now
		b.window.reset()
		b.ramp = 1 + int64(b.cfg.Probes) // slow start from what the probes showed
		if b.ramp >= b.capacity {
			b.ramp = 0
		}
	}
	switch {
	case s == BreakerOpen && b.cancelRun != nil:
		b.cancelRun()
	case c.From == BreakerOpen && b.base != nil:
		b.runCtx, b.cancelRun = context.WithCancel(b.base)
	}
	b.pending = append(b.pending, c)
	b.notify()
}

// flush emits the pending changes, in order, outside b.mu.
func (b *breaker) flush() {
	b.emitMu.Lock()
	defer b.emitMu.Unlock()
	b.mu.Lock()
	cs := b.pending
	b.pending = nil
	b.mu.Unlock()
	for _, c := range cs {
		b.emit(c)
	}
}

// permit blocks until the queue may receive, and returns how many messages (1..most) with the
// ticket that admit stamps them with. While open it waits for the probe time; half-open it
// lets one probe out at a time (or runs Probe). It returns ctx's error when ctx ends first.
func (b *breaker) permit(ctx context.Context, most int) (ticket, error) {
	for {
		b.mu.Lock()
		now := time.Now()
		var wait <-chan time.Time
		switch b.state {
		case BreakerOpen:
			if !now.Before(b.openUntil) {
				b.to(BreakerHalfOpen, "probing after "+b.openFor.String()+" open", now)
				b.mu.Unlock()
				b.flush()
				continue
			}
			wait = time.After(b.openUntil.Sub(now))
		case BreakerHalfOpen:
			if b.probeID != 0 {
				break // a probe is out: wait for its verdict
			}
			b.probeSeq++
			b.probeID = b.probeSeq
			if b.cfg.Probe != nil {
				b.stats.probed.Add(1)
				id, epoch := b.probeID, b.epoch
				b.mu.Unlock()
				err := b.runProbe(ctx)
				if ctx.Err() != nil {
					return ticket{}, ctx.Err()
				}
				b.mu.Lock()
				if b.epoch == epoch && b.probeID == id {
					b.probeID = 0
					b.judgeProbe(err, time.Now())
				}
				b.mu.Unlock()
				b.flush()
				continue
			}
			t := ticket{n: 1, epoch: b.epoch, probe: b.probeID}
			b.asked++
			b.mu.Unlock()
			return t, nil
		default:
			n := int64(most)
			if b.ramp > 0 {
				n = min(n, b.ramp-b.held()-b.asked)
			}
			if n > 0 {
				b.asked += n
				t := ticket{n: int(n), epoch: b.epoch}
				b.mu.Unlock()
				return t, nil
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-wait:
		case <-ctx.Done():
			return ticket{}, ctx.Err()
		}
	}
}

// runProbe calls the user's Probe, a panic counting as a failure.
func (b *breaker) runProbe(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return b.cfg.Probe(ctx)
}

// done ends a ticket's receive: got messages came (each now reports its verdict when it
// leaves). A probe that brought nothing frees the probe's turn.
func (b *breaker) done(t ticket, got int) {
	b.mu.Lock()
	b.asked -= int64(t.n)
	if got == 0 && t.probe != 0 && t.probe == b.probeID && t.epoch == b.epoch {
		b.probeID = 0
	}
	b.notify()
	b.mu.Unlock()
}

// runnable reports whether m may start: the breaker is closed and has not opened since m was
// received, or m is the half-open state's probe.
func (b *breaker) runnable(m *Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return m.epoch == b.epoch
	case BreakerHalfOpen:
		return m.probe != 0 && m.probe == b.probeID && m.epoch == b.epoch
	}
	return false
}

// record takes m's verdict as it leaves. Outcomes of messages from an earlier state than the
// current one are not counted (those running when the breaker opened, say).
func (b *breaker) record(m *Message, v verdict) {
	b.mu.Lock()
	now := time.Now()
	opened := false
	// A message left: a poller held back by the ramp or waiting for the probe may go on (the
	// success that ends the ramp too).
	wake := b.ramp > 0 || b.state == BreakerHalfOpen
	if m.epoch == b.epoch {
		switch b.state {
		case BreakerClosed:
			switch v {
			case verdictSuccess:
				b.window.add(now, false, false)
				if b.ramp > 0 {
					if b.ramp++; b.ramp >= b.capacity {
						b.ramp = 0
					}
				}
			case verdictFailure, verdictDownstream:
				b.lastErr = m.failure
				calls, failures, downstream := b.window.add(now, true, v == verdictDownstream)
				switch {
				case v == verdictDownstream && downstream >= b.cfg.DownstreamFailures:
					b.to(BreakerOpen, fmt.Sprintf("%d handler failures marked as the downstream's in the last %v", downstream, b.cfg.Window), now)
					opened = true
				case calls >= b.cfg.MinCalls && float64(failures) >= b.cfg.FailureRatio*float64(calls):
					b.to(BreakerOpen, fmt.Sprintf("%d of the last %d handler calls failed in %v (ratio %.2f, threshold %.2f)", failures, calls, b.cfg.Window, float64(failures)/float64(calls), b.cfg.FailureRatio), now)
					opened = true
				}
			}
		case BreakerHalfOpen:
			if m.probe != 0 && m.probe == b.probeID {
				b.probeID = 0
				switch v {
				case verdictSuccess:
					b.judgeProbe(nil, now)
				case verdictFailure, verdictDownstream:
					b.lastErr = m.failure
					b.judgeProbe(m.failure, now)
					opened = b.state == BreakerOpen
				}
			}
		}
	}
	if wake {
		b.notify()
	}
	flush := len(b.pending) > 0
	b.mu.Unlock()
	if flush {
		b.flush()
	}
	if opened {
		b.onOpen()
	}
}

// judgeProbe takes a probe's result: success counts toward closing, failure opens again.
// b.mu is held.
func (b *breaker) judgeProbe(err error, now time.Time) {
	if err == nil {
		b.probeOK++
		if b.probeOK >= b.cfg.Probes {
			b.to(BreakerClosed, fmt.Sprintf("%d probes in a row succeeded", b.probeOK), now)
			return
		}
		b.notify()
		return
	}
	b.lastErr = err
	b.to(BreakerOpen, "a probe failed: "+err.Error(), now)
}

// outcomeWindow counts outcomes over a sliding window of time, in ten buckets.
type outcomeWindow struct {
	span    time.Duration // of one bucket
	buckets [10]struct {
		start                       int64 // the bucket's first instant (ns since the Unix epoch)
		calls, failures, downstream int
	}
}

func newOutcomeWindow(window time.Duration) outcomeWindow {
	return outcomeWindow{span: max(window/10, 1)}
}

func (w *outcomeWindow) reset() {
	for i := range w.buckets {
		b := &w.buckets[i]
		b.start, b.calls, b.failures, b.downstream = 0, 0, 0, 0
	}
}

// add counts one outcome at now and returns the window's totals.
func (w *outcomeWindow) add(now time.Time, failed, downstream bool) (calls, failures, down int) {
	span := int64(w.span)
	slot := now.UnixNano() / span
	b := &w.buckets[slot%int64(len(w.buckets))]
	if b.start != slot*span {
		b.start, b.calls, b.failures, b.downstream = slot*span, 0, 0, 0
	}
	b.calls++
	if failed {
		b.failures++
	}
	if downstream {
		b.downstream++
	}
	oldest := (slot - int64(len(w.buckets)) + 1) * span
	for i := range w.buckets {
		if x := &w.buckets[i]; x.start >= oldest && x.calls > 0 {
			calls += x.calls
			failures += x.failures
			down += x.downstream
		}
	}
	return calls, failures, down
}
