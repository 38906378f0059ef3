// Package sqslambda runs an sqsconsumer.Handler in AWS Lambda behind an SQS event source mapping
// with ReportBatchItemFailures, so a service can move between Lambda and a long-running
// consumer without changing its handler. It is its own module, so the library never depends on
// aws-lambda-go.
//
//	h, err := sqslambda.New(handler, sqslambda.WithConcurrency(8))
//	if err != nil {
//		log.Fatal(err)
//	}
//	lambda.Start(h)
package sqslambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
)

// Handler is the function Lambda invokes with a batch of SQS records; pass it to lambda.Start.
type Handler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// Option configures New. An invalid value makes New return an error wrapping
// sqsconsumer.ErrInvalidOption that names the option.
type Option func(*settings) error

type settings struct {
	concurrency int
	logger      *slog.Logger
}

func invalid(option, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", sqsconsumer.ErrInvalidOption, option, fmt.Sprintf(format, args...))
}

// WithConcurrency runs up to n records of a batch at once on a standard queue (default 1).
// Records from a FIFO queue always run one at a time, in order. n must be >= 1.
func WithConcurrency(n int) Option {
	return func(s *settings) error {
		if n < 1 {
			return invalid("WithConcurrency", "%d, want >= 1", n)
		}
		s.concurrency = n
		return nil
	}
}

// WithLogger sets the logger (default slog.Default() when New is called). As the consumer
// does, the handler logs with the queue URL and message id as attributes: a failed record at
// Warn, a panicking one at Error with the panic's stack, records left unrun (the invocation's
// ctx ended, or an earlier record of a FIFO batch failed) at Warn once per invocation, and each
// record that succeeded at Debug. l must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return invalid("WithLogger", "nil logger")
		}
		s.logger = l
		return nil
	}
}

// New returns the Lambda handler that runs h on every record of an SQS event and reports the
// failed ones as batchItemFailures, so Lambda deletes the rest and retries only those. h has
// the same contract as for a consumer: nil means done, an error (or a panic, recovered) means
// retry. On a FIFO queue processing stops at the first failure, and that record and every one
// after it are reported, so the group's order holds. A record whose ctx ended before it ran
// is reported too. The returned handler blocks until every record it started has returned.
//
// h sees each record as a *sqsconsumer.Message whose QueueURL is derived from the record's
// EventSourceARN: arn:PARTITION:sqs:REGION:ACCOUNT:NAME becomes
// https://sqs.REGION.SUFFIX/ACCOUNT/NAME, where SUFFIX is the partition's DNS suffix
// (amazonaws.com for aws and aws-us-gov, amazonaws.com.cn for aws-cn, amazonaws.eu for
// aws-eusc, c2s.ic.gov for aws-iso, sc2s.sgov.gov for aws-iso-b, cloud.adc-e.uk for aws-iso-e,
// csp.hci.ic.gov for aws-iso-f). An ARN that is not an SQS queue's, or names another
// partition, gives an empty QueueURL.
//
// A nil h or an invalid option is an error wrapping sqsconsumer.ErrInvalidOption.
func New(h sqsconsumer.Handler, opts ...Option) (Handler, error) {
	if h == nil {
		return nil, invalid("handler", "nil")
	}
	s := settings{concurrency: 1}
	for i, o := range opts {
		if o == nil {
			return nil, invalid("option", "option %d is nil", i)
		}
		if err := o(&s); err != nil {
			return nil, err
		}
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	r := &runner{h: sqsconsumer.Chain(h, sqsconsumer.Recover()), s: s}
	return r.invoke, nil
}

type runner struct {
	h sqsconsumer.Handler
	s settings
}

func (r *runner) invoke(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var (
		failed = make([]bool, len(ev.Records))
		fifo   = len(ev.Records) > 0 && strings.HasSuffix(ev.Records[0].EventSourceARN, ".fifo")
		notRun notRunCount
	)
	run := func(i int) bool {
		if ctx.Err() != nil {
			notRun.add(queueURL(ev.Records[i].EventSourceARN), context.Cause(ctx).Error())
			return false
		}
		return r.handle(ctx, toMessage(ev.Records[i], queueURL(ev.Records[i].EventSourceARN)))
	}
	if fifo || r.s.concurrency == 1 {
		for i := range ev.Records {
			if !run(i) {
				failed[i] = true
				if fifo {
					for j := i + 1; j < len(failed); j++ {
						failed[j] = true
						notRun.add(queueURL(ev.Records[j].EventSourceARN), "an earlier record of the FIFO batch failed")
					}
					break
				}
			}
		}
	} else {
		sem := make(chan struct{}, r.s.concurrency)
		var wg sync.WaitGroup
		for i := range ev.Records {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				failed[i] = !run(i)
			})
		}
		wg.Wait()
	}
	notRun.log(r.s.logger)
	var resp events.SQSEventResponse
	for i, f := range failed {
		if f {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
		}
	}
	return resp, nil
}

// handle runs the handler on m, logs the outcome and reports whether it succeeded.
func (r *runner) handle(ctx context.Context, m *sqsconsumer.Message) bool {
	start := time.Now()
	err := r.h(ctx, m)
	took := time.Since(start)
	level, outcome := slog.LevelDebug, "succeeded"
	var pe *sqsconsumer.PanicError
	switch {
	case errors.As(err, &pe):
		level, outcome = slog.LevelError, "panicked"
	case err != nil:
		level, outcome = slog.LevelWarn, "failed"
	}
	if !r.s.logger.Enabled(ctx, level) {
		return err == nil
	}
	attrs := []slog.Attr{slog.String("queue", m.QueueURL()), slog.String("message_id", aws.ToString(m.MessageId)),
		slog.String("outcome", outcome), slog.Int("receive_count", m.ReceiveCount()), slog.Duration("took", took)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if pe != nil {
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	r.s.logger.LogAttrs(ctx, level, "sqsconsumer: message handled", attrs...)
	return err == nil
}

// notRunCount counts the records of one invocation that were reported without running, to
// log them in one line (a batch of a standard queue holds up to 10,000 records).
type notRunCount struct {
	mu     sync.Mutex
	n      int
	queue  string
	reason string
}

func (c *notRunCount) add(queue, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.queue, c.reason = queue, reason
	}
	c.n++
}

func (c *notRunCount) log(l *slog.Logger) {
	if c.n == 0 {
		return
	}
	l.LogAttrs(context.Background(), slog.LevelWarn, "sqsconsumer: records not run, reported for retry",
		slog.String("queue", c.queue), slog.Int("records", c.n), slog.String("reason", c.reason))
}

// dnsSuffixes holds the DNS suffix of each partition's SQS endpoints
// (https://sqs.REGION.SUFFIX), as in the AWS SDK's partition data.
var dnsSuffixes = map[string]string{
	"aws":        "amazonaws.com",
	"aws-us-gov": "amazonaws.com",
	"aws-cn":     "amazonaws.com.cn",
	"aws-eusc":   "amazonaws.eu",
	"aws-iso":    "c2s.ic.gov",
	"aws-iso-b":  "sc2s.sgov.gov",
	"aws-iso-e":  "cloud.adc-e.uk",
	"aws-iso-f":  "csp.hci.ic.gov",
}

// queueURL returns the URL of the queue arn names (see New), or "".
func queueURL(arn string) string {
	f := strings.Split(arn, ":")
	if len(f) != 6 || f[0] != "arn" || f[2] != "sqs" || f[3] == "" || f[4] == "" || f[5] == "" {
		return ""
	}
	suffix, ok := dnsSuffixes[f[1]]
	if !ok {
		return ""
	}
	return "https://sqs." + f[3] + "." + suffix + "/" + f[4] + "/" + f[5]
}

// toMessage converts a Lambda SQS record into the Message a consumer of queueURL would have
// received.
func toMessage(r events.SQSMessage, queueURL string) *sqsconsumer.Message {
	tm := types.Message{
		MessageId:     aws.String(r.MessageId),
		ReceiptHandle: aws.String(r.ReceiptHandle),
		Body:          aws.String(r.Body),
		MD5OfBody:     aws.String(r.Md5OfBody),
		Attributes:    r.Attributes,
	}
	if len(r.MessageAttributes) > 0 {
		tm.MessageAttributes = make(map[string]types.MessageAttributeValue, len(r.MessageAttributes))
		for k, v := range r.MessageAttributes {
			tm.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue}
		}
	}
	return sqsconsumer.NewMessage(tm, queueURL)
}
