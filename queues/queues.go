// Package queues holds the operations around consuming: creating a queue with its dead-letter
// queue and redrive policy, and moving messages from a dead-letter queue back to their source.
package queues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
)

//go:generate go run go.uber.org/mock/mockgen@v0.6.0 -typed -source=queues.go -destination=../internal/mocks/queues.go -package=mocks

// Creator is what CreateWithDLQ calls. *sqs.Client and sqstest.Server satisfy it.
type Creator interface {
	CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, optFns ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Mover is what Redrive calls. *sqs.Client satisfies it; sqstest.Server lacks
// StartMessageMoveTask, like the emulator, so wrap it to test the fallback.
type Mover interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, optFns ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Spec describes a queue to create.
type Spec struct {
	Name            string            // without ".fifo"; added for FIFO queues
	FIFO            bool              // a FIFO queue (and FIFO dead-letter queue)
	MaxReceiveCount int               // receives before a message moves to the DLQ; 0 means 5
	Attributes      map[string]string // more attributes of the source queue (VisibilityTimeout, ...)
}

// ErrInvalid is wrapped by errors for a bad Spec or options.
var ErrInvalid = errors.New("queues: invalid argument")

// CreateWithDLQ creates the dead-letter queue "<name>-dlq" and then the queue "<name>" with a
// redrive policy to it (".fifo" appended to both for FIFO), and returns both URLs. Creating
// queues that exist with the same attributes returns their URLs, as SQS does.
func CreateWithDLQ(ctx context.Context, c Creator, spec Spec) (queueURL, dlqURL string, err error) {
	if spec.Name == "" || strings.HasSuffix(spec.Name, ".fifo") || spec.MaxReceiveCount < 0 || spec.MaxReceiveCount > 1000 {
		return "", "", fmt.Errorf("%w: spec %+v", ErrInvalid, spec)
	}
	suffix := ""
	fifoAttrs := map[string]string{}
	if spec.FIFO {
		suffix = ".fifo"
		fifoAttrs["FifoQueue"] = "true"
	}
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(spec.Name + "-dlq" + suffix), Attributes: fifoAttrs})
	if err != nil {
		return "", "", fmt.Errorf("queues: create dead-letter queue: %w", err)
	}
	arn, err := queueArn(ctx, c, *dlq.QueueUrl)
	if err != nil {
		return "", "", err
	}
	max := spec.MaxReceiveCount
	if max == 0 {
		max = 5
	}
	policy, _ := json.Marshal(map[string]string{"deadLetterTargetArn": arn, "maxReceiveCount": strconv.Itoa(max)})
	attrs := map[string]string{"RedrivePolicy": string(policy)}
	for k, v := range fifoAttrs {
		attrs[k] = v
	}
	for k, v := range spec.Attributes {
		attrs[k] = v
	}
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(spec.Name + suffix), Attributes: attrs})
	if err != nil {
		return "", "", fmt.Errorf("queues: create queue: %w", err)
	}
	return *q.QueueUrl, *dlq.QueueUrl, nil
}

type attributeGetter interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

func queueArn(ctx context.Context, c attributeGetter, url string) (string, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queues: read the ARN of %s: %w", url, err)
	}
	arn := out.Attributes[string(types.QueueAttributeNameQueueArn)]
	if arn == "" {
		return "", fmt.Errorf("queues: %s has no QueueArn", url)
	}
	return arn, nil
}

func count(ctx context.Context, c attributeGetter, url string) (int, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return 0, fmt.Errorf("queues: count %s: %w", url, err)
	}
	return strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
}

// RedriveOptions shape a Redrive.
type RedriveOptions struct {
	// DryRun counts the messages waiting in the dead-letter queue and moves nothing.
	DryRun bool
	// NoMoveTask skips SQS's message move task and moves by receive, send, delete.
	NoMoveTask bool
	// Max bounds how many messages the receive/send/delete path moves; 0 moves all there are.
	Max int
}

// RedriveResult says what Redrive did.
type RedriveResult struct {
	Waiting  int    // messages in the dead-letter queue before (approximate, from SQS)
	Moved    int    // moved by receive/send/delete
	TaskID   string // the message move task's handle, when SQS runs the move
	Fallback bool   // the move task was not available and the receive/send/delete path ran
}

// Redrive moves the messages of dlqURL back to sourceURL. It first asks SQS for a message
// move task (which moves them server-side; TaskID says which). Where that call does not exist
// (emulators, some regions, queues of another kind), it moves them itself: receive up to 10,
// send them to the source with their body, attributes and group id, and only then delete from
// the dead-letter queue the ones the send accepted, so nothing is lost (a crash between send
// and delete duplicates, never drops). It blocks until done or ctx ends.
func Redrive(ctx context.Context, c Mover, dlqURL, sourceURL string, opts RedriveOptions) (RedriveResult, error) {
	var r RedriveResult
	waiting, err := count(ctx, c, dlqURL)
	if err != nil {
		return r, err
	}
	r.Waiting = waiting
	if opts.DryRun {
		return r, nil
	}
	if !opts.NoMoveTask {
		dlqArn, err := queueArn(ctx, c, dlqURL)
		if err != nil {
			return r, err
		}
		srcArn, err := queueArn(ctx, c, sourceURL)
		if err != nil {
			return r, err
		}
		out, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &dlqArn, DestinationArn: &srcArn})
		if err == nil {
			r.TaskID = aws.ToString(out.TaskHandle)
			return r, nil
		}
		if !unavailable(err) {
			return r, fmt.Errorf("queues: start message move task: %w", err)
		}
		r.Fallback = true
	}
	fifo := strings.HasSuffix(sourceURL, ".fifo")
	for opts.Max == 0 || r.Moved < opts.Max {
		want := 10
		if opts.Max > 0 {
			want = min(want, opts.Max-r.Moved)
		}
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlqURL, MaxNumberOfMessages: int32(want),
			VisibilityTimeout: 60, MessageAttributeNames: []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
		if err != nil {
			return r, fmt.Errorf("queues: receive from %s: %w", dlqURL, err)
		}
		if len(out.Messages) == 0 {
			return r, nil
		}
		entries := make([]types.SendMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			e := types.SendMessageBatchRequestEntry{Id: batchid.For(i), MessageBody: m.Body, MessageAttributes: m.MessageAttributes}
			if fifo {
				group := m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
				if group == "" {
					group = "redriven"
				}
				e.MessageGroupId, e.MessageDeduplicationId = &group, m.MessageId
			}
			entries[i] = e
		}
		sent, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &sourceURL, Entries: entries})
		if err != nil {
			return r, fmt.Errorf("queues: send to %s: %w", sourceURL, err)
		}
		var dels []types.DeleteMessageBatchRequestEntry
		for _, s := range sent.Successful {
			if i, ok := batchid.Position(s.Id, len(out.Messages)); ok {
				dels = append(dels, types.DeleteMessageBatchRequestEntry{Id: batchid.For(len(dels)), ReceiptHandle: out.Messages[i].ReceiptHandle})
			}
		}
		if len(dels) > 0 {
			del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &dlqURL, Entries: dels})
			if err != nil {
				return r, fmt.Errorf("queues: delete from %s after sending (sent twice if retried): %w", dlqURL, err)
			}
			r.Moved += len(del.Successful)
		}
		if len(sent.Failed) > 0 {
			f := sent.Failed[0]
			return r, fmt.Errorf("queues: %d messages not sent to %s (they stay in the DLQ): %s: %s", len(sent.Failed), sourceURL, aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return r, nil
}

// unavailable reports whether err says the message move task cannot be used here.
func unavailable(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "InvalidAction",
			"UnknownOperationException", "NotImplemented", "InvalidParameterValue":
			return true
		}
	}
	var unsupported *types.UnsupportedOperation
	return errors.As(err, &unsupported)
}
