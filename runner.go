package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
)

const (
	// receiveGrace is added to the long-poll wait to make the deadline of a receive.
	receiveGrace = 5 * time.Second
	// fatalTries is how many receives in a row must fail with a fatal error (missing queue,
	// access denied) before Run gives up.
	fatalTries = 3
	// emptyShortPollPause is the pause after a short poll (wait 0) that brought nothing.
	emptyShortPollPause = time.Second
	// maxDefaultPollers caps the pollers a queue adapts up to by default (a poller per 10 units
	// of capacity).
	maxDefaultPollers = 32
)

// receiveRetry spaces receives after errors: full jitter up to 200 ms x 2^(n-1), at most 20 s.
var receiveRetry = backoff.Exponential{Base: 200 * time.Millisecond, Max: 20 * time.Second}

var (
	allSystemAttributes  = []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}
	allMessageAttributes = []string{"All"}
)

// intake is where a runner's messages go: the capacity it reserves before a receive, and the
// admission of what the receive brought. It is the only way a runner reaches the consumer.
type intake interface {
	// reserve blocks until capacity for a receive is free and reserves up to max units. idle
	// says the runner's last receive came back empty. It returns an error when ctx ends or the
	// consumer stops taking messages.
	reserve(ctx context.Context, max int, idle bool) (*reservation, error)
	// admit takes the messages of one successful receive (possibly none), each with a unit
	// taken from res. It does not block for long: messages that cannot start yet wait in the
	// strategy or behind their message group, leased. The runner gives back what is left in res.
	admit(msgs []types.Message, res *reservation)
}

// runnerConfig is what a runner needs to know; the queue fills it.
type runnerConfig struct {
	client     Client
	queueURL   string
	fifo       bool
	waitTime   time.Duration
	visibility time.Duration
	batch      int // most messages per receive, 1..10
	pollers    int // fewest pollers
	maxPollers int // most pollers
	// askOneWhenIdle makes a poller whose last receive came back empty ask for one message, so
	// that an idle queue's long poll does not hold capacity other queues could use (Group).
	askOneWhenIdle bool

	free      func() int // capacity units free now, to judge whether another poller would help
	pacer     *pacer     // when another receive is wanted
	breaker   *breaker   // whether and how much to receive (WithBreaker); nil: always
	stats     *counters
	received  func(n int, err error) // after every receive: hooks
	requested func(op string)        // before every request
	onError   func(error)
}

// runner is a queue's source of messages: between cfg.pollers and cfg.maxPollers goroutines,
// each of which reserves capacity, receives at most that many messages and hands them to the
// intake. It adapts the number of pollers to the backlog: one more when a receive comes back
// full and capacity is still free, one fewer when a receive comes back empty.
type runner struct {
	cfg     runnerConfig
	in      intake
	sdkOpts []func(*sqs.Options) // bodyInMemory, and noRetryAfterSend on a standard queue; nil for a generated mock

	succeeded atomic.Bool // a receive has succeeded: the setup reaches SQS
	empty     atomic.Bool // the last receive to come back brought nothing
}

func newRunner(cfg runnerConfig, in intake) *runner {
	r := &runner{cfg: cfg, in: in}
	// Every client's receives take the per-call options, so that a user's wrapper around an
	// *sqs.Client that passes them on is protected too (the options do nothing on a client
	// that is not the SDK's). A gomock mock (it has EXPECT) is called as the Client interface
	// reads, with no option, so that a two-matcher expectation matches.
	if !reflect.ValueOf(cfg.client).MethodByName("EXPECT").IsValid() {
		r.sdkOpts = []func(*sqs.Options){bodyInMemory}
		if !cfg.fifo {
			r.sdkOpts = append(r.sdkOpts, noRetryAfterSend)
		}
	}
	return r
}

// run receives until ctx ends, and returns nil then, or an error when receiving fails for
// good. Receives run on recv, not ctx: one in flight when ctx ends completes (its messages are
// admitted, and released if the consumer is shutting down) unless recv is cancelled too. run
// blocks until every poller has returned.
func (r *runner) run(ctx, recv context.Context) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		err   error
		start func()
	)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	start = func() { // the caller counted the poller in stats.pollers
		wg.Go(func() {
			if e := r.poll(ctx, recv, start); e != nil {
				once.Do(func() { err = e })
				stop()
			}
		})
	}
	for range r.cfg.pollers {
		r.cfg.stats.pollers.Add(1)
		start()
	}
	wg.Wait()
	return err
}

// poll is one poller's loop. It returns nil when ctx ends or it stops to shrink the pollers,
// and an error when receiving fails for good. It calls start to add a poller.
func (r *runner) poll(ctx, recv context.Context, start func()) error {
	shrunk := false // shrink took this poller off the count already
	defer func() {
		if !shrunk {
			r.cfg.stats.pollers.Add(-1)
		}
	}()
	failures := 0
	bad, badSince := 0, time.Time{} // fatal or setup failures in a row, and when they began
	attempt := ""                   // FIFO: the ReceiveRequestAttemptId a failed receive is retried with
	// idle: the last receive brought nothing. A Group's queue starts as idle, so its first long
	// poll holds one unit of the shared capacity, not a batch: otherwise the first few queues'
	// polls would hold it all and the others would not be polled until theirs returned empty.
	idle := r.cfg.askOneWhenIdle
	for ctx.Err() == nil {
		most := r.cfg.batch
		if idle && r.cfg.askOneWhenIdle {
			most = 1
		}
		for !r.cfg.pacer.claim(most) {
			// Enough is waiting or on its way. On an idle queue a poller beyond the minimum
			// stops instead of waiting its turn for an empty long poll.
			if r.empty.Load() && r.shrink() {
				shrunk = true
				return nil
			}
			if r.cfg.pacer.wait(ctx) != nil {
				return nil // shutting down
			}
		}
		n, t, err := r.permit(ctx, most)
		if err != nil {
			r.cfg.pacer.asking(-most)
			return nil // shutting down
		}
		res, err := r.in.reserve(ctx, n, idle)
		if err != nil {
			r.settle(t, n, 0)
			r.cfg.pacer.asking(-most)
			return nil // ctx ended, or the consumer stopped taking messages: shutting down
		}
		if r.cfg.breaker != nil {
			// The breaker may have opened (or be ramping) while the poller waited for capacity.
			if k := r.cfg.breaker.confirm(t, res.n); k < res.n {
				res.shrink(k)
				if k == 0 {
					r.settle(t, n, 0)
					r.cfg.pacer.asking(-most)
					continue
				}
			}
		}
		res.t = t
		if r.cfg.fifo && attempt == "" {
			attempt = fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
		}
		asked := res.n
		r.cfg.pacer.asking(asked - most) // gate counted most
		res.ask(r.cfg.pacer, asked)      // until admit counts what came as queued, or close
		began := time.Now()
		msgs, err := r.receive(recv, asked, attempt)
		r.cfg.received(len(msgs), err)
		if err != nil {
			res.close()
			r.settle(t, n, 0)
			if recv.Err() != nil {
				r.cfg.stats.abandonedReceives.Add(1)
				return nil // shutdown abandoned the receive
			}
			r.cfg.stats.receiveErrors.Add(1)
			if errors.As(err, new(*sentReceiveError)) {
				r.cfg.stats.brokenReceives.Add(1)
			}
			failures++
			kind, hint := classify(err, recv)
			err = hinted(err, hint)
			if kind == misconfigured {
				return fmt.Errorf("%w: sqsconsumer: receive from %s: %w", ErrInvalidOption, r.cfg.queueURL, err)
			}
			if kind == transient || (kind == setupFailure && r.succeeded.Load()) {
				bad = 0
			} else {
				if bad == 0 {
					badSince = time.Now()
				}
				if bad++; bad >= fatalTries && (kind == fatalFailure || time.Since(badSince) >= setupPatience) {
					return fmt.Errorf("sqsconsumer: receive from %s: %w", r.cfg.queueURL, err)
				}
			}
			r.cfg.onError(fmt.Errorf("sqsconsumer: receive from %s (failure %d in a row): %w", r.cfg.queueURL, failures, err))
			if !backoff.Sleep(ctx.Done(), receiveRetry.Delay(failures)) {
				return nil
			}
			continue
		}
		failures, bad, attempt = 0, 0, ""
		r.succeeded.Store(true)
		r.cfg.stats.receives.Add(1)
		if len(msgs) >= asked && asked == r.cfg.batch && waitedBefore(msgs, began.Add(-backlogAge)) {
			r.cfg.pacer.receiveTrip(time.Since(began)) // a receive's time, not a long poll's wait
		}
		r.cfg.pacer.received(len(msgs) >= asked)
		r.in.admit(msgs, res)
		res.close()
		r.settle(t, n, min(len(msgs), asked))
		r.cfg.pacer.update()
		idle = len(msgs) == 0
		r.empty.Store(idle)
		if idle {
			r.cfg.stats.emptyReceives.Add(1)
			if r.shrink() {
				shrunk = true
				return nil
			}
			if r.cfg.waitTime == 0 && !backoff.Sleep(ctx.Done(), emptyShortPollPause) {
				return nil
			}
			continue
		}
		if len(msgs) >= asked && asked == r.cfg.batch {
			// The queue has more: add a poller for each batch the capacity and the pacer have
			// room for, at once, so that filling the workers at a start does not take a round
			// trip (and a new connection) per poller.
			for k := min(int64(r.cfg.free()), r.cfg.pacer.room()) / int64(r.cfg.batch); k > 0 && r.grow(); k-- {
				start()
			}
		}
	}
	return nil
}

// permit waits for what the breaker allows a receive of at most most messages, and returns
// how many it may ask for, with the breaker's ticket. It returns an error, holding nothing,
// when ctx ends first.
func (r *runner) permit(ctx context.Context, most int) (int, ticket, error) {
	t := ticket{n: most}
	if r.cfg.breaker != nil {
		var err error
		if t, err = r.cfg.breaker.permit(ctx, most); err != nil {
			return 0, t, err
		}
	}
	return t.n, t, nil
}

// settle ends what permit gave a receive that brought got messages: the breaker learns how
// many came.
func (r *runner) settle(t ticket, _, got int) {
	if r.cfg.breaker != nil {
		r.cfg.breaker.done(t, got)
	}
}

// backlogAge is how long before a receive began a message it brings must have been sent for
// the receive to count as one into a backlog (more than the clocks of SQS and this host may
// disagree by).
const backlogAge = time.Second

// waitedBefore reports whether one of msgs was sent before t (SQS's SentTimestamp): the queue
// had messages waiting then, so a receive begun at t did not wait on an empty queue.
func waitedBefore(msgs []types.Message, t time.Time) bool {
	for i := range msgs {
		if ms, err := strconv.ParseInt(msgs[i].Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil && ms < t.UnixMilli() {
			return true
		}
	}
	return false
}

// grow counts one more poller and reports true, while fewer than the maximum run.
func (r *runner) grow() bool {
	for {
		n := r.cfg.stats.pollers.Load()
		if n >= int64(r.cfg.maxPollers) {
			return false
		}
		if r.cfg.stats.pollers.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// shrink counts one poller fewer and reports true, while more than the minimum run: the
// calling poller must then stop.
func (r *runner) shrink() bool {
	for {
		n := r.cfg.stats.pollers.Load()
		if n <= int64(r.cfg.pollers) {
			return false
		}
		if r.cfg.stats.pollers.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// receive makes one ReceiveMessage call for up to n messages on ctx. On a FIFO queue attempt
// is the ReceiveRequestAttemptId: the retry of a receive that failed (say, its response was
// lost) reuses it, so SQS returns the same messages instead of keeping them invisible, and
// their groups locked, for the visibility timeout.
func (r *runner) receive(ctx context.Context, n int, attempt string) ([]types.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.waitTime+receiveGrace)
	defer cancel()
	r.cfg.requested(opReceive)
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    &r.cfg.queueURL,
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             int32(r.cfg.waitTime / time.Second),
		VisibilityTimeout:           int32(r.cfg.visibility / time.Second),
		MessageSystemAttributeNames: allSystemAttributes,
		MessageAttributeNames:       allMessageAttributes,
	}
	if attempt != "" {
		in.ReceiveRequestAttemptId = &attempt
	}
	out, err := r.cfg.client.ReceiveMessage(ctx, in, r.sdkOpts...)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("sqsconsumer: ReceiveMessage returned no output")
	}
	return out.Messages, nil
}

// Names of the SQS operations, as HookRequest reports them.
const (
	opReceive    = "ReceiveMessage"
	opDelete     = "DeleteMessageBatch"
	opVisibility = "ChangeMessageVisibilityBatch"
	opSend       = "SendMessage"
)
