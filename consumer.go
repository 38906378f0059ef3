// Package sqsconsumer consumes Amazon SQS queues: pass a Handler, tune concurrency with
// options, and call Run. See the README for an overview, and the examples.
package sqsconsumer

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/time/rate"

	"github.com/sqsconsumer/sqsconsumer/internal/lease"
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
	eng *engine
	q   *queue
}

// New returns a consumer of the queue at queueURL that runs h on each message. It validates its
// arguments and options: a nil client or handler, an empty queue URL or an invalid option is
// an error wrapping ErrInvalidOption that names it. So is an *sqs.Client that cannot work: one
// with neither a region nor an endpoint, or whose HTTP client times out before a long poll of
// the wait time (WithWaitTime) plus 5 s can return. New starts no goroutine and makes no call.
//
// A queue whose URL ends in ".fifo" is a FIFO queue: messages of one MessageGroupId are handled
// one at a time in received order, groups in parallel, and acks are sent without waiting for
// a batch to fill (see WithAckFlushInterval).
func New(client Client, queueURL string, h Handler, opts ...Option) (*Consumer, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(s)
	if err != nil {
		return nil, err
	}
	q, err := newQueue(eng, client, queueURL, h, s, false)
	if err != nil {
		return nil, err
	}
	eng.queues = []*queue{q}
	return &Consumer{eng: eng, q: q}, nil
}

// Report is the account of a finished Run.
type Report struct {
	Stats
	// Err is what Run returned (for a queue of a Group, what its receiving failed with).
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
func (c *Consumer) Stats() Stats { return c.q.stats.snapshot() }

// Report returns the account of the finished Run, or nil while Run has not returned.
func (c *Consumer) Report() *Report { return c.q.finalReport() }

// Run receives and handles messages until ctx is cancelled, a StopPolicy says so, or a
// receive fails for good. It blocks.
//
// When ctx is cancelled Run shuts down in phases. Stop intake: no new receive starts, and the
// messages that wait for a worker or behind their message group are released at once
// (visibility 0). Drain: running handlers finish for up to the shutdown timeout, then their
// ctx is cancelled with ErrShutdownTimeout and they are waited for; a receive still in flight
// may complete meanwhile, and what it brings is released. Then a receive still in flight is
// cancelled (what SQS may have handed it comes back after the visibility timeout; the report
// counts it in AbandonedReceives), and acknowledgements are flushed with a ctx of their own.
// Run returns nil once every handler has returned and every goroutine it started has exited.
//
// Run returns an error, after the same shutdown, when receiving fails for good: three receives
// in a row fail because the queue does not exist, access is denied, the credentials are
// rejected or no endpoint can be resolved (no region); or, before any receive has succeeded,
// receives have failed for 10 s because SQS cannot be reached as configured (credentials that
// cannot be had, a connection refused, a host name that does not resolve, a TLS certificate
// that does not verify); or a receive finds that the HTTP client times out before a long poll
// can return. The error says what to check. Other failures (throttling, server errors, a
// network that fails once receives have succeeded) are reported to the error handler and
// retried with a backoff for as long as they last. A second call returns ErrAlreadyRun at once.
func (c *Consumer) Run(ctx context.Context) error { return c.eng.run(ctx) }

// queue is the consumption of one queue: its runner, lanes, lease, harvester, counters and
// hooks. A Consumer has one; a Group has one per queue, all feeding one engine.
type queue struct {
	client  Client
	url     string
	handler Handler
	s       settings
	fifo    bool
	eng     *engine
	member  *admMember // the queue's place in a Group's admission; nil for a Consumer

	runner    *runner
	pacer     *pacer
	lanes     *lanes         // nil without message groups to keep in line
	lease     *lease.Manager // nil when the lease is off
	harvester *harvester
	stats     counters
	hooks     hooks
	breaker   *breaker      // nil without WithBreaker
	gate      *rate.Limiter // handler starts (WithRateLimit); nil: none

	waitMu  sync.Mutex
	waitSet map[*Message]struct{} // with a breaker: messages waiting in the strategy, unstarted

	repeats *repeats // rate-limits identical log lines (shared with the default error handler)

	mu        sync.Mutex
	ackErrors []error // the first maxReportedErrors, for the report
	runErr    error
	report    *Report
}

const maxReportedErrors = 100

// newQueue validates the queue's own arguments and builds its parts; it starts nothing.
func newQueue(eng *engine, client Client, queueURL string, h Handler, s settings, inGroup bool) (*queue, error) {
	if client == nil || (reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil()) {
		return nil, invalid("client", "nil")
	}
	if strings.TrimSpace(queueURL) == "" {
		return nil, invalid("queueURL", "empty")
	}
	if h == nil {
		return nil, invalid("handler", "nil")
	}
	if err := checkClient(client, s.waitTime); err != nil {
		return nil, err
	}
	if s.sender == nil {
		s.sender, _ = client.(Sender)
	}
	q := &queue{client: client, url: queueURL, handler: h, s: s, fifo: strings.HasSuffix(queueURL, ".fifo"), eng: eng, repeats: s.repeats}
	q.stats.concurrency = eng.concurrency
	q.hooks = sortHooks(s.hooks)
	if q.fifo {
		q.s.ackInterval = 0 // a group stays locked until its delete lands
	}
	units := eng.strategy.Free()
	if q.fifo || s.groupLimit > 0 {
		q.lanes = newLanes(q.fifo, s.groupLimit, units)
	}
	switch {
	case s.maxPollers == 0 && inGroup:
		q.s.maxPollers = s.pollers
	case s.maxPollers == 0:
		q.s.maxPollers = max(s.pollers, min(maxDefaultPollers, units/maxBatch))
	case s.maxPollers < s.pollers:
		return nil, invalid("WithMaxPollers", "%d, below WithPollers' %d", s.maxPollers, s.pollers)
	}
	if s.maxLease > 0 {
		q.lease = lease.New(lease.Config{
			Client: client, QueueURL: queueURL, Visibility: s.visibility, MaxTotal: s.maxLease,
			OnError: q.reportError,
			Extended: func(n int) {
				q.stats.leaseExtended.Add(int64(n))
				for _, h := range q.hooks.leaseExtends {
					q.contain("OnLeaseExtended hook", func() { h.OnLeaseExtended(queueURL, n) })
				}
			},
			Called: func() { q.requested(opVisibility) },
		})
	}
	q.pacer = newPacer(eng.concurrency, q.stats.calls.Load, q.stats.busy.Load, !inGroup)
	q.harvester = newHarvester(harvesterConfig{
		client: client, queueURL: queueURL, size: s.ackBatch, interval: q.s.ackInterval,
		requested: q.requested,
		acked: func(n int) {
			q.stats.acked.Add(int64(n))
			for _, h := range q.hooks.ack {
				q.contain("OnAck hook", func() { h.OnAck(queueURL, n) })
			}
		},
		keep:      q.stillOurs,
		settled:   q.settle,
		roundTrip: func(d time.Duration) { q.pacer.roundTrip(d) },
	})
	if s.breaker != nil {
		q.waitSet = map[*Message]struct{}{}
		q.breaker = newBreaker(*s.breaker, int64(units), queueURL, &q.stats, q.stats.inFlight.Load, q.releaseWaiting, q.breakerChanged)
	}
	if s.rateLimit > 0 {
		q.gate = rate.NewLimiter(rate.Limit(s.rateLimit), s.rateBurst)
		q.pacer.maxRate = s.rateLimit
	}
	q.runner = newRunner(runnerConfig{
		client: client, queueURL: queueURL, fifo: q.fifo,
		waitTime: s.waitTime, visibility: s.visibility, batch: s.receiveBatch,
		pollers: s.pollers, maxPollers: q.s.maxPollers, askOneWhenIdle: inGroup,
		free:    eng.strategy.Free,
		pacer:   q.pacer,
		breaker: q.breaker,
		stats:   &q.stats,
		received: func(n int, err error) {
			for _, h := range q.hooks.receive {
				q.contain("OnReceive hook", func() { h.OnReceive(queueURL, n, err) })
			}
		},
		requested: q.requested,
		onError:   q.reportError,
	}, q)
	return q, nil
}

// reserve implements intake: capacity for one receive, through the Group's admission if the
// queue is in one.
func (q *queue) reserve(ctx context.Context, most int, idle bool) (*reservation, error) {
	if q.member != nil {
		return q.eng.adm.reserve(ctx, q.member, q.eng.strategy, most, idle)
	}
	n, err := q.eng.strategy.Reserve(ctx, most)
	if err != nil {
		return nil, err
	}
	return &reservation{s: q.eng.strategy, n: n}, nil
}

// reportError passes err to the error handler, which must not take the consumer down with it.
func (q *queue) reportError(err error) {
	var ae *AckError
	if errors.As(err, &ae) {
		q.mu.Lock()
		if len(q.ackErrors) < maxReportedErrors {
			q.ackErrors = append(q.ackErrors, err)
		}
		q.mu.Unlock()
	}
	defer func() { _ = recover() }() // a panicking error handler has nowhere left to report to
	q.s.onError(err)
}

// finish writes the queue's report and logs it; Run calls it last.
func (q *queue) finish(runErr error, timedOut bool, took time.Duration) {
	q.mu.Lock()
	q.runErr = runErr
	q.report = &Report{Stats: q.stats.snapshot(), Err: runErr, ShutdownTimedOut: timedOut, AckErrors: q.ackErrors}
	r := q.report
	q.mu.Unlock()
	q.contain("logger", func() { q.logStop(r, took) })
}

func (q *queue) finalReport() *Report {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.report
}
