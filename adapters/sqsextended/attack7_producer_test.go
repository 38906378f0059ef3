package sqsextended

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// lostThenThrottled: the first SendMessageBatch reaches SQS and its answer is lost (a reset
// connection: the outcome is unknown, the message is in fact queued); every later try is
// throttled, a 4xx that certainly did not send that try.
type lostThenThrottled struct {
	*sqstest.Server
	calls atomic.Int32
}

func (l *lostThenThrottled) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if l.calls.Add(1) == 1 {
		if _, err := l.Server.SendMessageBatch(ctx, in, optFns...); err != nil {
			return nil, err
		}
		return nil, errors.New("read tcp 10.0.0.1:443: connection reset by peer")
	}
	return nil, &sqstypes.RequestThrottled{Message: aws.String("Rate exceeded")}
}

// Offloader.Unsent is for "a message ... that was certainly not sent"; a send whose outcome
// is unknown is not reported. refused() looks only at the last attempt: a message whose first
// attempt had an unknown outcome (it was in fact queued) and whose later retries were refused
// is handed to Unsent, which deletes the object the queued message points at. The same
// happens when the retries' entries fail (InternalError three times) after a lost answer.
func TestAttack7UnknownThenRefusedKeepsObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		client := &lostThenThrottled{Server: srv}
		p, _ := producer.New(client, url, producer.WithOffload(o), producer.WithMaxMessageSize(1<<20))
		_, err := p.Send(ctx, producer.Message{Body: "a payload over the threshold"})
		if err == nil {
			t.Fatal("setup: Send should fail")
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		out, _ := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if len(out.Messages) != 1 {
			t.Fatalf("setup: %d messages queued", len(out.Messages))
		}
		if store.count() != 1 {
			t.Fatalf("the queued message points at an object Unsent deleted (Send: %v; %d calls; deletes %v)", err, client.calls.Load(), store.deletes)
		}
	})
}
