package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// ErrInvalidOption is wrapped by every error New returns for a bad argument or option; the
// message names the option.
var ErrInvalidOption = errors.New("sqsconsumer: invalid option")

// Defaults of the options.
const (
	DefaultConcurrency       = 10
	DefaultPollers           = 1
	DefaultWaitTime          = 20 * time.Second
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultMaxLease          = time.Hour
	DefaultAckFlushInterval  = 100 * time.Millisecond
	DefaultShutdownTimeout   = 30 * time.Second
	MaxVisibilityTimeout     = 12 * time.Hour
	maxBatch                 = 10
)

// Option configures a Consumer. Options are applied and validated by New, in order; a later
// option overrides an earlier one.
type Option func(*settings) error

// Backoff returns how long a message that failed on its receiveCount-th delivery stays
// invisible before it is retried.
type Backoff func(receiveCount int) time.Duration

// ExponentialBackoff returns base x 2^(receiveCount-1), capped at maxDelay, with full jitter
// (a uniform draw up to that ceiling). The default is ExponentialBackoff(time.Second,
// 15*time.Minute).
func ExponentialBackoff(base, maxDelay time.Duration) Backoff {
	e := backoff.Exponential{Base: base, Max: maxDelay}
	return e.Delay
}

type settings struct {
	concurrency     int
	strategy        worker.Factory
	pollers         int
	maxPollers      int // 0: derived from the capacity
	waitTime        time.Duration
	receiveBatch    int
	ackBatch        int
	ackInterval     time.Duration
	visibility      time.Duration
	maxLease        time.Duration
	backoff         Backoff
	shutdownTimeout time.Duration
	weight          func(*Message) int64
	onError         func(error)
	handlerTimeout  time.Duration
	groupLimit      int
	sender          Sender
	stopPolicy      StopPolicy
	finishReceives  bool
	hooks           []Hook
	logger          *slog.Logger // nil: slog.Default()
	repeats         *repeats     // rate-limits the consumer's identical log lines
	summary         time.Duration
	breaker         *Breaker // resolved; nil: no breaker
	rateLimit       float64  // handler starts per second; 0: none
	rateBurst       int
	// shared names the options set that apply to what a Group's queues share (concurrency,
	// strategy, shutdown, stop policy), so that Group.Add can refuse them.
	shared []string
}

func defaults() settings {
	return settings{
		concurrency:     DefaultConcurrency,
		strategy:        pool.Factory(),
		pollers:         DefaultPollers,
		waitTime:        DefaultWaitTime,
		receiveBatch:    maxBatch,
		ackBatch:        maxBatch,
		ackInterval:     DefaultAckFlushInterval,
		visibility:      DefaultVisibilityTimeout,
		maxLease:        DefaultMaxLease,
		backoff:         ExponentialBackoff(time.Second, 15*time.Minute),
		shutdownTimeout: DefaultShutdownTimeout,
	}
}

// applyOptions applies opts, in order, to the defaults.
func applyOptions(opts []Option) (settings, error) {
	s := defaults()
	for i, o := range opts {
		if o == nil {
			return s, invalid("option", "option %d is nil", i)
		}
		if err := o(&s); err != nil {
			return s, err
		}
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.repeats = &repeats{}
	if s.onError == nil {
		logger, r := s.logger, s.repeats
		s.onError = func(err error) {
			level := slog.LevelError
			if errors.As(err, new(*sentReceiveError)) {
				level = slog.LevelWarn // Stats.BrokenReceives: nothing is lost, it comes back later
			}
			logLimited(context.Background(), logger, r, level, "sqsconsumer: error", err)
		}
	}
	return s, nil
}

func invalid(option string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidOption, option, fmt.Sprintf(format, args...))
}

// WithConcurrency bounds the handlers running at once (default 10): the pool's maximum
// workers, or the semaphore's total weight. n must be >= 1.
func WithConcurrency(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return invalid("WithConcurrency", "%d, want >= 1", n)
		}
		s.concurrency = n
		s.shared = append(s.shared, "WithConcurrency")
		return nil
	}
}

// WithStrategy selects the worker strategy, e.g. semaphore.Factory() or pool.Factory(opts...)
// (the default is pool.Factory(): an elastic pool with a waiting room of
// worker.DefaultWaitingRoom(concurrency), the cap on the prefetch).
// New calls f with the concurrency; its error is returned wrapped in ErrInvalidOption.
func WithStrategy(f worker.Factory) Option {
	return func(s *settings) error {
		if f == nil {
			return invalid("WithStrategy", "nil factory")
		}
		s.strategy = f
		s.shared = append(s.shared, "WithStrategy")
		return nil
	}
}

// WithPollers sets the fewest goroutines that receive from the queue at once (default 1).
// Each has at most one ReceiveMessage call in flight. Pollers adapt between this and
// WithMaxPollers: one more is started when a receive comes back full and capacity is still
// free (additive increase); a poller whose receive comes back empty stops while more than the
// minimum run, so an idle queue is polled by the minimum alone. n must be >= 1.
func WithPollers(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return invalid("WithPollers", "%d, want >= 1", n)
		}
		s.pollers = n
		return nil
	}
}

// WithMaxPollers sets the most pollers the consumer adapts up to (default: a poller per 10
// units of capacity, at least WithPollers' number and at most 32 unless WithPollers asks for
// more; for a queue of a Group, WithPollers' number). WithMaxPollers(n) with WithPollers(n)
// fixes the count. n must be >= WithPollers'.
func WithMaxPollers(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return invalid("WithMaxPollers", "%d, want >= 1", n)
		}
		s.maxPollers = n
		return nil
	}
}

// WithWaitTime sets the long-poll wait of each ReceiveMessage (default 20 s, the most SQS
// allows); 0 short-polls, and an empty short poll pauses for a second before the next. d must
// be whole seconds from 0 to 20 s.
//
// The HTTP client behind the Client must not time out before the wait: the SDK's default
// client does not, but a custom one needs a timeout above WaitTime + a few seconds.
func WithWaitTime(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 || d > 20*time.Second || d%time.Second != 0 {
			return invalid("WithWaitTime", "%v, want whole seconds from 0 to 20s", d)
		}
		s.waitTime = d
		return nil
	}
}

// WithReceiveBatchSize caps how many messages one ReceiveMessage asks for (default 10, SQS's
// maximum). A receive never asks for more than the free capacity either. n must be 1..10.
func WithReceiveBatchSize(n int) Option {
	return func(s *settings) error {
		if n < 1 || n > maxBatch {
			return invalid("WithReceiveBatchSize", "%d, want 1..10", n)
		}
		s.receiveBatch = n
		return nil
	}
}

// WithAckBatchSize sets how many entries are collected into one DeleteMessageBatch or
// ChangeMessageVisibilityBatch (backoff and release) before it is sent (default 10). n must be
// 1..10.
func WithAckBatchSize(n int) Option {
	return func(s *settings) error {
		if n < 1 || n > maxBatch {
			return invalid("WithAckBatchSize", "%d, want 1..10", n)
		}
		s.ackBatch = n
		return nil
	}
}

// WithAckFlushInterval sets how long an acknowledgement may wait for its batch to fill before
// the batch is sent anyway (default 100 ms). 0 sends a batch as soon as no call of its kind
// (delete, visibility change) is on its first attempt, else as soon as one comes back or 200 ms
// have passed (a hung call does not hold the others up): acks that arrive during a round trip
// share the next call, and none waits more than a round trip or 200 ms. FIFO queues always
// work this way, because a group stays locked until its delete lands. d must be >= 0.
func WithAckFlushInterval(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return invalid("WithAckFlushInterval", "%v, want >= 0", d)
		}
		s.ackInterval = d
		return nil
	}
}

// WithVisibilityTimeout sets the visibility requested on each receive and by each lease
// extension (default 30 s). d must be whole seconds from 1 s to 12 h, as SQS takes it (like
// WithWaitTime).
func WithVisibilityTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second || d > MaxVisibilityTimeout || d%time.Second != 0 {
			return invalid("WithVisibilityTimeout", "%v, want whole seconds from 1s to 12h", d)
		}
		s.visibility = d
		return nil
	}
}

// WithMaxLease caps how long the lease keeps a held message invisible, counted from its
// receipt (default 1 h, at most SQS's 12 h). When the cap is reached the handler's ctx is
// cancelled with ErrLeaseExpired before the visibility lapses. 0 turns the lease off: a message
// is then invisible only for the visibility timeout. d must be from 0 to 12 h.
func WithMaxLease(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 || d > MaxVisibilityTimeout {
			return invalid("WithMaxLease", "%v, want 0..12h", d)
		}
		s.maxLease = d
		return nil
	}
}

// WithBackoff sets how long a failed message stays invisible before it is retried (default
// ExponentialBackoff(time.Second, 15*time.Minute) on ApproximateReceiveCount). Delays are
// rounded up to whole seconds and capped at 12 h. b must not be nil; see WithoutBackoff.
func WithBackoff(b Backoff) Option {
	return func(s *settings) error {
		if b == nil {
			return invalid("WithBackoff", "nil policy (use WithoutBackoff)")
		}
		s.backoff = b
		return nil
	}
}

// WithoutBackoff leaves a failed message's visibility as it is, so it is retried when the
// visibility from its receipt or last lease extension lapses.
func WithoutBackoff() Option {
	return func(s *settings) error { s.backoff = nil; return nil }
}

// WithShutdownTimeout sets how long running handlers may go on after Run's ctx is cancelled
// before their ctx is cancelled with ErrShutdownTimeout (default 30 s). Acknowledgements that
// keep failing (an outage) are retried for d more (at least 5 s) and then given up and
// reported, so Run returns within about twice d of the cancel whatever SQS does. d must be
// >= 0.
func WithShutdownTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return invalid("WithShutdownTimeout", "%v, want >= 0", d)
		}
		s.shutdownTimeout = d
		s.shared = append(s.shared, "WithShutdownTimeout")
		return nil
	}
}

// WithWeight sets each message's weight: its share of the concurrency while its handler
// runs, for strategies that weigh tasks (semaphore). The default weighs every message 1. A
// message heavier than the concurrency can never run: it is reported and retried by the
// backoff policy (and reaches the queue's DLQ, if it has one).
func WithWeight(f func(*Message) int64) Option {
	return func(s *settings) error {
		if f == nil {
			return invalid("WithWeight", "nil function")
		}
		s.weight = f
		return nil
	}
}

// WithErrorHandler sets the function that receives errors the consumer handles itself:
// failed receives, deletes and visibility changes (as *AckError with the message id), and
// refused messages. It is called from the consumer's goroutines and must not block long. The
// default logs them with the logger (WithLogger) at level Error, but a receive that failed
// after its request was sent (Stats.BrokenReceives) at Warn.
func WithErrorHandler(f func(error)) Option {
	return func(s *settings) error {
		if f == nil {
			return invalid("WithErrorHandler", "nil function")
		}
		s.onError = f
		return nil
	}
}

// WithHandlerTimeout bounds each handler call: its ctx ends at the deadline with cause
// ErrHandlerTimeout, and the message is treated as failed (retried by the backoff policy) even
// if the handler then returns nil. 0, the default, sets no bound. d must be >= 0.
func WithHandlerTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return invalid("WithHandlerTimeout", "%v, want >= 0", d)
		}
		s.handlerTimeout = d
		return nil
	}
}

// WithGroupLimit caps the handlers running at once for one MessageGroupId on a standard queue
// (SQS fair queues use group ids as tenant ids), so one tenant's slow messages cannot take every
// slot. A group's messages beyond the limit wait, up to the limit of them, holding capacity;
// more than that are handed back to SQS to be received again a second later, each message at
// most once (a hand-back is a receive: it counts toward a redrive policy's maxReceiveCount, so
// keep that at 2 or more); a message that comes back waits in its group's line. Messages
// without a group id are not limited. On a FIFO queue the limit is always 1, in order, and
// this option changes nothing. 0, the default, sets no limit. n must be >= 0.
func WithGroupLimit(n int) Option {
	return func(s *settings) error {
		if n < 0 {
			return invalid("WithGroupLimit", "%d, want >= 0", n)
		}
		s.groupLimit = n
		return nil
	}
}

// WithHooks adds hooks (see Hook). Each must implement at least one Hook* interface.
func WithHooks(hooks ...Hook) Option {
	return func(s *settings) error {
		for i, h := range hooks {
			switch h.(type) {
			case HookRequest, HookReceive, HookHandlerStart, HookHandlerEnd, HookAck, HookAckFailure, HookLeaseExtended, HookLeaseLost, HookBreaker:
				s.hooks = append(s.hooks, h)
			default:
				return invalid("WithHooks", "hook %d (%T) implements no Hook interface", i, h)
			}
		}
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()). The consumer logs, with the queue URL
// as an attribute: its effective settings at Info when Run starts and its report at Info when
// Run returns (at Error when Run failed); errors it handles itself (failed receives, deletes,
// visibility changes) at Error, but a receive that failed after its request was sent
// (Stats.BrokenReceives) at Warn; a failed handler at Warn, with the message id, the receive
// count and, for a panic, the stack; and each handled message at Debug. So at the usual Info
// level a healthy consumer logs two lines, and problems show. Identical failures (the same
// text, whatever the numbers in it) are logged five times per 10 s at most: the next line
// logged for one says how many repeats were left out, and the stop line how many in all. A WithErrorHandler
// replaces the Error-level logging of the errors it receives (and gets every one). l must not
// be nil.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return invalid("WithLogger", "nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithSender sets the client Reroute sends with. By default the consumer's own client is used
// when it can send (*sqs.Client and sqstest.Server can). s must not be nil.
func WithSender(s Sender) Option {
	return func(st *settings) error {
		if s == nil {
			return invalid("WithSender", "nil sender")
		}
		st.sender = s
		return nil
	}
}

// WithStopPolicy makes Run stop by itself when p says so (see StopPolicy). p must not be nil.
func WithStopPolicy(p StopPolicy) Option {
	return func(s *settings) error {
		if p == nil {
			return invalid("WithStopPolicy", "nil policy")
		}
		s.stopPolicy = p
		s.shared = append(s.shared, "WithStopPolicy")
		return nil
	}
}

// WithFinishReceives makes shutdown wait for a receive in flight (up to the long-poll wait plus
// a few seconds) instead of cancelling it once nothing else is left to do; what the receive
// brings is released at once. By default the receive is cancelled, so Run returns within about
// a second on an idle queue, and messages SQS may have handed to the cancelled receive come
// back after their visibility timeout (Stats.AbandonedReceives counts such receives). Choose
// this when a long visibility timeout makes that wait costlier than the long poll. For a Group
// it applies to every queue.
func WithFinishReceives() Option {
	return func(s *settings) error {
		s.finishReceives = true
		s.shared = append(s.shared, "WithFinishReceives")
		return nil
	}
}

// WithLogSummary logs a summary of the consumer's counters at Info every d while Run runs:
// what was received, handled, acked and failed since the last summary, the rate, and what is
// in flight. 0, the default, logs none. d must be 0 or at least a second.
func WithLogSummary(d time.Duration) Option {
	return func(s *settings) error {
		if d != 0 && d < time.Second {
			return invalid("WithLogSummary", "%v, want 0 or >= 1s", d)
		}
		s.summary = d
		return nil
	}
}

// WithBreaker gives the queue a circuit breaker configured by b (see Breaker; the zero Breaker
// is the recommended settings): when handler failures say the downstream is down, the queue
// stops receiving, releases the messages that wait to start, and probes until the downstream
// is back, so that an outage does not walk every message into the dead-letter queue. Invalid
// fields are an error. For a Group, each queue has a breaker of its own (passed to NewGroup,
// every queue gets one), so one failing downstream does not stop the other queues.
func WithBreaker(b Breaker) Option {
	return func(s *settings) error {
		r, err := b.resolved()
		if err != nil {
			return err
		}
		s.breaker = &r
		return nil
	}
}

// WithRateLimit bounds how fast the queue's handlers start: perSecond on average, with bursts
// of up to burst messages (a token bucket, golang.org/x/time/rate). A message takes its token
// when a worker is about to run it; while it waits for one it is held (and leased) and the
// worker counts as busy, and at shutdown a waiting message is released at once. The prefetch
// is sized by the rate, not only by the handler time, so few messages wait. A retried message
// takes a token again. perSecond must be above 0 and not infinite, burst at least 1. For a
// Group, each queue has a limit of its own.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(s *settings) error {
		if !(perSecond > 0) || math.IsInf(perSecond, 0) {
			return invalid("WithRateLimit", "%v per second, want > 0", perSecond)
		}
		if burst < 1 {
			return invalid("WithRateLimit", "burst %d, want >= 1", burst)
		}
		s.rateLimit, s.rateBurst = perSecond, burst
		return nil
	}
}
