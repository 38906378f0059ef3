package sqsconsumer_test

// Integration tests against the fauxqs SQS emulator: the real SQS protocol through the real
// SDK client. They start the emulator on first use (installing it with npm ci if needed).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/aws/smithy-go"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/queues"
)

var queueSeq atomic.Int64

// emuQueue creates a fresh queue on the emulator.
func emuQueue(t testing.TB, client *sqs.Client, attrs map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", strings.NewReplacer("/", "-", "_", "-", "=", "-").Replace(t.Name()), queueSeq.Add(1))
	if len(name) > 70 {
		name = name[len(name)-70:]
	}
	if attrs["FifoQueue"] == "true" {
		name += ".fifo"
	}
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	return *out.QueueUrl
}

// counts returns the queue's visible and in-flight message counts.
func counts(t *testing.T, client *sqs.Client, url string) (visible, inFlight int) {
	t.Helper()
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatalf("queue attributes: %v", err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight
}

// drain receives every visible message of the queue (keeping them invisible for a minute) and
// returns them. fauxqs returns lapsed messages to the queue only when it is received from, so
// a test counts what is left this way, not from the queue's attributes.
func drain(t *testing.T, client *sqs.Client, url string) []types.Message {
	t.Helper()
	var all []types.Message
	for {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		<-tick.C
	}
}

func TestEmulatorHandlesThousandAndEmptiesQueue(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	const n = 1000
	sendN(t, client, url, n)
	var seen sync.Map
	var handled atomic.Int64
	all := make(chan struct{})
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		if _, dup := seen.LoadOrStore(*m.MessageId, true); dup {
			t.Errorf("message %s handled twice", *m.Body)
		}
		if handled.Add(1) == n {
			close(all)
		}
		return nil
	}, sqsconsumer.WithConcurrency(32), sqsconsumer.WithWaitTime(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		t.Fatalf("handled %d of %d", handled.Load(), n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := checkReportAddsUp(t, c)
	if r.Acked != n {
		t.Fatalf("acked %d of %d: %+v", r.Acked, n, r.Stats)
	}
	eventually(t, 10*time.Second, "queue not empty", func() bool { v, f := counts(t, client, url); return v == 0 && f == 0 })
}

func TestEmulatorHandlerErrorRedelivers(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	sendN(t, client, url, 1)
	got := make(chan int, 5)
	c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		got <- m.ReceiveCount()
		if m.ReceiveCount() == 1 {
			return errors.New("first try fails")
		}
		return nil
	}, sqsconsumer.WithWaitTime(1*time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
	stop := running(t, c)
	first, second := <-got, <-got
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if first != 1 || second < 2 {
		t.Fatalf("receive counts %d then %d; want 1 then > 1", first, second)
	}
	if r := checkReportAddsUp(t, c); r.Failed != 1 || r.Succeeded != 1 {
		t.Fatalf("report %+v", r.Stats)
	}
}

func TestEmulatorLeaseOutlastsShortVisibility(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	sendN(t, client, url, 3)
	var deliveries sync.Map
	var done atomic.Int64
	all := make(chan struct{})
	c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		n, _ := deliveries.LoadOrStore(*m.MessageId, new(atomic.Int64))
		if n.(*atomic.Int64).Add(1) > 1 {
			t.Errorf("message %s delivered again while its handler ran", *m.Body)
		}
		select { // three times the visibility timeout
		case <-time.After(6 * time.Second):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if done.Add(1) == 3 {
			close(all)
		}
		return nil
	}, sqsconsumer.WithVisibilityTimeout(2*time.Second), sqsconsumer.WithWaitTime(1*time.Second), sqsconsumer.WithPollers(2))
	stop := running(t, c)
	<-all
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := checkReportAddsUp(t, c)
	if r.Succeeded != 3 || r.LeaseExtended == 0 || r.LeaseLost != 0 {
		t.Fatalf("report %+v", r.Stats)
	}
	eventually(t, 5*time.Second, "queue not empty", func() bool { v, f := counts(t, client, url); return v == 0 && f == 0 })
}

func TestEmulatorPeakConcurrencyReachesButNeverExceedsTheBound(t *testing.T) {
	for name, strategy := range strategies {
		t.Run(name, func(t *testing.T) {
			client := emulatorClient(t)
			url := emuQueue(t, client, nil)
			const n, concurrency = 200, 8
			sendN(t, client, url, n)
			var inFlight, peak, handled atomic.Int64
			all := make(chan struct{})
			c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
				cur := inFlight.Add(1)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				advance(30 * time.Millisecond) // work
				inFlight.Add(-1)
				if handled.Add(1) == n {
					close(all)
				}
				return nil
			}, sqsconsumer.WithConcurrency(concurrency), sqsconsumer.WithStrategy(strategy), sqsconsumer.WithWaitTime(1*time.Second))
			stop := running(t, c)
			<-all
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if p := peak.Load(); p != concurrency {
				t.Fatalf("peak handlers in flight %d, want exactly the concurrency %d", p, concurrency)
			}
		})
	}
}

// Shutdown mid-stream on the real protocol: 5,000 messages, some failing into backoff. After
// Run returns every message is deleted or visible again within its backoff policy, and no
// acknowledged message comes back.
func TestEmulatorCancelMidStreamLosesNothing(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	const n = 5000
	const backoffCap = 3 * time.Second
	sendN(t, client, url, n)
	var completed sync.Map
	var count atomic.Int64
	enough := make(chan struct{})
	c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		advance(5 * time.Millisecond) // work
		if strings.HasSuffix(*m.Body, "7") && m.ReceiveCount() == 1 {
			return errors.New("every tenth message fails its first try")
		}
		completed.Store(*m.MessageId, true)
		if count.Add(1) == 2000 {
			close(enough)
		}
		return nil
	}, sqsconsumer.WithConcurrency(32), sqsconsumer.WithWaitTime(2*time.Second),
		sqsconsumer.WithBackoff(sqsconsumer.ExponentialBackoff(time.Second, backoffCap)),
		// What the emulator hands a receive that shutdown cancels comes back after this.
		sqsconsumer.WithVisibilityTimeout(backoffCap))
	stop := running(t, c)
	<-enough
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	done := int(count.Load())
	r := checkReportAddsUp(t, c)
	if int(r.Succeeded) != done || int(r.Acked) != done || r.Failed == 0 {
		t.Fatalf("completed %d, report %+v", done, r.Stats)
	}
	// The backoff cap (and the visibility timeout, for what an abandoned receive took) is the
	// longest any message may stay invisible now. (fauxqs returns lapsed
	// messages to the queue only when it is received from, so the counts are read by draining
	// it, not from its attributes.)
	<-time.After(backoffCap + time.Second)
	// Every message not acknowledged is visible again, and nothing acknowledged comes back:
	// drain the queue and compare.
	drained := drain(t, client, url)
	for _, m := range drained {
		if _, ok := completed.Load(*m.MessageId); ok {
			t.Fatalf("acknowledged message %s came back", *m.Body)
		}
	}
	if left := len(drained); left != n-done {
		t.Fatalf("%d messages left, want %d - %d", left, n, done)
	}
	t.Logf("%d messages, %d completed before the cancel, %d failed into backoff, %d released", n, done, r.Failed, r.Released)
}

func TestEmulatorMissingQueueEndsRunWithError(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	missing := url + "-does-not-exist"
	opt, _ := errorsTo(t)
	c, _ := sqsconsumer.New(client, missing, func(context.Context, *sqsconsumer.Message) error { return nil }, opt, sqsconsumer.WithWaitTime(time.Second))
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	select {
	case err := <-errc:
		var qne *types.QueueDoesNotExist
		if !errors.As(err, &qne) {
			t.Fatalf("Run = %v, want QueueDoesNotExist", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end on a missing queue")
	}
}

// FIFO on the real protocol: groups in order under random latency and failures.
func TestEmulatorFIFOOrderPerGroup(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	groups := []string{"g1", "g2", "g3"}
	const perGroup = 20
	for i := 0; i < perGroup; i++ {
		var entries []types.SendMessageBatchRequestEntry
		for j, g := range groups {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)),
				MessageBody: aws.String(fmt.Sprintf("%s-%02d", g, i)), MessageGroupId: aws.String(g)})
		}
		if out, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %+v", err, out)
		}
	}
	var mu sync.Mutex
	seen := map[string][]string{}
	failedOnce := map[string]bool{}
	var done atomic.Int64
	all := make(chan struct{})
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		body := *m.Body
		advance(time.Duration(len(body)%7) * 3 * time.Millisecond) // work of 0-18 ms
		mu.Lock()
		defer mu.Unlock()
		if strings.HasSuffix(body, "5") && !failedOnce[body] {
			failedOnce[body] = true
			return errors.New("fails once")
		}
		g := m.GroupID()
		seen[g] = append(seen[g], body)
		if done.Add(1) == int64(perGroup*len(groups)) {
			close(all)
		}
		return nil
	}, sqsconsumer.WithConcurrency(8), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	select {
	case <-all:
	case <-time.After(90 * time.Second):
		t.Fatalf("handled %d of %d", done.Load(), perGroup*len(groups))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for i, body := range seen[g] {
			if want := fmt.Sprintf("%s-%02d", g, i); body != want {
				t.Fatalf("group %s position %d: %s (order %v)", g, i, body, seen[g])
			}
		}
	}
	checkReportAddsUp(t, c)
}

// SNS-shaped bodies on the real protocol, routed by topic with an allowlist.
func TestEmulatorSNSBodiesRoutedByTopic(t *testing.T) {
	client := emulatorClient(t)
	url := emuQueue(t, client, nil)
	for _, body := range []string{
		snsBody("arn:aws:sns:eu-west-1:123456789012:orders", "o", `{"id":1}`, nil),
		snsBody("arn:aws:sns:eu-west-1:123456789012:refunds", "r", `{"id":2}`, nil),
		snsBody("arn:aws:sns:eu-west-1:666666666666:orders", "forged", `{"id":3}`, nil),
	} {
		if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	type payload struct{ ID int }
	got := make(chan string, 4)
	router := sqsconsumer.NewTopicRouter().
		Route("orders", sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, p payload) error {
			got <- fmt.Sprint("orders ", p.ID)
			return nil
		})).
		Route("refunds", sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, p payload) error {
			got <- fmt.Sprint("refunds ", p.ID)
			return nil
		}))
	c, _ := sqsconsumer.New(client, url, sqsconsumer.Chain(router.Handle,
		sqsconsumer.Unwrap(sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders", "arn:aws:sns:eu-west-1:123456789012:refunds"))),
		sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
	stop := running(t, c)
	a, b := <-got, <-got
	eventually(t, 10*time.Second, "the forged notification was not refused", func() bool { return c.Stats().Failed == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(min(a, b), " / ", max(a, b)) != "orders 1 / refunds 2" {
		t.Fatalf("routed %q and %q", a, b)
	}
	if r := checkReportAddsUp(t, c); r.Succeeded != 2 || r.Failed != 1 {
		t.Fatalf("report %+v", r.Stats)
	}
}

// The emulator has no message move task: Redrive falls back to receive, send, delete, and
// the messages come back with body and attributes.
func TestEmulatorRedriveFallback(t *testing.T) {
	client := emulatorClient(t)
	ctx := context.Background()
	name := fmt.Sprintf("redrive-%d", queueSeq.Add(1))
	url, dlq, err := queues.CreateWithDLQ(ctx, client, queues.Spec{Name: name, MaxReceiveCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 15; i++ {
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &dlq, MessageBody: aws.String(fmt.Sprint("dead-", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"why": {DataType: aws.String("String"), StringValue: aws.String("poison")}}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := queues.Redrive(ctx, client, dlq, url, queues.RedriveOptions{})
	if err != nil || !res.Fallback || res.Moved != 15 || res.Waiting != 15 {
		t.Fatalf("redrive %+v, %v", res, err)
	}
	got := 0
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			if !strings.HasPrefix(*m.Body, "dead-") || aws.ToString(m.MessageAttributes["why"].StringValue) != "poison" {
				t.Fatalf("redriven message %q %+v", *m.Body, m.MessageAttributes)
			}
			got++
		}
	}
	if got != 15 {
		t.Fatalf("%d messages back in the source queue, want 15", got)
	}
}

// FIFO deduplication within the 5-minute window, through the producer, on the real protocol.
func TestEmulatorProducerFIFODedup(t *testing.T) {
	client := emulatorClient(t)
	ctx := context.Background()
	url := emuQueue(t, client, map[string]string{"FifoQueue": "true"})
	p, err := producer.New(client, url)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := p.Send(ctx, producer.Message{Body: "charge 42", GroupID: "acct-1", DeduplicationID: "charge-42"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Send(ctx, producer.Message{Body: "charge 43", GroupID: "acct-1", DeduplicationID: "charge-43"}); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	var bodies []string
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
			client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
		}
	}
	if strings.Join(bodies, ",") != "charge 42,charge 43" {
		t.Fatalf("received %q: duplicates within the window must be dropped", bodies)
	}
}

// A message that keeps failing moves to the dead-letter queue after maxReceiveCount.
func TestEmulatorRedriveAfterMaxReceiveCount(t *testing.T) {
	client := emulatorClient(t)
	ctx := context.Background()
	url, dlq, err := queues.CreateWithDLQ(ctx, client, queues.Spec{Name: fmt.Sprintf("poison-%d", queueSeq.Add(1)), MaxReceiveCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	sendN(t, client, url, 1)
	var tries atomic.Int64
	c, _ := sqsconsumer.New(client, url, func(context.Context, *sqsconsumer.Message) error {
		tries.Add(1)
		return errors.New("poison")
	}, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
	stop := running(t, c)
	eventually(t, 20*time.Second, "the poison message never reached the DLQ", func() bool {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq, VisibilityTimeout: 60})
		return err == nil && len(out.Messages) == 1 && *out.Messages[0].Body == "0"
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := tries.Load(); n != 2 {
		t.Fatalf("handled %d times, want maxReceiveCount 2", n)
	}
}

// outageClient fails every call of the operations chosen while the outage is on.
type outageClient struct {
	sqsconsumer.Client
	deletes, visibility bool
	on                  atomic.Bool
	failed              atomic.Int64
}

func (c *outageClient) outage() error {
	c.failed.Add(1)
	return &smithy.GenericAPIError{Code: "InternalFailure", Message: "injected outage", Fault: smithy.FaultServer}
}

func (c *outageClient) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if c.deletes && c.on.Load() {
		return nil, c.outage()
	}
	return c.Client.DeleteMessageBatch(ctx, in, optFns...)
}

func (c *outageClient) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	if c.visibility && c.on.Load() {
		return nil, c.outage()
	}
	return c.Client.ChangeMessageVisibilityBatch(ctx, in, optFns...)
}

// Outages of 6 s in the middle of a run, inside a 20 s visibility: of deletes, of visibility
// changes (the lease's and the backoff's), and of both. Acknowledgements are retried while the
// messages are ours, so no message succeeds twice and the queue ends empty. One message in ten
// fails its first delivery, so backoff visibility changes meet the outage too.
func TestEmulatorOutagesHandleNothingTwice(t *testing.T) {
	client := emulatorClient(t)
	for name, oc := range map[string]*outageClient{
		"deletes":    {Client: client, deletes: true},
		"visibility": {Client: client, visibility: true},
		"both":       {Client: client, deletes: true, visibility: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := emuQueue(t, client, nil)
			const n = 400
			sendN(t, client, url, n)
			var seen sync.Map
			var succeeded, twice atomic.Int64
			all := make(chan struct{})
			c, err := sqsconsumer.New(oc, url, func(ctx context.Context, m *sqsconsumer.Message) error {
				<-time.After(100 * time.Millisecond) // work
				if strings.HasSuffix(*m.Body, "7") && m.ReceiveCount() == 1 {
					return errors.New("every tenth message fails its first try")
				}
				if _, dup := seen.LoadOrStore(*m.MessageId, true); dup {
					twice.Add(1)
				}
				if succeeded.Add(1) == n {
					close(all)
				}
				return nil
			}, sqsconsumer.WithConcurrency(8), sqsconsumer.WithWaitTime(2*time.Second),
				sqsconsumer.WithVisibilityTimeout(20*time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
				sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }), quiet)
			if err != nil {
				t.Fatal(err)
			}
			stop := running(t, c)
			eventually(t, time.Minute, "a quarter handled", func() bool { return succeeded.Load() >= n/4 })
			oc.on.Store(true)
			<-time.After(6 * time.Second) // the outage
			oc.on.Store(false)
			select {
			case <-all:
			case <-time.After(2 * time.Minute):
				t.Fatalf("succeeded %d of %d", succeeded.Load(), n)
			}
			eventually(t, 30*time.Second, "every delete acknowledged", func() bool { return c.Stats().Acked == n })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			r := checkReportAddsUp(t, c)
			if twice.Load() != 0 || r.AckFailed != 0 || oc.failed.Load() == 0 || r.AckRetries == 0 {
				t.Fatalf("%d of %d succeeded twice; %d calls failed in the outage; report %+v", twice.Load(), n, oc.failed.Load(), r.Stats)
			}
			eventually(t, 10*time.Second, "queue not empty", func() bool { v, f := counts(t, client, url); return v == 0 && f == 0 })
			t.Logf("6 s outage of %s: %d calls failed, %d ack retries, 0 of %d succeeded twice", name, oc.failed.Load(), r.AckRetries, n)
		})
	}
}

// Shutdown on the real protocol: Run returns at once when idle, and promptly when busy, and a
// trickle of sends during the cancel loses nothing: every message is handled or, once the
// visibility of what an abandoned receive took has lapsed, visible again.
func TestEmulatorShutdownIsPromptAndLosesATrickleOfNothing(t *testing.T) {
	client := emulatorClient(t)
	const visibility = 3 * time.Second
	t.Run("idle", func(t *testing.T) {
		url := emuQueue(t, client, nil)
		c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error { return nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		eventually(t, 10*time.Second, "no receive made", func() bool { return c.Stats().Requests > 0 })
		<-time.After(500 * time.Millisecond) // well into the 20 s long poll
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if took > 5*time.Second { // it was the whole long poll (about 19.5 s) before
			t.Fatalf("Run returned %v after the cancel on an idle queue", took)
		}
		t.Logf("idle: Run returned %v after the cancel", took)
	})
	t.Run("trickle", func(t *testing.T) {
		url := emuQueue(t, client, nil)
		var handled sync.Map
		var count atomic.Int64
		c, _ := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			<-time.After(10 * time.Millisecond) // work
			handled.Store(*m.Body, true)
			count.Add(1)
			return nil
		}, sqsconsumer.WithConcurrency(8), sqsconsumer.WithVisibilityTimeout(visibility))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		var sent []string
		sendDone := make(chan struct{})
		go func() {
			defer close(sendDone)
			for i := 0; i < 150; i++ { // 3 s of one message per 20 ms, across the cancel
				body := fmt.Sprint("t", i)
				if _, err := client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body}); err != nil {
					t.Error(err)
					return
				}
				sent = append(sent, body)
				<-time.After(20 * time.Millisecond)
			}
		}()
		eventually(t, 30*time.Second, "nothing handled", func() bool { return count.Load() >= 30 })
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		<-sendDone
		r := checkReportAddsUp(t, c)
		if took > 5*time.Second {
			t.Fatalf("Run returned %v after the cancel with 10 ms handlers", took)
		}
		<-time.After(visibility + time.Second) // what a cancelled receive took comes back
		left := map[string]bool{}
		for _, m := range drain(t, client, url) {
			if _, ok := handled.Load(*m.Body); ok {
				t.Fatalf("handled message %s came back", *m.Body)
			}
			left[*m.Body] = true
		}
		for _, b := range sent {
			if _, ok := handled.Load(b); !ok && !left[b] {
				t.Fatalf("message %s lost: neither handled nor back in the queue", b)
			}
		}
		t.Logf("busy: Run returned %v after the cancel; %d sent, %d handled, %d back in the queue, %d receives abandoned",
			took, len(sent), count.Load(), len(left), r.AbandonedReceives)
	})
}
