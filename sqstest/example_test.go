package sqstest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// A Server stands in for *sqs.Client in tests.
func Example() {
	ctx := context.Background()
	s := sqstest.New()
	url := s.MustCreateQueue("jobs", map[string]string{"VisibilityTimeout": "30"})
	s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("hello")})

	// As on SQS, only the attributes asked for come back.
	out, _ := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
	m := out.Messages[0]
	fmt.Println(*m.Body, m.Attributes["ApproximateReceiveCount"])
	s.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
	st, _ := s.Stats(url)
	fmt.Println("left:", st.Visible+st.InFlight, "deleted:", st.Deleted)
	// Output:
	// hello 1
	// left: 0 deleted: 1
}

// Faults make calls and batch entries fail, to test what code does when SQS misbehaves.
func ExampleServer_SetFaults() {
	ctx := context.Background()
	s := sqstest.New()
	url := s.MustCreateQueue("jobs", nil)
	s.SetFaults(sqstest.Faults{
		Call: func(op string, _ any) error {
			if op == "ReceiveMessage" {
				return sqstest.Throttled()
			}
			return nil
		},
		Entry: func(op, _ string) *types.BatchResultErrorEntry { return sqstest.EntryError("InternalError", false) },
	})
	_, err := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	var throttled *types.RequestThrottled // wrapped in a *smithy.OperationError, as the SDK returns it
	fmt.Println(errors.As(err, &throttled), throttled.ErrorCode())
	out, _ := s.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []types.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: aws.String("rh-1-1")}}})
	fmt.Println(*out.Failed[0].Code, out.Failed[0].SenderFault)
	// Output:
	// true RequestThrottled
	// InternalError false
}

// A redrive policy moves a message to the dead-letter queue once it was received
// maxReceiveCount times.
func ExampleServer_MustCreateQueue_redrive() {
	ctx := context.Background()
	s := sqstest.New()
	dlq := s.MustCreateQueue("jobs-dlq", nil)
	url := s.MustCreateQueue("jobs", map[string]string{
		"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:jobs-dlq","maxReceiveCount":"1"}`,
	})
	s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("poison")})
	out, _ := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle})
	s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url}) // moves it
	moved, _ := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq})
	fmt.Println(*moved.Messages[0].Body)
	// Output: poison
}
