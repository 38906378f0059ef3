package sqsextended

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func a9receive(t *testing.T, c *Client, url string) sqstypes.Message {
	t.Helper()
	out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 1})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive from %s: %v %+v", url, err, out)
	}
	return out.Messages[0]
}

func a9delete(t *testing.T, c *Client, url string, m sqstypes.Message) {
	t.Helper()
	out, err := c.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: &url,
		Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: m.ReceiptHandle}}})
	if err != nil || len(out.Successful) != 1 {
		t.Fatalf("delete: %v %+v", err, out)
	}
}

// (attack9's TestAttack9FanOutCopyNotYetReceivedLosesObject showed that a fan-out copy the
// Client has not received yet cannot be protected; the docs now rule a Client out with SNS raw
// delivery to several queues instead of promising it.)

// A rerouted original and its copy, both received through the Client (the delay-queue
// pattern in a Group): the copy is handled and its delete confirmed before the harvester has
// sent the original's delete. The copy's candidate is skipped (holders 1: the original),
// then the original's delete drops holders to 0 with no candidate (its handler returned a
// RerouteError, so no note). Nobody deletes the object: an orphan the README's orphan list
// does not mention, on an ordinary path.
func TestAttack9CopyDoneBeforeOriginalDeleteOrphansObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		delayURL := srv.MustCreateQueue("delay", nil)
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		body := Pointer{"b", "k"}.Body()
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
		c, _ := NewClient(srv, store)

		orig := a9receive(t, c, url)
		reroute := c.Fetch()(func(context.Context, *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(delayURL, 0, errors.New("saturated"))
		})
		if err := reroute(ctx, sqsconsumer.NewMessage(orig, url)); err == nil {
			t.Fatal("setup: want the RerouteError")
		}
		// What the consumer does for the RerouteError: send the copy, then delete the original.
		if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &delayURL, MessageBody: orig.Body}); err != nil {
			t.Fatal(err)
		}
		copyMsg := a9receive(t, c, delayURL)
		ok := c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })
		if err := ok(ctx, sqsconsumer.NewMessage(copyMsg, delayURL)); err != nil {
			t.Fatal(err)
		}
		a9delete(t, c, delayURL, copyMsg) // the copy's batch goes out first
		synctest.Wait()                   // and its deletion goroutine has looked at holders
		a9delete(t, c, url, orig)         // then the original's
		_ = c.Close(ctx)
		if !slices.Contains(store.deletes, "b/k") {
			t.Fatalf("both messages pointing at s3://b/k are deleted, the object is not (deletes %v)", store.deletes)
		}
	})
}
