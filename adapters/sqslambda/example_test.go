package sqslambda_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqslambda"
)

// A Lambda function's main passes the handler to lambda.Start (from
// github.com/aws/aws-lambda-go/lambda):
//
//	lambda.Start(h)
//
// Here it is called directly with an event such as Lambda sends; only the failed record is
// reported back, so Lambda deletes the others.
func ExampleNew() {
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		if *m.Body == "pears" {
			fmt.Println("no pears for", m.QueueURL())
			return errors.New("out of pears") // logged at Warn by slog.Default()
		}
		return nil
	}
	h, err := sqslambda.New(handler, sqslambda.WithConcurrency(8))
	if err != nil {
		fmt.Println(err)
		return
	}

	var ev events.SQSEvent
	for i, body := range []string{"apples", "pears", "plums"} {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("id-", i), Body: body,
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:orders"})
	}
	resp, err := h(context.Background(), ev)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range resp.BatchItemFailures {
		fmt.Println("retry", f.ItemIdentifier)
	}
	// Output:
	// no pears for https://sqs.eu-west-1.amazonaws.com/123456789012/orders
	// retry id-1
}
