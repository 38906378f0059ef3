// Package sqsconsumer consumes Amazon SQS queues: pass a Handler, tune concurrency with
// options, and call Run. See the README for an overview, and the examples.
package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/lease"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

//go:generate go run go.uber.org/mock/mockgen@v0.6.0 -typed -source=consumer.go -destination=internal/mocks/client.go -package=mocks

// Client is the subset of *sqs.Client the consumer calls, with the SDK's exact signatures, so
// *sqs.Client, sqstest fakes and generated mocks all satisfy it.
type Client interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

var _ Client = (*sqs.Client)(nil)

// Consumer receives messages from one queue and runs a Handler on each. Create it with New
// and start it with Run; a Consumer runs once.
type Consumer struct {
	client   Client
	queueURL string
	handler  Handler
	s        settings
	strategy worker.Strategy
	fifo     bool
	// groupLimit bounds the handlers running at once per MessageGroupId: 1 on a FIFO queue,
	// WithGroupLimit's on a standard one, 0 for none.
	groupLimit int
	lease      *lease.Manager // nil when the lease is off

	started atomic.Bool
	stats   counters

	// Set by Run before any goroutine starts.
	runCtx      context.Context // Run's ctx, until shutdown; for Submit
	handlerBase context.Context // parent of every handler ctx; cancelled at the shutdown timeout
	harvester   *harvester

	// successors carries FIFO messages whose turn has come to the goroutine that submits them,
	// so that a finishing handler never blocks in Submit while it still holds its own capacity.
	// Every message in it holds a reserved unit, so it never holds more than the units.
	successors chan *Message

	stopper *stopCheck // nil without WithStopPolicy; set by Run
	hooks   hooks

	mu        sync.Mutex
	groups    map[string]*group // FIFO groups with a message running
	ackErrors []error           // the first maxReportedErrors, for the report
	report    *Report
}

// group is one MessageGroupId's share: its running handlers and the messages waiting for one
// of them to finish, in received order.
type group struct {
	running int
	waiting []*Message
}

const maxReportedErrors = 100

// New returns a consumer of the queue at queueURL that runs h on each message. It validates its
// arguments and options: a nil client or handler, an empty queue URL or an invalid option is
// an error wrapping ErrInvalidOption that names it. New starts no goroutine and makes no call.
//
// A queue whose URL ends in ".fifo" is a FIFO queue: messages of one MessageGroupId are handled
// one at a time in received order, groups in parallel, and acks are sent at once.
func New(client Client, queueURL string, h Handler, opts ...Option) (*Consumer, error) {
	if client == nil || (reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil()) {
		return nil, invalid("client", "nil")
	}
	if strings.TrimSpace(queueURL) == "" {
		return nil, invalid("queueURL", "empty")
	}
	if h == nil {
		return nil, invalid("handler", "nil")
	}
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	if s.sender == nil {
		s.sender, _ = client.(Sender)
	}
	strategy, err := s.strategy(s.concurrency)
	if err != nil {
		return nil, fmt.Errorf("%w: WithStrategy: %w", ErrInvalidOption, err)
	}
	switch {
	case s.maxPollers == 0:
		s.maxPollers = max(s.pollers, min(8, strategy.Free()/maxBatch))
	case s.maxPollers < s.pollers:
		return nil, invalid("WithMaxPollers", "%d, below WithPollers' %d", s.maxPollers, s.pollers)
	}
	c := &Consumer{
		client: client, queueURL: queueURL, handler: h, s: s, strategy: strategy,
		fifo:   strings.HasSuffix(queueURL, ".fifo"),
		groups: make(map[string]*group),
	}
	c.stats.concurrency = s.concurrency
	c.hooks = sortHooks(s.hooks)
	switch {
	case c.fifo:
		c.s.ackInterval = 0
		c.groupLimit = 1
	case s.groupLimit > 0:
		c.groupLimit = s.groupLimit
	}
	if c.groupLimit > 0 {
		c.successors = make(chan *Message, strategy.Free())
	}
	if s.maxLease > 0 {
		c.lease = lease.New(lease.Config{
			Client: client, QueueURL: queueURL, Visibility: s.visibility, MaxTotal: s.maxLease,
			OnError: s.onError,
			Extended: func(n int) {
				c.stats.leaseExtended.Add(int64(n))
				for _, h := range c.hooks.leaseExtends {
					h.OnLeaseExtended(queueURL, n)
				}
			},
			Called: func() { c.stats.requests.Add(1) },
		})
	}
	return c, nil
}

// Report is the account of a finished Run.
type Report struct {
	Stats
	// Err is what Run returned.
	Err error
	// ShutdownTimedOut is true when handlers were still running at the shutdown timeout and
	// had their ctx cancelled.
	ShutdownTimedOut bool
	// AckErrors holds the first 100 deletes and visibility changes that failed for good
	// (*AckError values, with the message id and SQS's reason).
	AckErrors []error
}

// Stats returns the consumer's counters so far. It is safe to call at any time, from any
// goroutine.
func (c *Consumer) Stats() Stats { return c.stats.snapshot() }

// Report returns the account of the finished Run, or nil while Run has not returned.
func (c *Consumer) Report() *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}

// Run receives and handles messages until ctx is cancelled or a receive fails for good. It
// blocks.
//
// When ctx is cancelled Run shuts down: it stops receiving (a receive in flight completes,
// and what it brings is released at once), releases the messages that wait for a worker, lets
// running handlers finish for up to the shutdown timeout and then cancels their ctx, flushes
// the acknowledgements with a ctx of its own, and returns nil once every handler has returned
// and every goroutine it started has exited. It returns an error when receiving fails for good
// (the queue does not exist, access is denied), after the same shutdown. A second call returns
// ErrAlreadyRun at once.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrAlreadyRun
	}
	base, cancelHandlers := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelHandlers(context.Canceled)
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	c.handlerBase = base
	c.runCtx = pollCtx
	stopperDone := make(chan struct{})
	if c.s.stopPolicy != nil {
		c.stopper = &stopCheck{policy: c.s.stopPolicy, stop: stopPolling}
		c.stopper.touch(time.Now())
		go func() { // checks the policy a few times a second, e.g. for idle time during a long poll
			defer close(stopperDone)
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-pollCtx.Done():
					return
				case now := <-t.C:
					c.stopper.check(now)
				}
			}
		}()
	} else {
		close(stopperDone)
	}
	c.harvester = newHarvester(c.client, c.queueURL, c.s.ackBatch, c.s.ackInterval, c.reportError, &c.stats)
	c.harvester.hooks = &c.hooks
	c.harvester.requested = c.requested
	go c.harvester.run()
	successorsDone := make(chan struct{})
	if c.groupLimit > 0 {
		go func() {
			defer close(successorsDone)
			for m := range c.successors {
				c.submit(m)
			}
		}()
	} else {
		close(successorsDone)
	}
	stopLease, leaseDone := make(chan struct{}), make(chan struct{})
	if c.lease != nil {
		go func() { defer close(leaseDone); c.lease.Run(stopLease) }()
	} else {
		close(leaseDone)
	}

	var pollers sync.WaitGroup
	var runErr error
	var once sync.Once
	var startPoller func()
	startPoller = func() { // the caller has counted the new poller in c.stats.pollers
		pollers.Go(func() {
			if err := c.poll(pollCtx, startPoller); err != nil {
				once.Do(func() { runErr = err })
				stopPolling()
			}
		})
	}
	for range c.s.pollers {
		c.stats.pollers.Add(1)
		startPoller()
	}
	pollersDone := make(chan struct{})
	go func() { pollers.Wait(); <-stopperDone; close(pollersDone) }()
	select {
	case <-pollCtx.Done():
	case <-pollersDone:
	}

	// Shutdown. Messages parked in the strategy never run: release them now, without waiting
	// for a receive in flight; what it brings is released by its poller.
	for _, t := range c.strategy.Close() {
		c.settle(t.Data.(*Message), nil, true)
	}
	// Closed, the strategy starts nothing more, so running handlers are waited for (and cut
	// short at the timeout) while a receive may still be in flight.
	timedOut := false
	wait, cancel := context.WithTimeout(context.Background(), c.s.shutdownTimeout)
	if c.strategy.Wait(wait) != nil {
		timedOut = true
		cancelHandlers(ErrShutdownTimeout)
		_ = c.strategy.Wait(context.Background()) // handlers were told to stop; wait for them to return
	}
	cancel()
	<-pollersDone
	if c.groupLimit > 0 {
		close(c.successors) // what is left fails to submit, the strategy being closed, and is released
		<-successorsDone
	}
	c.releaseGroups() // FIFO messages that never got their turn
	close(stopLease)
	<-leaseDone
	c.harvester.close()

	c.mu.Lock()
	c.report = &Report{Stats: c.stats.snapshot(), Err: runErr, ShutdownTimedOut: timedOut, AckErrors: c.ackErrors}
	c.mu.Unlock()
	return runErr
}

func (c *Consumer) reportError(err error) {
	var ae *AckError
	if errors.As(err, &ae) {
		c.mu.Lock()
		if len(c.ackErrors) < maxReportedErrors {
			c.ackErrors = append(c.ackErrors, err)
		}
		c.mu.Unlock()
	}
	c.s.onError(err)
}

// handle runs the handler on m and settles the outcome. It is the task a strategy runs.
func (c *Consumer) handle(m *Message) {
	start := time.Now()
	ctx := m.ctx
	for _, h := range c.hooks.start {
		ctx = h.OnHandlerStart(ctx, m)
	}
	err := c.call(ctx, m)
	end := time.Now()
	for _, h := range c.hooks.end {
		h.OnHandlerEnd(ctx, m, err, end.Sub(start))
	}
	c.stats.handled(start, end)
	outcome := "succeeded"
	if err != nil {
		outcome = "failed"
	}
	c.logOutcome(m, outcome, err, end.Sub(start))
	c.settle(m, err, false)
	if c.stopper != nil {
		c.stopper.handled.Add(1)
		c.stopper.touch(end)
		c.stopper.check(end)
	}
}

func (c *Consumer) call(ctx context.Context, m *Message) (err error) {
	if c.s.handlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.s.handlerTimeout, ErrHandlerTimeout)
		defer func() {
			if context.Cause(ctx) == ErrHandlerTimeout {
				c.stats.timedOut.Add(1)
				if err == nil {
					err = ErrHandlerTimeout
				} else if !errors.Is(err, ErrHandlerTimeout) {
					err = fmt.Errorf("%w: %w", ErrHandlerTimeout, err)
				}
			}
			cancel()
		}()
	}
	defer func() {
		if v := recover(); v != nil {
			c.stats.panics.Add(1)
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return c.handler(ctx, m)
}

// settle ends m's time in the consumer: the lease lets it go, and it is deleted, made visible
// again, or left to SQS. released means m never ran and is made visible at once.
func (c *Consumer) settle(m *Message, err error, released bool) {
	lost := c.lease != nil && c.lease.Remove(&m.lease)
	cause := context.Cause(m.ctx)
	ok := false
	switch {
	case lost:
		c.stats.leaseLost.Add(1)
		for _, h := range c.hooks.leaseLost {
			h.OnLeaseLost(m, cause)
		}
	case released:
		c.release(m)
		c.stats.released.Add(1)
	case err == nil:
		c.harvester.add(ackReq{kind: ackDelete, id: m.id(), handle: m.ReceiptHandle})
		c.stats.succeeded.Add(1)
		ok = true
	case errors.Is(cause, ErrShutdownTimeout):
		c.release(m)
		c.stats.cancelled.Add(1)
	case c.rerouted(m, err):
		c.harvester.add(ackReq{kind: ackDelete, id: m.id(), handle: m.ReceiptHandle})
		c.stats.succeeded.Add(1)
		c.stats.rerouted.Add(1)
		ok = true
	default:
		c.stats.failed.Add(1)
		if secs, change := c.retryVisibility(m, err); change {
			c.harvester.add(ackReq{kind: ackVisibility, id: m.id(), handle: m.ReceiptHandle, seconds: secs})
		}
	}
	m.cancel(context.Canceled)
	c.stats.inFlight.Add(-1)
	if m.groupSlot {
		c.groupDone(m, ok)
	}
}

// rerouted reports whether err asks for m to be moved to another queue and the copy was sent;
// a reroute that failed is reported, and m is then treated as failed.
func (c *Consumer) rerouted(m *Message, err error) bool {
	var r *RerouteError
	if !errors.As(err, &r) {
		return false
	}
	if err := c.reroute(m, r); err != nil {
		c.reportError(err)
		return false
	}
	return true
}

func (c *Consumer) release(m *Message) {
	c.harvester.add(ackReq{kind: ackVisibility, id: m.id(), handle: m.ReceiptHandle, seconds: 0})
}

// retryVisibility says what a failed message's visibility becomes: the RetryError's say, else
// the backoff policy's, else (no policy) unchanged.
func (c *Consumer) retryVisibility(m *Message, err error) (seconds int32, change bool) {
	var re *RetryError
	if errors.As(err, &re) {
		if re.Keep {
			return 0, false
		}
		return visibilitySeconds(re.Delay), true
	}
	if c.s.backoff == nil {
		return 0, false
	}
	return visibilitySeconds(c.s.backoff(m.ReceiveCount())), true
}

// visibilitySeconds rounds d up to whole seconds within SQS's 0..12 h.
func visibilitySeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32(min(math.Ceil(d.Seconds()), MaxVisibilityTimeout.Seconds()))
}

// groupDone frees m's place among its group's running handlers and lets the next waiting
// message of the group run. On a FIFO queue, when m did not succeed, the group's waiting
// messages are released instead, so that they come back after m, in order.
func (c *Consumer) groupDone(m *Message, ok bool) {
	id := m.GroupID()
	m.groupSlot = false
	var next *Message
	var rest []*Message
	c.mu.Lock()
	if g := c.groups[id]; g != nil {
		g.running--
		switch {
		case c.fifo && !ok:
			rest, g.waiting = g.waiting, nil
		case len(g.waiting) > 0:
			next, g.waiting = g.waiting[0], g.waiting[1:]
			next.groupSlot = true
			g.running++
		}
		if g.running == 0 && len(g.waiting) == 0 {
			delete(c.groups, id)
		}
	}
	c.mu.Unlock()
	for _, w := range rest {
		c.strategy.Unreserve(1)
		c.settle(w, nil, true)
	}
	if next != nil {
		c.successors <- next // never blocks: see Consumer.successors
	}
}

// releaseGroups releases FIFO messages still waiting for their group after every handler
// returned.
func (c *Consumer) releaseGroups() {
	c.mu.Lock()
	groups := c.groups
	c.groups = make(map[string]*group)
	c.mu.Unlock()
	for _, g := range groups {
		for _, w := range g.waiting {
			c.strategy.Unreserve(1)
			c.settle(w, nil, true)
		}
	}
}

// newMessage wraps a received message and puts it under the lease.
func (c *Consumer) newMessage(tm *types.Message, now time.Time) *Message {
	m := &Message{Message: *tm, receivedAt: now, queueURL: c.queueURL}
	m.ctx, m.cancel = context.WithCancelCause(c.handlerBase)
	m.lease.ReceiptHandle = aws.ToString(tm.ReceiptHandle)
	m.lease.MessageID = m.id()
	m.lease.Lost = m.cancel
	if c.lease != nil {
		c.lease.Add(&m.lease, now)
	}
	c.stats.received.Add(1)
	c.stats.inFlight.Add(1)
	return m
}
