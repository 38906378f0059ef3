// Command sqsc operates SQS queues from a shell: send, peek, purge, redrive a dead-letter
// queue, and show a queue's counts. It talks to AWS with the usual AWS environment variables
// and files, or to an emulator with -endpoint:
//
//	sqsc [-endpoint URL] [-region R] send -queue URL [-delay 30s] [-group G] BODY...
//	sqsc peek -queue URL [-n 10]            receive without deleting, print, release
//	sqsc purge -queue URL [-yes]            asks to type the queue's name unless -yes
//	sqsc redrive -dlq URL -to URL [-dry-run] [-max N]
//	sqsc stats -queue URL
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/queues"
)

// Client is every SQS call sqsc makes; *sqs.Client satisfies it.
type Client interface {
	queues.Mover
	producer.Client
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	PurgeQueue(ctx context.Context, in *sqs.PurgeQueueInput, optFns ...func(*sqs.Options)) (*sqs.PurgeQueueOutput, error)
}

func main() {
	ctx := context.Background()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, func(endpoint, region string) (Client, error) {
		cfg, err := config.LoadDefaultConfig(ctx, func(o *config.LoadOptions) error {
			if region != "" {
				o.Region = region
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		}), nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqsc:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: sqsc [-endpoint URL] [-region R] send|peek|purge|redrive|stats [flags]")

func run(ctx context.Context, args []string, in io.Reader, out io.Writer, connect func(endpoint, region string) (Client, error)) error {
	global := flag.NewFlagSet("sqsc", flag.ContinueOnError)
	global.SetOutput(out)
	endpoint := global.String("endpoint", os.Getenv("AWS_ENDPOINT_URL_SQS"), "SQS endpoint (an emulator's URL); env AWS_ENDPOINT_URL_SQS")
	region := global.String("region", "", "AWS region (default: from the environment)")
	if err := global.Parse(args); err != nil {
		return err
	}
	if global.NArg() == 0 {
		return errUsage
	}
	cmd, rest := global.Arg(0), global.Args()[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	queue := fs.String("queue", "", "queue URL")
	var (
		delay  *time.Duration
		group  *string
		n      *int
		yes    *bool
		dlq    *string
		to     *string
		dryRun *bool
		max    *int
	)
	switch cmd {
	case "send":
		delay = fs.Duration("delay", 0, "delay before the messages are visible (at most 15m)")
		group = fs.String("group", "", "MessageGroupId (FIFO queues)")
	case "peek":
		n = fs.Int("n", 10, "messages to show (1..10)")
	case "purge":
		yes = fs.Bool("yes", false, "do not ask for confirmation")
	case "redrive":
		dlq = fs.String("dlq", "", "dead-letter queue URL")
		to = fs.String("to", "", "queue URL to move the messages back to")
		dryRun = fs.Bool("dry-run", false, "only count the messages")
		max = fs.Int("max", 0, "move at most this many (0: all)")
	case "stats":
	default:
		return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if cmd != "redrive" && *queue == "" {
		return fmt.Errorf("%s: -queue is required", cmd)
	}
	c, err := connect(*endpoint, *region)
	if err != nil {
		return err
	}
	switch cmd {
	case "send":
		return send(ctx, c, *queue, fs.Args(), *delay, *group, out)
	case "peek":
		return peek(ctx, c, *queue, *n, out)
	case "purge":
		return purge(ctx, c, *queue, *yes, in, out)
	case "redrive":
		if *dlq == "" || *to == "" {
			return errors.New("redrive: -dlq and -to are required")
		}
		res, err := queues.Redrive(ctx, c, *dlq, *to, queues.RedriveOptions{DryRun: *dryRun, Max: *max})
		if err != nil {
			return err
		}
		switch {
		case *dryRun:
			fmt.Fprintf(out, "%d messages waiting in %s (dry run: nothing moved)\n", res.Waiting, *dlq)
		case res.TaskID != "":
			fmt.Fprintf(out, "message move task %s started for %d messages\n", res.TaskID, res.Waiting)
		default:
			fmt.Fprintf(out, "moved %d of %d messages back to %s\n", res.Moved, res.Waiting, *to)
		}
		return nil
	}
	return stats(ctx, c, *queue, out)
}

func send(ctx context.Context, c Client, queue string, bodies []string, delay time.Duration, group string, out io.Writer) error {
	if len(bodies) == 0 {
		return errors.New("send: give at least one message body")
	}
	p, err := producer.New(c, queue)
	if err != nil {
		return err
	}
	msgs := make([]producer.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = producer.Message{Body: b, Delay: delay, GroupID: group}
	}
	var failed error
	for i, r := range p.SendBatch(ctx, msgs) {
		if r.Err != nil {
			fmt.Fprintf(out, "message %d: %v\n", i+1, r.Err)
			failed = errors.New("send: some messages were not sent")
			continue
		}
		fmt.Fprintf(out, "sent %s\n", r.MessageID)
	}
	if err := p.Close(ctx); err != nil {
		return err
	}
	return failed
}

func peek(ctx context.Context, c Client, queue string, n int, out io.Writer) error {
	if n < 1 || n > 10 {
		return fmt.Errorf("peek: -n %d, want 1..10", n)
	}
	res, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queue, MaxNumberOfMessages: int32(n), VisibilityTimeout: 30,
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
	if err != nil {
		return err
	}
	if len(res.Messages) == 0 {
		fmt.Fprintln(out, "no message visible")
		return nil
	}
	var release []types.ChangeMessageVisibilityBatchRequestEntry
	for i, m := range res.Messages {
		fmt.Fprintf(out, "%s (received %s times): %s\n", aws.ToString(m.MessageId), m.Attributes["ApproximateReceiveCount"], aws.ToString(m.Body))
		keys := make([]string, 0, len(m.MessageAttributes))
		for k := range m.MessageAttributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(out, "  %s = %s\n", k, aws.ToString(m.MessageAttributes[k].StringValue))
		}
		release = append(release, types.ChangeMessageVisibilityBatchRequestEntry{Id: batchid.For(i), ReceiptHandle: m.ReceiptHandle})
	}
	// Put them back at once: peeking must not hold messages from their consumers.
	_, err = c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &queue, Entries: release})
	return err
}

func purge(ctx context.Context, c Client, queue string, yes bool, in io.Reader, out io.Writer) error {
	name := queue[strings.LastIndexByte(queue, '/')+1:]
	if !yes {
		fmt.Fprintf(out, "This deletes every message in %s. Type the queue's name to confirm: ", name)
		line, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(line) != name {
			return errors.New("purge: not confirmed; nothing deleted")
		}
	}
	if _, err := c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &queue}); err != nil {
		return err
	}
	fmt.Fprintf(out, "purged %s\n", name)
	return nil
}

func stats(ctx context.Context, c Client, queue string, out io.Writer) error {
	res, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &queue, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(res.Attributes))
	for k := range res.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "%-40s %s\n", k, res.Attributes[k])
	}
	return nil
}
