package sqsconsumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// A Group consumes several queues over shared slots: payments first, then orders and emails
// 3 to 1.
func ExampleGroup() {
	client := sqstest.New()
	g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(16), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
	if err != nil {
		fmt.Println(err)
		return
	}
	var handled atomic.Int64
	count := func(context.Context, *sqsconsumer.Message) error { handled.Add(1); return nil }
	for name, share := range map[string]sqsconsumer.Share{"payments": {Priority: 1}, "orders": {Weight: 3}, "emails": {Weight: 1}} {
		url := client.MustCreateQueue(name, nil)
		client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(name)})
		g.Add(client, url, count, share)
	}
	if err := g.Run(context.Background()); err != nil { // here each queue stops once idle for 2 s
		fmt.Println(err)
	}
	fmt.Println("handled", handled.Load(), "of", g.Report().Total.Received)
	// Output: handled 3 of 3
}

// A stop policy ends Run by itself, e.g. for a batch job that drains a queue.
func ExampleWithStopPolicy() {
	client := sqstest.New()
	url := client.MustCreateQueue("nightly", nil)
	for i := 0; i < 25; i++ {
		client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(i))})
	}
	c, _ := sqsconsumer.New(client, url, func(context.Context, *sqsconsumer.Message) error { return nil },
		sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenAny(sqsconsumer.StopWhenIdle(2*time.Second), sqsconsumer.StopAfter(1000))))
	err := c.Run(context.Background()) // returns nil once the queue has been empty for 2 s
	fmt.Println(err, c.Report().Succeeded)
	// Output: <nil> 25
}

// Reroute moves a message to a delay queue when a downstream is saturated: the copy is sent
// first, then the original deleted.
func ExampleReroute() {
	client := sqstest.New()
	url := client.MustCreateQueue("work", nil)
	later := client.MustCreateQueue("work-later", nil)
	client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("job")})
	c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		return sqsconsumer.Reroute(later, 5*time.Minute, fmt.Errorf("downstream saturated"))
	}, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithStopPolicy(sqsconsumer.StopAfter(1)))
	c.Run(context.Background())
	st, _ := client.Stats(later)
	fmt.Println("rerouted:", c.Report().Rerouted, "delayed in work-later:", st.Delayed)
	// Output: rerouted: 1 delayed in work-later: 1
}

// printChanges is a HookBreaker that prints each change of state.
type printChanges struct{}

func (printChanges) OnBreaker(c sqsconsumer.BreakerChange) { fmt.Println("breaker", c.To) }

// A breaker stops receiving while the database is down, instead of spending the messages'
// receives toward the dead-letter queue, and probes until it is back.
func ExampleWithBreaker() {
	client := sqstest.New()
	url := client.MustCreateQueue("orders", nil)
	for i := 0; i < 8; i++ {
		client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint(i))})
	}
	var calls atomic.Int64
	save := func(ctx context.Context, m *sqsconsumer.Message) error {
		if calls.Add(1) <= 3 { // the database is down for the first three calls
			return sqsconsumer.Downstream(fmt.Errorf("insert order %s: connection refused", *m.Body))
		}
		return nil
	}
	c, _ := sqsconsumer.New(client, url, save, sqsconsumer.WithConcurrency(1),
		sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: 100 * time.Millisecond}), // the default waits 2 s
		sqsconsumer.WithHooks(printChanges{}), sqsconsumer.WithLogger(slog.New(slog.DiscardHandler)),
		sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
	c.Run(context.Background())
	r := c.Report()
	fmt.Println("succeeded", r.Succeeded, "opened", r.BreakerOpened, "probes", r.Probed)
	// Output:
	// breaker open
	// breaker half-open
	// breaker closed
	// succeeded 8 opened 1 probes 3
}
