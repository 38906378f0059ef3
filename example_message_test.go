package sqsconsumer_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
)

// A handler can be called without a consumer, e.g. in its own unit test, with the Message a
// consumer would have passed it.
func ExampleNewMessage() {
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		fmt.Printf("%s from %s, delivery %d\n", *m.Body, m.QueueURL(), m.ReceiveCount())
		return nil
	}
	m := sqsconsumer.NewMessage(types.Message{
		MessageId:  aws.String("1"),
		Body:       aws.String("apples"),
		Attributes: map[string]string{"ApproximateReceiveCount": "2"},
	}, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
	fmt.Println(handler(context.Background(), m), m.ReceivedAt().IsZero())
	// Output:
	// apples from https://sqs.eu-west-1.amazonaws.com/123456789012/orders, delivery 2
	// <nil> false
}
