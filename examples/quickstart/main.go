// Command quickstart consumes a queue with sqsconsumer and prints its progress and a summary.
//
// With no flags it needs no AWS account: it creates an in-memory queue (sqstest), sends a few
// hundred messages to it, and consumes them:
//
//	go run ./examples/quickstart
//
// Point it at a real SQS queue, or at an emulator, with -queue-url (and -endpoint for an
// emulator); credentials and region come from the usual AWS environment variables and files.
// Add -send to put -n messages on that queue first:
//
//	go run ./examples/quickstart -queue-url http://127.0.0.1:4566/000000000000/jobs -endpoint http://127.0.0.1:4566 -send
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Order is the payload of the example's messages.
type Order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Units int    `json:"units"`
}

// client is what the example needs of SQS: the consumer's calls plus sending.
type client interface {
	sqsconsumer.Client
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// settings is what the command line and environment say.
type settings struct {
	queueURL, endpoint, strategy string
	n, concurrency, failEvery    int
	send                         bool
}

// parseConfig reads the flags in args, with defaults from getenv, and checks them; flag errors
// and -h print the usage to usage.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (*settings, error) {
	var c settings
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.queueURL, "queue-url", getenv("SQS_QUEUE_URL"), "queue to consume (default: an in-memory queue); env SQS_QUEUE_URL")
	fs.StringVar(&c.endpoint, "endpoint", getenv("SQS_ENDPOINT"), "SQS endpoint, e.g. an emulator's http://127.0.0.1:4566; env SQS_ENDPOINT")
	fs.IntVar(&c.n, "n", 300, "messages to send (in-memory, or with -send) and to wait for")
	fs.BoolVar(&c.send, "send", false, "with -queue-url: send -n messages before consuming")
	fs.IntVar(&c.concurrency, "concurrency", 16, "handlers running at once")
	fs.StringVar(&c.strategy, "strategy", "pool", "worker strategy: pool or semaphore")
	fs.IntVar(&c.failEvery, "fail-every", 25, "make every Nth message fail once, to show retries (0: never)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.n < 1:
		return nil, fmt.Errorf("-n %d: want at least 1", c.n)
	case c.failEvery < 0:
		return nil, fmt.Errorf("-fail-every %d: want 0 or more", c.failEvery)
	case c.strategy != "pool" && c.strategy != "semaphore":
		return nil, fmt.Errorf("unknown -strategy %q: want pool or semaphore", c.strategy)
	}
	return &c, nil // -concurrency is checked by sqsconsumer.New
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseConfig(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	var (
		queueURL    = &cfg.queueURL
		endpoint    = &cfg.endpoint
		n           = &cfg.n
		send        = &cfg.send
		concurrency = &cfg.concurrency
		strategy    = &cfg.strategy
		failEvery   = &cfg.failEvery
	)
	out = &syncWriter{w: out} // handlers print progress concurrently

	var c client
	waitTime := 20 * time.Second
	if *queueURL == "" {
		mem := sqstest.New()
		*queueURL = mem.MustCreateQueue("quickstart", nil)
		c = mem
		*send = true
		// An in-memory queue answers at once; a short long poll lets the example exit promptly
		// (shutdown waits for a receive in flight rather than abandon it).
		waitTime = time.Second
		fmt.Fprintf(out, "in-memory queue %s (no AWS account needed)\n", *queueURL)
	} else {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("AWS configuration: %w", err)
		}
		c = sqs.NewFromConfig(cfg, func(o *sqs.Options) {
			if *endpoint != "" {
				o.BaseEndpoint = aws.String(*endpoint)
			}
		})
		fmt.Fprintf(out, "queue %s\n", *queueURL)
	}
	if *send {
		if err := sendOrders(ctx, c, *queueURL, *n); err != nil {
			return err
		}
		fmt.Fprintf(out, "sent %d messages\n", *n)
	}

	factory := pool.Factory()
	if *strategy == "semaphore" {
		factory = semaphore.Factory()
	}

	var handled, units atomic.Int64
	done := make(chan struct{})
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		var o Order
		if err := json.Unmarshal([]byte(*m.Body), &o); err != nil {
			return fmt.Errorf("message %s: malformed body: %w", *m.MessageId, err)
		}
		if *failEvery > 0 && o.ID%*failEvery == 0 && m.ReceiveCount() == 1 {
			return sqsconsumer.RetryAfter(time.Second, errors.New("simulated transient failure"))
		}
		select { // simulated work
		case <-time.After(time.Duration(1+rand.IntN(20)) * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		units.Add(int64(o.Units))
		h := handled.Add(1)
		if h%int64(max(*n/10, 1)) == 0 {
			fmt.Fprintf(out, "  handled %d/%d\n", h, *n)
		}
		if h == int64(*n) {
			close(done)
		}
		return nil
	}
	consumer, err := sqsconsumer.New(c, *queueURL, handler,
		sqsconsumer.WithConcurrency(*concurrency),
		sqsconsumer.WithStrategy(factory),
		sqsconsumer.WithWaitTime(waitTime),
	)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-runCtx.Done():
		}
	}()
	start := time.Now()
	if err := consumer.Run(runCtx); err != nil {
		return err
	}
	r := consumer.Report()
	elapsed := time.Since(start)
	fmt.Fprintf(out, "done in %v: received %d, succeeded %d, failed (retried) %d, released %d, acked %d, units %d\n",
		elapsed.Round(time.Millisecond), r.Received, r.Succeeded, r.Failed, r.Released, r.Acked, units.Load())
	fmt.Fprintf(out, "API calls: %d receives (%d empty), %.1f messages per receive\n",
		r.Receives, r.EmptyReceives, float64(r.Received)/float64(max(r.Receives, 1)))
	return nil
}

func sendOrders(ctx context.Context, c client, url string, n int) error {
	items := []string{"apples", "pears", "plums", "figs"}
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			body, _ := json.Marshal(Order{ID: j + 1, Item: items[j%len(items)], Units: 1 + j%5})
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(string(body))})
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("send: %d entries failed, first: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
