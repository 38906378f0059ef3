package sqstest_test

// The conformance suite: one set of scripted scenarios, each asserting what the SQS API
// reference or developer guide documents (cited in the scenario), run through the SDK's method
// set against sqstest.New() (in a synctest bubble, on fake time) and against the fauxqs
// emulator (real time, through *sqs.Client). Where the emulator departs from SQS the scenario
// is marked with the gap: it still runs there, and a failure is reported as a skip naming the
// gap (a marked scenario that passes fails, so the marks stay honest). sqstest is held to
// every scenario. Like go-cloud's drivertest, a new target only needs an env.

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// API is the SDK's method set the scenarios drive.
type API interface {
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
	DeleteQueue(context.Context, *sqs.DeleteQueueInput, ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error)
	ListQueues(context.Context, *sqs.ListQueuesInput, ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error)
	PurgeQueue(context.Context, *sqs.PurgeQueueInput, ...func(*sqs.Options)) (*sqs.PurgeQueueOutput, error)
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

var (
	_ API = (*sqs.Client)(nil)
	_ API = (*sqstest.Server)(nil)
)

// env is one target of the suite.
type env struct {
	API
	prefix string                // prepended to queue names, unique per scenario
	pass   func(d time.Duration) // lets d of the target's time pass
	settle func()                // lets a request started in a goroutine reach the target
}

// T is what a scenario reports to: failures of a scenario marked as a known emulator gap,
// when run on the emulator, become a skip naming the gap.
type T struct {
	*testing.T
	gap     string
	misses  []string
	stopped bool
}

// Errorf records a failure.
func (t *T) Errorf(format string, args ...any) {
	t.Helper()
	if t.gap != "" {
		t.misses = append(t.misses, fmt.Sprintf(format, args...))
		return
	}
	t.T.Errorf(format, args...)
}

// Fatalf records a failure and ends the scenario.
func (t *T) Fatalf(format string, args ...any) {
	t.Helper()
	if t.gap != "" {
		t.misses = append(t.misses, fmt.Sprintf(format, args...))
		t.stopped = true
		t.T.Skipf("known emulator gap (%s): %s", t.gap, strings.Join(t.misses, "; "))
	}
	t.T.Fatalf(format, args...)
}

// finish ends a gap-marked scenario: a skip naming the gap when it failed, a failure when it
// conformed after all.
func (t *T) finish() {
	if t.gap == "" || t.stopped {
		return
	}
	if len(t.misses) > 0 {
		t.T.Skipf("known emulator gap (%s): %s", t.gap, strings.Join(t.misses, "; "))
	}
	t.T.Errorf("marked as a known emulator gap (%s) but conforms: remove the mark", t.gap)
}

// Documentation the scenarios cite.
const (
	apiRef      = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/"
	guide       = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
	refReceive  = apiRef + "API_ReceiveMessage.html"
	refSend     = apiRef + "API_SendMessage.html"
	refSendB    = apiRef + "API_SendMessageBatch.html"
	refDelete   = apiRef + "API_DeleteMessage.html"
	refChange   = apiRef + "API_ChangeMessageVisibility.html"
	refCreate   = apiRef + "API_CreateQueue.html"
	refGetAttrs = apiRef + "API_GetQueueAttributes.html"
	refSetAttrs = apiRef + "API_SetQueueAttributes.html"
	refPurge    = apiRef + "API_PurgeQueue.html"
	refDelQueue = apiRef + "API_DeleteQueue.html"
	refList     = apiRef + "API_ListQueues.html"
	refGetURL   = apiRef + "API_GetQueueUrl.html"
	refMsgAttrs = apiRef + "API_MessageAttributeValue.html"
	refMD5      = guide + "sqs-message-metadata.html (calculating the MD5 message digest for message attributes)"
	refQuotas   = guide + "quotas-messages.html"
	refAttempt  = guide + "using-receiverequestattemptid-request-parameter.html"
	refFIFO     = guide + "FIFO-queues-understanding-logic.html"
	refExactly  = guide + "FIFO-queues-exactly-once-processing.html"
	refPolling  = guide + "sqs-short-and-long-polling.html"
	refDLQ      = guide + "sqs-dead-letter-queues.html"
	refExpired  = "https://repost.aws/knowledge-center/sqs-receipt-handle-error"
	refSDKErr   = "https://aws.github.io/aws-sdk-go-v2/docs/handling-errors/"
)

type scenario struct {
	name string
	ref  string // what SQS documents, and where
	gap  string // how the emulator departs from it; "" when it conforms
	run  func(t *T, e *env)
}

func TestConformanceSqstest(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := &env{API: sqstest.New(), prefix: "c-", pass: time.Sleep, settle: synctest.Wait}
				sc.run(&T{T: t}, e)
			})
		})
	}
}

func TestConformanceEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the emulator suite runs in real time")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	em, err := emulator.Start(ctx)
	cancel()
	if err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available (CI=true makes this a failure): %v", err)
	}
	defer em.Stop()
	opts := em.Options()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	opts.HTTPClient = &http.Client{Transport: tr}
	client := sqs.New(opts)
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ct := &T{T: t, gap: sc.gap}
			defer ct.finish()
			e := &env{API: client, prefix: fmt.Sprintf("c%d-", i),
				pass:   func(d time.Duration) { <-time.After(d) },
				settle: func() { <-time.After(300 * time.Millisecond) }} // no way to observe a request arriving
			sc.run(ct, e)
		})
	}
}

var bg = context.Background()

func (e *env) queue(t *T, name string, attrs map[string]string) string {
	t.Helper()
	out, err := e.CreateQueue(bg, &sqs.CreateQueueInput{QueueName: aws.String(e.prefix + name), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue %s: %v", name, err)
	}
	return *out.QueueUrl
}

func (e *env) fifo(t *T, name string) string {
	t.Helper()
	return e.queue(t, name+".fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
}

func (e *env) send(t *T, url, body string, opts ...func(*sqs.SendMessageInput)) *sqs.SendMessageOutput {
	t.Helper()
	in := &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}
	for _, o := range opts {
		o(in)
	}
	out, err := e.SendMessage(bg, in)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return out
}

func group(g string) func(*sqs.SendMessageInput) {
	return func(in *sqs.SendMessageInput) { in.MessageGroupId = &g }
}

func (e *env) recv(t *T, in *sqs.ReceiveMessageInput) []types.Message {
	t.Helper()
	out, err := e.ReceiveMessage(bg, in)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return out.Messages
}

// recvAll receives up to max messages from url with every attribute, visible for vis seconds.
func (e *env) recvAll(t *T, url string, max, vis int32) []types.Message {
	t.Helper()
	return e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: max, VisibilityTimeout: vis,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"}})
}

func bodies(ms []types.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, aws.ToString(m.Body))
	}
	return out
}

// unfixed are the codes the SDK's service model gives no awsQueryError code for (it does for
// the others, e.g. AWS.SimpleQueueService.NonExistentQueue): SQS's common errors and the
// model's errors without that trait. For these either spelling is accepted.
var unfixed = []string{"InvalidParameterValue", "MissingParameter", "InvalidAttributeName", "InvalidAttributeValue", "InvalidMessageContents"}

// wantCode fails unless err is what the SDK returns for an SQS error: a *smithy.OperationError
// of op around a smithy.APIError whose code is one of codes (for the unfixed ones, with or
// without the AWS.SimpleQueueService. prefix).
func wantCode(t *T, err error, op string, codes ...string) {
	t.Helper()
	var opErr *smithy.OperationError
	var api smithy.APIError
	switch {
	case err == nil:
		t.Errorf("%s succeeded, want %v", op, codes)
	case !errors.As(err, &opErr) || opErr.OperationName != op:
		t.Errorf("%s: %T %v, want a *smithy.OperationError of %s", op, err, err, op)
	case !errors.As(err, &api):
		t.Errorf("%s: %v is no smithy.APIError", op, err)
	case !slices.Contains(codes, api.ErrorCode()) && !(slices.Contains(unfixed, strings.TrimPrefix(api.ErrorCode(), "AWS.SimpleQueueService.")) &&
		slices.Contains(codes, strings.TrimPrefix(api.ErrorCode(), "AWS.SimpleQueueService."))):
		t.Errorf("%s: code %q (%v), want one of %v", op, api.ErrorCode(), err, codes)
	}
}

// attrsMD5 is the digest the developer guide documents for MD5OfMessageAttributes.
func attrsMD5(attrs map[string]types.MessageAttributeValue) string {
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var b []byte
	lp := func(p []byte) { b = binary.BigEndian.AppendUint32(b, uint32(len(p))); b = append(b, p...) }
	for _, k := range names {
		v := attrs[k]
		lp([]byte(k))
		lp([]byte(aws.ToString(v.DataType)))
		if strings.HasPrefix(aws.ToString(v.DataType), "Binary") {
			b = append(b, 2)
			lp(v.BinaryValue)
		} else {
			b = append(b, 1)
			lp([]byte(aws.ToString(v.StringValue)))
		}
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

func str(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// elapsed runs f and returns how long it took on the target's clock.
func elapsed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// longPoll starts a 20-second receive of url in a goroutine; the returned func waits for it
// and reports what it received and after how long.
func (e *env) longPoll(url string) func() ([]types.Message, time.Duration, error) {
	type result struct {
		msgs []types.Message
		d    time.Duration
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := e.ReceiveMessage(bg, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20, MaxNumberOfMessages: 10})
		r := result{d: time.Since(start), err: err}
		if out != nil {
			r.msgs = out.Messages
		}
		done <- r
	}()
	e.settle()
	return func() ([]types.Message, time.Duration, error) { r := <-done; return r.msgs, r.d, r.err }
}

// prompt is how soon a long poll must return once a message is receivable: well under the
// 20-second wait, with room for the emulator's real time.
const prompt = 5 * time.Second

var scenarios = []scenario{
	// 1. Attributes: only what the receive asks for.
	{name: "ReceiveReturnsNoAttributesUnlessAsked", ref: refReceive + " (MessageSystemAttributeNames, MessageAttributeNames)",
		gap: "returns message attributes nobody asked for",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x", func(in *sqs.SendMessageInput) {
				in.MessageAttributes = map[string]types.MessageAttributeValue{"a": str("1")}
			})
			ms := e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url})
			if len(ms) != 1 {
				t.Fatalf("received %d", len(ms))
			}
			if len(ms[0].Attributes) != 0 || len(ms[0].MessageAttributes) != 0 {
				t.Errorf("attributes nobody asked for: %v %v", ms[0].Attributes, ms[0].MessageAttributes)
			}
		}},
	{name: "ReceiveReturnsTheSystemAttributesNamed", ref: refReceive + " (MessageSystemAttributeNames)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			ms := e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url,
				MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
			if len(ms) != 1 || len(ms[0].Attributes) != 1 || ms[0].Attributes["ApproximateReceiveCount"] != "1" {
				t.Errorf("asked for ApproximateReceiveCount, got %v", ms)
			}
		}},
	{name: "ReceiveAllReturnsEverySystemAttribute", ref: refReceive + " (MessageSystemAttributeNames: All)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			ms := e.recvAll(t, url, 1, 0)
			for _, k := range []string{"ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp", "SentTimestamp", "SenderId"} {
				if len(ms) != 1 || ms[0].Attributes[k] == "" {
					t.Fatalf("All without %s: %v", k, ms)
				}
			}
			furl := e.fifo(t, "f")
			e.send(t, furl, "x", group("g"))
			ms = e.recvAll(t, furl, 1, 0)
			for _, k := range []string{"MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "ApproximateReceiveCount"} {
				if len(ms) != 1 || ms[0].Attributes[k] == "" {
					t.Fatalf("All on a FIFO queue without %s: %v", k, ms)
				}
			}
		}},
	{name: "ReceiveReturnsTheMessageAttributesNamed", ref: refReceive + " (MessageAttributeNames: names, All, .*, prefix.*; MD5OfMessageAttributes, which the AWS SDK for Java checks against the attributes returned)",
		gap: "MD5OfMessageAttributes covers every attribute, not those returned",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x", func(in *sqs.SendMessageInput) {
				in.MessageAttributes = map[string]types.MessageAttributeValue{"a": str("1"), "foo.b": str("2"), "foo.c": str("3"), "d": str("4")}
			})
			for _, c := range []struct {
				names []string
				want  string
			}{{[]string{"a"}, "[a]"}, {[]string{"foo.*"}, "[foo.b foo.c]"}, {[]string{"a", "d"}, "[a d]"}, {[]string{"All"}, "[a d foo.b foo.c]"}, {[]string{".*"}, "[a d foo.b foo.c]"}, {[]string{"zzz"}, "[]"}} {
				ms := e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url, VisibilityTimeout: 0, MessageAttributeNames: c.names})
				if len(ms) != 1 {
					t.Fatalf("%v: received %d", c.names, len(ms))
				}
				var got []string
				for k := range ms[0].MessageAttributes {
					got = append(got, k)
				}
				sort.Strings(got)
				if fmt.Sprint(got) != c.want && !(c.want == "[]" && got == nil) {
					t.Errorf("MessageAttributeNames %v returned %v, want %s", c.names, got, c.want)
				}
				if len(got) > 0 && aws.ToString(ms[0].MD5OfMessageAttributes) != attrsMD5(ms[0].MessageAttributes) {
					t.Errorf("%v: MD5OfMessageAttributes %q is not over the attributes returned", c.names, aws.ToString(ms[0].MD5OfMessageAttributes))
				}
				e.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 0})
			}
		}},
	{name: "MD5OfMessageAttributesOnSendAndReceive", ref: refSend + " (MD5OfMessageAttributes); " + refMD5,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			attrs := map[string]types.MessageAttributeValue{"s": str("v"), "n": {DataType: aws.String("Number"), StringValue: aws.String("42")},
				"b": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2}}, "c": {DataType: aws.String("String.custom"), StringValue: aws.String("w")}}
			out := e.send(t, url, "x", func(in *sqs.SendMessageInput) { in.MessageAttributes = attrs })
			if aws.ToString(out.MD5OfMessageAttributes) != attrsMD5(attrs) {
				t.Errorf("send MD5OfMessageAttributes %q, want %q", aws.ToString(out.MD5OfMessageAttributes), attrsMD5(attrs))
			}
			ms := e.recvAll(t, url, 1, 0)
			if len(ms) != 1 || aws.ToString(ms[0].MD5OfMessageAttributes) != attrsMD5(attrs) || len(ms[0].MessageAttributes) != 4 {
				t.Errorf("receive: %+v", ms)
			}
		}},
	{name: "AWSTraceHeaderIsReturned", ref: refSend + " (MessageSystemAttributes: AWSTraceHeader); " + refReceive,
		gap: "drops AWSTraceHeader",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			const trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
			e.send(t, url, "x", func(in *sqs.SendMessageInput) {
				in.MessageSystemAttributes = map[string]types.MessageSystemAttributeValue{"AWSTraceHeader": {DataType: aws.String("String"), StringValue: aws.String(trace)}}
			})
			ms := e.recvAll(t, url, 1, 0)
			if len(ms) != 1 || ms[0].Attributes["AWSTraceHeader"] != trace {
				t.Errorf("AWSTraceHeader not returned: %+v", ms)
			}
		}},
	{name: "StandardQueueKeepsMessageGroupId", ref: guide + "sqs-fair-queues.html; " + refReceive + " (MessageGroupId)",
		gap: "drops MessageGroupId on standard queues",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x", group("tenant-1"))
			if ms := e.recvAll(t, url, 1, 0); len(ms) != 1 || ms[0].Attributes["MessageGroupId"] != "tenant-1" {
				t.Errorf("MessageGroupId on a standard queue: %+v", ms)
			}
		}},

	// 2. Errors as the SDK returns them.
	{name: "MissingQueueIsQueueDoesNotExist", ref: refGetURL + ", " + refReceive + " (Errors: QueueDoesNotExist); " + refSDKErr,
		run: func(t *T, e *env) {
			_, err := e.GetQueueUrl(bg, &sqs.GetQueueUrlInput{QueueName: aws.String(e.prefix + "none")})
			wantCode(t, err, "GetQueueUrl", "AWS.SimpleQueueService.NonExistentQueue")
			var missing *types.QueueDoesNotExist
			if !errors.As(err, &missing) {
				t.Errorf("errors.As(*types.QueueDoesNotExist) false for %v", err)
			}
			url := e.queue(t, "q", nil)
			bad := url + "-none"
			_, err = e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &bad, MessageBody: aws.String("x")})
			wantCode(t, err, "SendMessage", "AWS.SimpleQueueService.NonExistentQueue")
			_, err = e.ReceiveMessage(bg, &sqs.ReceiveMessageInput{QueueUrl: &bad})
			wantCode(t, err, "ReceiveMessage", "AWS.SimpleQueueService.NonExistentQueue")
			if !errors.As(err, &missing) {
				t.Errorf("errors.As(*types.QueueDoesNotExist) false for %v", err)
			}
		}},
	{name: "RequiredParametersFailBeforeAnyCall", ref: refSend + " (QueueUrl, MessageBody: Required); " + refSDKErr,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url})
			var invalid smithy.InvalidParamsError
			var opErr *smithy.OperationError
			if !errors.As(err, &invalid) || !errors.As(err, &opErr) || !strings.Contains(err.Error(), "SendMessageInput.MessageBody") {
				t.Errorf("SendMessage without a body: %T %v", err, err)
			}
			_, err = e.DeleteMessageBatch(bg, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []types.DeleteMessageBatchRequestEntry{{Id: aws.String("0")}}})
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "ReceiptHandle") {
				t.Errorf("DeleteMessageBatch entry without a handle: %T %v", err, err)
			}
		}},
	{name: "MalformedReceiptHandleIsInvalid", ref: refDelete + " (Errors: ReceiptHandleIsInvalid)", gap: "accepts garbage receipt handles",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			_, err := e.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: aws.String("garbage")})
			wantCode(t, err, "DeleteMessage", "ReceiptHandleIsInvalid")
			var invalid *types.ReceiptHandleIsInvalid
			if !errors.As(err, &invalid) {
				t.Errorf("errors.As(*types.ReceiptHandleIsInvalid) false for %v", err)
			}
		}},
	{name: "VisibilityChangeOfAMessageNotInFlight", ref: refChange + " (Errors: MessageNotInflight)",
		gap: "changes the visibility of a message whose visibility lapsed",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			ms := e.recvAll(t, url, 1, 1)
			if len(ms) != 1 {
				t.Fatalf("received %d", len(ms))
			}
			e.pass(2 * time.Second)
			_, err := e.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 10})
			wantCode(t, err, "ChangeMessageVisibility", "AWS.SimpleQueueService.MessageNotInflight")
			var notInflight *types.MessageNotInflight
			if !errors.As(err, &notInflight) {
				t.Errorf("errors.As(*types.MessageNotInflight) false for %v", err)
			}
		}},
	{name: "BatchRequestErrors", ref: refSendB + " (Errors: EmptyBatchRequest, TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct, InvalidBatchEntryId); " + refQuotas + " (batched message ID)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			entries := func(ids ...string) []types.SendMessageBatchRequestEntry {
				out := []types.SendMessageBatchRequestEntry{}
				for _, id := range ids {
					out = append(out, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String("x")})
				}
				return out
			}
			send := func(es []types.SendMessageBatchRequestEntry) error {
				_, err := e.SendMessageBatch(bg, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: es})
				return err
			}
			wantCode(t, send(entries()), "SendMessageBatch", "AWS.SimpleQueueService.EmptyBatchRequest")
			wantCode(t, send(entries("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10")), "SendMessageBatch", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
			wantCode(t, send(entries("a", "a")), "SendMessageBatch", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
		}},
	{name: "BatchEntryIds", ref: refQuotas + " (batched message ID: up to 80 alphanumeric characters, hyphens and underscores); " + refSendB + " (Errors: InvalidBatchEntryId)",
		gap: "accepts a batch entry id over 80 characters",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			send := func(ids ...string) error {
				var es []types.SendMessageBatchRequestEntry
				for _, id := range ids {
					es = append(es, types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String("x")})
				}
				_, err := e.SendMessageBatch(bg, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: es})
				return err
			}
			if err := send("ok_-1", strings.Repeat("y", 80)); err != nil {
				t.Errorf("valid ids refused: %v", err)
			}
			for _, id := range []string{"a.b", "a b", "", strings.Repeat("x", 81)} {
				wantCode(t, send(id), "SendMessageBatch", "AWS.SimpleQueueService.InvalidBatchEntryId")
			}
		}},

	// 5. FIFO.
	{name: "FIFOReceiveRetriedWithTheSameAttemptId", ref: refReceive + " (ReceiveRequestAttemptId); " + refAttempt,
		gap: "ignores ReceiveRequestAttemptId",
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			for _, b := range []string{"a", "b"} {
				e.send(t, url, b, group(b))
			}
			in := &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 30, ReceiveRequestAttemptId: aws.String("attempt-1")}
			first := e.recv(t, in)
			again := e.recv(t, in)
			if len(first) == 0 || len(first) != len(again) {
				t.Fatalf("first %v, retry %v", bodies(first), bodies(again))
			}
			for i := range first {
				if *first[i].MessageId != *again[i].MessageId || *first[i].ReceiptHandle != *again[i].ReceiptHandle {
					t.Errorf("retry returned %s/%s, first %s/%s", *again[i].MessageId, *again[i].ReceiptHandle, *first[i].MessageId, *first[i].ReceiptHandle)
				}
			}
		}},
	{name: "FIFODuplicateSendReturnsTheOriginalMessageId", ref: refExactly + "; " + refSend + " (MessageDeduplicationId)",
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			first := e.send(t, url, "x", group("g"), func(in *sqs.SendMessageInput) { in.MessageDeduplicationId = aws.String("d") })
			dup := e.send(t, url, "y", group("g"), func(in *sqs.SendMessageInput) { in.MessageDeduplicationId = aws.String("d") })
			if *dup.MessageId != *first.MessageId {
				t.Errorf("duplicate's MessageId %s, original %s", *dup.MessageId, *first.MessageId)
			}
			if ms := e.recvAll(t, url, 10, 30); len(ms) != 1 || *ms[0].Body != "x" {
				t.Errorf("after a duplicate: %v", bodies(ms))
			}
		}},
	{name: "FIFODeleteWithAnExpiredHandleFails", ref: refExpired + "; " + refDelete,
		gap: "deletes with a FIFO handle whose visibility lapsed",
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			e.send(t, url, "x", group("g"))
			ms := e.recvAll(t, url, 1, 1)
			if len(ms) != 1 {
				t.Fatalf("received %d", len(ms))
			}
			e.pass(2 * time.Second)
			_, err := e.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle})
			wantCode(t, err, "DeleteMessage", "InvalidParameterValue")
			if again := e.recvAll(t, url, 1, 30); len(again) != 1 {
				t.Errorf("the message is gone after a refused delete")
			}
		}},
	{name: "FIFOSeveralMessagesOfAGroupInOneReceive", ref: refReceive + " (MaxNumberOfMessages; FIFO: messages of a group in order); " + refFIFO,
		gap: "returns at most one message per FIFO group per receive",
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			for _, b := range []string{"a1", "a2", "a3"} {
				e.send(t, url, b, group("a"))
			}
			if got := bodies(e.recvAll(t, url, 10, 30)); fmt.Sprint(got) != "[a1 a2 a3]" {
				t.Errorf("one receive of group a: %v", got)
			}
		}},
	{name: "FIFOGroupWaitsWhileAMessageIsInFlight", ref: refFIFO,
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			e.send(t, url, "a1", group("a"))
			e.send(t, url, "a2", group("a"))
			e.send(t, url, "b1", group("b"))
			first := e.recvAll(t, url, 1, 30)
			if fmt.Sprint(bodies(first)) != "[a1]" {
				t.Fatalf("first receive %v", bodies(first))
			}
			if got := bodies(e.recvAll(t, url, 10, 30)); fmt.Sprint(got) != "[b1]" {
				t.Errorf("while a1 is in flight: %v", got)
			}
		}},

	// 6. Long polls return as soon as a message becomes receivable.
	{name: "LongPollReturnsWhenAMessageIsSent", ref: refPolling,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			wait := e.longPoll(url)
			e.send(t, url, "x")
			ms, d, err := wait()
			if err != nil || len(ms) != 1 || d >= prompt {
				t.Errorf("long poll: %v %v after %v", bodies(ms), err, d)
			}
		}},
	{name: "LongPollReturnsWhenAFIFOGroupUnlocks", ref: refPolling + "; " + refFIFO,
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			e.send(t, url, "a1", group("a"))
			e.send(t, url, "a2", group("a"))
			ms := e.recvAll(t, url, 1, 60)
			if fmt.Sprint(bodies(ms)) != "[a1]" {
				t.Fatalf("first receive %v", bodies(ms))
			}
			wait := e.longPoll(url)
			if _, err := e.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			got, d, err := wait()
			if err != nil || fmt.Sprint(bodies(got)) != "[a2]" || d >= prompt {
				t.Errorf("long poll after the group unlocked: %v %v after %v", bodies(got), err, d)
			}
		}},
	{name: "LongPollReturnsWhenVisibilityIsSetToZero", ref: refPolling + "; " + refChange,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			ms := e.recvAll(t, url, 1, 60)
			wait := e.longPoll(url)
			if _, err := e.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
				t.Fatalf("change: %v", err)
			}
			got, d, err := wait()
			if err != nil || len(got) != 1 || d >= prompt {
				t.Errorf("long poll after visibility 0: %v %v after %v", bodies(got), err, d)
			}
		}},
	{name: "LongPollReturnsWhenVisibilityLapses", ref: refPolling + "; " + guide + "sqs-visibility-timeout.html",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			e.recvAll(t, url, 1, 2)
			got, d, err := e.longPoll(url)()
			if err != nil || len(got) != 1 || d >= 2*time.Second+prompt {
				t.Errorf("long poll over a lapsing visibility: %v %v after %v", bodies(got), err, d)
			}
		}},
	{name: "LongPollReturnsWhenADelayIsOver", ref: refPolling + "; " + refSend + " (DelaySeconds)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x", func(in *sqs.SendMessageInput) { in.DelaySeconds = 2 })
			got, d, err := e.longPoll(url)()
			if err != nil || len(got) != 1 || d < time.Second || d >= 2*time.Second+prompt {
				t.Errorf("long poll over a delay: %v %v after %v", bodies(got), err, d)
			}
		}},

	// 3. Sizes.
	{name: "DefaultMaximumMessageSizeIs1MiB", ref: refCreate + " (MaximumMessageSize: default 1,048,576)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			out, err := e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameMaximumMessageSize}})
			if err != nil || out.Attributes["MaximumMessageSize"] != "1048576" {
				t.Errorf("MaximumMessageSize %v %v", out, err)
			}
		}},
	{name: "AttributesCountTowardTheMessageSize", ref: refSend + " (MessageBody); " + refQuotas + " (message size); " + refMsgAttrs,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", map[string]string{"MaximumMessageSize": "1024"})
			e.send(t, url, strings.Repeat("x", 1024))
			_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(strings.Repeat("x", 1000)),
				MessageAttributes: map[string]types.MessageAttributeValue{"a": str(strings.Repeat("v", 100))}})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
			_, err = e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(strings.Repeat("x", 1025))})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
		}},
	{name: "BatchSizeIsTheSumOfItsMessages", ref: refSendB + " (the sum of all messages, at most 1 MiB; Errors: BatchRequestTooLong)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			batch := func(n, size int, attr int) error {
				var es []types.SendMessageBatchRequestEntry
				for i := range n {
					en := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(strings.Repeat("x", size))}
					if attr > 0 {
						en.MessageAttributes = map[string]types.MessageAttributeValue{"a": str(strings.Repeat("v", attr))}
					}
					es = append(es, en)
				}
				out, err := e.SendMessageBatch(bg, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: es})
				if err == nil && len(out.Failed) > 0 {
					return fmt.Errorf("failed entries: %s", aws.ToString(out.Failed[0].Message))
				}
				return err
			}
			if err := batch(10, 100000, 0); err != nil {
				t.Errorf("10 x 100,000 B: %v", err)
			}
			wantCode(t, batch(10, 10, 110000), "SendMessageBatch", "AWS.SimpleQueueService.BatchRequestTooLong")
			small := e.queue(t, "small", map[string]string{"MaximumMessageSize": "1024"})
			url = small
			if err := batch(2, 600, 0); err != nil {
				t.Errorf("2 x 600 B on a 1,024-byte queue: %v", err)
			}
		}},

	// 7. Queue attributes, queue calls, redrive, visibility limits.
	{name: "GetQueueAttributesReturnsWhatIsNamed", ref: refGetAttrs + " (AttributeNames: none returns nothing; All)",
		gap: "returns every attribute when none is named",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			out, err := e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &url})
			if err != nil || len(out.Attributes) != 0 {
				t.Errorf("no names: %v %v", out, err)
			}
			out, err = e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
			if err != nil || len(out.Attributes) != 1 || out.Attributes["VisibilityTimeout"] != "30" {
				t.Errorf("VisibilityTimeout: %v %v", out, err)
			}
			out, err = e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
			if err != nil {
				t.Fatalf("All: %v", err)
			}
			want := map[string]string{"DelaySeconds": "0", "MessageRetentionPeriod": "345600", "ReceiveMessageWaitTimeSeconds": "0",
				"VisibilityTimeout": "30", "MaximumMessageSize": "1048576", "ApproximateNumberOfMessages": "0",
				"ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0"}
			for k, v := range want {
				if out.Attributes[k] != v {
					t.Errorf("All: %s = %q, want %q", k, out.Attributes[k], v)
				}
			}
			for _, k := range []string{"CreatedTimestamp", "LastModifiedTimestamp", "QueueArn"} {
				if out.Attributes[k] == "" {
					t.Errorf("All without %s", k)
				}
			}
		}},
	{name: "SetQueueAttributesChangesTheQueue", ref: refSetAttrs,
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			if _, err := e.SetQueueAttributes(bg, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"VisibilityTimeout": "1"}}); err != nil {
				t.Fatalf("set: %v", err)
			}
			e.send(t, url, "x")
			e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url})
			e.pass(2 * time.Second)
			if ms := e.recv(t, &sqs.ReceiveMessageInput{QueueUrl: &url}); len(ms) != 1 {
				t.Errorf("the queue's new visibility timeout of 1 s did not apply")
			}
		}},
	{name: "DeleteQueueAndListQueues", ref: refDelQueue + "; " + refList + " (QueueNamePrefix)",
		run: func(t *T, e *env) {
			a := e.queue(t, "list-a", nil)
			e.queue(t, "list-b", nil)
			e.queue(t, "other", nil)
			out, err := e.ListQueues(bg, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(e.prefix + "list-")})
			if err != nil || len(out.QueueUrls) != 2 {
				t.Fatalf("list: %v %v", out, err)
			}
			if _, err := e.DeleteQueue(bg, &sqs.DeleteQueueInput{QueueUrl: &a}); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = e.GetQueueUrl(bg, &sqs.GetQueueUrlInput{QueueName: aws.String(e.prefix + "list-a")})
			wantCode(t, err, "GetQueueUrl", "AWS.SimpleQueueService.NonExistentQueue")
		}},
	{name: "DeadLetterQueueKeepsTheReceiveCount", ref: refReceive + " (ApproximateReceiveCount: received across all queues); " + refDLQ,
		run: func(t *T, e *env) {
			dlq := e.queue(t, "dlq", nil)
			arn, err := e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &dlq, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
			if err != nil {
				t.Fatalf("arn: %v", err)
			}
			url := e.queue(t, "q", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"` + arn.Attributes["QueueArn"] + `","maxReceiveCount":"1"}`})
			e.send(t, url, "poison")
			e.recvAll(t, url, 1, 1)
			e.pass(2 * time.Second)
			if ms := e.recvAll(t, url, 1, 1); len(ms) != 0 {
				t.Fatalf("received past maxReceiveCount: %v", bodies(ms))
			}
			ms := e.recvAll(t, dlq, 1, 30)
			if len(ms) != 1 {
				t.Fatalf("dead-letter queue: %v", bodies(ms))
			}
			if n, _ := strconv.Atoi(ms[0].Attributes["ApproximateReceiveCount"]); n < 2 {
				t.Errorf("ApproximateReceiveCount restarted in the dead-letter queue: %q", ms[0].Attributes["ApproximateReceiveCount"])
			}
		}},
	{name: "VisibilityOf12HoursRightAfterAReceive", ref: refChange + " (the 12-hour maximum counts from the receive)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			ms := e.recvAll(t, url, 1, 30)
			if len(ms) != 1 {
				t.Fatalf("received %d", len(ms))
			}
			if _, err := e.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 43200}); err != nil {
				t.Errorf("43,200 s: %v", err)
			}
			_, err := e.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: ms[0].ReceiptHandle, VisibilityTimeout: 43201})
			wantCode(t, err, "ChangeMessageVisibility", "InvalidParameterValue")
		}},
	{name: "StandardQueueAcceptsASupersededHandlesDelete", ref: refDelete + " (an old ReceiptHandle: the request succeeds, the message might not be deleted)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			e.send(t, url, "x")
			old := e.recvAll(t, url, 1, 1)
			e.pass(2 * time.Second)
			cur := e.recvAll(t, url, 1, 30)
			if len(old) != 1 || len(cur) != 1 {
				t.Fatalf("receives %d, %d", len(old), len(cur))
			}
			if _, err := e.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: old[0].ReceiptHandle}); err != nil {
				t.Errorf("delete with a superseded handle: %v", err)
			}
			if _, err := e.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: cur[0].ReceiptHandle}); err != nil {
				t.Errorf("delete with the current handle: %v", err)
			}
		}},

	// 4. Validation.
	{name: "InvalidBodyCharacters", ref: refSend + " (MessageBody: allowed characters; Errors: InvalidMessageContents)",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			for _, body := range []string{"a\x00b", "a\x08b", "a\uFFFEb", "a\uFFFFb"} {
				_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})
				wantCode(t, err, "SendMessage", "InvalidMessageContents")
			}
			e.send(t, url, "tab\there\nnew line \u00e9 \uE000 \uFFFD")
		}},
	{name: "CharactersAboveU+FFFFAreAllowed", ref: refSend + " (MessageBody: #x10000 to #x10FFFF)", gap: "rejects characters above U+FFFF",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			if _, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("emoji \U0001F600")}); err != nil {
				t.Errorf("U+1F600: %v", err)
			}
		}},
	{name: "MessageAttributeNamesAndValues", ref: refSend + " (MessageAttributes); " + refMsgAttrs + "; " + guide + "sqs-message-metadata.html",
		gap: "accepts invalid message attribute names and values",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			for _, name := range []string{"AWS.x", "amazon.x", ".x", "x.", "a..b", "a b", strings.Repeat("n", 257)} {
				_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"),
					MessageAttributes: map[string]types.MessageAttributeValue{name: str("v")}})
				wantCode(t, err, "SendMessage", "InvalidParameterValue", "InvalidAttributeName")
			}
			for _, v := range []types.MessageAttributeValue{str(""), {DataType: aws.String("Blob"), StringValue: aws.String("v")},
				{DataType: aws.String("Binary")}, {DataType: aws.String("Number"), StringValue: aws.String("ten")}} {
				_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"),
					MessageAttributes: map[string]types.MessageAttributeValue{"a": v}})
				wantCode(t, err, "SendMessage", "InvalidParameterValue", "InvalidAttributeValue")
			}
			e.send(t, url, "x", func(in *sqs.SendMessageInput) {
				in.MessageAttributes = map[string]types.MessageAttributeValue{"a-b_c.d": str("v"), strings.Repeat("n", 256): str("v")}
			})
		}},
	{name: "AtMostTenMessageAttributes", ref: refQuotas + " (message attributes: up to 10)", gap: "accepts 11 message attributes",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			attrs := map[string]types.MessageAttributeValue{}
			for i := range 11 {
				attrs["a"+strconv.Itoa(i)] = str("v")
			}
			_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageAttributes: attrs})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
		}},
	{name: "DelaySecondsAtMost900", ref: refSend + " (DelaySeconds: 0 to 900)", gap: "accepts DelaySeconds over 900",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), DelaySeconds: 901})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
		}},
	{name: "QueueNames", ref: refCreate + " (QueueName: up to 80 alphanumeric characters, hyphens, underscores; .fifo)",
		gap: "accepts invalid queue names",
		run: func(t *T, e *env) {
			for _, name := range []string{e.prefix + "a b", e.prefix + strings.Repeat("n", 80), e.prefix + "a.b", e.prefix + "x.fifo"} {
				_, err := e.CreateQueue(bg, &sqs.CreateQueueInput{QueueName: aws.String(name)})
				wantCode(t, err, "CreateQueue", "InvalidParameterValue")
			}
			e.queue(t, "ok_-"+strings.Repeat("n", 80-len(e.prefix)-4), nil)
		}},
	{name: "GroupAndDeduplicationIdsAtMost128", ref: refSend + " (MessageGroupId, MessageDeduplicationId: up to 128 characters)",
		gap: "accepts group and deduplication ids over 128 characters",
		run: func(t *T, e *env) {
			url := e.fifo(t, "q")
			long := strings.Repeat("g", 129)
			_, err := e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageGroupId: &long})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
			_, err = e.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x"), MessageGroupId: aws.String("g"), MessageDeduplicationId: &long})
			wantCode(t, err, "SendMessage", "InvalidParameterValue")
			e.send(t, url, "x", group(strings.Repeat("g", 128)))
		}},
	{name: "FIFOQueueNeedsAFIFODeadLetterQueue", ref: refDLQ + " (the dead-letter queue of a FIFO queue must also be a FIFO queue)",
		gap: "accepts a standard dead-letter queue for a FIFO queue",
		run: func(t *T, e *env) {
			dlq := e.queue(t, "dlq", nil)
			arn, err := e.GetQueueAttributes(bg, &sqs.GetQueueAttributesInput{QueueUrl: &dlq, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
			if err != nil {
				t.Fatalf("arn: %v", err)
			}
			_, err = e.CreateQueue(bg, &sqs.CreateQueueInput{QueueName: aws.String(e.prefix + "q.fifo"), Attributes: map[string]string{"FifoQueue": "true",
				"RedrivePolicy": `{"deadLetterTargetArn":"` + arn.Attributes["QueueArn"] + `","maxReceiveCount":"3"}`}})
			wantCode(t, err, "CreateQueue", "InvalidParameterValue", "InvalidAttributeValue")
		}},
	{name: "PurgeQueueOnceAMinute", ref: refPurge + " (Errors: PurgeQueueInProgress)",
		gap: "accepts a second PurgeQueue within 60 seconds",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", nil)
			if _, err := e.PurgeQueue(bg, &sqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
				t.Fatalf("purge: %v", err)
			}
			_, err := e.PurgeQueue(bg, &sqs.PurgeQueueInput{QueueUrl: &url})
			wantCode(t, err, "PurgeQueue", "AWS.SimpleQueueService.PurgeQueueInProgress")
		}},
	{name: "CreateQueueOfAnExistingName", ref: refCreate + " (Errors: QueueNameExists, only when attributes differ)",
		gap: "answers QueueNameExists with the code AWS.SimpleQueueService.QueueNameExists, not the model's QueueAlreadyExists",
		run: func(t *T, e *env) {
			url := e.queue(t, "q", map[string]string{"VisibilityTimeout": "60"})
			if again := e.queue(t, "q", map[string]string{"VisibilityTimeout": "60"}); again != url {
				t.Errorf("same attributes: %s, want %s", again, url)
			}
			_, err := e.CreateQueue(bg, &sqs.CreateQueueInput{QueueName: aws.String(e.prefix + "q"), Attributes: map[string]string{"VisibilityTimeout": "61"}})
			wantCode(t, err, "CreateQueue", "QueueAlreadyExists", "QueueNameExists")
		}},
	{name: "OutOfRangeAttributesAreInvalidAttributeValue", ref: refCreate + " (Attributes: valid values); " + refSetAttrs + " (Errors: InvalidAttributeValue)",
		run: func(t *T, e *env) {
			for i, a := range []map[string]string{{"VisibilityTimeout": "43201"}, {"MaximumMessageSize": "1023"}, {"DelaySeconds": "901"},
				{"MessageRetentionPeriod": "59"}, {"ReceiveMessageWaitTimeSeconds": "21"}} {
				_, err := e.CreateQueue(bg, &sqs.CreateQueueInput{QueueName: aws.String(e.prefix + "q" + strconv.Itoa(i)), Attributes: a})
				wantCode(t, err, "CreateQueue", "InvalidAttributeValue")
			}
			url := e.queue(t, "ok", nil)
			_, err := e.SetQueueAttributes(bg, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: map[string]string{"VisibilityTimeout": "-1"}})
			wantCode(t, err, "SetQueueAttributes", "InvalidAttributeValue")
		}},
}
