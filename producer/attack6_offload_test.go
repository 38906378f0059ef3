package producer_test

// attack6: adversarial tests of producer.WithOffload (issue 20); expected to fail against
// commit 1f2aea7.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/producer"
)

// slowUnsent wraps every body ("ptr:" + body) and, told a message was not sent, takes until
// its ctx ends (S3 not answering a DELETE; the producer bounds it at 30 s).
type slowUnsent struct{}

func (slowUnsent) Offload(_ context.Context, m producer.Message) (producer.Message, error) {
	m.Body = "ptr:" + m.Body
	return m, nil
}

func (slowUnsent) Unsent(ctx context.Context, _ producer.Message) { <-ctx.Done() }

// scripted refuses "ptr:bad" for good (sender fault) and fails "ptr:retry" once with a
// retryable error, accepting everything else.
type scripted struct {
	mu    sync.Mutex
	tried map[string]bool
}

func (s *scripted) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		switch {
		case body == "ptr:bad":
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InvalidParameterValue"), SenderFault: true})
		case body == "ptr:retry" && !s.tried[body]:
			s.tried[body] = true
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError")})
		default:
			out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("id-" + body)})
		}
	}
	return out, nil
}

func (s *scripted) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"MaximumMessageSize": "262144"}}, nil
}

// Unsent runs on the batch's delivery goroutine, one message after another, before the batch's
// retries: a message SQS asked to retry (InternalError) waits for the S3 cleanup of another
// message of its batch before it is tried again, so its Send takes 30 s (with ten refused
// messages in a batch, a cleanup of each in turn: 5 min) although SQS accepted it on the retry.
func TestAttack6UnsentDoesNotHoldOtherMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := producer.New(&scripted{tried: map[string]bool{}}, "https://sqs.example/1/q", producer.WithOffload(slowUnsent{}))
		start := time.Now()
		res := p.SendBatch(context.Background(), []producer.Message{{Body: "bad"}, {Body: "retry"}})
		took := time.Since(start)
		if res[1].Err != nil || !strings.HasPrefix(res[1].MessageID, "id-") {
			t.Fatalf("retried message: %+v", res[1])
		}
		if res[0].Err == nil {
			t.Fatal("setup: the refused message was sent")
		}
		if took > 5*time.Second {
			t.Fatalf("a message SQS accepted on its retry was settled after %v, held by another message's Unsent", took)
		}
		_ = p.Close(context.Background()) // waits for the cleanup
	})
}
