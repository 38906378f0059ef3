// Package sqslambda runs an sqsconsumer.Handler in AWS Lambda behind an SQS event source mapping
// with ReportBatchItemFailures, so a service can move between Lambda and a long-running
// consumer without changing its handler. It is its own module, so the library never depends on
// aws-lambda-go.
//
//	lambda.Start(sqslambda.Handler(handler, sqslambda.WithConcurrency(8)))
package sqslambda

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
)

// Option configures Handler.
type Option func(*settings)

type settings struct{ concurrency int }

// WithConcurrency runs up to n records of a batch at once on a standard queue (default 1).
// Records from a FIFO queue always run one at a time, in order.
func WithConcurrency(n int) Option { return func(s *settings) { s.concurrency = max(n, 1) } }

// Handler returns a Lambda handler that runs h on every record of an SQS event and reports the
// failed ones as batchItemFailures, so Lambda deletes the rest and retries only those. h has
// the same contract as for a consumer: nil means done, an error (or a panic, recovered) means
// retry. On a FIFO queue processing stops at the first failure, and that record and every one
// after it are reported, so the group's order holds. A record whose ctx ended before it ran
// is reported too.
func Handler(h sqsconsumer.Handler, opts ...Option) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	s := settings{concurrency: 1}
	for _, o := range opts {
		o(&s)
	}
	h = sqsconsumer.Chain(h, sqsconsumer.Recover())
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		failed := make([]bool, len(ev.Records))
		fifo := len(ev.Records) > 0 && strings.HasSuffix(ev.Records[0].EventSourceARN, ".fifo")
		if fifo || s.concurrency == 1 {
			for i, r := range ev.Records {
				if ctx.Err() != nil || h(ctx, toMessage(r)) != nil {
					failed[i] = true
					if fifo {
						for j := i + 1; j < len(failed); j++ {
							failed[j] = true
						}
						break
					}
				}
			}
		} else {
			sem := make(chan struct{}, s.concurrency)
			var wg sync.WaitGroup
			for i, r := range ev.Records {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					failed[i] = ctx.Err() != nil || h(ctx, toMessage(r)) != nil
				})
			}
			wg.Wait()
		}
		var resp events.SQSEventResponse
		for i, f := range failed {
			if f {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
			}
		}
		return resp, nil
	}
}

// toMessage converts a Lambda SQS record into the Message a consumer would have received.
func toMessage(r events.SQSMessage) *sqsconsumer.Message {
	m := &sqsconsumer.Message{}
	m.MessageId = aws.String(r.MessageId)
	m.ReceiptHandle = aws.String(r.ReceiptHandle)
	m.Body = aws.String(r.Body)
	m.MD5OfBody = aws.String(r.Md5OfBody)
	m.Attributes = r.Attributes
	if len(r.MessageAttributes) > 0 {
		m.MessageAttributes = make(map[string]types.MessageAttributeValue, len(r.MessageAttributes))
		for k, v := range r.MessageAttributes {
			m.MessageAttributes[k] = types.MessageAttributeValue{DataType: aws.String(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue}
		}
	}
	return m
}
