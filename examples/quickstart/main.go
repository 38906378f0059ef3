// Command quickstart consumes a queue with sqsconsumer and prints its progress and a summary.
//
// With no flags it needs no AWS account: it creates an in-memory queue (sqstest), sends a few
// hundred orders to it with the library's producer, and consumes them:
//
//	go run ./examples/quickstart
//
// Some failures are deliberate: every 25th order (-fail-every) fails on its first try, to show
// a retry. The consumer logs each such failure at WARN, and the order comes back a second
// later and succeeds. Each order carries a number of units; the summary's "units" is their sum
// over the orders handled, a checksum that shows every order was counted exactly once (the
// orders sent hold 1 to 5 units each, so 300 orders hold 900 units).
//
// The first Ctrl-C stops receiving and lets the orders in hand finish; a second one exits at
// once.
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
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Order is the payload of the example's messages.
type Order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Units int    `json:"units"`
}

// client is what the example needs of SQS: the consumer's calls plus the producer's.
type client interface {
	sqsconsumer.Client
	producer.Client
}

func main() {
	ctx, stop := shutdownContext(os.Stderr)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// shutdownContext returns a context cancelled by the first SIGINT or SIGTERM. That signal
// starts a graceful shutdown; stop is then called at once, which restores the default
// handling, so a second signal ends the process without waiting for the shutdown.
func shutdownContext(w io.Writer) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, func() {
		stop()
		if context.Cause(ctx) != context.Canceled { // a signal, not stop
			fmt.Fprintf(w, "%v: finishing the messages in hand; signal again to exit at once\n", context.Cause(ctx))
		}
	})
	return ctx, stop
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
	fs.IntVar(&c.failEvery, "fail-every", 25, "make every Nth message fail once on purpose, to show a retry (0: never)")
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
	sentUnits := -1 // unknown: the queue had its messages already
	if *send {
		if sentUnits, err = sendOrders(ctx, c, *queueURL, *n); err != nil {
			return err
		}
		fmt.Fprintf(out, "sent %d orders (%d units) with the producer\n", *n, sentUnits)
	}
	if *failEvery > 0 {
		fmt.Fprintf(out, "every %s order fails on its first try, on purpose (-fail-every %d): the WARN lines below are those failures, each retried a second later\n",
			ordinal(*failEvery), *failEvery)
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
			return sqsconsumer.RetryAfter(time.Second, errors.New("deliberate failure to show a retry (-fail-every)"))
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
		// The consumer's log (failed handlers at WARN) interleaved with the progress lines.
		sqsconsumer.WithLogger(slog.New(slog.NewTextHandler(out, nil))),
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
	fmt.Fprintf(out, "done in %v: received %d, succeeded %d, failed (retried) %d, released %d, acked %d\n",
		elapsed.Round(time.Millisecond), r.Received, r.Succeeded, r.Failed, r.Released, r.Acked)
	switch {
	case sentUnits < 0:
		fmt.Fprintf(out, "units %d: the sum of the handled orders' units\n", units.Load())
	case units.Load() == int64(sentUnits) && handled.Load() == int64(*n):
		fmt.Fprintf(out, "units %d of %d sent: every order handled exactly once\n", units.Load(), sentUnits)
	default:
		fmt.Fprintf(out, "units %d of %d sent: %d of %d orders handled (stopped early)\n", units.Load(), sentUnits, handled.Load(), *n)
	}
	fmt.Fprintf(out, "API calls: %d receives (%d empty), %.1f messages per receive\n",
		r.Receives, r.EmptyReceives, float64(r.Received)/float64(max(r.Receives, 1)))
	return nil
}

// sendOrders sends n orders through the library's producer, which batches them into
// SendMessageBatch requests of 10 and retries what SQS says may succeed later, and returns the
// units they hold.
func sendOrders(ctx context.Context, c client, url string, n int) (units int, err error) {
	p, err := producer.New(c, url)
	if err != nil {
		return 0, err
	}
	defer p.Close(ctx)
	items := []string{"apples", "pears", "plums", "figs"}
	msgs := make([]producer.Message, n)
	for i := range msgs {
		o := Order{ID: i + 1, Item: items[i%len(items)], Units: 1 + i%5}
		body, _ := json.Marshal(o)
		msgs[i] = producer.Message{Body: string(body)}
		units += o.Units
	}
	for i, r := range p.SendBatch(ctx, msgs) {
		if r.Err != nil {
			return 0, fmt.Errorf("send order %d: %w", i+1, r.Err)
		}
	}
	return units, p.Close(ctx)
}

// ordinal spells n as "25th", "2nd", ...
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", n, suffix)
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
