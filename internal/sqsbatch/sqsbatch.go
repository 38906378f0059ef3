// Package sqsbatch makes SQS batch calls (DeleteMessageBatch, ChangeMessageVisibilityBatch,
// SendMessageBatch) with one rule for every caller: entries are numbered by position (see
// batchid), an entry succeeded only when the response lists it as Successful, an entry SQS
// failed as the sender's fault is not retried, and everything else (a failed call, an entry
// failed as SQS's fault, an entry the response says nothing of) is retried with backoff while
// attempts remain. The consumer's harvester, its lease and the producer all send through Do.
package sqsbatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
)

// CodeNoResult is the Code of an entry the response neither listed as successful nor as
// failed, once its attempts are spent.
const CodeNoResult = "NoResult"

// Policy says how hard Do tries.
type Policy struct {
	Attempts  int                 // tries per entry; 0: no limit (Keep decides)
	Backoff   backoff.Exponential // pause before a retry, by attempt
	Timeout   time.Duration       // per call, on a ctx of its own (0: none)
	Permanent func(error) bool    // a failed call that would fail the same way again (may be nil)
	// Keep is asked before each retry of entry i: nil to retry it, or why not (the entry is
	// then done, with GaveUp set). nil Keep retries while attempts remain.
	Keep func(i int) error
	// Ctx bounds the whole: calls run on it (with Timeout each), and when it ends the pauses
	// between attempts end too: the entries due a retry are done with GaveUp set to
	// ErrStopped. nil is context.Background(): a shutdown must not cut acknowledgements short
	// unless the caller says so.
	Ctx context.Context
}

// ErrStopped is a Result's GaveUp when Policy.Ctx ended the retries.
var ErrStopped = errors.New("sqsbatch: stopped before the entry succeeded")

// Response is what one batch call said, by the ids Do gave the entries.
type Response struct {
	Successful []Success
	Failed     []types.BatchResultErrorEntry
}

// Success is one entry the response lists as successful.
type Success struct {
	ID        *string
	MessageID string // SendMessageBatch's id of the sent message; "" for other calls
}

// Send makes one batch call of the entries at positions idx of the caller's list, giving the
// j-th of them the id batchid.For(j).
type Send func(ctx context.Context, idx []int) (Response, error)

// Result is the outcome of one entry.
type Result struct {
	OK          bool
	MessageID   string // of a sent message
	Code        string // SQS's code for a failed entry, CodeNoResult, or "" when the call failed
	Message     string
	SenderFault bool
	Err         error // the call's error when the whole call failed
	Attempts    int   // calls that carried the entry
	// GaveUp says why an entry that might have succeeded later was not retried again: Keep's
	// error or ErrStopped; nil when it succeeded, failed for good or ran out of attempts.
	GaveUp error
}

// Error describes a failed result as an error (nil for a success).
func (r Result) Error() error {
	switch {
	case r.OK:
		return nil
	case r.GaveUp != nil:
		last := r
		last.GaveUp = nil
		return fmt.Errorf("%w (last try: %w)", r.GaveUp, last.Error())
	case r.Err != nil:
		return r.Err
	case r.Message != "":
		return errors.New(r.Message)
	default:
		return errors.New(r.Code)
	}
}

// Do sends n entries (at most 10) with send, retrying as the package says, and calls done once
// per entry, by position, as soon as its outcome is known. It blocks until every entry is done;
// calls and pauses end early only when p.Ctx ends (the callers' requests must outlive a
// shutdown).
func Do(n int, p Policy, send Send, done func(i int, r Result)) {
	ctx := p.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	limited := p.Attempts > 0
	for attempt := 1; len(idx) > 0; attempt++ {
		last := limited && attempt >= p.Attempts
		resp, err := call(ctx, p.Timeout, send, idx)
		var again []int
		lastTry := make(map[int]Result, len(idx)) // what an entry due a retry got this time
		if err != nil {
			if last || (p.Permanent != nil && p.Permanent(err)) {
				for _, i := range idx {
					done(i, Result{Err: err, Attempts: attempt})
				}
				return
			}
			again = idx
			for _, i := range idx {
				lastTry[i] = Result{Err: err, Attempts: attempt}
			}
		} else {
			settled := make([]bool, len(idx))
			for _, ok := range resp.Successful {
				if j, found := batchid.Position(ok.ID, len(idx)); found && !settled[j] {
					settled[j] = true
					done(idx[j], Result{OK: true, MessageID: ok.MessageID, Attempts: attempt})
				}
			}
			for _, f := range resp.Failed {
				j, ok := batchid.Position(f.Id, len(idx))
				if !ok || settled[j] {
					continue
				}
				settled[j] = true
				r := Result{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault, Attempts: attempt}
				if !f.SenderFault && !last {
					again = append(again, idx[j])
					lastTry[idx[j]] = r
					continue
				}
				done(idx[j], r)
			}
			for j, s := range settled { // SQS said nothing of these
				if s {
					continue
				}
				r := Result{Code: CodeNoResult, Message: "the response did not mention the entry", Attempts: attempt}
				if !last {
					again = append(again, idx[j])
					lastTry[idx[j]] = r
					continue
				}
				done(idx[j], r)
			}
			slices.Sort(again)
		}
		if len(again) == 0 {
			return
		}
		if !backoff.Sleep(ctx.Done(), p.Backoff.Delay(attempt)) || ctx.Err() != nil {
			for _, i := range again {
				r := lastTry[i]
				r.GaveUp = ErrStopped
				done(i, r)
			}
			return
		}
		idx = idx[:0]
		for _, i := range again {
			if p.Keep != nil {
				if why := p.Keep(i); why != nil {
					r := lastTry[i]
					r.GaveUp = why
					done(i, r)
					continue
				}
			}
			idx = append(idx, i)
		}
	}
}

func call(ctx context.Context, timeout time.Duration, send Send, idx []int) (Response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return send(ctx, idx)
}

// Deleter is the SQS call Delete makes.
type Deleter interface {
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// VisibilityChanger is the SQS call ChangeVisibility makes.
type VisibilityChanger interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Delete returns a Send of DeleteMessageBatch calls on queueURL: handle(i) is the receipt
// handle of the caller's entry i. called, if not nil, is told of each call before it is made.
func Delete(c Deleter, queueURL string, handle func(i int) *string, called func()) Send {
	return func(ctx context.Context, idx []int) (Response, error) {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(idx))
		for j, i := range idx {
			entries[j] = types.DeleteMessageBatchRequestEntry{Id: batchid.For(j), ReceiptHandle: handle(i)}
		}
		if called != nil {
			called()
		}
		out, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &queueURL, Entries: entries})
		if err != nil {
			return Response{}, err
		}
		return respond(out.Failed, out.Successful, func(e types.DeleteMessageBatchResultEntry) *string { return e.Id }), nil
	}
}

// ChangeVisibility returns a Send of ChangeMessageVisibilityBatch calls on queueURL: entry(i)
// is the receipt handle and the new visibility in seconds of the caller's entry i. called, if
// not nil, is told of each call before it is made.
func ChangeVisibility(c VisibilityChanger, queueURL string, entry func(i int) (handle *string, seconds int32), called func()) Send {
	return func(ctx context.Context, idx []int) (Response, error) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(idx))
		for j, i := range idx {
			h, secs := entry(i)
			entries[j] = types.ChangeMessageVisibilityBatchRequestEntry{Id: batchid.For(j), ReceiptHandle: h, VisibilityTimeout: secs}
		}
		if called != nil {
			called()
		}
		out, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &queueURL, Entries: entries})
		if err != nil {
			return Response{}, err
		}
		return respond(out.Failed, out.Successful, func(e types.ChangeMessageVisibilityBatchResultEntry) *string { return e.Id }), nil
	}
}

// respond builds a Response from a batch output's Failed and Successful entries.
func respond[E any](failed []types.BatchResultErrorEntry, successful []E, id func(E) *string) Response {
	r := Response{Failed: failed, Successful: make([]Success, len(successful))}
	for j, e := range successful {
		r.Successful[j].ID = id(e)
	}
	return r
}
