package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

// Notifications published through the emulator's SNS and delivered by its fan-out become the
// routed Sidekiq jobs; a topic with no route is left to the unknown-topic policy (retried),
// never enqueued or deleted.
func TestSNSFanOutBecomesSidekiqJobs(t *testing.T) {
	rs := startRedis(t)
	emu, err := emulator.Start(context.Background())
	if err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available: %v", err)
	}
	t.Cleanup(emu.Stop)
	ctx := context.Background()
	qc := emu.Client()
	o := emu.Options()
	sc := sns.New(sns.Options{BaseEndpoint: o.BaseEndpoint, Region: o.Region, Credentials: o.Credentials})
	q, err := qc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bridge-fanout")})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := qc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]string{}
	for _, name := range []string{"orders", "users", "unmapped"} {
		out, err := sc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
		if err != nil {
			t.Fatalf("create topic: %v", err)
		}
		topics[name] = *out.TopicArn
		if _, err := sc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"),
			Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)])}); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	for name, msg := range map[string]string{"orders": `{"id":42,"sku":"x-1"}`, "users": "plain text", "unmapped": `{}`} {
		if _, err := sc.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topics[name]), Message: aws.String(msg), Subject: aws.String(name)}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
queues: [%q]
redis: {url: "redis://%s/0", namespace: app}
routes:
  orders: {class: OrderWorker, queue: critical}
  %s: {class: UserWorker}
timestamps: milliseconds
`, *q.QueueUrl, rs.addr(), topics["users"])))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer rdb.Close()
	b, err := NewBridge(cfg, qc, rdb, quietLogger, sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for b.enqueued.Load() < 2 && time.Now().Before(deadline) {
		<-time.After(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	critical, _ := rdb.LRange(ctx, "app:queue:critical", 0, -1).Result()
	def, _ := rdb.LRange(ctx, "app:queue:default", 0, -1).Result()
	if len(critical) != 1 || len(def) != 1 {
		t.Fatalf("critical %v, default %v", critical, def)
	}
	var order, user struct {
		Class string
		Args  []any
	}
	json.Unmarshal([]byte(critical[0]), &order)
	json.Unmarshal([]byte(def[0]), &user)
	if order.Class != "OrderWorker" || fmt.Sprint(order.Args) != "[map[id:42 sku:x-1]]" {
		t.Fatalf("order job %s", critical[0])
	}
	if user.Class != "UserWorker" || fmt.Sprint(user.Args) != "[plain text]" {
		t.Fatalf("user job %s", def[0])
	}
	if n := b.enqueued.Load(); n != 2 {
		t.Fatalf("enqueued %d, want 2: the unmapped topic must not become a job", n)
	}
}
