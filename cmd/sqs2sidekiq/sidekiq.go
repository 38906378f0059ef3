package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// Job is a Sidekiq job as Sidekiq writes it to Redis.
type Job struct {
	Class      string `json:"class"`
	Args       []any  `json:"args"`
	Queue      string `json:"queue"`
	JID        string `json:"jid"`
	Retry      bool   `json:"retry"`
	CreatedAt  any    `json:"created_at"`  // int ms (Sidekiq 8) or float seconds (7 and earlier)
	EnqueuedAt any    `json:"enqueued_at"` // same
}

// Enqueuer pushes jobs the way Sidekiq's client does: SADD the queue name to "queues" and
// LPUSH the JSON job onto "queue:<name>", both under the namespace prefix, in one transaction.
type Enqueuer struct {
	Redis     redis.UniversalClient
	Namespace string
	Seconds   bool // timestamps as float seconds (Sidekiq 7 and earlier) instead of integer ms
}

func (e *Enqueuer) key(k string) string {
	if e.Namespace == "" {
		return k
	}
	return e.Namespace + ":" + k
}

func newJID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Enqueue pushes a job of class on queue with args, and returns its jid. It returns nil only
// once Redis confirmed both writes.
func (e *Enqueuer) Enqueue(ctx context.Context, class, queue string, retry bool, args []any, now time.Time) (string, error) {
	var ts any = now.UnixMilli()
	if e.Seconds {
		ts = float64(now.UnixNano()) / 1e9
	}
	job := Job{Class: class, Args: args, Queue: queue, JID: newJID(), Retry: retry, CreatedAt: ts, EnqueuedAt: ts}
	payload, err := json.Marshal(job)
	if err != nil {
		return "", err
	}
	_, err = e.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, e.key("queues"), queue)
		p.LPush(ctx, e.key("queue:"+queue), payload)
		return nil
	})
	if err != nil {
		return "", err
	}
	return job.JID, nil
}
