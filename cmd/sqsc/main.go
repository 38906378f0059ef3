// Command sqsc operates SQS queues from a shell: create and list queues, send, peek at and tail
// messages, show a queue's counts, purge it, and redrive a dead-letter queue.
//
//	sqsc create [-fifo] [-dlq [-max-receives 5]] [-visibility 30s] NAME
//	sqsc list [-prefix P]
//	sqsc send -queue URL [-delay 30s] [-group G] BODY...
//	sqsc peek -queue URL [-n 10] [-visibility 0]
//	sqsc tail -queue URL [-delete] [-n N] [-wait 20s]
//	sqsc stats -queue URL
//	sqsc purge -queue URL [-yes]
//	sqsc redrive -dlq URL -to URL [-dry-run] [-max N]
//
// create prints the queue's URL alone on stdout, so URL=$(sqsc create NAME) works; creating a
// queue that exists with the same attributes prints its URL again.
//
// Every command also takes -endpoint (default: AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL)
// and -region (default: AWS_REGION), before or after its name, and -queue defaults to
// SQS_QUEUE_URL. Credentials come from the usual AWS environment variables and files.
// "sqsc -h" and "sqsc COMMAND -h" print the usage and exit 0; a usage error exits 2.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
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
	queues.Creator
	producer.Client
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	PurgeQueue(ctx context.Context, in *sqs.PurgeQueueInput, optFns ...func(*sqs.Options)) (*sqs.PurgeQueueOutput, error)
	ListQueues(ctx context.Context, in *sqs.ListQueuesInput, optFns ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error)
}

var _ Client = (*sqs.Client)(nil)

func main() {
	// Ctrl-C or SIGTERM ends a tail (which then releases what it holds) or a call in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}, os.Getenv, connectAWS(ctx))
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "sqsc:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "sqsc:", err)
		os.Exit(1)
	}
}

// connectAWS returns the connect function main uses: the SDK's default configuration (the AWS
// environment variables and files), with the endpoint and region given. With an endpoint and
// no region anywhere, the region is us-east-1 (emulators accept any).
func connectAWS(ctx context.Context) func(endpoint, region string) (Client, error) {
	return func(endpoint, region string) (Client, error) {
		cfg, err := config.LoadDefaultConfig(ctx, func(o *config.LoadOptions) error {
			if region != "" {
				o.Region = region
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		if cfg.Region == "" && endpoint != "" {
			cfg.Region = "us-east-1"
		}
		return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		}), nil
	}
}

// errUsage is wrapped by errors in the command line; main exits 2 for them.
var errUsage = errors.New("usage")

type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

// call is what a command runs with once its flags are parsed.
type call struct {
	ctx   context.Context
	c     Client
	queue string   // -queue, for the commands that take it
	args  []string // the arguments after the flags
	stdio
}

// command is one subcommand: flags registers its flags on fs and returns what runs it.
type command struct {
	name, synopsis, summary string
	queue                   bool // takes a required -queue
	flags                   func(fs *flag.FlagSet) func(call) error
}

var commands = []command{
	{"create", "[-fifo] [-dlq [-max-receives N]] [-visibility D] NAME", "create a queue (with -dlq, NAME-dlq too) and print its URL (the DLQ's on stderr)", false, createCmd},
	{"list", "[-prefix P]", "list queues with their approximate counts", false, listCmd},
	{"send", "-queue URL [-delay D] [-group G] BODY...", "send each BODY as a message", true, sendCmd},
	{"peek", "-queue URL [-n N] [-visibility D]", "receive up to N messages, print them and release them (raises their receive counts)", true, peekCmd},
	{"tail", "-queue URL [-delete] [-n N] [-wait D]", "print messages as they arrive until Ctrl-C (or N); held until then and released, or deleted with -delete", true, tailCmd},
	{"stats", "-queue URL", "print the queue's attributes", true, statsCmd},
	{"purge", "-queue URL [-yes]", "delete every message (asks to type the queue's name unless -yes)", true, purgeCmd},
	{"redrive", "-dlq URL -to URL [-dry-run] [-max N]", "move messages from a dead-letter queue back to a queue", false, redriveCmd},
}

// globals are the flags every command takes, before or after its name.
type globals struct{ endpoint, region string }

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoint, "endpoint", g.endpoint, "SQS endpoint, e.g. an emulator's URL; env AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL")
	fs.StringVar(&g.region, "region", g.region, "AWS region; env AWS_REGION")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sqsc [-endpoint URL] [-region R] COMMAND [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nEvery command takes -endpoint and -region (env AWS_ENDPOINT_URL, AWS_REGION); -queue defaults")
	fmt.Fprintln(w, "to SQS_QUEUE_URL. \"sqsc COMMAND -h\" shows a command's flags.")
}

func run(ctx context.Context, args []string, s stdio, getenv func(string) string, connect func(endpoint, region string) (Client, error)) error {
	g := globals{endpoint: getenv("AWS_ENDPOINT_URL_SQS"), region: getenv("AWS_REGION")}
	if g.endpoint == "" {
		g.endpoint = getenv("AWS_ENDPOINT_URL")
	}
	top := flag.NewFlagSet("sqsc", flag.ContinueOnError)
	g.register(top)
	top.Usage = func() { usage(top.Output()); fmt.Fprintln(top.Output(), "\nflags:"); top.PrintDefaults() }
	if err := parse(top, args, s); err != nil {
		return err
	}
	if top.NArg() == 0 {
		usage(s.errOut)
		return fmt.Errorf("%w: no command", errUsage)
	}
	name, rest := top.Arg(0), top.Args()[1:]
	if name == "help" {
		if len(rest) == 0 {
			usage(s.out)
			return nil
		}
		name, rest = rest[0], []string{"-h"}
	}
	i := 0
	for i < len(commands) && commands[i].name != name {
		i++
	}
	if i == len(commands) {
		usage(s.errOut)
		return fmt.Errorf("%w: unknown command %q", errUsage, name)
	}
	cmd := commands[i]
	fs := flag.NewFlagSet("sqsc "+name, flag.ContinueOnError)
	var queue *string
	if cmd.queue {
		queue = fs.String("queue", getenv("SQS_QUEUE_URL"), "queue URL (required); env SQS_QUEUE_URL")
	}
	act := cmd.flags(fs)
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sqsc %s %s\n\n%s.\n\nflags:\n", name, cmd.synopsis, cmd.summary)
		fs.PrintDefaults()
	}
	if err := parse(fs, rest, s); err != nil {
		return err
	}
	x := call{ctx: ctx, args: fs.Args(), stdio: s}
	if cmd.queue {
		if *queue == "" {
			fs.SetOutput(s.errOut)
			fs.Usage()
			return fmt.Errorf("%w: %s: -queue is required", errUsage, name)
		}
		x.queue = *queue
	}
	c, err := connect(g.endpoint, g.region)
	if err != nil {
		return err
	}
	x.c = c
	return act(x)
}

// parse parses args into fs. On -h it prints the usage to stdout and returns flag.ErrHelp; on
// a bad flag it prints the usage to stderr and returns an error wrapping errUsage.
func parse(fs *flag.FlagSet, args []string, s stdio) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		s.out.Write(buf.Bytes())
		return err
	case err != nil:
		fs.SetOutput(s.errOut)
		fs.Usage()
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

func createCmd(fs *flag.FlagSet) func(call) error {
	fifo := fs.Bool("fifo", false, "a FIFO queue (\".fifo\" is added to the name; content-based deduplication on)")
	dlq := fs.Bool("dlq", false, "also create NAME-dlq and a redrive policy to it")
	maxReceives := fs.Int("max-receives", 5, "with -dlq: receives before a message moves to the dead-letter queue (1..1000)")
	visibility := fs.Duration("visibility", 0, "the queue's default visibility timeout, whole seconds up to 12h (0: SQS's default, 30s)")
	return func(x call) error {
		if len(x.args) != 1 {
			return usageErr("create: give one queue name")
		}
		name := x.args[0]
		if strings.HasSuffix(name, ".fifo") {
			name, *fifo = strings.TrimSuffix(name, ".fifo"), true
		}
		maxSet := false
		fs.Visit(func(f *flag.Flag) { maxSet = maxSet || f.Name == "max-receives" })
		switch {
		case maxSet && !*dlq:
			return usageErr("create: -max-receives needs -dlq")
		case *maxReceives < 1 || *maxReceives > 1000:
			return usageErr("create: -max-receives %d, want 1..1000", *maxReceives)
		case *visibility < 0 || *visibility > 12*time.Hour || *visibility%time.Second != 0:
			return usageErr("create: -visibility %v, want whole seconds from 0 to 12h", *visibility)
		}
		attrs := map[string]string{}
		if *visibility > 0 {
			attrs["VisibilityTimeout"] = strconv.Itoa(int(visibility.Seconds()))
		}
		if *fifo {
			attrs["ContentBasedDeduplication"] = "true" // so "send -group G" needs no deduplication id
		}
		if *dlq {
			url, dlqURL, err := queues.CreateWithDLQ(x.ctx, x.c, queues.Spec{Name: name, FIFO: *fifo, MaxReceiveCount: *maxReceives, Attributes: attrs})
			if err != nil {
				return err
			}
			fmt.Fprintln(x.out, url)
			fmt.Fprintln(x.errOut, "dead-letter queue:", dlqURL)
			return nil
		}
		if *fifo {
			name += ".fifo"
			attrs["FifoQueue"] = "true"
		}
		out, err := x.c.CreateQueue(x.ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
		if err != nil {
			return err
		}
		fmt.Fprintln(x.out, aws.ToString(out.QueueUrl))
		return nil
	}
}

// countAttributes are the counts list shows, in its column order.
var countAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameApproximateNumberOfMessages,
	types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
}

func listCmd(fs *flag.FlagSet) func(call) error {
	prefix := fs.String("prefix", "", "only queues whose name starts with this")
	return func(x call) error {
		if len(x.args) > 0 {
			return usageErr("list: unexpected arguments %q", x.args)
		}
		in := &sqs.ListQueuesInput{MaxResults: aws.Int32(1000)}
		if *prefix != "" {
			in.QueueNamePrefix = prefix
		}
		tw := tabwriter.NewWriter(x.out, 0, 0, 0, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "visible\t  in flight\t  delayed\t  queue")
		n := 0
		for p := sqs.NewListQueuesPaginator(x.c, in); p.HasMorePages(); {
			page, err := p.NextPage(x.ctx)
			if err != nil {
				return err
			}
			for _, url := range page.QueueUrls {
				res, err := x.c.GetQueueAttributes(x.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: countAttributes})
				var gone *types.QueueDoesNotExist
				if errors.As(err, &gone) {
					continue // deleted since the listing
				}
				if err != nil {
					return err
				}
				sep := ""
				for _, a := range countAttributes {
					fmt.Fprintf(tw, "%s%s\t", sep, res.Attributes[string(a)])
					sep = "  "
				}
				fmt.Fprintf(tw, "  %s\n", url)
				n++
			}
		}
		if n == 0 {
			fmt.Fprintln(x.errOut, "no queues")
			return nil
		}
		return tw.Flush()
	}
}

func sendCmd(fs *flag.FlagSet) func(call) error {
	delay := fs.Duration("delay", 0, "delay before the messages are visible (at most 15m; not on FIFO queues)")
	group := fs.String("group", "", "MessageGroupId (required on FIFO queues)")
	return func(x call) error {
		if len(x.args) == 0 {
			return usageErr("send: give at least one message body")
		}
		p, err := producer.New(x.c, x.queue)
		if err != nil {
			return err
		}
		msgs := make([]producer.Message, len(x.args))
		for i, b := range x.args {
			msgs[i] = producer.Message{Body: b, Delay: *delay, GroupID: *group}
		}
		var failed error
		for i, r := range p.SendBatch(x.ctx, msgs) {
			if r.Err != nil {
				fmt.Fprintf(x.errOut, "message %d: %v\n", i+1, r.Err)
				failed = errors.New("send: some messages were not sent")
				continue
			}
			fmt.Fprintf(x.out, "sent %s\n", r.MessageID)
		}
		if err := p.Close(x.ctx); err != nil {
			return err
		}
		return failed
	}
}

// peekHold is the visibility peek receives with when it releases the messages at once: long
// enough to print them, short enough that they return soon should the release fail.
const peekHold = 30 * time.Second

func peekCmd(fs *flag.FlagSet) func(call) error {
	n := fs.Int("n", 10, "messages to show (1..10)")
	visibility := fs.Duration("visibility", 0, "keep them invisible this long, whole seconds up to 12h (0: release them at once)")
	return func(x call) error {
		switch {
		case len(x.args) > 0:
			return usageErr("peek: unexpected arguments %q", x.args)
		case *n < 1 || *n > 10:
			return usageErr("peek: -n %d, want 1..10", *n)
		case *visibility < 0 || *visibility > 12*time.Hour || *visibility%time.Second != 0:
			return usageErr("peek: -visibility %v, want whole seconds from 0 to 12h", *visibility)
		}
		fmt.Fprintln(x.errOut, "peek: receiving raises each message's receive count (past a redrive policy's maxReceiveCount it moves to the DLQ) and hides it from consumers until released")
		hold := *visibility
		if hold == 0 {
			hold = peekHold
		}
		res, err := x.c.ReceiveMessage(x.ctx, receiveInput(x.queue, int32(*n), hold, 0))
		if err != nil {
			return err
		}
		if len(res.Messages) == 0 {
			fmt.Fprintln(x.errOut, "no message visible")
			return nil
		}
		handles := make([]*string, len(res.Messages))
		for i, m := range res.Messages {
			printMessage(x.out, m)
			handles[i] = m.ReceiptHandle
		}
		if *visibility > 0 {
			fmt.Fprintf(x.errOut, "peek: invisible for %v\n", *visibility)
			return nil
		}
		// SQS takes no visibility of 0 on a receive (the SDK omits a zero), so release them now.
		return setVisibility(x.ctx, x.c, x.queue, handles, 0, x.errOut)
	}
}

func receiveInput(queue string, n int32, visibility, wait time.Duration) *sqs.ReceiveMessageInput {
	return &sqs.ReceiveMessageInput{QueueUrl: &queue, MaxNumberOfMessages: n,
		VisibilityTimeout: int32(visibility / time.Second), WaitTimeSeconds: int32(wait / time.Second),
		MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}}
}

// printMessage prints a message's id, receive count and body, then its attributes by name.
func printMessage(w io.Writer, m types.Message) {
	fmt.Fprintf(w, "%s (received %s times): %s\n", aws.ToString(m.MessageId), m.Attributes["ApproximateReceiveCount"], aws.ToString(m.Body))
	keys := make([]string, 0, len(m.MessageAttributes))
	for k := range m.MessageAttributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s = %s\n", k, aws.ToString(m.MessageAttributes[k].StringValue))
	}
}

// setVisibility sets the visibility of the messages with these receipt handles, in batches of
// 10. Entries SQS refuses are reported to errOut and make the result an error.
func setVisibility(ctx context.Context, c Client, queue string, handles []*string, visibility time.Duration, errOut io.Writer) error {
	refused := 0
	for start := 0; start < len(handles); start += 10 {
		batch := handles[start:min(start+10, len(handles))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
		for i, h := range batch {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: batchid.For(i), ReceiptHandle: h, VisibilityTimeout: int32(visibility / time.Second)}
		}
		out, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &queue, Entries: entries})
		if err != nil {
			return err
		}
		for _, f := range out.Failed {
			fmt.Fprintf(errOut, "visibility change refused: %s: %s\n", aws.ToString(f.Code), aws.ToString(f.Message))
			refused++
		}
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d visibility changes refused", refused, len(handles))
	}
	return nil
}

func statsCmd(fs *flag.FlagSet) func(call) error {
	return func(x call) error {
		if len(x.args) > 0 {
			return usageErr("stats: unexpected arguments %q", x.args)
		}
		res, err := x.c.GetQueueAttributes(x.ctx, &sqs.GetQueueAttributesInput{QueueUrl: &x.queue, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(res.Attributes))
		for k := range res.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(x.out, "%-40s %s\n", k, res.Attributes[k])
		}
		return nil
	}
}

func purgeCmd(fs *flag.FlagSet) func(call) error {
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	return func(x call) error {
		if len(x.args) > 0 {
			return usageErr("purge: unexpected arguments %q", x.args)
		}
		name := x.queue[strings.LastIndexByte(x.queue, '/')+1:]
		if !*yes {
			fmt.Fprintf(x.out, "This deletes every message in %s. Type the queue's name to confirm: ", name)
			line, _ := bufio.NewReader(x.in).ReadString('\n')
			if strings.TrimSpace(line) != name {
				return errors.New("purge: not confirmed; nothing deleted")
			}
		}
		if _, err := x.c.PurgeQueue(x.ctx, &sqs.PurgeQueueInput{QueueUrl: &x.queue}); err != nil {
			return err
		}
		fmt.Fprintf(x.out, "purged %s\n", name)
		return nil
	}
}

func redriveCmd(fs *flag.FlagSet) func(call) error {
	dlq := fs.String("dlq", "", "dead-letter queue URL (required)")
	to := fs.String("to", "", "queue URL to move the messages back to (required)")
	dryRun := fs.Bool("dry-run", false, "only count the messages")
	max := fs.Int("max", 0, "move at most this many (0: all)")
	return func(x call) error {
		switch {
		case len(x.args) > 0:
			return usageErr("redrive: unexpected arguments %q", x.args)
		case *dlq == "" || *to == "":
			return usageErr("redrive: -dlq and -to are required")
		}
		res, err := queues.Redrive(x.ctx, x.c, *dlq, *to, queues.RedriveOptions{DryRun: *dryRun, Max: *max})
		if err != nil {
			return err
		}
		switch {
		case *dryRun:
			fmt.Fprintf(x.out, "%d messages waiting in %s (dry run: nothing moved)\n", res.Waiting, *dlq)
		case res.TaskID != "":
			fmt.Fprintf(x.out, "message move task %s started for %d messages\n", res.TaskID, res.Waiting)
		default:
			fmt.Fprintf(x.out, "moved %d of %d messages back to %s\n", res.Moved, res.Waiting, *to)
		}
		return nil
	}
}
