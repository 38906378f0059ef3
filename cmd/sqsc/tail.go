package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
)

// tailHold is the visibility of the messages tail holds. It extends them once half of it may
// have passed, so a long poll (at most 20 s) in between never lets one lapse.
const tailHold = 60 * time.Second

// tailReceiveHold is the visibility tail asks for on a receive; what it prints is extended to
// tailHold at once. It is short because a receive cancelled by Ctrl-C may still take messages
// (SQS and the emulator can hand them to the abandoned request): they come back this soon.
const tailReceiveHold = 5 * time.Second

// settleTimeout bounds the deletes and the release tail sends after Ctrl-C.
const settleTimeout = 10 * time.Second

func tailCmd(fs *flag.FlagSet) func(call) error {
	del := fs.Bool("delete", false, "delete each message once printed (consume them) instead of holding them until tail stops")
	n := fs.Int("n", 0, "stop after this many messages (0: only at Ctrl-C)")
	wait := fs.Duration("wait", 20*time.Second, "long-poll wait per receive, whole seconds from 1s to 20s")
	return func(x call) error {
		switch {
		case len(x.args) > 0:
			return usageErr("tail: unexpected arguments %q", x.args)
		case *n < 0:
			return usageErr("tail: -n %d, want 0 or more", *n)
		case *wait < time.Second || *wait > 20*time.Second || *wait%time.Second != 0:
			return usageErr("tail: -wait %v, want whole seconds from 1s to 20s", *wait)
		}
		if !*del {
			// Releasing each message at once would have the next receive return it again, and
			// every receive raises its receive count until a redrive policy moves it to the DLQ.
			fmt.Fprintln(x.errOut, "tail: holds every message it prints invisible to consumers until it stops, then releases them; -delete consumes them instead")
		}
		t := &tailer{call: x, delete: *del, n: *n, wait: *wait, held: map[string]*string{}, extended: time.Now()}
		return t.run()
	}
}

// tailer prints what a queue receives; without -delete it holds each message it printed until
// it stops, so each is printed once, and then releases them all.
type tailer struct {
	call
	delete   bool
	n        int
	wait     time.Duration
	held     map[string]*string // message id -> latest receipt handle
	extended time.Time          // when the held messages' visibility was last set
	printed  int
}

// run receives until the ctx is cancelled (nil then) or n messages are printed, and releases
// what it holds before it returns.
func (t *tailer) run() error {
	err := t.loop()
	if rerr := t.release(); err == nil {
		err = rerr
	}
	return err
}

func (t *tailer) loop() error {
	for t.n == 0 || t.printed < t.n {
		t.extend()
		max := 10
		if t.n > 0 {
			max = min(max, t.n-t.printed)
		}
		res, err := t.c.ReceiveMessage(t.ctx, receiveInput(t.queue, int32(max), tailReceiveHold, t.wait))
		if t.ctx.Err() != nil {
			fmt.Fprintf(t.errOut, "tail: stopped; messages the cancelled receive may have taken return within %v\n", tailReceiveHold)
			return nil
		}
		if err != nil {
			return err
		}
		var done, hold []*string
		for _, m := range res.Messages {
			id := aws.ToString(m.MessageId)
			if _, ok := t.held[id]; !ok {
				printMessage(t.out, m)
				t.printed++
			} // else back after a lapse: held again, not printed again
			if t.delete {
				done = append(done, m.ReceiptHandle)
			} else {
				t.held[id] = m.ReceiptHandle
				hold = append(hold, m.ReceiptHandle)
			}
		}
		if err := t.deleteAll(done); err != nil {
			return err
		}
		t.renew(hold)
	}
	return nil
}

// extend renews the visibility of the held messages once half of tailHold has passed since
// the last renewal; messages received since then lapse later than those renewed.
func (t *tailer) extend() {
	if len(t.held) > 0 && time.Since(t.extended) >= tailHold/2 {
		t.extended = time.Now()
		t.renew(t.handles())
	}
}

// renew sets the visibility of these held messages to tailHold. A refusal is reported, not
// fatal: a message that lapsed comes back to a later receive and is held again.
func (t *tailer) renew(handles []*string) {
	if len(handles) == 0 {
		return
	}
	if err := setVisibility(t.ctx, t.c, t.queue, handles, tailHold, t.errOut); err != nil && t.ctx.Err() == nil {
		fmt.Fprintln(t.errOut, "tail: extending the messages held:", err)
	}
}

func (t *tailer) release() error {
	if len(t.held) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), settleTimeout)
	defer cancel()
	if err := setVisibility(ctx, t.c, t.queue, t.handles(), 0, t.errOut); err != nil {
		return fmt.Errorf("tail: releasing %d messages: %w", len(t.held), err)
	}
	fmt.Fprintf(t.errOut, "tail: released %d messages\n", len(t.held))
	t.held = map[string]*string{}
	return nil
}

func (t *tailer) handles() []*string {
	hs := make([]*string, 0, len(t.held))
	for _, h := range t.held {
		hs = append(hs, h)
	}
	return hs
}

// deleteAll deletes the messages with these receipt handles (at most 10), even after Ctrl-C.
func (t *tailer) deleteAll(handles []*string) error {
	if len(handles) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), settleTimeout)
	defer cancel()
	entries := make([]types.DeleteMessageBatchRequestEntry, len(handles))
	for i, h := range handles {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: batchid.For(i), ReceiptHandle: h}
	}
	out, err := t.c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &t.queue, Entries: entries})
	if err != nil {
		return err
	}
	for _, f := range out.Failed {
		fmt.Fprintf(t.errOut, "delete refused: %s: %s\n", aws.ToString(f.Code), aws.ToString(f.Message))
	}
	if len(out.Failed) > 0 {
		return errors.New("tail: some deletes were refused")
	}
	return nil
}
