package sqsextended

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
)

// Keys another writer may have used (the Java client's custom prefix is restricted, but the
// format carries any key): the GET and DELETE must reach the object the PUT wrote, and keys
// that differ only by encoding ("a b", "a+b", "a%20b") must stay distinct.
func TestAttack8AwkwardKeysOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	keys := []string{"a b", "a+b", "a%20b", "a%2Bb", "日本/ü.bin", "x?y#z", "dir//double", "tilde~&=;,"}
	qo, err := env.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprint("extended-keys-", seq.Add(1)))})
	if err != nil {
		t.Fatal(err)
	}
	url := *qo.QueueUrl
	want := map[string]string{}
	for i, k := range keys {
		payload := fmt.Sprintf("payload %d for %q", i, k)
		if _, err := env.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k), Body: strings.NewReader(payload)}); err != nil {
			t.Fatalf("PUT %q: %v", k, err)
		}
		body := Pointer{bucket, k}.Body()
		want[body] = payload
		if _, err := env.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := env.objects(t, bucket); len(got) != len(keys) {
		t.Fatalf("listed %q, want %d objects", got, len(keys))
	}
	c, _ := NewClient(env.sqs, env.s3)
	col := newCollector()
	cons, err := sqsconsumer.New(c, url, col.handler(c.Fetch()), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, cons, "all handled", func() bool { h, f := col.counts(); return h+f == len(keys) && cons.Stats().Acked == int64(h) })
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	for id, raw := range col.raw {
		if got, ok := col.bodies[id]; !ok || got != want[raw] {
			t.Errorf("%s: handler saw %q, want %q", raw, got, want[raw])
		}
	}
	errs := col.errs
	col.mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("failures: %v", errs)
	}
	left := env.objects(t, bucket)
	slices.Sort(left)
	if len(left) != 0 {
		t.Errorf("objects left after their messages were deleted: %q", left)
	}
}
