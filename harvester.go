package sqsconsumer

import (
	"sync"
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

// ackPolicy is how hard the harvester tries: a batch entry that SQS says may succeed later
// (or does not mention) is retried, up to ackAttempts calls, each on a ctx shutdown does not
// cancel.
var ackPolicy = sqsbatch.Policy{Attempts: ackAttempts, Backoff: ackRetry, Timeout: ackCallTimeout, Permanent: permanent}

// deliver sends one batch, retrying what may succeed later, and reports each entry's outcome.
// Entries are numbered by position in each request, never by MessageId (a message received
// twice would otherwise fail the whole batch as a duplicate id).
func (h *harvester) deliver(k ackKind, batch []ackReq) {
	var send sqsbatch.Send
	if k == ackDelete {
		send = sqsbatch.Delete(h.cfg.client, h.cfg.queueURL, func(i int) *string { return batch[i].handle },
			func() { h.cfg.requested(opDelete) })
	} else {
		send = sqsbatch.ChangeVisibility(h.cfg.client, h.cfg.queueURL, func(i int) (*string, int32) { return batch[i].handle, batch[i].seconds },
			func() { h.cfg.requested(opVisibility) })
	}
	acked := 0
	sqsbatch.Do(len(batch), ackPolicy, send, func(i int, r sqsbatch.Result) {
		if r.OK {
			acked++
			return
		}
		h.cfg.failed(k, &AckError{Op: k.String(), MessageID: batch[i].id, Code: r.Code, SenderFault: r.SenderFault, Err: r.Error()})
	})
	if k == ackDelete && acked > 0 {
		h.cfg.acked(acked)
	}
}
