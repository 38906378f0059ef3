package sqsconsumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
)

// AckError reports a delete or visibility change that did not succeed after its retries.
type AckError struct {
	Op          string // "delete" or "change visibility"
	MessageID   string
	Code        string // SQS's error code for a failed batch entry, "" when the whole call failed
	SenderFault bool   // SQS blamed the request (not retried)
	Err         error  // the call's error, or the entry's message
}

func (e *AckError) Error() string {
	s := "sqsconsumer: " + e.Op + " message " + e.MessageID + " failed"
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *AckError) Unwrap() error { return e.Err }

type ackKind uint8

const (
	ackDelete ackKind = iota
	ackVisibility
)

func (k ackKind) String() string {
	if k == ackDelete {
		return "delete"
	}
	return "change visibility"
}

// ackReq is one delete or visibility change waiting for its batch.
type ackReq struct {
	kind    ackKind
	id      string  // MessageId, for reports
	handle  *string // the message's receipt handle, as received
	seconds int32   // new visibility, for ackVisibility
}

const (
	ackAttempts     = 4                // tries of a batch entry that SQS says may succeed later
	ackCallTimeout  = 30 * time.Second // per attempt, on a ctx that shutdown does not cancel
	maxAckSendsOpen = 16               // batch calls in flight at once
)

var ackRetry = backoff.Exponential{Base: 100 * time.Millisecond, Max: 2 * time.Second}

// harvesterConfig configures a harvester: where to send, how to batch, and callbacks for what
// became of each request.
type harvesterConfig struct {
	client   Client
	queueURL string
	size     int           // entries per batch, 1..10
	interval time.Duration // how long the first entry of a batch may wait; 0 sends at once
	// requested is called before every batch call with its operation name.
	requested func(op string)
	// acked is told of n deletes SQS accepted.
	acked func(n int)
	// failed is told of a request that failed for good.
	failed func(k ackKind, e *AckError)
}

// harvester collects deletes and visibility changes into batches of up to size entries, sent
// when full or interval after the first entry waits (at once when interval is 0). Calls run on
// their own goroutines, at most maxAckSendsOpen at once; failed entries that SQS marks as not
// the sender's fault are retried with backoff, and the rest are reported. Start run on a
// goroutine; add queues requests; close flushes and waits.
type harvester struct {
	cfg harvesterConfig

	in    chan ackReq
	done  chan struct{}
	slots chan struct{}
	sends sync.WaitGroup
}

func newHarvester(cfg harvesterConfig) *harvester {
	return &harvester{
		cfg: cfg,
		in:  make(chan ackReq), done: make(chan struct{}), slots: make(chan struct{}, maxAckSendsOpen),
	}
}

// add queues r. It blocks while the harvester is behind (backpressure on handlers).
func (h *harvester) add(r ackReq) { h.in <- r }

// close flushes what waits, waits for every call in flight, and stops the harvester. No add may
// follow.
func (h *harvester) close() {
	close(h.in)
	<-h.done
}

func (h *harvester) run() {
	defer close(h.done)
	var pending [2][]ackReq
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func(k ackKind) {
		if len(pending[k]) > 0 {
			h.send(k, pending[k])
			pending[k] = make([]ackReq, 0, h.cfg.size)
		}
	}
	flushAll := func() {
		flush(ackDelete)
		flush(ackVisibility)
		if armed {
			timer.Stop()
			armed = false
		}
	}
	for {
		select {
		case r, ok := <-h.in:
			if !ok {
				flushAll()
				h.sends.Wait()
				return
			}
			pending[r.kind] = append(pending[r.kind], r)
			if len(pending[r.kind]) >= h.cfg.size {
				flush(r.kind)
			}
			if h.cfg.interval == 0 {
				h.drainInto(&pending, flush)
				flushAll()
				continue
			}
			if !armed && len(pending[ackDelete])+len(pending[ackVisibility]) > 0 {
				timer.Reset(h.cfg.interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			flushAll()
		}
	}
}

// drainInto moves what is already queued into pending without waiting, so that acks arriving
// together still share a batch when the interval is 0.
func (h *harvester) drainInto(pending *[2][]ackReq, flush func(ackKind)) {
	for {
		select {
		case r, ok := <-h.in:
			if !ok {
				// The closed channel is seen again by run's loop.
				return
			}
			pending[r.kind] = append(pending[r.kind], r)
			if len(pending[r.kind]) >= h.cfg.size {
				flush(r.kind)
			}
		default:
			return
		}
	}
}

func (h *harvester) send(k ackKind, batch []ackReq) {
	h.slots <- struct{}{}
	h.sends.Add(1)
	go func() {
		defer func() { <-h.slots; h.sends.Done() }()
		h.deliver(k, batch)
	}()
}

// deliver sends one batch, retrying what may succeed later.
func (h *harvester) deliver(k ackKind, batch []ackReq) {
	for attempt := 1; ; attempt++ {
		failed, err := h.call(k, batch)
		if err != nil {
			if attempt < ackAttempts && !permanent(err) {
				backoff.Sleep(nil, ackRetry.Delay(attempt))
				continue
			}
			for _, r := range batch {
				h.cfg.failed(k, &AckError{Op: k.String(), MessageID: r.id, Err: err})
			}
			return
		}
		h.count(k, len(batch)-len(failed))
		var retry []ackReq
		for i, f := range failed {
			r := batch[i]
			if !f.SenderFault && attempt < ackAttempts {
				retry = append(retry, r)
				continue
			}
			h.cfg.failed(k, &AckError{Op: k.String(), MessageID: r.id, Code: aws.ToString(f.Code), SenderFault: f.SenderFault,
				Err: errors.New(aws.ToString(f.Message))})
		}
		if len(retry) == 0 {
			return
		}
		batch = retry
		backoff.Sleep(nil, ackRetry.Delay(attempt))
	}
}

func (h *harvester) count(k ackKind, n int) {
	if k == ackDelete && n > 0 {
		h.cfg.acked(n)
	}
}

// call makes one batch request with entry ids numbered by position, never by MessageId (a
// message received twice would otherwise fail the whole batch as a duplicate id). It returns
// the failed entries by position.
func (h *harvester) call(k ackKind, batch []ackReq) (map[int]types.BatchResultErrorEntry, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ackCallTimeout)
	defer cancel()
	op := opDelete
	if k == ackVisibility {
		op = opVisibility
	}
	h.cfg.requested(op)
	var failed []types.BatchResultErrorEntry
	if k == ackDelete {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
		for i, r := range batch {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: batchid.For(i), ReceiptHandle: r.handle}
		}
		out, err := h.cfg.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &h.cfg.queueURL, Entries: entries})
		if err != nil {
			return nil, err
		}
		failed = out.Failed
	} else {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
		for i, r := range batch {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: batchid.For(i), ReceiptHandle: r.handle, VisibilityTimeout: r.seconds}
		}
		out, err := h.cfg.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &h.cfg.queueURL, Entries: entries})
		if err != nil {
			return nil, err
		}
		failed = out.Failed
	}
	byPos := make(map[int]types.BatchResultErrorEntry, len(failed))
	for _, f := range failed {
		if i, ok := batchid.Position(f.Id, len(batch)); ok {
			byPos[i] = f
		} // else not an entry we sent: nothing to retry
	}
	return byPos, nil
}
