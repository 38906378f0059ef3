package sqsconsumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
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
	id      string   // MessageId, for reports
	handle  *string  // the message's receipt handle, as received
	seconds int32    // new visibility, for ackVisibility
	m       *Message // the message, still under the lease until the request is settled; may be nil
}

const (
	ackCallTimeout  = 30 * time.Second // per attempt, on a ctx that shutdown does not cancel
	maxAckSendsOpen = 16               // batch calls in flight at once
	// maxHold is how long, with interval 0, a partial batch waits for the first attempt of the
	// call before it: a call that stopped answering (up to ackCallTimeout) must not hold every
	// other message group's delete with it.
	maxHold = 200 * time.Millisecond
)

// ackRetry spaces the retries of an entry that may succeed later: full jitter up to
// 100 ms x 2^(n-1), at most 2 s, for as long as the message is still ours.
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
	// keep is asked before each retry of a request: nil while the message is still ours (the
	// request is retried), else why not (it is given up with that reason).
	keep func(r ackReq) error
	// settled is told of each request's outcome, once, and returns whether it counts as an
	// acknowledged delete.
	settled func(r ackReq, res sqsbatch.Result) (acked bool)
	// acked is told of n acknowledged deletes, after each batch.
	acked func(n int)
	// roundTrip, if set, is told how long each call's first attempt took.
	roundTrip func(time.Duration)
}

// harvester collects deletes and visibility changes into batches of up to size entries, sent
// when full or interval after the first entry waits. With interval 0 (FIFO queues) a batch is
// sent as soon as no call of its kind is on its first attempt, else as soon as one comes back:
// what arrives during a round trip shares the next call, so a busy FIFO queue sends full
// batches instead of one call per message, and a message waits at most about one round trip
// longer (the first attempt of the call before it), never more than maxHold. Calls run on
// their own goroutines, at most maxAckSendsOpen at once. An entry that SQS failed as the
// sender's fault is settled as failed; any other failure (a failed call, SQS's fault, an entry
// the response does not mention) is retried with backoff for as long as keep says the message
// is still ours, or until stop. Start run on a goroutine; add queues requests; close flushes
// and waits for every request to be settled.
type harvester struct {
	cfg harvesterConfig

	in      chan ackReq
	done    chan struct{}
	slots   chan struct{}
	sends   sync.WaitGroup
	ctx     context.Context // of every call and pause; ends at stop
	cancel  context.CancelFunc
	closing atomic.Bool
	// open counts the calls of each kind whose first attempt has not come back (interval 0);
	// answered wakes run when one does.
	open     [2]atomic.Int32
	answered chan struct{}
}

func newHarvester(cfg harvesterConfig) *harvester {
	h := &harvester{
		cfg: cfg,
		in:  make(chan ackReq), done: make(chan struct{}), slots: make(chan struct{}, maxAckSendsOpen),
		answered: make(chan struct{}, 1),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// add queues r. It blocks while the harvester is behind (backpressure on handlers). A request
// added once close has begun is a bug; it is settled as failed instead of sent.
func (h *harvester) add(r ackReq) {
	if h.closing.Load() {
		h.cfg.settled(r, sqsbatch.Result{Code: "Closed", Message: "sqsconsumer: internal error: acknowledgement after the harvester closed"})
		return
	}
	h.in <- r
}

// stop ends the retries and the calls in flight: what is not settled yet is settled as failed
// at once. It is safe to call more than once, and from any goroutine.
func (h *harvester) stop() { h.cancel() }

// close flushes what waits, waits until every request is settled, and stops the harvester. No
// add may follow.
func (h *harvester) close() {
	h.closing.Store(true)
	close(h.in)
	<-h.done
	h.stop() // releases the ctx
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
	// flushIdle sends what waits of each kind no call of which is on its first attempt.
	flushIdle := func() {
		for _, k := range []ackKind{ackDelete, ackVisibility} {
			if h.open[k].Load() == 0 {
				flush(k)
			}
		}
	}
	// hold bounds the wait of what flushIdle left pending (interval 0): sent after maxHold
	// whether or not the call before it has answered.
	hold := func() {
		waiting := len(pending[ackDelete])+len(pending[ackVisibility]) > 0
		switch {
		case waiting && !armed:
			timer.Reset(maxHold)
			armed = true
		case !waiting && armed:
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
				flushIdle()
				hold()
				continue
			}
			if !armed && len(pending[ackDelete])+len(pending[ackVisibility]) > 0 {
				timer.Reset(h.cfg.interval)
				armed = true
			}
		case <-timer.C:
			armed = false
			flushAll()
		case <-h.answered:
			if h.cfg.interval == 0 {
				flushIdle()
				hold()
			}
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
	h.open[k].Add(1)
	h.sends.Add(1)
	go func() {
		defer func() { <-h.slots; h.sends.Done() }()
		h.deliver(k, batch)
	}()
}

// firstAnswered counts the first attempt of a call of kind k as come back, and wakes run.
func (h *harvester) firstAnswered(k ackKind) {
	h.open[k].Add(-1)
	select {
	case h.answered <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// deliver sends one batch, retrying what may succeed later while the messages are ours, and
// settles each entry. Entries are numbered by position in each request, never by MessageId (a
// message received twice would otherwise fail the whole batch as a duplicate id).
func (h *harvester) deliver(k ackKind, batch []ackReq) {
	var send sqsbatch.Send
	if k == ackDelete {
		send = sqsbatch.Delete(h.cfg.client, h.cfg.queueURL, func(i int) *string { return batch[i].handle },
			func() { h.cfg.requested(opDelete) })
	} else {
		send = sqsbatch.ChangeVisibility(h.cfg.client, h.cfg.queueURL, func(i int) (*string, int32) { return batch[i].handle, batch[i].seconds },
			func() { h.cfg.requested(opVisibility) })
	}
	first := true
	attempt := send
	send = func(ctx context.Context, idx []int) (sqsbatch.Response, error) {
		began := time.Now()
		resp, err := attempt(ctx, idx)
		if first {
			first = false
			if err == nil && h.cfg.roundTrip != nil {
				h.cfg.roundTrip(time.Since(began))
			}
			h.firstAnswered(k)
		}
		return resp, err
	}
	defer func() {
		if first { // settled without a call (stopped before it)
			h.firstAnswered(k)
		}
	}()
	policy := sqsbatch.Policy{Backoff: ackRetry, Timeout: ackCallTimeout, Permanent: permanent, Ctx: h.ctx}
	if h.cfg.keep != nil {
		policy.Keep = func(i int) error { return h.cfg.keep(batch[i]) }
	}
	acked := 0
	sqsbatch.Do(len(batch), policy, send, func(i int, r sqsbatch.Result) {
		if h.cfg.settled(batch[i], r) {
			acked++
		}
	})
	if acked > 0 {
		h.cfg.acked(acked)
	}
}
