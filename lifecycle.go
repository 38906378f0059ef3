package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// A message's life, in one place:
//
//	runner.poll    reserve capacity (a reservation of units) -> ReceiveMessage -> queue.admit
//	queue.admit    every message of the receive is leased at once and takes a unit; then
//	               lanes.enter puts them in their message group's line, all together
//	queue.start    strategy.Submit: from here the strategy owns the message's unit
//	queue.handle   hooks and handler, panics and timeouts contained -> queue.judge -> outcome
//	queue.exit     the one way out: lease entry removed, delete or visibility change handed to
//	               the harvester, counted, hooks called, unit returned, the lane's next started
//
// Messages that never run (shutdown, a full lane, a strategy that refuses them) leave through
// queue.exit too, with a release outcome.

// unit is one reserved unit of the strategy's capacity. The message it was reserved for holds
// it until the strategy accepts the message's task; the strategy then frees it when the task
// returns. The zero unit holds nothing.
type unit struct{ s worker.Strategy }

// giveBack returns the unit to the strategy if the message still holds it.
func (u *unit) giveBack() {
	if u.s != nil {
		u.s.Unreserve(1)
		u.s = nil
	}
}

// reservation is the units one reserve call got for one receive: each admitted message takes
// one, and close gives back the rest. It is used by one goroutine.
type reservation struct {
	s        worker.Strategy
	n, taken int
	// The receive's messages counted as asked for by the pacer, until admit counts what came
	// as queued (or close gives them back).
	p     *pacer
	asked int
	t     ticket // the breaker's, stamped on the receive's messages
}

// ask records that the pacer counts n messages of this reservation as asked for.
func (r *reservation) ask(p *pacer, n int) { r.p, r.asked = p, n }

// unask gives the pacer back what it counted as asked for, once.
func (r *reservation) unask() {
	if r.p != nil && r.asked != 0 {
		r.p.asking(-r.asked)
		r.asked = 0
	}
}

// take hands out one of the n units; admit never takes more (it releases messages beyond what
// was asked for without one).
func (r *reservation) take() unit {
	r.taken++
	return unit{s: r.s}
}

// shrink gives back the units beyond k before any is taken: the receive will ask for k.
func (r *reservation) shrink(k int) {
	if k < r.n {
		r.s.Unreserve(r.n - k)
		r.n = k
	}
}

// close gives back the units nobody took, and what the pacer counted as asked for.
func (r *reservation) close() {
	r.unask()
	if left := r.n - r.taken; left > 0 {
		r.taken = r.n
		r.s.Unreserve(left)
	}
}

// exitKind is how a message leaves the consumer.
type exitKind uint8

const (
	exitDelete  exitKind = iota // handled (or rerouted): delete it
	exitRetry                   // the handler failed: visibility as the retry policy says
	exitRelease                 // never ran: visible again after delay (0: at once)
	exitCancel                  // cut short by the shutdown timeout: visible again at once
)

// outcome is what becomes of a message when it leaves.
type outcome struct {
	kind     exitKind
	err      error         // the handler's error (exitRetry, exitCancel)
	delay    time.Duration // exitRelease
	rerouted bool          // exitDelete: a copy went to another queue first
	seconds  int32         // exitRetry: the new visibility...
	change   bool          // ...when it is to change at all
}

var released = outcome{kind: exitRelease}

// newMessage wraps a received message, holding u, and puts it under the lease.
func (q *queue) newMessage(tm *types.Message, now time.Time, u unit) *Message {
	m := &Message{Message: *tm, receivedAt: now, queueURL: q.url, received: aws.ToString(tm.Body), unit: u, q: q}
	m.ctx, m.cancel = context.WithCancelCause(q.eng.handlerBase)
	m.deadline = now.Add(q.s.visibility)
	m.lease.ReceiptHandle = aws.ToString(tm.ReceiptHandle)
	m.lease.MessageID = m.id()
	m.lease.Lost = m.cancel
	if q.lease != nil {
		q.lease.Add(&m.lease, now)
	}
	q.stats.received.Add(1)
	q.stats.inFlight.Add(1)
	return m
}

// admit implements intake: the whole receive is leased and put in its lanes before any of it
// starts, so a message can never overtake an earlier one of its group from the same receive.
func (q *queue) admit(msgs []types.Message, res *reservation) {
	now := time.Now()
	q.eng.received(len(msgs), now)
	if len(msgs) == 0 {
		return
	}
	// Beyond what was asked for (a FIFO receive retried with its attempt id brings the first
	// attempt's messages, whatever it asks for): released at once, one at a time, so the bound
	// on what is held holds.
	if len(msgs) > res.n {
		for i := range msgs[res.n:] {
			m := q.newMessage(&msgs[res.n+i], now, unit{})
			m.epoch = res.t.epoch
			q.exit(m, released)
		}
		msgs = msgs[:res.n]
	}
	batch := make([]*Message, len(msgs))
	for i := range msgs {
		batch[i] = q.newMessage(&msgs[i], now, res.take())
		batch[i].epoch, batch[i].probe = res.t.epoch, res.t.probe
	}
	// What was asked for is now waiting to start, in the pacer's count, before any Submit (a
	// semaphore's may block): the pacer sees neither a gap nor the same messages twice. The
	// count is corrected below for what will not start now; the messages that will are flagged
	// before any of them is handed over (a message in a lane's line may already be another
	// goroutine's, so only counts, never flags, are touched for those).
	q.pacer.enqueued(int64(len(batch)))
	res.unask()
	// A receive that completed after intake stopped, or after the breaker opened (it was sent
	// before): nothing of it starts or waits in a lane.
	if q.eng.submitCtx.Err() != nil || (q.breaker != nil && !q.breaker.current(res.t)) {
		q.pacer.enqueued(-int64(len(batch)))
		for _, m := range batch {
			q.exit(m, released)
		}
		return
	}
	start := batch
	if q.lanes != nil {
		var overflow, refused []*Message
		start, overflow, refused = q.lanes.enter(batch, res.t.probe != 0)
		if q.breaker != nil && !q.breaker.current(res.t) {
			// The breaker opened between the check above and the lanes: what waits there
			// now (this receive's and any other) is released, as the opening did.
			for _, m := range q.lanes.drain() {
				q.exit(m, released)
			}
		}
		if behind := len(batch) - len(start); behind > 0 { // waiting behind their group, or leaving
			q.pacer.enqueued(-int64(behind))
		}
		for _, m := range overflow {
			q.exit(m, outcome{kind: exitRelease, delay: overflowDelay(m.ReceiveCount())})
		}
		for _, m := range refused {
			q.exit(m, released)
		}
	}
	for _, m := range start {
		m.queued = true
	}
	for _, m := range start {
		q.start(m)
	}
}

// start hands m to the strategy. It may block while the strategy applies backpressure.
func (q *queue) start(m *Message) {
	if m.ctx.Err() != nil { // its lease was lost while it waited in its lane
		q.exit(m, released)
		return
	}
	submitCtx := q.eng.submitCtx
	if q.breaker != nil {
		if !q.breaker.runnable(m) { // the breaker opened since m was received
			q.exit(m, released)
			return
		}
		submitCtx = q.breaker.submitCtx() // ends when the breaker opens
	}
	w := int64(1)
	if q.s.weight != nil {
		q.contain("WithWeight function", func() { w = q.s.weight(m) })
	}
	held := m.unit.s
	m.unit.s = nil // the strategy owns it from Submit on, and may free it before Submit returns
	if !m.queued { // a lane's next message, counted again now it can start
		m.queued = true
		q.pacer.enqueued(1)
	}
	q.await(m)
	err := q.eng.strategy.Submit(submitCtx, worker.Task{Run: func() { q.handle(m) }, Weight: w, Data: m})
	if err == nil {
		return
	}
	if !m.claimed.CompareAndSwap(false, true) { // the breaker released it while Submit ran
		held.Unreserve(1) // "on any error the unit is still the caller's"
		return
	}
	q.unawait(m)
	q.dequeued(m)
	m.unit.s = held // "on any error the unit is still the caller's"
	if errors.Is(err, worker.ErrTooHeavy) {
		err = fmt.Errorf("sqsconsumer: message %s cannot run: %w", m.id(), err)
		q.reportError(err)
		q.exit(m, q.retry(m, err))
		return
	}
	if !errors.Is(err, worker.ErrStopped) && submitCtx.Err() == nil {
		q.reportError(fmt.Errorf("sqsconsumer: message %s refused by the strategy: %w", m.id(), err))
	}
	q.exit(m, released) // refused, or intake stopped or the breaker opened while Submit waited
}

// dequeued takes m out of the pacer's count of messages waiting in the strategy, once.
func (q *queue) dequeued(m *Message) {
	if m.queued {
		m.queued = false
		q.pacer.enqueued(-1)
	}
}

// handle runs the handler on m and lets m leave with the outcome. It is the task a strategy
// runs; nothing it calls can keep m from leaving (handler, hook and logger panics are
// contained).
func (q *queue) handle(m *Message) {
	if !m.claimed.CompareAndSwap(false, true) {
		return // taken back while it waited (the breaker opened): it has left already
	}
	q.unawait(m)
	q.dequeued(m)
	if m.ctx.Err() != nil { // its lease was lost while it waited: it is not ours to run
		q.exit(m, released)
		return
	}
	q.pacer.started() // a worker waiting for a token is not idle
	if q.gate != nil {
		ctx := q.eng.submitCtx
		if q.breaker != nil {
			ctx = q.breaker.submitCtx() // ends when the breaker opens too
		}
		if q.gate.Wait(ctx) != nil { // intake stopped, or the breaker opened, while it waited
			q.pacer.finished()
			q.exit(m, released)
			return
		}
	}
	if q.breaker != nil {
		if !q.breaker.runnable(m) { // the breaker is open, or m is not its probe
			q.pacer.finished()
			q.exit(m, released)
			return
		}
		if m.probe != 0 {
			q.stats.probed.Add(1)
		}
	}
	start := time.Now()
	ctx := m.ctx
	for _, h := range q.hooks.start {
		q.contain("OnHandlerStart hook", func() {
			if c := h.OnHandlerStart(ctx, m); c != nil {
				ctx = c
			}
		})
	}
	err := q.call(ctx, m)
	q.pacer.finished()
	end := time.Now()
	for _, h := range q.hooks.end {
		q.contain("OnHandlerEnd hook", func() { h.OnHandlerEnd(ctx, m, err, end.Sub(start)) })
	}
	q.stats.handled(start, end)
	q.contain("logger", func() { q.logOutcome(ctx, m, err, end.Sub(start)) })
	o := q.judgeContained(m, err)
	if q.breaker != nil {
		m.verdict, m.failure = breakerVerdict(m, err, o), err
	}
	q.exit(m, o)
	q.eng.handled(end)
}

// breakerVerdict is what m's outcome o (the handler returned err) tells the breaker: nothing
// when the handler was cut short by the consumer (shutdown timeout, lease lost or expired).
func breakerVerdict(m *Message, err error, o outcome) verdict {
	switch {
	case o.kind == exitCancel, m.ctx.Err() != nil:
		return verdictNone
	case o.kind == exitDelete:
		return verdictSuccess
	}
	return verdictOf(err)
}

// await puts m in the set of messages waiting in the strategy, which the breaker releases
// when it opens; before Submit, so the set never misses one.
func (q *queue) await(m *Message) {
	if q.waitSet == nil {
		return
	}
	q.waitMu.Lock()
	q.waitSet[m] = struct{}{}
	m.waiting = true
	q.waitMu.Unlock()
}

// unawait takes m out of the set of waiting messages. Only m's owner calls it (the claimer).
func (q *queue) unawait(m *Message) {
	if q.waitSet == nil {
		return
	}
	q.waitMu.Lock()
	if m.waiting {
		delete(q.waitSet, m)
		m.waiting = false
	}
	q.waitMu.Unlock()
}

// releaseWaiting releases at once every message held that has not started: those waiting in
// the strategy and those waiting behind their message group; the breaker opened. A message
// that starts meanwhile is released by start or handle, and one blocked in Submit when the
// breaker's ctx ends.
func (q *queue) releaseWaiting() {
	if q.lanes != nil {
		for _, m := range q.lanes.drain() {
			q.exit(m, released)
		}
	}
	q.waitMu.Lock()
	ms := make([]*Message, 0, len(q.waitSet))
	for m := range q.waitSet {
		ms = append(ms, m)
	}
	q.waitMu.Unlock()
	for _, m := range ms {
		if m.claimed.CompareAndSwap(false, true) {
			q.exit(m, released)
		}
	}
}

// takeBack claims m, a task the strategy returned unstarted (Close), and lets it leave
// released, unless the breaker released it already.
func (q *queue) takeBack(m *Message) {
	if m.claimed.CompareAndSwap(false, true) {
		q.exit(m, released)
	}
}

// call runs the handler with the handler timeout, turning a panic into a *PanicError.
func (q *queue) call(ctx context.Context, m *Message) (err error) {
	if q.s.handlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, q.s.handlerTimeout, ErrHandlerTimeout)
		defer func() {
			if context.Cause(ctx) == ErrHandlerTimeout && !errors.Is(err, ErrHandlerTimeout) {
				if err == nil {
					err = ErrHandlerTimeout
				} else {
					err = fmt.Errorf("%w: %w", ErrHandlerTimeout, err)
				}
			}
			cancel()
		}()
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return q.handler(ctx, m)
}

// judgeContained is judge with the user code it reaches (the error's methods, a Sender, the
// backoff) contained: a panic there makes the message a failure, never a message that does not
// leave.
func (q *queue) judgeContained(m *Message, err error) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			q.reportError(fmt.Errorf("sqsconsumer: message %s: judging the handler's outcome panicked: %w", m.id(), pe))
			o = outcome{kind: exitRetry, err: pe}
		}
	}()
	return q.judge(m, err)
}

// judge turns a handler's return into an outcome. A panic or a handler timeout is a failure
// even when the shutdown timeout also passed, so Panics and TimedOut stay within Failed.
func (q *queue) judge(m *Message, err error) outcome {
	if err == nil {
		return outcome{kind: exitDelete}
	}
	var pe *PanicError
	switch {
	case errors.As(err, &pe), errors.Is(err, ErrHandlerTimeout):
		return q.retry(m, err)
	case errors.Is(context.Cause(m.ctx), ErrShutdownTimeout):
		return outcome{kind: exitCancel, err: err}
	}
	var r *RerouteError
	if errors.As(err, &r) && m.ctx.Err() == nil { // a message whose lease is gone is not ours to move
		if rerr := q.reroute(m, r); rerr != nil {
			q.reportError(rerr)
		} else {
			return outcome{kind: exitDelete, rerouted: true}
		}
	}
	return q.retry(m, err)
}

// retry is the outcome of a failure: the RetryError's visibility, else the backoff policy's,
// else (no policy) unchanged.
func (q *queue) retry(m *Message, err error) outcome {
	o := outcome{kind: exitRetry, err: err}
	var re *RetryError
	switch {
	case errors.As(err, &re):
		if !re.Keep {
			o.seconds, o.change = visibilitySeconds(re.Delay), true
		}
	case q.s.backoff != nil:
		var d time.Duration
		q.contain("backoff policy", func() { d = q.s.backoff(m.ReceiveCount()) })
		o.seconds, o.change = visibilitySeconds(d), true
	}
	return o
}

// exit is the one way a message leaves the consumer, whatever became of it: the delete or
// visibility change goes to the harvester (none when the lease was lost: the message may be
// someone else's by now), it is counted once, hooks hear of it, its capacity unit is returned if
// it still holds one, and its lane lets the next message of its group go. A message whose
// request goes to the harvester stays under the lease until the request is settled (see
// settle): a pending delete keeps being extended, a pending visibility change is no longer
// extended (an extension would override it) but is still tracked until it lapses.
func (q *queue) exit(m *Message, o outcome) {
	if m.gone { // a bug: say so rather than count or delete twice
		q.reportError(fmt.Errorf("sqsconsumer: internal error: message %s left twice", m.id()))
		return
	}
	m.gone = true
	q.unawait(m)
	q.dequeued(m)    // the strategy gave it back unstarted (Close)
	inLane := m.lane // read before the harvester has m: a settle may give the lane back at once
	ok, laneLater := false, false
	if cause := q.leaseLost(m); cause != nil {
		q.unlease(m)
		q.stats.leaseLost.Add(1)
		for _, h := range q.hooks.leaseLost {
			q.contain("OnLeaseLost hook", func() { h.OnLeaseLost(m, cause) })
		}
	} else {
		switch o.kind {
		case exitDelete:
			q.stats.succeeded.Add(1)
			if o.rerouted {
				q.stats.rerouted.Add(1)
			}
			ok = true
			// FIFO: the next message of the group starts once this delete has landed, so that
			// a delete that keeps failing cannot let this one come back after it.
			laneLater = q.fifo && inLane
			m.laneAtSettle = laneLater
			q.harvester.add(ackReq{kind: ackDelete, id: m.id(), handle: m.ReceiptHandle, m: m})
		case exitRetry:
			q.stats.failed.Add(1)
			var pe *PanicError
			if errors.As(o.err, &pe) {
				q.stats.panics.Add(1)
			}
			if errors.Is(o.err, ErrHandlerTimeout) {
				q.stats.timedOut.Add(1)
			}
			if o.change {
				q.changeVisibility(m, o.seconds)
			} else {
				q.unlease(m)
			}
		case exitRelease:
			q.stats.released.Add(1)
			q.changeVisibility(m, visibilitySeconds(o.delay))
		case exitCancel:
			q.stats.cancelled.Add(1)
			q.changeVisibility(m, 0)
		}
	}
	m.cancel(context.Canceled)
	q.stats.inFlight.Add(-1)
	m.unit.giveBack()
	if inLane && !laneLater {
		q.leaveLane(m, ok)
	}
	if q.breaker != nil {
		q.breaker.record(m, m.verdict)
	}
}

// changeVisibility hands m's new visibility to the harvester; the lease stops extending m first.
func (q *queue) changeVisibility(m *Message, seconds int32) {
	if q.lease != nil {
		q.lease.Freeze(&m.lease)
	}
	q.harvester.add(ackReq{kind: ackVisibility, id: m.id(), handle: m.ReceiptHandle, seconds: seconds, m: m})
}

// leaveLane gives back m's running place in its lane: the lane's next message is started and,
// after a FIFO failure or at shutdown, the rest is released, all from the dispatcher's goroutine
// (leaveLane may be called where neither Submit nor the harvester may be waited for).
func (q *queue) leaveLane(m *Message, ok bool) {
	next, rest := q.lanes.leave(m, ok)
	for _, w := range rest {
		q.eng.disp.add(w, true)
	}
	if next != nil {
		q.eng.disp.add(next, false)
	}
}

// stillOurs implements the harvester's keep: nil while m is still ours (its lease holds, or
// without a lease its visibility has not lapsed), so that its request is retried.
func (q *queue) stillOurs(r ackReq) error {
	if r.m == nil {
		return nil
	}
	return q.leaseLost(r.m)
}

// settle implements the harvester's settled: m leaves the lease, and the request's outcome is
// counted. A delete counts as acknowledged only if SQS accepted it while the lease held: once a
// lease is lost, SQS may accept a delete with a superseded handle without deleting anything.
func (q *queue) settle(r ackReq, res sqsbatch.Result) (acked bool) {
	q.stats.ackRetries.Add(int64(max(res.Attempts-1, 0)))
	var cause error
	if r.m != nil {
		cause = q.unlease(r.m)
	}
	ok := res.OK
	if ok && r.kind == ackDelete && errors.Is(cause, ErrLeaseLost) {
		ok = false
		res = sqsbatch.Result{Code: "LeaseLost", Message: "accepted after the lease was lost: the handle may have been superseded", GaveUp: cause, Attempts: res.Attempts}
	}
	if !ok {
		e := &AckError{Op: r.kind.String(), MessageID: r.id, Code: res.Code, SenderFault: res.SenderFault, Err: res.Error()}
		if r.kind == ackDelete {
			q.stats.ackFailed.Add(1)
		} else {
			q.stats.visibilityFailed.Add(1)
		}
		for _, h := range q.hooks.ackFailure {
			q.contain("OnAckFailure hook", func() { h.OnAckFailure(q.url, e) })
		}
		q.reportError(e)
	}
	if r.m != nil && r.m.laneAtSettle {
		q.leaveLane(r.m, ok)
	}
	return ok && r.kind == ackDelete
}

// leaseLost returns why m is no longer ours (the lease gave it up, or without a lease its
// visibility lapsed), or nil. It does not take m off the lease.
func (q *queue) leaseLost(m *Message) error {
	if q.lease != nil {
		return q.lease.Lost(&m.lease)
	}
	return lapsed(m)
}

// unlease takes m off the lease and returns why the lease had given it up, or nil.
func (q *queue) unlease(m *Message) error {
	if q.lease != nil {
		return q.lease.Remove(&m.lease)
	}
	return lapsed(m)
}

// lapsed is what stands for the lease when there is none: m is lost once the visibility from
// its receipt has passed.
func lapsed(m *Message) error {
	if !time.Now().Before(m.deadline) {
		return ErrLeaseLost
	}
	return nil
}

// contain runs f, turning a panic into a reported error: code the consumer calls on a
// message's path (hooks, the logger, user functions) must not keep the message from leaving.
func (q *queue) contain(what string, f func()) {
	defer func() {
		if v := recover(); v != nil {
			q.reportError(fmt.Errorf("sqsconsumer: %s panicked: %w", what, &PanicError{Value: v, Stack: debug.Stack()}))
		}
	}()
	f()
}

// visibilitySeconds rounds d up to whole seconds within SQS's 0..12 h.
func visibilitySeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(min(math.Ceil(d.Seconds()), MaxVisibilityTimeout.Seconds()))
}
