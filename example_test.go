package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// A consumer of an in-memory queue; with a real queue, pass sqs.NewFromConfig(cfg) and the
// queue's URL instead.
func Example() {
	client := sqstest.New()
	url := client.MustCreateQueue("orders", nil)
	for _, body := range []string{"apples", "pears", "plums"} {
		client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})
	}

	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		if handled.Add(1) == 3 {
			cancel() // a real service runs until it is told to stop
		}
		return nil // done: the message is deleted
	}, sqsconsumer.WithConcurrency(64), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Run(ctx); err != nil { // blocks; returns nil after a graceful shutdown
		fmt.Println(err)
	}
	r := c.Report()
	fmt.Printf("received %d, succeeded %d, acked %d\n", r.Received, r.Succeeded, r.Acked)
	// Output: received 3, succeeded 3, acked 3
}

// Options are checked by New: a bad value is an error wrapping ErrInvalidOption that names it.
func ExampleNew_invalidOption() {
	_, err := sqsconsumer.New(sqstest.New(), "https://example.invalid/q", func(context.Context, *sqsconsumer.Message) error { return nil },
		sqsconsumer.WithReceiveBatchSize(20))
	fmt.Println(errors.Is(err, sqsconsumer.ErrInvalidOption))
	fmt.Println(err)
	// Output:
	// true
	// sqsconsumer: invalid option: WithReceiveBatchSize: 20, want 1..10
}

// A handler chooses when a failed message is retried by returning RetryAfter (or Keep); any
// other error is retried by the backoff policy.
func ExampleRetryAfter() {
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		if strings.Contains(*m.Body, "rate limited") {
			return sqsconsumer.RetryAfter(30*time.Second, errors.New("downstream is saturated"))
		}
		return nil
	}
	m := &sqsconsumer.Message{}
	m.Body = aws.String("rate limited by the payments API")
	err := handler(context.Background(), m)
	fmt.Println(err)
	var re *sqsconsumer.RetryError
	fmt.Println(errors.As(fmt.Errorf("wrapped: %w", err), &re), re.Delay)
	// Output:
	// sqsconsumer: retry after 30s: downstream is saturated
	// true 30s
}

// The weighted semaphore strategy, with a message's weight taken from an attribute: heavy
// messages take more of the concurrency while they run.
func ExampleWithStrategy() {
	client := sqstest.New()
	url := client.MustCreateQueue("images", nil)
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error { return nil },
		sqsconsumer.WithConcurrency(8),
		sqsconsumer.WithStrategy(semaphore.Factory()),
		sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 {
			if v, ok := m.MessageAttributes["size"]; ok && aws.ToString(v.StringValue) == "large" {
				return 4
			}
			return 1
		}))
	fmt.Println(c != nil, err)
	// Output: true <nil>
}

// A router dispatches on a message attribute; SNS notifications are unwrapped first, and a
// payload is decoded into a typed value. Unrouted messages fail with ErrNoRoute, so they are
// retried and dead-lettered, never lost.
func ExampleRouter() {
	type OrderCreated struct {
		ID    int      `json:"id"`
		Items []string `json:"items"`
	}
	router := sqsconsumer.NewRouter(sqsconsumer.ByAttribute("type")).
		Route("order.created", sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, o OrderCreated) error {
			fmt.Println("order", o.ID, o.Items)
			return nil
		}))
	handler := sqsconsumer.Chain(router.Handle,
		sqsconsumer.Unwrap(sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders")))

	client := sqstest.New()
	url := client.MustCreateQueue("orders", nil)
	body := `{"Type":"Notification","MessageId":"1","TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders",` +
		`"Message":"{\"id\":7,\"items\":[\"pears\"]}","MessageAttributes":{"type":{"Type":"String","Value":"order.created"}}}`
	client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})

	ctx, cancel := context.WithCancel(context.Background())
	c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		defer cancel()
		return handler(ctx, m)
	}, sqsconsumer.WithWaitTime(time.Second))
	c.Run(ctx)
	fmt.Println("succeeded:", c.Report().Succeeded)
	// Output:
	// order 7 [pears]
	// succeeded: 1
}

// A batch handler gets up to 10 messages at once and names the ones that failed; only those
// are retried.
func ExampleBatch() {
	handler, err := sqsconsumer.Batch(func(ctx context.Context, msgs []*sqsconsumer.Message) error {
		failed := sqsconsumer.BatchFailures{}
		for _, m := range msgs {
			if *m.Body == "bad" {
				failed[*m.MessageId] = errors.New("cannot process")
			}
		}
		if len(failed) > 0 {
			return failed
		}
		return nil
	}, 10, 100*time.Millisecond)
	fmt.Println(handler != nil, err)
	// Output: true <nil>
}
