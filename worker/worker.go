// Package worker defines the contract between the consumer and a worker strategy: how received
// messages are admitted, how capacity is reserved before a receive, and how a strategy stops.
// The strategies in this module (semaphore, pool) meet it, and package workertest holds the
// conformance suite every strategy runs.
package worker

import (
	"context"
	"errors"
)

// Errors returned by strategies. Strategies wrap them, so test with errors.Is.
var (
	// ErrStopped is returned by Reserve and Submit after Close.
	ErrStopped = errors.New("worker: strategy stopped")
	// ErrTooHeavy is returned by Submit for a task whose weight exceeds the strategy's total
	// capacity: such a task could never run, so it is refused instead of waiting forever.
	ErrTooHeavy = errors.New("worker: task weight exceeds capacity")
	// ErrInvalidConfig is wrapped by constructors given a bad setting.
	ErrInvalidConfig = errors.New("worker: invalid configuration")
	// ErrNoReservation is returned by Submit when no reserved unit is outstanding.
	ErrNoReservation = errors.New("worker: submit without a reservation")
)

// Task is one unit of work: the handling of one message.
type Task struct {
	// Run does the work. A panic escaping Run is recovered by the strategy, which frees the
	// task's capacity and passes the value to its panic hook.
	Run func()
	// Weight is the capacity the task occupies while it runs, for strategies that weigh tasks
	// (semaphore); values below 1 count as 1. Strategies that do not weigh tasks ignore it.
	Weight int64
	// Data is opaque to the strategy: it lets the submitter tell which work a task returned by
	// Close was for.
	Data any
}

// Strategy runs tasks with bounded concurrency. Capacity is counted in units, one per task
// held (reserved, waiting or running), and is acquired before the work it is for exists: a
// caller reserves units, then receives at most that many messages, then submits one task per
// unit or gives the rest back. This is how the consumer never holds more messages than it can
// run or park.
//
// A task submitted successfully is accepted. An accepted task is either started or, until
// Close, waiting to start; which of the two is the strategy's choice (a pool's task waits in
// its waiting room until a worker takes it, a semaphore's task is started when Submit returns).
// A started task is one the strategy has committed to run: Run may not have been entered yet,
// but it will be, once, and Wait waits for it to return. Close ends the waiting: every accepted
// task is then either started or returned by Close, never both, and no other task starts. This
// holds however Submit and Close race: whatever the order, a Submit that returns nil has its
// task either returned by Close or waited for by a Wait called after Close.
//
// All methods are safe for concurrent use.
type Strategy interface {
	// Reserve blocks until enough units are free to be worth a receive, then reserves up to max
	// units and returns how many it reserved (1..max). "Enough" is the strategy's choice, at
	// least one and never more than max or the total: the strategies here wait for
	// min(max, waiting room), so that a receive brings a whole batch while the workers are still
	// busy with the room's previous contents. It returns ctx's error when ctx ends first, and
	// ErrStopped after Close. A max below 1 is treated as 1.
	Reserve(ctx context.Context, max int) (int, error)
	// Unreserve gives back n reserved units that will not be submitted.
	Unreserve(n int)
	// Submit hands t to the strategy, using one reserved unit. It returns nil once t is
	// accepted: t then runs, once, and the strategy frees the unit when t.Run returns, unless
	// Close returns t (then t never runs and Close frees the unit). Wait, called after Close,
	// waits for every accepted task Close does not return, including one whose Submit returns
	// nil while Close runs. Submit may block for backpressure (a weighted task waits for enough
	// running weight to finish) until ctx ends or Close. On any error t never runs and the unit
	// is still the caller's: give it back with Unreserve. It returns ErrTooHeavy for a weight
	// that can never fit, and ErrStopped after Close or when Close wins a race with it.
	Submit(ctx context.Context, t Task) error
	// Free reports how many units could be reserved now without blocking: for a pool, idle or
	// startable workers plus free waiting room.
	Free() int
	// Close stops the strategy from accepting work and returns every accepted task that has not
	// started, in submission order; they will never run, and the strategy frees their units
	// (the caller does not Unreserve them). Started tasks go on; after Close no other task
	// starts. Close does not block; a second Close returns nil.
	Close() []Task
	// Wait blocks until every started task has returned, or ctx ends (then it returns ctx's
	// error and may be called again). Call it after Close: then every task whose Submit
	// returned nil and that Close did not return has returned when Wait returns nil, and none
	// starts afterwards.
	Wait(ctx context.Context) error
}

// DefaultWaitingRoom is the waiting room of the strategies in this module unless set: how
// many messages may be held beyond the concurrency, min(4 x concurrency, 256). It is the cap on
// the consumer's prefetch, which fills only as much of it as the measured handler time and
// receive latency call for (about a batch with slow handlers and a near SQS).
func DefaultWaitingRoom(concurrency int) int { return min(4*concurrency, 256) }

// Factory builds a strategy for a given concurrency: the bound on tasks running at once (for a
// weighted strategy, on their total weight). Consumers call it once, in their constructor;
// a factory returns an error wrapping ErrInvalidConfig for settings it cannot honour and starts
// no goroutine.
type Factory func(concurrency int) (Strategy, error)
