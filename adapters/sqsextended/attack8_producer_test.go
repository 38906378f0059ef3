package sqsextended

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/jobs"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// On a FIFO queue with content-based deduplication, sending the same payload twice within
// five minutes puts it in the queue once: that is what the queue setting is for, and what a
// producer retrying after a timeout (Send's documented "ctx ends first, may still be sent")
// relies on. Offloaded, the body SQS hashes is the pointer, whose key is a fresh UUID per
// Send, so the same large payload is enqueued (and stored) twice. Nothing in the README or
// the Offloader's doc says so. A fix: for an offloaded message without a DeduplicationID on a
// FIFO queue, set it to the SHA-256 of the original body (what SQS would have computed); or
// document that DeduplicationID must be set.
func TestAttack8FIFOContentDedupOfLargePayload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		// Control: under the threshold the queue deduplicates.
		plain, _ := producer.New(srv, url)
		for range 2 {
			if _, err := plain.Send(ctx, producer.Message{Body: "small", GroupID: "g"}); err != nil {
				t.Fatal(err)
			}
		}
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		for range 2 {
			if _, err := p.Send(ctx, producer.Message{Body: "the same large payload", GroupID: "g"}); err != nil {
				t.Fatal(err)
			}
		}
		_ = p.Close(ctx)
		out, err := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 2 {
			t.Fatalf("%d messages in the queue (objects stored %d), want 2: one small, one large; content-based deduplication is defeated by the random key", len(out.Messages), store.count())
		}
	})
}

// The threshold counts bytes as SQS does: a multi-byte attribute value and a Binary one.
func TestAttack8ThresholdMultiByteAndBinary(t *testing.T) {
	ctx := context.Background()
	store := &memS3{}
	m := producer.Message{Body: strings.Repeat("é", 10), Attributes: map[string]sqstypes.MessageAttributeValue{
		"ü":   {DataType: aws.String("String"), StringValue: aws.String("日本")},
		"bin": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}},
	}}
	size := 20 + len("ü") + len("String") + len("日本") + len("bin") + len("Binary") + 3
	if producer.Size(m) != size {
		t.Fatalf("Size %d, want %d", producer.Size(m), size)
	}
	at, _ := NewOffloader(store, "b", WithThreshold(size))
	if out, _ := at.Offload(ctx, m); out.Body != m.Body {
		t.Fatal("offloaded at the threshold")
	}
	below, _ := NewOffloader(store, "b", WithThreshold(size-1))
	if out, _ := below.Offload(ctx, m); out.Body == m.Body {
		t.Fatal("not offloaded above the threshold")
	}
}

// A pointer plus the user's attributes still above the queue's limit: refused before any
// request, and the object removed.
func TestAttack8PointerPlusAttributesTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b")
		p, _ := producer.New(srv, url, producer.WithOffload(o), producer.WithMaxMessageSize(64<<10))
		_, err := p.Send(ctx, producer.Message{Body: strings.Repeat("x", 300<<10), Attributes: map[string]sqstypes.MessageAttributeValue{
			"big": {DataType: aws.String("String"), StringValue: aws.String(strings.Repeat("a", 70<<10))},
		}})
		if !errors.Is(err, producer.ErrTooLarge) || store.count() != 0 {
			t.Fatalf("err %v, objects %d", err, store.count())
		}
		_ = p.Close(ctx)
	})
}

// jobs.Enqueuer through an offloading producer: the job name attribute survives next to the
// size attribute.
func TestAttack8JobsThroughOffload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		if _, err := jobs.NewEnqueuer(p, nil).Enqueue(ctx, "resize", map[string]string{"k": strings.Repeat("v", 50)}); err != nil {
			t.Fatal(err)
		}
		_ = p.Close(ctx)
		out, _ := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MessageAttributeNames: []string{"All"}})
		if len(out.Messages) != 1 || store.count() != 1 {
			t.Fatalf("%d messages, %d objects", len(out.Messages), store.count())
		}
		if _, ok := out.Messages[0].MessageAttributes[jobs.NameAttribute]; !ok {
			t.Fatal("job name lost")
		}
	})
}
