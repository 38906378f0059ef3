// Package pool is an elastic worker pool strategy: between a minimum and a maximum number of
// goroutines that are started on demand, reused, and stopped after an idle timeout, plus a
// bounded waiting room (a ring buffer) for tasks that arrive while every worker is busy.
//
// It is the consumer's default strategy. Reusing goroutines keeps allocation per message low,
// and the waiting room keeps workers fed between receives: while a receive is in flight, the
// messages of the previous one wait in the room instead of the workers going idle.
package pool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sqsconsumer/sqsconsumer/internal/capacity"
	"github.com/sqsconsumer/sqsconsumer/internal/ring"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// DefaultIdleTimeout is how long a worker above the minimum waits for a task before it exits.
const DefaultIdleTimeout = 10 * time.Second

// Option configures a Pool.
type Option func(*settings)

type settings struct {
	min, room   int
	roomSet     bool
	idleTimeout time.Duration
	onPanic     func(any)
}

// WithMinWorkers sets how many workers stay alive when idle (default 0). They are started on
// demand like the others, then never stopped before Close.
func WithMinWorkers(n int) Option { return func(s *settings) { s.min = n } }

// WithWaitingRoom sets how many tasks may wait for a worker (default
// worker.DefaultWaitingRoom(max workers): min(4 x max workers, 256)).
// 0 means none: the pool then holds no more tasks than it runs.
func WithWaitingRoom(n int) Option { return func(s *settings) { s.room, s.roomSet = n, true } }

// WithIdleTimeout sets how long a worker above the minimum waits for work before it exits
// (default DefaultIdleTimeout).
func WithIdleTimeout(d time.Duration) Option { return func(s *settings) { s.idleTimeout = d } }

// WithPanicHandler sets the function that receives the value of a panic escaping a task. The
// default discards it (the consumer recovers handler panics itself before they reach here).
func WithPanicHandler(f func(v any)) Option { return func(s *settings) { s.onPanic = f } }

// Pool is an elastic worker pool. See the package documentation.
type Pool struct {
	units       *capacity.Units // max workers + waiting room
	max, min    int
	room        int
	idleTimeout time.Duration
	onPanic     func(any)

	mu      sync.Mutex
	queue   *ring.Ring[worker.Task]
	workers int // goroutines alive
	idle    int // workers waiting for a task and not yet woken
	busy    int // workers running a task
	closed  bool
	wake    chan struct{} // one token per woken idle worker; never holds more than max
	done    chan struct{} // closed by Close

	alive capacity.Running // worker goroutines, for Wait
}

var _ worker.Strategy = (*Pool)(nil)

// New returns a pool of at most maxWorkers workers. It returns an error wrapping
// worker.ErrInvalidConfig for maxWorkers < 1, a minimum outside 0..maxWorkers, a negative
// waiting room or a non-positive idle timeout. It starts no goroutine: workers start with the
// first tasks.
func New(maxWorkers int, opts ...Option) (*Pool, error) {
	s := settings{idleTimeout: DefaultIdleTimeout}
	for _, o := range opts {
		o(&s)
	}
	switch {
	case maxWorkers < 1:
		return nil, fmt.Errorf("%w: pool max workers %d, want >= 1", worker.ErrInvalidConfig, maxWorkers)
	case s.min < 0 || s.min > maxWorkers:
		return nil, fmt.Errorf("%w: pool min workers %d, want 0..%d", worker.ErrInvalidConfig, s.min, maxWorkers)
	case s.room < 0:
		return nil, fmt.Errorf("%w: pool waiting room %d, want >= 0", worker.ErrInvalidConfig, s.room)
	case s.idleTimeout <= 0:
		return nil, fmt.Errorf("%w: pool idle timeout %v, want > 0", worker.ErrInvalidConfig, s.idleTimeout)
	}
	if !s.roomSet {
		s.room = worker.DefaultWaitingRoom(maxWorkers)
	}
	return &Pool{
		units:       capacity.New(maxWorkers + s.room),
		max:         maxWorkers,
		min:         s.min,
		room:        s.room,
		idleTimeout: s.idleTimeout,
		onPanic:     s.onPanic,
		queue:       ring.New[worker.Task](maxWorkers + s.room),
		wake:        make(chan struct{}, maxWorkers),
		done:        make(chan struct{}),
	}, nil
}

// Factory returns a worker.Factory building a Pool with the given options, for
// sqsconsumer.WithStrategy; the consumer's concurrency becomes the maximum number of workers.
func Factory(opts ...Option) worker.Factory {
	return func(concurrency int) (worker.Strategy, error) { return New(concurrency, opts...) }
}

// Reserve implements worker.Strategy. It blocks until min(max, waiting room) units are free (at
// least one), ctx ends, or Close: with a full room and busy workers, a receive waits until the
// room has emptied into the workers, so it can bring a whole batch while they are still busy.
func (p *Pool) Reserve(ctx context.Context, max int) (int, error) {
	return p.units.Reserve(ctx, min(max, p.room), max)
}

// Unreserve implements worker.Strategy.
func (p *Pool) Unreserve(n int) { p.units.Release(n) }

// Free implements worker.Strategy: (max workers - busy) + free waiting room, less what is
// reserved and not yet submitted.
func (p *Pool) Free() int { return p.units.Free() }

// Busy reports how many workers are running a task.
func (p *Pool) Busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy
}

// Workers reports how many worker goroutines are alive.
func (p *Pool) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// Submit implements worker.Strategy. It never blocks: the reservation guarantees a worker or a
// place in the waiting room. A task handed to a new worker has started; a task put in the
// waiting room starts when a worker takes it from there, unless Close takes it first.
func (p *Pool) Submit(_ context.Context, t worker.Task) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return worker.ErrStopped
	}
	switch {
	case p.idle > 0:
		p.idle--
		p.queue.Push(t)
		// Sent under the lock, so an idle worker that times out sees either this token or an
		// idle count not yet decremented. It cannot block: tokens never outnumber idle workers.
		p.wake <- struct{}{}
		p.mu.Unlock()
	case p.workers < p.max:
		p.workers++
		p.busy++
		// Counted under the lock that Close takes to set closed, so that a Wait after Close
		// waits for this worker and its task: t has started.
		p.alive.Start()
		p.mu.Unlock()
		go p.work(t)
	default:
		ok := p.queue.Push(t)
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: waiting room full", worker.ErrNoReservation)
		}
	}
	return nil
}

// work is a worker goroutine's loop: run t, then whatever waits, then wait for a wake-up.
func (p *Pool) work(t worker.Task) {
	defer p.alive.Done()
	var timer *time.Timer
	for {
		p.run(t)
		p.mu.Lock()
		p.busy--
		for {
			var ok bool
			if t, ok = p.queue.Pop(); ok {
				p.busy++
				p.mu.Unlock()
				break
			}
			if p.closed {
				p.workers--
				p.mu.Unlock()
				return
			}
			p.idle++
			p.mu.Unlock()
			if timer == nil {
				timer = time.NewTimer(p.idleTimeout)
			} else {
				timer.Reset(p.idleTimeout)
			}
			woken := p.waitIdle(timer)
			p.mu.Lock()
			if !woken {
				p.idle--
				if p.queue.Len() == 0 && (p.closed || p.workers > p.min) {
					p.workers--
					p.mu.Unlock()
					return
				}
			}
		}
	}
}

// waitIdle blocks until a wake token arrives (true), or the timer fires or the pool closes
// (false). A token that arrives together with the timeout is still taken, so the submitter that
// counted this worker as woken is not left waiting.
func (p *Pool) waitIdle(timer *time.Timer) bool {
	select {
	case <-p.wake:
		timer.Stop()
		return true
	case <-timer.C:
	case <-p.done:
		timer.Stop()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.wake:
		return true
	default:
		return false
	}
}

func (p *Pool) run(t worker.Task) {
	defer func() {
		if v := recover(); v != nil && p.onPanic != nil {
			p.onPanic(v)
		}
		p.units.Release(1)
	}()
	t.Run()
}

// Close implements worker.Strategy: it returns the tasks in the waiting room, which will not
// run, frees their units, and lets idle workers exit. Workers take tasks from the room under
// the same lock, so every task Close does not return is already in a worker's hands.
func (p *Pool) Close() []worker.Task {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	parked := p.queue.Drain()
	p.mu.Unlock()
	p.units.Close() // first: the parked tasks' units must not go to a Reserve before they are given back
	p.units.Release(len(parked))
	close(p.done)
	return parked
}

// Wait implements worker.Strategy: it waits until every worker goroutine has exited, which
// happens once the running tasks return.
func (p *Pool) Wait(ctx context.Context) error { return p.alive.Wait(ctx) }
