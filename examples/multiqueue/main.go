// Command multiqueue runs one service over three queues with a Group: payments at a higher
// priority, and orders and emails sharing what is left 3 to 1. Each queue's handler is a
// router or a typed JSON handler. It runs on in-memory queues (sqstest), no AWS account
// needed:
//
//	go -C examples/multiqueue run .
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Order is the payload of the orders queue.
type Order struct {
	ID    int `json:"id"`
	Units int `json:"units"`
}

func main() {
	if err := run(os.Stdout, time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "multiqueue:", err)
		os.Exit(1)
	}
}

// run fills the queues, consumes them for the given time, and prints what each handled.
func run(out io.Writer, for_ time.Duration) error {
	ctx := context.Background()
	client := sqstest.New()
	queues := map[string]string{}
	for _, name := range []string{"payments", "orders", "emails"} {
		queues[name] = client.MustCreateQueue(name, nil)
	}
	fill := func(name string, n int, body func(i int) string) error {
		for i := 0; i < n; i += 10 {
			var entries []types.SendMessageBatchRequestEntry
			for j := i; j < min(i+10, n); j++ {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(body(j))})
			}
			if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queues[name]), Entries: entries}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := fill("payments", 200, func(i int) string { return fmt.Sprintf("payment-%d", i) }); err != nil {
		return err
	}
	if err := fill("orders", 5000, func(i int) string { return fmt.Sprintf(`{"id":%d,"units":%d}`, i, 1+i%3) }); err != nil {
		return err
	}
	if err := fill("emails", 5000, func(i int) string { return fmt.Sprintf("email-%d", i) }); err != nil {
		return err
	}

	var mu sync.Mutex
	handled := map[string]int{}
	work := func(name string, d time.Duration) {
		time.Sleep(d)
		mu.Lock()
		handled[name]++
		mu.Unlock()
	}
	g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(32), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		return err
	}
	adds := []struct {
		name  string
		h     sqsconsumer.Handler
		share sqsconsumer.Share
	}{
		{"payments", func(ctx context.Context, m *sqsconsumer.Message) error {
			work("payments", 5*time.Millisecond)
			return nil
		},
			sqsconsumer.Share{Priority: 1}},
		{"orders", sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, o Order) error {
			work("orders", 10*time.Millisecond)
			return nil
		}), sqsconsumer.Share{Weight: 3}},
		{"emails", func(ctx context.Context, m *sqsconsumer.Message) error {
			work("emails", 10*time.Millisecond)
			return nil
		},
			sqsconsumer.Share{Weight: 1}},
	}
	for _, a := range adds {
		if err := g.Add(client, queues[a.name], a.h, a.share); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, for_)
	defer cancel()
	if err := g.Run(runCtx); err != nil {
		return err
	}
	names := make([]string, 0, len(handled))
	for n := range handled {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "%-8s handled %d\n", n, handled[n])
	}
	r := g.Report()
	fmt.Fprintf(out, "total: received %d, succeeded %d, released at shutdown %d\n", r.Total.Received, r.Total.Succeeded, r.Total.Released)
	return nil
}
