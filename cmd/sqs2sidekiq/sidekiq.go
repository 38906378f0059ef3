package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Job is a Sidekiq job as the daemon writes it to Redis.
type Job struct {
	Class string `json:"class"`
	// Args is the job's argument array, already encoded: the payload goes into it byte for
	// byte, so a number Go could not hold in a float64 reaches Ruby as written.
	Args  json.RawMessage `json:"args"`
	Queue string          `json:"queue"`
	JID   string          `json:"jid"`
	// Retry is left out unless the route sets it: Sidekiq then applies the worker's own
	// sidekiq_options (it reads them only when the job has no "retry" key).
	Retry      any `json:"retry,omitempty"`
	CreatedAt  any `json:"created_at"`  // int ms (Sidekiq 8) or float seconds (7 and earlier)
	EnqueuedAt any `json:"enqueued_at"` // same
	// SQSMessageID and SNSMessageID trace a job to the message it came from (a duplicate
	// after a crash carries the same ids). Sidekiq keeps keys it does not know and ignores them.
	SQSMessageID string `json:"sqs_message_id,omitempty"`
	SNSMessageID string `json:"sns_message_id,omitempty"`
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

// singleArg encodes payload as a one-element args array. In "json" mode a payload that is
// valid JSON is embedded as written (only insignificant whitespace is dropped); any other
// payload, and every payload in "string" mode, becomes a JSON string.
func singleArg(payload, mode string) json.RawMessage {
	if mode != "string" && json.Valid([]byte(payload)) {
		return json.RawMessage("[" + payload + "]")
	}
	s, _ := json.Marshal(payload) // a string always encodes
	return json.RawMessage("[" + string(s) + "]")
}

// Enqueue pushes job (its JID and timestamps are set here) and returns its jid. It returns nil
// only once Redis confirmed both writes; an error may still mean Redis applied them (a reply
// lost to a timeout), so a retried message can become a second job: at least once.
func (e *Enqueuer) Enqueue(ctx context.Context, job Job, now time.Time) (string, error) {
	var ts any = now.UnixMilli()
	if e.Seconds {
		ts = float64(now.UnixNano()) / 1e9
	}
	job.JID, job.CreatedAt, job.EnqueuedAt = newJID(), ts, ts
	// No HTML escaping: json.Marshal would write <, > and & in the payload as \u003c and
	// the like, the same value in other bytes than were published.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(job); err != nil {
		return "", err
	}
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	_, err := e.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, e.key("queues"), job.Queue)
		p.LPush(ctx, e.key("queue:"+job.Queue), payload)
		return nil
	})
	if err != nil {
		return "", err
	}
	return job.JID, nil
}

// SidekiqProcess is a Sidekiq process registered in Redis (its heartbeat is alive).
type SidekiqProcess struct {
	Identity string
	// Version is Sidekiq's version as the process reports it; Sidekiq before 7.0.2 reports
	// none, and Version is "".
	Version string
}

// Major is the process's Sidekiq major version, 6 for one that reports no version (6.x and
// 7.0.0-7.0.1 report none; both write float seconds).
func (p SidekiqProcess) Major() int {
	if p.Version == "" {
		return 6
	}
	major, _, _ := strings.Cut(p.Version, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// Processes returns the Sidekiq processes whose heartbeat is alive in Redis: the members of
// "processes" whose key still exists (Sidekiq keeps it for 60 s past the last heartbeat).
func (e *Enqueuer) Processes(ctx context.Context) ([]SidekiqProcess, error) {
	ids, err := e.Redis.SMembers(ctx, e.key("processes")).Result()
	if err != nil {
		return nil, err
	}
	var out []SidekiqProcess
	for _, id := range ids {
		info, err := e.Redis.HGet(ctx, e.key(id), "info").Result()
		if err == redis.Nil {
			continue // a stale member: the process is gone
		}
		if err != nil {
			return nil, err
		}
		var fields struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(info), &fields); err != nil {
			return nil, fmt.Errorf("sidekiq process %s: info does not parse: %w", id, err)
		}
		out = append(out, SidekiqProcess{Identity: id, Version: fields.Version})
	}
	return out, nil
}

// CheckTimestamps compares the configured format with the Sidekiq processes registered in
// Redis: an error names the process and the value to set. No process registered: nil, and
// checked is false.
func (e *Enqueuer) CheckTimestamps(ctx context.Context) (checked bool, err error) {
	procs, err := e.Processes(ctx)
	if err != nil {
		return false, fmt.Errorf("reading Sidekiq's processes from Redis: %w", err)
	}
	for _, p := range procs {
		wantSeconds := p.Major() < 8
		if wantSeconds == e.Seconds {
			continue
		}
		v := p.Version
		if v == "" {
			v = "before 7.0.2"
		}
		if wantSeconds {
			return true, fmt.Errorf(`timestamps: milliseconds, but Sidekiq %s (process %s) reads this Redis and expects float seconds: set "timestamps: seconds"`, v, p.Identity)
		}
		return true, fmt.Errorf(`timestamps: seconds, but Sidekiq %s (process %s) reads this Redis and expects integer milliseconds: set "timestamps: milliseconds"`, v, p.Identity)
	}
	return len(procs) > 0, nil
}
