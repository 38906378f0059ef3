package sqsconsumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Progress is what a StopPolicy judges.
type Progress struct {
	Handled int64         // handler calls finished, whatever their outcome
	IdleFor time.Duration // since a receive last brought a message or a handler last finished
}

// StopPolicy tells Run to stop by itself: when it returns true, Run shuts down as if its ctx
// had been cancelled and returns nil. Policies are checked after every handler call and every
// empty receive, and a few times a second.
type StopPolicy func(Progress) bool

// StopWhenIdle stops after the queue has brought nothing for d. With long polls the check
// happens at least once per poll period, so set d above the wait time to mean it. Time while a
// breaker (WithBreaker) is open does not count: the queue is not idle then, only waiting for
// its downstream (half-open, its probes find out whether the queue is empty).
func StopWhenIdle(d time.Duration) StopPolicy {
	return func(p Progress) bool { return p.IdleFor >= d }
}

// StopAfter stops once n handler calls have finished. Calls already running, or picked up
// from the waiting room as it fires, finish too (at most the capacity more); messages waiting
// beyond those are released at shutdown, not handled.
func StopAfter(n int64) StopPolicy {
	return func(p Progress) bool { return p.Handled >= n }
}

// StopWhenAny stops as soon as one of the policies says so.
func StopWhenAny(policies ...StopPolicy) StopPolicy {
	return func(p Progress) bool {
		for _, s := range policies {
			if s(p) {
				return true
			}
		}
		return false
	}
}

// StopWhenAll stops once every one of the policies says so at the same time.
func StopWhenAll(policies ...StopPolicy) StopPolicy {
	return func(p Progress) bool {
		for _, s := range policies {
			if !s(p) {
				return false
			}
		}
		return len(policies) > 0
	}
}

// stopCheck is the consumer's side of a StopPolicy.
type stopCheck struct {
	policy   StopPolicy
	stop     func()       // stops polling
	active   atomic.Int64 // UnixNano of the last activity
	handled  atomic.Int64
	stopping atomic.Bool
	onError  func(error)
	panicked atomic.Bool
	paused   func() bool // while true, time does not count as idle (a breaker is open)
}

// watch checks the policy a few times a second until ctx ends, e.g. for idle time during a
// long poll.
func (s *stopCheck) watch(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.check(now)
		}
	}
}

func (s *stopCheck) touch(now time.Time) { s.active.Store(now.UnixNano()) }

// check stops polling when the policy says so. It is safe for concurrent use.
func (s *stopCheck) check(now time.Time) {
	if s == nil || s.stopping.Load() {
		return
	}
	if s.paused != nil && s.paused() {
		s.touch(now)
	}
	p := Progress{Handled: s.handled.Load(), IdleFor: now.Sub(time.Unix(0, s.active.Load()))}
	if s.judge(p) && s.stopping.CompareAndSwap(false, true) {
		s.stop()
	}
}

// judge asks the policy. A policy that panics is reported (once) and never stops Run.
func (s *stopCheck) judge(p Progress) (stop bool) {
	defer func() {
		if v := recover(); v != nil {
			stop = false
			if s.panicked.CompareAndSwap(false, true) && s.onError != nil {
				defer func() { _ = recover() }() // nor may the error handler
				s.onError(fmt.Errorf("sqsconsumer: stop policy panicked (it is ignored from now on): %w", &PanicError{Value: v, Stack: debug.Stack()}))
			}
		}
	}()
	if s.panicked.Load() {
		return false
	}
	return s.policy(p)
}
