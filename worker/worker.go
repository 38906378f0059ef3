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
	// Submit hands t to the strategy, using one reserved unit; the unit is freed when t.Run
	// returns. It may block for backpressure (a weighted task waits for enough running weight to
	// finish) until ctx ends or Close. On any error the unit is still the caller's: give it back
	// with Unreserve. It returns ErrTooHeavy for a weight that can never fit and ErrStopped
	// after Close.
	Submit(ctx context.Context, t Task) error
	// Free reports how many units could be reserved now without blocking: for a pool, idle or
	// startable workers plus free waiting room.
	Free() int
	// Close stops the strategy from accepting work and returns the tasks that were accepted but
	// not started, in submission order; they will never run and their units are freed. Tasks
	// already running go on. Close does not block; a second Close returns nil.
	Close() []Task
	// Wait blocks until every started task has returned, or ctx ends (then it returns ctx's
	// error and may be called again). Call it after Close.
	Wait(ctx context.Context) error
}

// Factory builds a strategy for a given concurrency: the bound on tasks running at once (for a
// weighted strategy, on their total weight). Consumers call it once, in their constructor;
// a factory returns an error wrapping ErrInvalidConfig for settings it cannot honour and starts
// no goroutine.
type Factory func(concurrency int) (Strategy, error)
