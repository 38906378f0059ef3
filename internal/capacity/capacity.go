// Package capacity holds the bookkeeping both worker strategies share: units reserved on
// golang.org/x/sync/semaphore with the reservation rule of worker.Strategy (block for a
// minimum, then take what else is free up to a maximum), closing, and waiting for running
// tasks.
package capacity

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Units is a pool of size units that can be closed. It is safe for concurrent use.
type Units struct {
	sem       *semaphore.Weighted
	size      int64
	used      atomic.Int64
	stopped   chan struct{}
	closeOnce sync.Once
}

// New returns a pool of size units, all free.
func New(size int) *Units {
	return &Units{sem: semaphore.NewWeighted(int64(size)), size: int64(size), stopped: make(chan struct{})}
}

// Reserve takes between atLeast and most units and returns how many it took. most below 1
// counts as 1, and atLeast is brought into 1..min(most, size). Reserve blocks until atLeast
// units can be taken, then takes, without waiting, more of what is free up to most in all.
// Callers are served in arrival order: a Reserve or Acquire that waits holds back later ones
// even when what they want is free, and the extra units are taken only while nobody waits.
// Reserve returns worker.ErrStopped, taking nothing, if Close was called before it or while it
// waited, and ctx's error if ctx is done before it or ends while it waits (ErrStopped if both).
// A Reserve that Close races may still take its units; giving them back is the caller's part.
func (u *Units) Reserve(ctx context.Context, atLeast, most int) (int, error) {
	if u.Stopped() {
		return 0, worker.ErrStopped
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	most = max(most, 1)
	atLeast = min(max(atLeast, 1), most, int(u.size))
	if !u.sem.TryAcquire(int64(atLeast)) {
		if err := u.acquire(ctx, int64(atLeast)); err != nil {
			return 0, err
		}
	}
	n := atLeast
	for n < most && u.sem.TryAcquire(1) {
		n++
	}
	u.used.Add(int64(n))
	return n, nil
}

// Acquire blocks until n units can be taken (served in arrival order, like Reserve), and takes
// them. It returns worker.ErrStopped or ctx's error as Reserve does; n above the size waits
// for one of those.
func (u *Units) Acquire(ctx context.Context, n int) error {
	if u.Stopped() {
		return worker.ErrStopped
	}
	if err := u.acquire(ctx, int64(n)); err != nil {
		return err
	}
	u.used.Add(int64(n))
	return nil
}

func (u *Units) acquire(ctx context.Context, n int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(closedContext{u.stopped}, cancel)
	defer stop()
	if err := u.sem.Acquire(ctx, n); err != nil {
		if u.Stopped() {
			return worker.ErrStopped
		}
		return err
	}
	return nil
}

// Release frees n units.
func (u *Units) Release(n int) {
	if n <= 0 {
		return
	}
	u.used.Add(-int64(n))
	u.sem.Release(int64(n))
}

// Free reports how many units are not held.
func (u *Units) Free() int { return int(u.size - u.used.Load()) }

// Close makes every later Reserve and Acquire, and those waiting, return worker.ErrStopped; one
// that is granted its units while Close runs may still return them. Close reports whether this
// call was the one that closed.
func (u *Units) Close() (first bool) {
	u.closeOnce.Do(func() { close(u.stopped); first = true })
	return first
}

// Stopped reports whether Close was called.
func (u *Units) Stopped() bool {
	select {
	case <-u.stopped:
		return true
	default:
		return false
	}
}

// closedContext adapts a channel to a context.Context for context.AfterFunc: Done is the
// channel, and nothing else is used.
type closedContext struct{ done chan struct{} }

func (c closedContext) Deadline() (deadline time.Time, ok bool) { return }
func (c closedContext) Done() <-chan struct{}                   { return c.done }
func (c closedContext) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}
func (c closedContext) Value(any) any { return nil }

// Running counts tasks that started and have not returned. The zero value is ready to use.
type Running struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed when n drops to 0; nil while nobody waits
}

// Start counts one more running task, whether or not Close was called. A caller that must not
// start tasks after closing counts them under the lock that guards its own closed flag.
func (r *Running) Start() {
	r.mu.Lock()
	r.n++
	r.mu.Unlock()
}

// TryStart counts one more running task and reports true, unless Close was called: then it
// counts nothing and reports false. Both happen under one lock, so a task TryStart admits is
// counted before Close returns, and a Wait that starts after Close waits for it.
func (r *Running) TryStart() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.n++
	return true
}

// Close makes every later TryStart report false. Tasks already counted go on being waited for.
func (r *Running) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Done counts one task as returned.
func (r *Running) Done() {
	r.mu.Lock()
	r.n--
	if r.n == 0 && r.idle != nil {
		close(r.idle)
		r.idle = nil
	}
	r.mu.Unlock()
}

// Wait blocks until no task is running or ctx ends, and then returns ctx's error.
func (r *Running) Wait(ctx context.Context) error {
	r.mu.Lock()
	if r.n == 0 {
		r.mu.Unlock()
		return nil
	}
	if r.idle == nil {
		r.idle = make(chan struct{})
	}
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
