package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// SQSClient is what the bridge calls on SQS: the consumer's calls plus queue attributes for
// readiness. *sqs.Client and sqstest.Server satisfy it.
type SQSClient interface {
	sqsconsumer.Client
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// ErrRedisUnreachable is returned by Run when Redis does not answer at start.
var ErrRedisUnreachable = errors.New("sqs2sidekiq: redis unreachable")

// ErrTimestampsMismatch is returned by Run when the configured timestamps do not match the
// Sidekiq processes registered in Redis.
var ErrTimestampsMismatch = errors.New("sqs2sidekiq: timestamps do not match Sidekiq")

// Bridge moves SNS notifications from SQS queues into Sidekiq.
type Bridge struct {
	cfg    *Config
	sqs    SQSClient
	redis  redis.UniversalClient
	enq    *Enqueuer
	group  *sqsconsumer.Group
	logger *slog.Logger

	enqueued, unknownDeleted, unknownKept, nonSNSDeleted, nonSNSKept, redisErrors atomic.Int64
	redisUp                                                                       atomic.Bool

	// outage tracks a run of failed pushes so that it is logged once, not per message.
	outageMu    sync.Mutex
	outageSince time.Time
	outageFails int64
	nonSNSLog   burst
}

// NewBridge builds the bridge; it starts nothing. opts are passed to the consumer group after
// the daemon's own (tests shorten waits with them).
func NewBridge(cfg *Config, client SQSClient, rdb redis.UniversalClient, logger *slog.Logger, opts ...sqsconsumer.Option) (*Bridge, error) {
	if logger == nil {
		logger = slog.Default()
	}
	b := &Bridge{cfg: cfg, sqs: client, redis: rdb, logger: logger,
		enq: &Enqueuer{Redis: rdb, Namespace: cfg.Redis.Namespace, Seconds: cfg.Timestamps == "seconds"}}
	b.redisUp.Store(true)
	b.nonSNSLog.every = time.Minute
	router := sqsconsumer.NewTopicRouter().Fallback(b.unknown)
	for topic, route := range cfg.Routes {
		router.Route(topic, b.enqueue(route))
	}
	// While Redis is down every enqueue fails: the breaker stops receiving (so the outage does
	// not spend the messages' receive counts toward a dead-letter queue) and pings Redis until
	// it answers, without receiving any message to find out.
	base := []sqsconsumer.Option{sqsconsumer.WithConcurrency(cfg.Concurrency), sqsconsumer.WithLogger(logger),
		sqsconsumer.WithBreaker(sqsconsumer.Breaker{Probe: b.pingRedis})}
	if cfg.VisibilityTimeout > 0 {
		base = append(base, sqsconsumer.WithVisibilityTimeout(cfg.VisibilityTimeout))
	}
	if cfg.FinishReceives {
		base = append(base, sqsconsumer.WithFinishReceives())
	}
	g, err := sqsconsumer.NewGroup(append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	handler := sqsconsumer.Chain(router.Handle, b.snsOnly, sqsconsumer.Unwrap()) // snsOnly first
	for _, q := range cfg.Queues {
		if err := g.Add(client, q, handler, sqsconsumer.Share{}); err != nil {
			return nil, err
		}
	}
	b.group = g
	return b, nil
}

// snsOnly lets SNS notifications through to the router and applies the non_sns setting to
// every other body (raw delivery, a message sent straight to the queue, an EventBridge event,
// a malformed envelope). It runs before Unwrap, on the body as received.
func (b *Bridge) snsOnly(next sqsconsumer.Handler) sqsconsumer.Handler {
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		env, err := m.Envelope()
		if err == nil && env.Kind == envelope.SNS {
			return next(ctx, m)
		}
		kind := "malformed envelope"
		if err == nil {
			kind = env.Kind.String()
		}
		id := aws.ToString(m.MessageId)
		if b.cfg.NonSNS == "delete" {
			n := b.nonSNSDeleted.Add(1)
			b.nonSNSLog.warn(b.logger, "sqs2sidekiq: deleted a message that is not an SNS notification (non_sns: delete)",
				slog.String("message_id", id), slog.String("kind", kind), slog.Int64("deleted_total", n))
			return nil
		}
		n := b.nonSNSKept.Add(1)
		b.nonSNSLog.warn(b.logger, "sqs2sidekiq: kept a message that is not an SNS notification (non_sns: keep): it is retried, and a redrive policy dead-letters it",
			slog.String("message_id", id), slog.String("kind", kind), slog.Int64("kept_total", n))
		return sqsconsumer.MessageFault(fmt.Errorf("sqs2sidekiq: message %s is not an SNS notification (%s); non_sns: keep", id, kind))
	}
}

// enqueue returns the handler of one route. The SQS message is deleted only after Redis
// confirmed the push.
func (b *Bridge) enqueue(r Route) sqsconsumer.Handler {
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		env, _ := m.Envelope() // snsOnly let only SNS notifications through
		if !r.admits(env.TopicArn) {
			return b.unknown(ctx, m)
		}
		job := Job{Class: r.Class, Queue: r.Queue, Args: singleArg(*m.Body, r.Payload),
			SQSMessageID: aws.ToString(m.MessageId), SNSMessageID: env.MessageID}
		if r.Retry != nil {
			job.Retry = r.Retry.value()
		}
		pctx, cancel := context.WithTimeout(ctx, b.cfg.Redis.Timeout)
		_, err := b.enq.Enqueue(pctx, job, time.Now())
		cancel()
		if err != nil {
			b.redisErrors.Add(1)
			b.pushFailed(err)
			// Not deleted: retried by the backoff policy. Redis's failure, not the message's.
			return sqsconsumer.Downstream(fmt.Errorf("sidekiq enqueue of %s: %w", r.Class, err))
		}
		b.pushSucceeded()
		b.enqueued.Add(1)
		return nil
	}
}

// admits reports whether a notification from topicArn may take a route keyed by name.
func (r Route) admits(topicArn string) bool {
	if r.Account == "" && r.Region == "" {
		return true
	}
	p := strings.Split(topicArn, ":") // arn:aws:sns:REGION:ACCOUNT:NAME
	if len(p) != 6 {
		return false
	}
	return (r.Region == "" || p[3] == r.Region) && (r.Account == "" || p[4] == r.Account)
}

// pushFailed logs the first failure of an outage at Error; the rest count silently until a
// push succeeds again (pushSucceeded logs the outage's end).
func (b *Bridge) pushFailed(err error) {
	b.redisUp.Store(false)
	b.outageMu.Lock()
	first := b.outageFails == 0
	if first {
		b.outageSince = time.Now()
	}
	b.outageFails++
	b.outageMu.Unlock()
	if first {
		b.logger.Error("sqs2sidekiq: pushes to Redis fail; messages stay in SQS, and the breaker stops receiving while Redis does not answer (logged once per outage)",
			slog.String("redis", b.cfg.RedactedRedisURL()), slog.String("error", err.Error()))
	}
}

func (b *Bridge) pushSucceeded() {
	b.redisUp.Store(true)
	b.outageMu.Lock()
	fails, since := b.outageFails, b.outageSince
	b.outageFails = 0
	b.outageMu.Unlock()
	if fails > 0 {
		b.logger.Info("sqs2sidekiq: Redis takes pushes again", slog.Int64("failed_pushes", fails),
			slog.Duration("outage", time.Since(since).Round(time.Millisecond)))
	}
}

// pingRedis is the breaker's probe, and readiness's: Redis answers a PING within the
// configured timeout. It returns by then even if the client does not (a hung connection).
func (b *Bridge) pingRedis(ctx context.Context) error { return b.pingWithin(ctx, b.cfg.Redis.Timeout) }

func (b *Bridge) pingWithin(ctx context.Context, d time.Duration) error {
	err := within(ctx, d, func(ctx context.Context) error {
		err := b.redis.Ping(ctx).Err()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The client's deadline (ContextTimeoutEnabled) fired first: say it as within does.
			err = fmt.Errorf("no answer within %v: %w", d, err)
		}
		return err
	})
	b.redisUp.Store(err == nil)
	return err
}

// within runs f with a ctx that ends after d, and returns when f does or when d has passed,
// whichever is first (then f's goroutine finishes on its own; f must honour its ctx).
func within(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %v: %w", d, context.Cause(ctx))
	}
}

func (b *Bridge) unknown(ctx context.Context, m *sqsconsumer.Message) error {
	env, _ := m.Envelope()
	topic := ""
	if env != nil {
		topic = env.TopicArn
	}
	if b.cfg.UnknownTopic == "delete" {
		b.unknownDeleted.Add(1)
		return nil
	}
	b.unknownKept.Add(1)
	return fmt.Errorf("%w: topic %q", sqsconsumer.ErrNoRoute, topic)
}

// CheckRedis is what Run checks before it receives anything: Redis answers, and the
// timestamps format matches the Sidekiq processes registered there (when there are any).
func (b *Bridge) CheckRedis(ctx context.Context) error {
	if err := b.pingRedis(ctx); err != nil {
		return fmt.Errorf("%w: %s did not answer a PING: %v", ErrRedisUnreachable, b.cfg.RedactedRedisURL(), err)
	}
	var checked bool
	err := within(ctx, b.cfg.Redis.Timeout, func(ctx context.Context) error {
		var err error
		checked, err = b.enq.CheckTimestamps(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTimestampsMismatch, err)
	}
	if !checked {
		b.logger.Warn("sqs2sidekiq: no Sidekiq process is registered in Redis, so timestamps could not be checked against it; they are written as configured",
			slog.String("timestamps", b.cfg.Timestamps))
	}
	return nil
}

// Run checks Redis (CheckRedis), then consumes until ctx ends, and shuts down gracefully: it
// stops receiving, lets the enqueues in flight finish, flushes the deletes, logs what it did,
// and returns nil. A failed check returns its error before anything is received.
func (b *Bridge) Run(ctx context.Context) error {
	if err := b.CheckRedis(ctx); err != nil {
		return err
	}
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.watchRedis(watch, 5*time.Second) }()
	err := b.group.Run(ctx)
	stopWatch()
	wg.Wait()
	r := b.group.Report()
	var st sqsconsumer.Stats
	if r != nil {
		st = r.Total
	}
	b.logger.Info("sqs2sidekiq: stopped", slog.Int64("enqueued", b.enqueued.Load()), slog.Int64("deleted", st.Acked),
		slog.Int64("released", st.Released), slog.Int64("failed", st.Failed), slog.Int64("abandoned_receives", st.AbandonedReceives),
		slog.Int64("redis_errors", b.redisErrors.Load()), slog.Int64("non_sns_kept", b.nonSNSKept.Load()),
		slog.Int64("non_sns_deleted", b.nonSNSDeleted.Load()), slog.Int64("unknown_topic_kept", b.unknownKept.Load()),
		slog.Int64("unknown_topic_deleted", b.unknownDeleted.Load()), slog.Any("err", err))
	return err
}

// watchRedis pings Redis every interval so that the redis_up gauge is current while no push
// runs (an idle queue, an open breaker).
func (b *Bridge) watchRedis(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.pingRedis(ctx)
		}
	}
}

// Health serves /healthz (alive), /readyz (Redis and every queue reachable: each check gets
// 2 s (the Redis one at most redis.timeout) and fails past it, even when Redis hangs) and
// /metrics (the Prometheus text format).
func (b *Bridge) Health() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := b.pingWithin(r.Context(), min(2*time.Second, b.cfg.Redis.Timeout)); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		for _, q := range b.cfg.Queues {
			err := within(r.Context(), 2*time.Second, func(ctx context.Context) error {
				_, err := b.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q,
					AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
				return err
			})
			if err != nil {
				http.Error(w, "sqs: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", b.metrics)
	return mux
}

func (b *Bridge) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	family := func(name, typ, help string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ) }
	up := 0
	if b.redisUp.Load() {
		up = 1
	}
	family("sqs2sidekiq_redis_up", "gauge", "1 if the last Redis command (a push, the breaker's probe, the 5 s ping) succeeded.")
	fmt.Fprintf(w, "sqs2sidekiq_redis_up %d\n", up)
	family("sqs2sidekiq_enqueued_total", "counter", "Jobs pushed to Sidekiq's Redis.")
	fmt.Fprintf(w, "sqs2sidekiq_enqueued_total %d\n", b.enqueued.Load())
	family("sqs2sidekiq_redis_errors_total", "counter", "Pushes Redis failed (the message stays in SQS).")
	fmt.Fprintf(w, "sqs2sidekiq_redis_errors_total %d\n", b.redisErrors.Load())
	family("sqs2sidekiq_unknown_topic_total", "counter", "SNS notifications whose topic has no route, by what unknown_topic did.")
	fmt.Fprintf(w, "sqs2sidekiq_unknown_topic_total{action=\"kept\"} %d\n", b.unknownKept.Load())
	fmt.Fprintf(w, "sqs2sidekiq_unknown_topic_total{action=\"deleted\"} %d\n", b.unknownDeleted.Load())
	family("sqs2sidekiq_non_sns_total", "counter", "Messages that are not SNS notifications, by what non_sns did.")
	fmt.Fprintf(w, "sqs2sidekiq_non_sns_total{action=\"kept\"} %d\n", b.nonSNSKept.Load())
	fmt.Fprintf(w, "sqs2sidekiq_non_sns_total{action=\"deleted\"} %d\n", b.nonSNSDeleted.Load())
	stats := b.group.Stats()
	perQueue := []struct {
		name, typ, help string
		v               func(sqsconsumer.Stats) int64
	}{
		{"sqs2sidekiq_received_total", "counter", "Messages received from SQS.", func(s sqsconsumer.Stats) int64 { return s.Received }},
		{"sqs2sidekiq_failed_total", "counter", "Messages whose handling failed (they stay in SQS).", func(s sqsconsumer.Stats) int64 { return s.Failed }},
		{"sqs2sidekiq_acked_total", "counter", "Messages deleted from SQS.", func(s sqsconsumer.Stats) int64 { return s.Acked }},
		{"sqs2sidekiq_receive_errors_total", "counter", "ReceiveMessage calls that failed.", func(s sqsconsumer.Stats) int64 { return s.ReceiveErrors }},
		{"sqs2sidekiq_breaker_state", "gauge", "The queue's breaker: 0 closed, 1 half-open, 2 open.", func(s sqsconsumer.Stats) int64 { return int64(s.Breaker) }},
		{"sqs2sidekiq_breaker_opened_total", "counter", "Times the queue's breaker opened.", func(s sqsconsumer.Stats) int64 { return s.BreakerOpened }},
	}
	for _, f := range perQueue {
		family(f.name, f.typ, f.help)
		for _, q := range b.cfg.Queues {
			fmt.Fprintf(w, "%s{queue=%q} %d\n", f.name, q, f.v(stats[q]))
		}
	}
}

// burst logs a kind of line at most once per every, with the count of the lines it left out.
type burst struct {
	mu      sync.Mutex
	every   time.Duration
	last    time.Time
	skipped int64
}

func (l *burst) warn(logger *slog.Logger, msg string, attrs ...slog.Attr) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		attrs = append(attrs, slog.Int64("similar_lines_left_out", skipped))
	}
	logger.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
}
