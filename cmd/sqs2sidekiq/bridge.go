package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
)

// SQSClient is what the bridge calls on SQS: the consumer's calls plus queue attributes for
// readiness. *sqs.Client and sqstest.Server satisfy it.
type SQSClient interface {
	sqsconsumer.Client
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Bridge moves SNS notifications from SQS queues into Sidekiq.
type Bridge struct {
	cfg   *Config
	sqs   SQSClient
	redis redis.UniversalClient
	enq   *Enqueuer
	group *sqsconsumer.Group

	enqueued, unknownDeleted, redisErrors atomic.Int64
}

// NewBridge builds the bridge; it starts nothing.
func NewBridge(cfg *Config, client SQSClient, rdb redis.UniversalClient, opts ...sqsconsumer.Option) (*Bridge, error) {
	b := &Bridge{cfg: cfg, sqs: client, redis: rdb,
		enq: &Enqueuer{Redis: rdb, Namespace: cfg.Redis.Namespace, Seconds: cfg.Timestamps == "seconds"}}
	router := sqsconsumer.NewTopicRouter().Fallback(b.unknown)
	for topic, route := range cfg.Routes {
		router.Route(topic, b.enqueue(route))
	}
	// While Redis is down every enqueue fails: the breaker stops receiving (so the outage does
	// not spend the messages' receive counts toward a dead-letter queue) and pings Redis until
	// it answers, without receiving any message to find out.
	base := []sqsconsumer.Option{sqsconsumer.WithConcurrency(cfg.Concurrency),
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
	handler := sqsconsumer.Chain(router.Handle, sqsconsumer.Unwrap())
	for _, q := range cfg.Queues {
		if err := g.Add(client, q, handler, sqsconsumer.Share{}); err != nil {
			return nil, err
		}
	}
	b.group = g
	return b, nil
}

// enqueue returns the handler of one route: the payload (decoded when it is JSON) becomes the
// job's single argument. The SQS message is deleted only after Redis confirmed the push.
func (b *Bridge) enqueue(r Route) sqsconsumer.Handler {
	retry := r.Retry == nil || *r.Retry
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		var arg any = *m.Body
		var decoded any
		if json.Unmarshal([]byte(*m.Body), &decoded) == nil {
			arg = decoded
		}
		if _, err := b.enq.Enqueue(ctx, r.Class, r.Queue, retry, []any{arg}, time.Now()); err != nil {
			b.redisErrors.Add(1)
			// Not deleted: retried by the backoff policy. Redis's failure, not the message's.
			return sqsconsumer.Downstream(fmt.Errorf("sidekiq enqueue of %s: %w", r.Class, err))
		}
		b.enqueued.Add(1)
		return nil
	}
}

// pingRedis is the breaker's probe: Redis answers a PING within 2 s.
func (b *Bridge) pingRedis(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return b.redis.Ping(ctx).Err()
}

func (b *Bridge) unknown(ctx context.Context, m *sqsconsumer.Message) error {
	if b.cfg.UnknownTopic == "delete" {
		b.unknownDeleted.Add(1)
		return nil
	}
	env, _ := m.Envelope()
	topic := ""
	if env != nil {
		topic = env.TopicArn
	}
	return fmt.Errorf("%w: topic %q", sqsconsumer.ErrNoRoute, topic)
}

// Run consumes until ctx ends, then shuts down gracefully: it stops receiving, lets the
// enqueues in flight finish, flushes the deletes, and returns nil.
func (b *Bridge) Run(ctx context.Context) error { return b.group.Run(ctx) }

// Health serves /healthz (alive), /readyz (Redis and every queue reachable) and /metrics
// (counters in the Prometheus text format).
func (b *Bridge) Health() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := b.redis.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		for _, q := range b.cfg.Queues {
			if _, err := b.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &q,
				AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}}); err != nil {
				http.Error(w, "sqs: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "sqs2sidekiq_enqueued_total %d\n", b.enqueued.Load())
		fmt.Fprintf(w, "sqs2sidekiq_unknown_topic_deleted_total %d\n", b.unknownDeleted.Load())
		fmt.Fprintf(w, "sqs2sidekiq_redis_errors_total %d\n", b.redisErrors.Load())
		for q, st := range b.group.Stats() {
			fmt.Fprintf(w, "sqs2sidekiq_received_total{queue=%q} %d\n", q, st.Received)
			fmt.Fprintf(w, "sqs2sidekiq_failed_total{queue=%q} %d\n", q, st.Failed)
			fmt.Fprintf(w, "sqs2sidekiq_acked_total{queue=%q} %d\n", q, st.Acked)
			fmt.Fprintf(w, "sqs2sidekiq_breaker_state{queue=%q} %d\n", q, st.Breaker)
			fmt.Fprintf(w, "sqs2sidekiq_breaker_opened_total{queue=%q} %d\n", q, st.BreakerOpened)
		}
	})
	return mux
}
