// Package semaphore is a worker strategy on golang.org/x/sync/semaphore: every task runs on a
// goroutine of its own, and the total weight of running tasks never exceeds the capacity.
//
// Use it when handlers differ in cost and a message's weight (its share of the capacity) is
// known from the message, e.g. a large payload that needs more memory
// (sqsconsumer.WithWeight). A received message whose weight is not free waits in Submit, in the
// submitting goroutine: that is the backpressure that stops the consumer from receiving more.
// Up to the waiting room's worth of messages may be held beyond those running, so that a
// receive can bring a whole batch while the running ones still keep the capacity busy.
package semaphore

import (
	"context"
	"fmt"

	"github.com/sqsconsumer/sqsconsumer/internal/capacity"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Option configures a Semaphore.
type Option func(*Semaphore)

// WithPanicHandler sets the function that receives the value of a panic escaping a task. The
// default discards it (the consumer recovers handler panics itself before they reach here).
func WithPanicHandler(f func(v any)) Option { return func(s *Semaphore) { s.onPanic = f } }

// WithWaitingRoom sets how many messages may be held beyond the capacity, waiting in Submit for
// their weight (default worker.DefaultWaitingRoom(capacity): min(4 x capacity, 256)). 0 holds no more messages than the capacity.
func WithWaitingRoom(n int) Option { return func(s *Semaphore) { s.room, s.roomSet = n, true } }

// Semaphore is a weighted-semaphore strategy. Its units (see worker.Strategy) count messages
// held, at most capacity + waiting room; its weights bound the running ones.
type Semaphore struct {
	units   *capacity.Units // held: capacity + room
	weights *capacity.Units // running weight: capacity
	size    int64
	room    int
	roomSet bool
	running capacity.Running
	onPanic func(any)
}

var _ worker.Strategy = (*Semaphore)(nil)

// New returns a strategy that runs tasks whose total weight is at most size. It returns an
// error wrapping worker.ErrInvalidConfig when size < 1 or the waiting room is negative. It
// starts no goroutine.
func New(size int, opts ...Option) (*Semaphore, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: semaphore capacity %d, want >= 1", worker.ErrInvalidConfig, size)
	}
	s := &Semaphore{size: int64(size)}
	for _, o := range opts {
		o(s)
	}
	if s.room < 0 {
		return nil, fmt.Errorf("%w: semaphore waiting room %d, want >= 0", worker.ErrInvalidConfig, s.room)
	}
	if !s.roomSet {
		s.room = worker.DefaultWaitingRoom(size)
	}
	s.units = capacity.New(size + s.room)
	s.weights = capacity.New(size)
	return s, nil
}

// Factory returns a worker.Factory building a Semaphore with the given options, for
// sqsconsumer.WithStrategy; the consumer's concurrency becomes the capacity.
func Factory(opts ...Option) worker.Factory {
	return func(concurrency int) (worker.Strategy, error) { return New(concurrency, opts...) }
}

// Reserve implements worker.Strategy. It blocks until min(max, waiting room) units are free (at
// least one), ctx ends, or Close.
func (s *Semaphore) Reserve(ctx context.Context, max int) (int, error) {
	return s.units.Reserve(ctx, min(max, s.room), max)
}

// Unreserve implements worker.Strategy.
func (s *Semaphore) Unreserve(n int) { s.units.Release(n) }

// Free implements worker.Strategy: the units not held.
func (s *Semaphore) Free() int { return s.units.Free() }

// Submit implements worker.Strategy. It blocks until t's weight is free among running tasks,
// ctx ends or Close is called (then it returns worker.ErrStopped), and starts t on a goroutine
// of its own: a task is started when Submit returns nil, so Close never has one to return.
func (s *Semaphore) Submit(ctx context.Context, t worker.Task) error {
	w := max(t.Weight, 1)
	if w > s.size {
		return fmt.Errorf("%w: weight %d, capacity %d", worker.ErrTooHeavy, w, s.size)
	}
	if err := s.weights.Acquire(ctx, int(w)); err != nil {
		return err
	}
	// The weight may be granted while Close runs. Counting t as running and seeing Close are one
	// step, so either Wait waits for t or t is refused.
	if !s.running.TryStart() {
		s.weights.Release(int(w))
		return worker.ErrStopped
	}
	go s.run(t.Run, int(w))
	return nil
}

func (s *Semaphore) run(f func(), w int) {
	defer func() {
		if v := recover(); v != nil && s.onPanic != nil {
			s.onPanic(v)
		}
		s.weights.Release(w)
		s.units.Release(1)
		s.running.Done()
	}()
	f()
}

// Close implements worker.Strategy. A semaphore parks no tasks, so it returns nil; a Submit
// waiting for weight, or granted it too late to start before Close, returns worker.ErrStopped.
func (s *Semaphore) Close() []worker.Task {
	s.running.Close()
	s.units.Close()
	s.weights.Close()
	return nil
}

// Wait implements worker.Strategy.
func (s *Semaphore) Wait(ctx context.Context) error { return s.running.Wait(ctx) }
