package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// What a Ruby worker of a real Sidekiq 6 receives from the bridge: the payload as published
// (big integers, key order), the worker's own retry option unless the route sets one, the
// message ids, and timestamps Sidekiq's API reads as now.
func TestSidekiqRunsTheBridgesJobs(t *testing.T) {
	rs := startRedis(t)
	sk := startSidekiq(t, rs.addr(), "myapp", "default", "critical")
	r := newBridgeRun(t, rs.addr(), `
timestamps: seconds
routes:
  orders: {class: OrderWorker, queue: critical}
  users: {class: UserWorker}
  noretry: {class: NoRetryWorker}
  five: {class: FiveRetryWorker}
  failing: {class: FailingWorker}
  forced: {class: NoRetryWorker, retry: 3}
`)
	const arn = "arn:aws:sns:eu-west-1:123456789012:"
	const order = `{"big":9007199254740993,"id":123456789012345678,"z":1,"a":2,"nested":{"y":1,"b":[1.5,"s",null,true]}}`
	r.send(snsBody(arn+"orders", order), snsBody(arn+"users", "plain text"), snsBody(arn+"noretry", `{"n":1}`),
		snsBody(arn+"five", `{"n":5}`), snsBody(arn+"failing", `{"n":2}`), snsBody(arn+"forced", `{"n":3}`))
	before := time.Now()
	r.run()
	recs := sk.waitResults(t, 6, 30*time.Second)
	sk.waitErrors(t, 4, 30*time.Second) // the four failing workers, each after its retry decision
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	byClass := map[string][]sidekiqRecord{}
	for _, rec := range recs {
		byClass[rec.Class] = append(byClass[rec.Class], rec)
	}
	o := byClass["OrderWorker"]
	if len(o) != 1 || string(o[0].Args) != "["+order+"]" {
		t.Fatalf("OrderWorker performed %+v; want args [%s] exactly", o, order)
	}
	if o[0].Queue != "critical" || o[0].HasRetry {
		t.Fatalf("OrderWorker: queue %q, retry key %v (%s); want critical and no retry key", o[0].Queue, o[0].HasRetry, o[0].Retry)
	}
	if string(o[0].Extra["sns_message_id"]) != strconv.Quote("n-"+order) || len(o[0].Extra["sqs_message_id"]) < 3 {
		t.Fatalf("OrderWorker: extra keys %v; want the SNS and SQS message ids", o[0].Extra)
	}
	enq, err := strconv.ParseFloat(string(o[0].EnqueuedAt), 64)
	if err != nil || enq < float64(before.Unix())-1 || enq > float64(time.Now().Unix())+1 || o[0].Latency == nil || *o[0].Latency < 0 || *o[0].Latency > 30 {
		t.Fatalf("OrderWorker: enqueued_at %s, latency %v; want float seconds of now and a small non-negative latency", o[0].EnqueuedAt, o[0].Latency)
	}
	if u := byClass["UserWorker"]; len(u) != 1 || string(u[0].Args) != `["plain text"]` {
		t.Fatalf("UserWorker performed %+v", u)
	}

	// Retries: the worker's option where the route sets none, the route's where it does.
	st := sk.inspect(t)
	retryOf := func(class string) string {
		for _, e := range st.Retries {
			if e.Klass == class {
				return string(e.Retry)
			}
		}
		return "not in the retry set"
	}
	for class, want := range map[string]string{"FailingWorker": "true", "FiveRetryWorker": "5", "NoRetryWorker": "3"} {
		if got := retryOf(class); got != want {
			t.Errorf("%s: retry %s, want %s\nretries: %+v", class, got, want, st.Retries)
		}
	}
	if st.RetrySize != 3 || st.DeadSize != 0 {
		t.Fatalf("retry set %d, dead %d: want 3 and 0 (the NoRetryWorker job without a route retry is dropped, as its worker says)", st.RetrySize, st.DeadSize)
	}

	// The Sidekiq 6 process is registered in Redis: a bridge configured for milliseconds
	// refuses to start, saying what to set.
	r2 := newBridgeRun(t, rs.addr(), "timestamps: milliseconds\nroutes: {orders: {class: OrderWorker}}")
	if err := r2.b.Run(context.Background()); !errors.Is(err, ErrTimestampsMismatch) || !strings.Contains(err.Error(), `set "timestamps: seconds"`) {
		t.Fatalf("Run with milliseconds against Sidekiq 6: %v", err)
	}
}

// The reviewed failure, end to end: the built daemon on the emulator with a redrive policy
// of 3 receives and a short visibility timeout, a real Sidekiq, and Redis killed for 12 s in
// the middle of the stream (then restarted from its append-only file, as a real Redis would
// be), with 400 of the 500 messages arriving during the outage. Nothing is dead-lettered, and
// every message becomes a job Sidekiq performs. (Without the breaker all 400 were dead-lettered.)
func TestRedisOutageWithSidekiqDeadLettersNothing(t *testing.T) {
	d := newDaemon(t)
	d.redis.persist(t)
	ctx := context.Background()
	client := d.emu.Client()
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("outage-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	dlqAttrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqAttrs.Attributes["QueueArn"], "maxReceiveCount": "3"})
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("outage-events"),
		Attributes: map[string]string{"RedrivePolicy": string(redrive)}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	send := func(from, to int) {
		for i := from; i < to; i += 10 {
			var entries []types.SendMessageBatchRequestEntry
			for j := i; j < i+10; j++ {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)),
					MessageBody: aws.String(snsBody("arn:aws:sns:us-east-1:000000000000:orders", fmt.Sprintf(`{"n":%d}`, j)))})
			}
			if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 100)
	sk := startSidekiq(t, d.redis.addr(), "app", "default")
	cmd := d.start(t, *q.QueueUrl, fmt.Sprintf("redis: {url: \"redis://%s/0\", namespace: app, timeout: 1s}\nconcurrency: 16\nvisibility_timeout: 2s\n", d.redis.addr()))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sk.waitResults(t, 50, 60*time.Second)

	// Redis dies; the other 400 messages arrive while it is down. Sidekiq stops first: its
	// BasicFetch loses a job whose BRPOP answer a dying Redis sent but Sidekiq never read
	// (Sidekiq's at-most-once window, not the bridge's).
	sk.stop()
	performed := sk.results()
	d.redis.stop()
	outage := time.Now()
	send(100, n)
	<-time.After(time.Until(outage.Add(12 * time.Second))) // the outage: past the default backoff of 1, 2 and 4 s
	d.redis.restart(t)
	t.Logf("Redis was down for %v", time.Since(outage).Round(time.Millisecond))
	sk = startSidekiq(t, d.redis.addr(), "app", "default")

	deadline := time.Now().Add(90 * time.Second)
	seen := map[int]int{}
	for len(seen) < n && time.Now().Before(deadline) {
		clear(seen)
		for _, rec := range append(performed[:len(performed):len(performed)], sk.results()...) {
			var args []map[string]int
			json.Unmarshal(rec.Args, &args)
			seen[args[0]["n"]]++
		}
		<-time.After(100 * time.Millisecond)
	}
	dupes := 0
	for _, c := range seen {
		dupes += c - 1
	}
	inDLQ, left := approximate(t, client, *dlq.QueueUrl), approximate(t, client, *q.QueueUrl)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d.output())
	}
	t.Logf("performed %d of %d messages (%d duplicates); dead-lettered %d; left in the queue %d", len(seen), n, dupes, inDLQ, left)
	if inDLQ != 0 {
		t.Fatalf("%d messages dead-lettered by a Redis outage\n%s", inDLQ, d.output())
	}
	if len(seen) != n {
		t.Fatalf("Sidekiq performed %d of %d messages within 90 s of Redis's return\n%s\n%s", len(seen), n, d.output(), sk.logs())
	}
	out := d.output()
	if c := strings.Count(out, "pushes to Redis fail"); c != 1 {
		t.Fatalf("%d outage lines, want one\n%s", c, out)
	}
	if !strings.Contains(out, "breaker") {
		t.Fatalf("the breaker's opening is not logged\n%s", out)
	}
}

// approximate is a queue's ApproximateNumberOfMessages plus those in flight.
func approximate(t *testing.T, client interface {
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}, url string) int {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}
