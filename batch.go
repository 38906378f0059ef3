package sqsconsumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// BatchHandler handles up to a batch of messages at once. It returns nil when every message
// succeeded; a BatchFailures naming the failed messages by MessageId, so that only those are
// retried (the shape of Lambda's batchItemFailures); or any other error, which fails them all.
// A panic fails them all.
type BatchHandler func(ctx context.Context, msgs []*Message) error

// BatchFailures is a BatchHandler's report of the messages that failed, by MessageId.
type BatchFailures map[string]error

func (f BatchFailures) Error() string {
	ids := make([]string, 0, len(f))
	for id := range f {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return fmt.Sprintf("sqsconsumer: %d messages of the batch failed: %s", len(f), strings.Join(ids, ", "))
}

// Batch returns a Handler that gathers the messages the consumer hands it into batches of
// up to size (1..10) and calls h once per batch: when size messages are waiting, or window
// after the first of them arrived, whichever comes first. Each message's outcome is then the
// one h gave it, so deletes, backoff and leases stay per message.
//
// Each waiting message holds one of the consumer's concurrency slots, so give the consumer a
// concurrency of at least size (a multiple of it to run batches in parallel). The batch's ctx
// ends when any of its messages' ctx ends; a message whose ctx ends while it waits for its
// batch leaves it and fails with the ctx's cause, so a shutdown never waits out the window. A nil h, a size outside 1..10 or a window <= 0 is an
// error wrapping ErrInvalidOption.
func Batch(h BatchHandler, size int, window time.Duration) (Handler, error) {
	switch {
	case h == nil:
		return nil, invalid("Batch", "nil handler")
	case size < 1 || size > maxBatch:
		return nil, invalid("Batch", "size %d, want 1..10", size)
	case window <= 0:
		return nil, invalid("Batch", "window %v, want > 0", window)
	}
	b := &batcher{h: h, size: size, window: window}
	return b.handle, nil
}

type batchCall struct {
	ctx  context.Context
	m    *Message
	done chan error
}

type batcher struct {
	h      BatchHandler
	size   int
	window time.Duration

	mu      sync.Mutex
	pending []*batchCall
	timer   *time.Timer
	gen     int // which gathering the timer is for
}

func (b *batcher) handle(ctx context.Context, m *Message) error {
	call := &batchCall{ctx: ctx, m: m, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, call)
	switch {
	case len(b.pending) >= b.size:
		batch := b.take()
		b.mu.Unlock()
		b.run(batch)
	case len(b.pending) == 1:
		gen := b.gen
		b.timer = time.AfterFunc(b.window, func() { b.expire(gen) })
		b.mu.Unlock()
	default:
		b.mu.Unlock()
	}
	select {
	case err := <-call.done:
		return err
	case <-ctx.Done():
	}
	// The message's ctx ended (shutdown timeout, lost lease) while it waited for its batch:
	// it leaves the batch, unless the batch already started, whose ctx then ends too.
	b.mu.Lock()
	if i := slices.Index(b.pending, call); i >= 0 {
		b.pending = slices.Delete(b.pending, i, i+1)
		if len(b.pending) == 0 {
			b.take()
		}
		b.mu.Unlock()
		return fmt.Errorf("sqsconsumer: message %s left its batch before it ran: %w", m.id(), context.Cause(ctx))
	}
	b.mu.Unlock()
	return <-call.done
}

// take removes the pending calls as a batch; b.mu is held.
func (b *batcher) take() []*batchCall {
	batch := b.pending
	b.pending = nil
	b.gen++
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return batch
}

// expire runs the batch the window was started for, unless it already ran full.
func (b *batcher) expire(gen int) {
	b.mu.Lock()
	if gen != b.gen || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	batch := b.take()
	b.mu.Unlock()
	b.run(batch)
}

func (b *batcher) run(batch []*batchCall) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(batch[0].ctx))
	defer cancel(nil)
	msgs := make([]*Message, len(batch))
	for i, c := range batch {
		msgs[i] = c.m
		stop := context.AfterFunc(c.ctx, func() { cancel(context.Cause(c.ctx)) })
		defer stop()
	}
	err := b.call(ctx, msgs)
	failures, partial := err.(BatchFailures)
	for _, c := range batch {
		switch {
		case err == nil:
			c.done <- nil
		case partial:
			e, failed := failures[c.m.id()]
			if failed && e == nil {
				e = fmt.Errorf("sqsconsumer: message %s failed in its batch", c.m.id())
			}
			c.done <- e
		default:
			c.done <- err
		}
	}
}

func (b *batcher) call(ctx context.Context, msgs []*Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return b.h(ctx, msgs)
}
