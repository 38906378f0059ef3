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
//	lambda.Start(sqslambda.Handler(handler, sqslambda.WithConcurrency(8)))
//
// Here the handler is called directly with an event such as Lambda sends; only the failed
// record is reported back, so Lambda deletes the others.
func ExampleHandler() {
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		if *m.Body == "pears" {
			return errors.New("out of pears")
		}
		return nil
	}
	h := sqslambda.Handler(handler, sqslambda.WithConcurrency(8))

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
	// Output: retry id-1
}
