package sqstest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// FuzzReceiptHandles: handles come from callers; any text is refused or accepted cleanly, and
// never deletes a message it does not name.
func FuzzReceiptHandles(f *testing.F) {
	for _, h := range []string{"rh-1-1", "rh-1-2", "rh-", "rh-x-1", "rh-99999999999999999999-1", "", "rh-1"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		s := New(WithStrict())
		url := s.MustCreateQueue("q", nil)
		s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")})
		out, _ := s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url})
		s.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: &h, VisibilityTimeout: 5})
		_, err := s.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: &h})
		st, _ := s.Stats(url)
		if h == *out.Messages[0].ReceiptHandle {
			if err != nil || st.Deleted != 1 {
				t.Fatalf("the real handle did not delete: %v %+v", err, st)
			}
		} else if err == nil || st.Deleted != 0 {
			t.Fatalf("handle %q: err %v, stats %+v", h, err, st)
		}
	})
}

// FuzzQueueAttributes: attributes come from callers; any values give a queue or an error,
// never a panic.
func FuzzQueueAttributes(f *testing.F) {
	f.Add("30", "0", `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}`, "false")
	f.Add("-1", "901", `{"maxReceiveCount":0}`, "true")
	f.Add("x", "", `not json`, "")
	f.Fuzz(func(t *testing.T, vis, delay, redrive, fifo string) {
		s := New()
		s.MustCreateQueue("dlq", nil)
		_, err := s.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("q"), Attributes: map[string]string{
			"VisibilityTimeout": vis, "DelaySeconds": delay, "RedrivePolicy": redrive, "FifoQueue": fifo,
		}})
		if err == nil {
			if _, ok := s.Stats(urlPrefix + "q"); !ok {
				t.Fatal("CreateQueue succeeded without a queue")
			}
		}
	})
}
