// Package semaphore is a worker strategy on golang.org/x/sync/semaphore: every task runs on a
// goroutine of its own, and the total weight of running tasks never exceeds the capacity.
//
// Use it when handlers differ in cost and a message's weight (its share of the capacity) is
// known from the message, e.g. a large payload that needs more memory
// (sqsconsumer.WithWeight). Nothing waits in a room: a received message whose weight is not
// free waits in Submit, and that backpressure stops the consumer from receiving more.
package semaphore

import (
	"context"
	"fmt"

	xsem "golang.org/x/sync/semaphore"

	"github.com/sqsconsumer/sqsconsumer/internal/capacity"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Option configures a Semaphore.
type Option func(*Semaphore)

// WithPanicHandler sets the function that receives the value of a panic escaping a task. The
// default discards it (the consumer recovers handler panics itself before they reach here).
func WithPanicHandler(f func(v any)) Option { return func(s *Semaphore) { s.onPanic = f } }

// Semaphore is a weighted-semaphore strategy. Its units (see worker.Strategy) count messages
// held, at most capacity of them; a separate weighted semaphore bounds the running ones.
type Semaphore struct {
	units   *capacity.Units
	weights *xsem.Weighted
	size    int64
	running capacity.Running
	onPanic func(any)
}

var _ worker.Strategy = (*Semaphore)(nil)

// New returns a strategy that runs tasks whose total weight is at most size. It returns an
// error wrapping worker.ErrInvalidConfig when size < 1. It starts no goroutine.
func New(size int, opts ...Option) (*Semaphore, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w: semaphore capacity %d, want >= 1", worker.ErrInvalidConfig, size)
	}
	s := &Semaphore{
		units:   capacity.New(size),
		weights: xsem.NewWeighted(int64(size)),
		size:    int64(size),
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Factory returns a worker.Factory building a Semaphore with the given options, for
// sqsconsumer.WithStrategy; the consumer's concurrency becomes the capacity.
func Factory(opts ...Option) worker.Factory {
	return func(concurrency int) (worker.Strategy, error) { return New(concurrency, opts...) }
}

// Reserve implements worker.Strategy. It blocks until a unit is free, ctx ends, or Close.
func (s *Semaphore) Reserve(ctx context.Context, max int) (int, error) {
	return s.units.Reserve(ctx, max)
}

// Unreserve implements worker.Strategy.
func (s *Semaphore) Unreserve(n int) { s.units.Release(n) }

// Free implements worker.Strategy: the units not held.
func (s *Semaphore) Free() int { return s.units.Free() }

// Submit implements worker.Strategy. It blocks until t's weight is free among running tasks or
// ctx ends, then starts t on a goroutine of its own.
func (s *Semaphore) Submit(ctx context.Context, t worker.Task) error {
	w := max(t.Weight, 1)
	if w > s.size {
		return fmt.Errorf("%w: weight %d, capacity %d", worker.ErrTooHeavy, w, s.size)
	}
	if s.units.Stopped() {
		return worker.ErrStopped
	}
	if err := s.weights.Acquire(ctx, w); err != nil {
		return err
	}
	s.running.Start()
	go s.run(t.Run, w)
	return nil
}

func (s *Semaphore) run(f func(), w int64) {
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

// Close implements worker.Strategy. A semaphore parks no tasks, so it returns nil.
func (s *Semaphore) Close() []worker.Task {
	s.units.Close()
	return nil
}

// Wait implements worker.Strategy.
func (s *Semaphore) Wait(ctx context.Context) error { return s.running.Wait(ctx) }
