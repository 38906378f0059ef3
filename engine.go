package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqsconsumer/sqsconsumer/worker"
)

// engine is what the queues of a Consumer (one) or a Group (several) share: the strategy and
// its capacity, the stop policy, the dispatcher of lanes' next messages, and Run's phases.
type engine struct {
	strategy        worker.Strategy
	concurrency     int
	shutdownTimeout time.Duration
	stopPolicy      StopPolicy
	finishReceives  bool        // wait for receives in flight at shutdown instead of cancelling them
	onError         func(error) // for what is not one queue's: a panicking stop policy
	queues          []*queue
	adm             *admission // a Group's; nil for a Consumer

	started atomic.Bool

	// Set by run before any goroutine starts.
	handlerBase context.Context // parent of every handler's ctx; cancelled at the shutdown timeout
	submitCtx   context.Context // ends when intake stops
	stopper     *stopCheck      // nil without a stop policy
	disp        dispatcher
}

// newEngine builds the strategy; it starts nothing.
func newEngine(s settings) (*engine, error) {
	strategy, err := s.strategy(s.concurrency)
	if err != nil {
		return nil, fmt.Errorf("%w: WithStrategy: %w", ErrInvalidOption, err)
	}
	if strategy == nil || (reflect.ValueOf(strategy).Kind() == reflect.Pointer && reflect.ValueOf(strategy).IsNil()) {
		return nil, invalid("WithStrategy", "the factory returned no strategy")
	}
	return &engine{strategy: strategy, concurrency: s.concurrency, shutdownTimeout: s.shutdownTimeout, stopPolicy: s.stopPolicy, finishReceives: s.finishReceives, onError: s.onError}, nil
}

// run is Run for every queue of the engine: start the background parts and the runners, wait
// until intake is to stop, then shut down in phases (stopIntake, drain, abandon receives,
// flush). It returns the queues' fatal receive errors, joined.
func (e *engine) run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	base, cancelHandlers := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelHandlers(context.Canceled)
	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	recv, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	e.handlerBase, e.submitCtx = base, intakeCtx
	for _, q := range e.queues {
		if q.breaker != nil {
			q.breaker.begin(intakeCtx)
		}
	}
	if e.stopPolicy != nil {
		e.stopper = &stopCheck{policy: e.stopPolicy, stop: stopIntake, onError: e.onError, paused: e.breakerOpen}
		e.stopper.touch(time.Now())
	}
	e.disp.init()
	began := time.Now()
	for _, q := range e.queues {
		q.contain("logger", q.logStart)
	}

	var wg sync.WaitGroup // every goroutine run starts, but the runners'
	stopLease := make(chan struct{})
	for _, q := range e.queues {
		wg.Go(q.harvester.run)
		if q.lease != nil {
			wg.Go(func() { q.lease.Run(stopLease) })
		}
		if q.s.summary > 0 {
			wg.Go(func() { q.summarise(stopLease) })
		}
	}
	wg.Go(e.disp.run)
	if e.stopper != nil {
		wg.Go(func() { e.stopper.watch(intakeCtx) })
	}
	var runners sync.WaitGroup
	errs := make([]error, len(e.queues))
	for i, q := range e.queues {
		runners.Go(func() {
			if errs[i] = q.runner.run(intakeCtx, recv); errs[i] != nil {
				stopIntake()
			}
		})
	}

	<-intakeCtx.Done()
	// Acknowledgements get until the handlers' shutdown timeout plus the flush's own time from
	// now: in an outage a full harvester blocks exits, and so the shutdown itself, and only
	// giving the retries up frees them.
	ackDeadline := time.AfterFunc(e.shutdownTimeout+max(e.shutdownTimeout, flushAtLeast), func() {
		for _, q := range e.queues {
			q.harvester.stop()
		}
	})
	defer ackDeadline.Stop()
	e.stopIntake()
	timedOut := e.drain(cancelHandlers)
	if !e.finishReceives {
		abandon() // nothing is left to do: a receive still in flight would only delay Run
	}
	runners.Wait()
	e.disp.stop() // nothing can be dispatched any more; what was is released
	e.flush()
	close(stopLease)
	wg.Wait()

	for i, q := range e.queues {
		q.finish(errs[i], timedOut, time.Since(began))
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// stopIntake is shutdown's first phase: the strategy starts nothing more, and every message
// that has not started is released at once: those waiting in the strategy and those waiting
// behind their message group. Messages a receive in flight brings later are released as they
// are admitted.
//
// The strategy closes first: from then on nothing starts, so a lane's next message (freed by a
// running one that finishes meanwhile) is released too.
func (e *engine) stopIntake() {
	for _, t := range e.strategy.Close() {
		m := t.Data.(*Message)
		m.q.takeBack(m)
	}
	for _, q := range e.queues {
		if q.lanes != nil {
			for _, m := range q.lanes.close() {
				q.exit(m, released)
			}
		}
	}
}

// drain is shutdown's second phase: running handlers finish, for up to the shutdown timeout;
// then their ctx is cancelled with ErrShutdownTimeout and they are waited for. It reports
// whether the timeout passed.
func (e *engine) drain(cancelHandlers context.CancelCauseFunc) (timedOut bool) {
	wait, cancel := context.WithTimeout(context.Background(), e.shutdownTimeout)
	defer cancel()
	if e.strategy.Wait(wait) == nil {
		return false
	}
	cancelHandlers(ErrShutdownTimeout)
	_ = e.strategy.Wait(context.Background()) // handlers were told to stop; wait for them to return
	return true
}

// flush is shutdown's last phase: the acknowledgements still waiting are sent, and those that
// fail are retried while their messages are ours (the lease still runs), until the deadline
// run set when shutdown began (the shutdown timeout, plus itself again and at least
// flushAtLeast for the flush); then the rest is given up and reported.
func (e *engine) flush() {
	var wg sync.WaitGroup
	for _, q := range e.queues {
		wg.Go(q.harvester.close)
	}
	wg.Wait()
}

// flushAtLeast is the shortest time the final flush gives acknowledgements to land.
const flushAtLeast = 5 * time.Second

// breakerOpen reports whether a queue's breaker is open: the queue is not idle then, only
// waiting for its downstream. Half-open it receives (probes), and an empty queue is idle.
func (e *engine) breakerOpen() bool {
	for _, q := range e.queues {
		if q.stats.breakerState.Load() == int32(BreakerOpen) {
			return true
		}
	}
	return false
}

// received notes a receive that brought n messages, for the stop policy.
func (e *engine) received(n int, now time.Time) {
	if e.stopper == nil {
		return
	}
	if n > 0 {
		e.stopper.touch(now)
	}
	e.stopper.check(now)
}

// handled notes a handler that finished at end, for the stop policy.
func (e *engine) handled(end time.Time) {
	if e.stopper == nil {
		return
	}
	e.stopper.handled.Add(1)
	e.stopper.touch(end)
	e.stopper.check(end)
}

// dispatcher starts the lanes' next messages and releases the rest of a lane, in the order they
// were freed, on a goroutine of its own: a lane is freed where Submit (which may block) and the
// harvester (which a settle runs on) must not be waited for.
type dispatcher struct {
	mu      sync.Mutex
	todo    []dispatchItem
	stopped bool
	wake    chan struct{} // holds at most one signal
	quit    chan struct{}
	done    chan struct{}
}

func (d *dispatcher) init() {
	d.wake, d.quit, d.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
}

type dispatchItem struct {
	m       *Message
	release bool // release m instead of starting it
}

// add queues m to be started, or released; once the dispatcher has stopped, m is released at
// once.
func (d *dispatcher) add(m *Message, release bool) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		m.q.exit(m, released)
		return
	}
	d.todo = append(d.todo, dispatchItem{m, release})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		d.mu.Lock()
		todo := d.todo
		d.todo = nil
		d.mu.Unlock()
		for _, it := range todo {
			if it.release {
				it.m.q.exit(it.m, released)
			} else {
				it.m.q.start(it.m)
			}
		}
		select {
		case <-d.wake:
		case <-d.quit:
			d.mu.Lock()
			d.stopped = true
			todo := d.todo
			d.todo = nil
			d.mu.Unlock()
			for _, it := range todo {
				it.m.q.exit(it.m, released)
			}
			return
		}
	}
}

// stop makes the dispatcher release what it still holds, and waits for it to return.
func (d *dispatcher) stop() {
	close(d.quit)
	<-d.done
}
