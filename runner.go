package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

const (
	// receiveGrace is added to the long-poll wait to make the deadline of a receive, which runs
	// on a ctx detached from Run's so that shutdown never abandons one in flight.
	receiveGrace = 5 * time.Second
	// fatalTries is how many receives in a row must fail with a fatal error (missing queue,
	// access denied) before Run gives up.
	fatalTries = 3
	// emptyShortPollPause is the pause after a short poll (wait 0) that brought nothing.
	emptyShortPollPause = time.Second
)

// receiveRetry spaces receives after errors: full jitter up to 200 ms x 2^(n-1), at most 20 s.
var receiveRetry = backoff.Exponential{Base: 200 * time.Millisecond, Max: 20 * time.Second}

var (
	allSystemAttributes  = []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}
	allMessageAttributes = []string{"All"}
)

// poll is one poller's loop: reserve capacity, receive at most that many messages, hand them
// to the strategy. It returns nil when ctx ends or it stops to shrink the pollers, and an error
// when receiving fails for good. It calls startPoller to add a poller (see WithPollers).
func (c *Consumer) poll(ctx context.Context, startPoller func()) error {
	shrunk := false // shrinkPollers took this poller off the count already
	defer func() {
		if !shrunk {
			c.stats.pollers.Add(-1)
		}
	}()
	failures, fatals := 0, 0
	attempt := "" // FIFO: the ReceiveRequestAttemptId a failed receive is retried with
	for ctx.Err() == nil {
		n, err := c.strategy.Reserve(ctx, c.s.receiveBatch)
		if err != nil {
			return nil // ctx ended, or the strategy was closed: shutting down
		}
		if c.fifo && attempt == "" {
			attempt = fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
		}
		msgs, err := c.receive(ctx, n, attempt)
		for _, h := range c.hooks.receive {
			h.OnReceive(c.queueURL, len(msgs), err)
		}
		if err != nil {
			c.strategy.Unreserve(n)
			c.stats.receiveErrors.Add(1)
			failures++
			if fatal(err) {
				fatals++
				if fatals >= fatalTries {
					return fmt.Errorf("sqsconsumer: receive from %s: %w", c.queueURL, err)
				}
			} else {
				fatals = 0
			}
			c.s.onError(fmt.Errorf("sqsconsumer: receive from %s (failure %d in a row): %w", c.queueURL, failures, err))
			if !backoff.Sleep(ctx.Done(), receiveRetry.Delay(failures)) {
				return nil
			}
			continue
		}
		failures, fatals, attempt = 0, 0, ""
		c.stats.receives.Add(1)
		if extra := len(msgs) - n; extra > 0 {
			// SQS never returns more than asked; a misbehaving server could. Keep the bound.
			for i := range msgs[n:] {
				m := c.newMessage(&msgs[n+i], time.Now())
				c.settle(m, nil, true)
			}
			msgs = msgs[:n]
		}
		c.strategy.Unreserve(n - len(msgs))
		if c.stopper != nil {
			if len(msgs) > 0 {
				c.stopper.touch(time.Now())
			}
			c.stopper.check(time.Now())
		}
		if len(msgs) == 0 {
			c.stats.emptyReceives.Add(1)
			if c.shrinkPollers() {
				shrunk = true
				return nil
			}
			if c.s.waitTime == 0 && !backoff.Sleep(ctx.Done(), emptyShortPollPause) {
				return nil
			}
			continue
		}
		if len(msgs) == c.s.receiveBatch && c.strategy.Free() >= c.s.receiveBatch && c.growPollers() {
			startPoller() // the queue has more, and there is room for it
		}
		now := time.Now()
		shutting := ctx.Err() != nil
		for i := range msgs {
			m := c.newMessage(&msgs[i], now)
			if shutting {
				c.strategy.Unreserve(1)
				c.settle(m, nil, true)
				continue
			}
			if c.groupLimit > 0 && c.waitForGroup(m) {
				continue // runs when a message ahead of it in its group is done
			}
			c.submit(m)
		}
	}
	return nil
}

// growPollers counts one more poller and reports true, while fewer than the maximum run.
func (c *Consumer) growPollers() bool {
	for {
		n := c.stats.pollers.Load()
		if n >= int64(c.s.maxPollers) {
			return false
		}
		if c.stats.pollers.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// shrinkPollers counts one poller fewer and reports true, while more than the minimum run:
// the calling poller must then stop.
func (c *Consumer) shrinkPollers() bool {
	for {
		n := c.stats.pollers.Load()
		if n <= int64(c.s.pollers) {
			return false
		}
		if c.stats.pollers.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// receive makes one ReceiveMessage call for up to n messages, on a ctx detached from Run's so
// that a shutdown does not abandon it: messages SQS hands out are then released, not orphaned.
// On a FIFO queue attempt is the ReceiveRequestAttemptId: the retry of a receive that failed
// (say, its response was lost) reuses it, so SQS returns the same messages instead of
// keeping them invisible, and their groups locked, for the visibility timeout.
func (c *Consumer) receive(ctx context.Context, n int, attempt string) ([]types.Message, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.waitTime+receiveGrace)
	defer cancel()
	c.requested("ReceiveMessage")
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    &c.queueURL,
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             int32(c.s.waitTime / time.Second),
		VisibilityTimeout:           int32(c.s.visibility / time.Second),
		MessageSystemAttributeNames: allSystemAttributes,
		MessageAttributeNames:       allMessageAttributes,
	}
	if attempt != "" {
		in.ReceiveRequestAttemptId = &attempt
	}
	out, err := c.client.ReceiveMessage(rctx, in)
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// groupOverflow is how long a message stays invisible when its group already holds its
// limit of running and waiting messages (WithGroupLimit on a standard queue).
const groupOverflow = time.Second

// waitForGroup applies the group limit to m: it takes one of its group's running places and
// reports false (m runs now), or parks m behind them and reports true. A parked message keeps
// its reserved unit. On a standard queue a group parks at most its limit of messages; beyond
// that m is handed back to SQS for a second (reported true too), so that one busy tenant
// cannot fill the consumer's capacity with waiting messages.
func (c *Consumer) waitForGroup(m *Message) bool {
	id := m.GroupID()
	if id == "" {
		return false
	}
	c.mu.Lock()
	g := c.groups[id]
	if g == nil {
		g = &group{}
		c.groups[id] = g
	}
	switch {
	case g.running < c.groupLimit:
		g.running++
		m.groupSlot = true
		c.mu.Unlock()
		return false
	case c.fifo || len(g.waiting) < c.groupLimit:
		g.waiting = append(g.waiting, m)
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.strategy.Unreserve(1)
	if c.lease != nil {
		c.lease.Remove(&m.lease)
	}
	c.harvester.add(ackReq{kind: ackVisibility, id: m.id(), handle: m.ReceiptHandle, seconds: visibilitySeconds(groupOverflow)})
	m.cancel(context.Canceled)
	c.stats.released.Add(1)
	c.stats.inFlight.Add(-1)
	return true
}

// submit hands m, which holds a reserved unit, to the strategy.
func (c *Consumer) submit(m *Message) {
	w := int64(1)
	if c.s.weight != nil {
		w = c.s.weight(m)
	}
	err := c.strategy.Submit(c.runCtx, worker.Task{Run: func() { c.handle(m) }, Weight: w, Data: m})
	if err == nil {
		return
	}
	c.strategy.Unreserve(1)
	if errors.Is(err, worker.ErrTooHeavy) {
		c.reportError(fmt.Errorf("sqsconsumer: message %s cannot run: %w", m.id(), err))
		c.settle(m, err, false)
		return
	}
	c.settle(m, nil, true) // shutting down
}
