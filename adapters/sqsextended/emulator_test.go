package sqsextended

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/queues"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.e.Stop()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop")); err != nil {
			fmt.Println("goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is the emulator (SQS, SNS and S3 on one endpoint) of this package's integration
// tests, started by the first test that needs it and stopped by TestMain.
var shared struct {
	once sync.Once
	e    *emulator.Emulator
	err  error
}

var seq atomic.Int64

type emuEnv struct {
	opts sqs.Options
	sqs  *sqs.Client
	s3   *s3.Client
	sns  *sns.Client
}

// onEmulator returns clients of the running emulator; without it the test fails under
// CI=true and is skipped otherwise.
func onEmulator(t *testing.T) emuEnv {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		shared.e, shared.err = emulator.Start(ctx)
	})
	if shared.err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", shared.err)
		}
		t.Skipf("emulator not available: %v", shared.err)
	}
	o := shared.e.Options()
	return emuEnv{opts: o, sqs: sqs.New(o), s3: newS3(o, nil),
		sns: sns.New(sns.Options{BaseEndpoint: o.BaseEndpoint, Region: o.Region, Credentials: o.Credentials})}
}

func newS3(o sqs.Options, hc *http.Client) *s3.Client {
	so := s3.Options{BaseEndpoint: o.BaseEndpoint, Region: o.Region, Credentials: o.Credentials, UsePathStyle: true}
	if hc != nil {
		so.HTTPClient, so.RetryMaxAttempts = hc, 2
	}
	return s3.New(so)
}

// bucket creates a bucket of its own for the test.
func (env emuEnv) bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("payloads-%d", seq.Add(1))
	if _, err := env.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatal(err)
	}
	return name
}

func (env emuEnv) objects(t *testing.T, bucket string) []string {
	t.Helper()
	out, err := env.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// collector is a handler recording what it saw, with the body as received (before Fetch).
type collector struct {
	mu     sync.Mutex
	bodies map[string]string // MessageId -> body the handler saw
	raw    map[string]string // MessageId -> body as received
	errs   []error
}

func newCollector() *collector {
	return &collector{bodies: map[string]string{}, raw: map[string]string{}}
}

// handler returns h wrapped: a middleware outside mw records the raw body and errors.
func (c *collector) handler(mw ...sqsconsumer.Middleware) sqsconsumer.Handler {
	record := func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			raw := aws.ToString(m.Body)
			err := next(ctx, m)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.raw[aws.ToString(m.MessageId)] = raw
			if err != nil {
				c.errs = append(c.errs, err)
			}
			return err
		}
	}
	h := func(ctx context.Context, m *sqsconsumer.Message) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.bodies[aws.ToString(m.MessageId)] = *m.Body
		return nil
	}
	return sqsconsumer.Chain(h, append([]sqsconsumer.Middleware{record}, mw...)...)
}

func (c *collector) counts() (handled, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies), len(c.errs)
}

// run runs consumer cons until cond holds (checked every 20 ms) or 60 s pass, then stops it.
func run(t *testing.T, cons *sqsconsumer.Consumer, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("%s: not within 60 s", what)
		}
		<-time.After(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Round trips through the producer's offload and the consumer's Fetch, on the emulator's SQS
// and S3: 0 B (always through S3), exactly at the threshold (sent inline), one byte over
// (through S3), 5 MiB; the handler sees each payload unchanged; the Client deletes each
// object after its message, so the bucket ends empty.
func TestRoundTripOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	out, err := env.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprint("roundtrip-", seq.Add(1))),
		Attributes: map[string]string{"MaximumMessageSize": "262144"}})
	if err != nil {
		t.Fatal(err)
	}
	url := *out.QueueUrl
	attr := map[string]sqstypes.MessageAttributeValue{"trace": {DataType: aws.String("String"), StringValue: aws.String("abc")}}
	overhead := len("trace") + len("String") + len("abc")
	payloads := map[string]producer.Message{
		"at threshold": {Body: strings.Repeat("a", DefaultThreshold-overhead), Attributes: attr},
		"over by one":  {Body: strings.Repeat("b", DefaultThreshold-overhead-2) + "é" + "b", Attributes: attr},
		"5 MiB":        {Body: strings.Repeat("0123456789abcdef", 5<<20/16)},
		"small":        {Body: `{"id":1,"note":"<&>"}`},
	}
	o, _ := NewOffloader(env.s3, bucket)
	always, _ := NewOffloader(env.s3, bucket, AlwaysThroughS3())
	p, _ := producer.New(env.sqs, url, producer.WithOffload(o))
	pa, _ := producer.New(env.sqs, url, producer.WithOffload(always))
	ids := map[string]string{} // MessageId -> name
	for name, m := range payloads {
		id, err := p.Send(ctx, m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ids[id] = name
	}
	id, err := pa.Send(ctx, producer.Message{Body: ""})
	if err != nil {
		t.Fatalf("0 B: %v", err)
	}
	ids[id], payloads["0 B"] = "0 B", producer.Message{Body: ""}
	p.Close(ctx)
	pa.Close(ctx)
	if n := len(env.objects(t, bucket)); n != 3 {
		t.Fatalf("%d objects stored, want 3 (over by one, 5 MiB, 0 B)", n)
	}

	c, _ := NewClient(env.sqs, env.s3)
	col := newCollector()
	var attrs sync.Map
	keepAttrs := func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			attrs.Store(*m.MessageId, m.MessageAttributes)
			return next(ctx, m)
		}
	}
	cons, err := sqsconsumer.New(c, url, col.handler(c.Fetch(), keepAttrs), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	run(t, cons, "5 messages handled and their objects deleted", func() bool {
		n, _ := col.counts()
		return n == 5 && cons.Stats().Acked == 5
	})
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for id, name := range ids {
		want := payloads[name]
		if got := col.bodies[id]; got != want.Body {
			t.Errorf("%s: the handler saw %d bytes, want %d unchanged", name, len(got), len(want.Body))
		}
		_, pointer, _ := ParsePointer(col.raw[id])
		if wantPointer := name == "over by one" || name == "5 MiB" || name == "0 B"; pointer != wantPointer {
			t.Errorf("%s: sent through S3 = %v, want %v", name, pointer, wantPointer)
		}
		a, _ := attrs.Load(id)
		got := a.(map[string]sqstypes.MessageAttributeValue)
		if _, ok := got[SizeAttribute]; ok || len(got) != len(want.Attributes) {
			t.Errorf("%s: the handler saw attributes %v, want the ones sent", name, got)
		}
	}
	if keys := env.objects(t, bucket); len(keys) != 0 {
		t.Fatalf("objects left after their messages were deleted: %v", keys)
	}
}

// A message in the exact bytes a Java producer writes (the current class with
// SQSLargePayloadSize, the Java client's default attribute name; the legacy class; a Python
// producer's spaced JSON) is read, and with the Client its object goes with the message.
func TestJavaAndPythonFormatsOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	out, err := env.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprint("java-", seq.Add(1)))})
	if err != nil {
		t.Fatal(err)
	}
	url := *out.QueueUrl
	bodies := map[string]string{
		"java":   `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"` + bucket + `","s3Key":"3f1e6d2a-4b7c-4e8f-9a0b-1c2d3e4f5a6b"}]`,
		"legacy": `["com.amazon.sqs.javamessaging.MessageS3Pointer",{"s3BucketName":"` + bucket + `","s3Key":"7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"}]`,
		"python": `["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "` + bucket + `", "s3Key": "c0ffee00-0000-4000-8000-000000000001"}]`,
	}
	sizeAttr := map[string]string{"java": LegacySizeAttribute, "legacy": LegacySizeAttribute, "python": SizeAttribute}
	want := map[string]string{}
	for name, body := range bodies {
		p, _, _ := ParsePointer(body)
		payload := strings.Repeat(name+" payload ", 30000)
		want[name] = payload
		if _, err := env.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &p.Key, Body: strings.NewReader(payload)}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{sizeAttr[name]: {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(len(payload)))}}}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := NewClient(env.sqs, env.s3)
	col := newCollector()
	cons, _ := sqsconsumer.New(c, url, col.handler(c.Fetch()), sqsconsumer.WithWaitTime(time.Second))
	run(t, cons, "3 messages handled", func() bool { return cons.Stats().Acked == 3 })
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range col.bodies {
		seen[b] = true
	}
	for name, w := range want {
		if !seen[w] {
			t.Errorf("%s: payload not handed to the handler unchanged", name)
		}
	}
	if keys := env.objects(t, bucket); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
}

// SNS fan-out the way the SNS extended client publishes: the pointer is the notification's
// Message and the size is a notification attribute. Two enveloped subscriptions and a raw
// one each receive the payload through Unwrap then Fetch; the object is shared, so it stays:
// the two enveloped subscribers use a Client, which never deletes a pointer that came inside
// a notification, and the raw subscriber's consumer runs without one.
func TestSNSFanOutOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	n := seq.Add(1)
	topic, err := env.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(fmt.Sprint("large-", n))})
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i, raw := range []bool{false, false, true} {
		out, err := env.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("fanout-%d-%d", n, i))})
		if err != nil {
			t.Fatal(err)
		}
		a, err := env.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		in := &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(a.Attributes["QueueArn"])}
		if raw {
			in.Attributes = map[string]string{"RawMessageDelivery": "true"}
		}
		if _, err := env.sns.Subscribe(ctx, in); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, *out.QueueUrl)
	}
	payload := strings.Repeat(`{"order":42,"lines":["<a&b>"]}`, 20000)
	key := "5d41402a-bc4b-4a76-b971-9d911017c592"
	if _, err := env.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(payload)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.sns.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String(Pointer{bucket, key}.Body()),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{SizeAttribute: {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(len(payload)))}}}); err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(env.sqs, env.s3)
	for i, url := range urls {
		col := newCollector()
		var client sqsconsumer.Client = c
		fetch := c.Fetch()
		if i == 2 {
			// Raw delivery: the body is the pointer itself, and the object is shared with the
			// other subscribers: this consumer must not delete it, so no Client.
			client, fetch = env.sqs, Fetch(env.s3)
		}
		var sawSize atomic.Bool
		size := func(next sqsconsumer.Handler) sqsconsumer.Handler {
			return func(ctx context.Context, m *sqsconsumer.Message) error {
				env, err := m.Envelope()
				_, inEnvelope := env.Attributes[SizeAttribute]
				_, onMessage := m.MessageAttributes[SizeAttribute]
				if err == nil && inEnvelope != onMessage { // SNS attributes, or raw delivery's SQS ones
					sawSize.Store(true)
				}
				return next(ctx, m)
			}
		}
		cons, _ := sqsconsumer.New(client, url, col.handler(sqsconsumer.Unwrap(), size, fetch), sqsconsumer.WithWaitTime(time.Second))
		run(t, cons, fmt.Sprintf("subscriber %d handled the notification", i), func() bool { return cons.Stats().Acked == 1 })
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, b := range col.bodies {
			if b != payload {
				t.Fatalf("subscriber %d saw %d bytes, want the %d-byte payload", i, len(b), len(payload))
			}
		}
		if !sawSize.Load() {
			t.Errorf("subscriber %d: the size attribute was not found", i)
		}
		if keys := env.objects(t, bucket); len(keys) != 1 {
			t.Fatalf("after subscriber %d, objects %v: the shared object must stay", i, keys)
		}
	}
}

// downable is an HTTP transport that can be cut off: while down, every new connection is
// refused (a real ECONNREFUSED from a port nothing listens on) and kept-alive ones are closed.
type downable struct {
	down  atomic.Bool
	tr    *http.Transport
	calls atomic.Int64
}

func newDownable(t *testing.T) *downable {
	port, err := emulator.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := &downable{}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	d.tr = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if d.down.Load() {
			addr = fmt.Sprint("127.0.0.1:", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(d.tr.CloseIdleConnections)
	return d
}

func (d *downable) RoundTrip(r *http.Request) (*http.Response, error) {
	d.calls.Add(1)
	return d.tr.RoundTrip(r)
}

func (d *downable) setDown(down bool) {
	d.down.Store(down)
	d.tr.CloseIdleConnections()
}

// S3 down while messages with pointers arrive: the fetches fail as the downstream's, the
// breaker (probing S3 itself) stops receiving, and once S3 is back every message is handled;
// none reaches the dead-letter queue, though the redrive policy allows only 2 receives.
func TestS3OutageOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	url, dlq, err := queues.CreateWithDLQ(ctx, env.sqs, queues.Spec{Name: fmt.Sprint("outage-", seq.Add(1)), MaxReceiveCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	o, _ := NewOffloader(env.s3, bucket, AlwaysThroughS3())
	p, _ := producer.New(env.sqs, url, producer.WithOffload(o))
	want := map[string]bool{}
	for i := range n {
		body := fmt.Sprint("payload ", i)
		want[body] = true
		if _, err := p.Send(ctx, producer.Message{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)

	d := newDownable(t)
	d.setDown(true)
	flaky := newS3(env.opts, &http.Client{Transport: d})
	var probes atomic.Int64
	probe := func(ctx context.Context) error {
		probes.Add(1)
		_, err := flaky.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
		return err
	}
	col := newCollector()
	c, _ := NewClient(env.sqs, flaky)
	cons, err := sqsconsumer.New(c, url, col.handler(c.Fetch()), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithConcurrency(4),
		sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }), sqsconsumer.WithErrorHandler(func(error) {}),
		sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: 500 * time.Millisecond, MaxOpenFor: time.Second, Probe: probe}))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("%s: not within 60 s", what)
			}
			<-time.After(20 * time.Millisecond)
		}
	}
	wait("the breaker probing a down S3 three times", func() bool { return probes.Load() >= 3 })
	handled, failed := col.counts()
	if handled != 0 || failed == 0 {
		t.Fatalf("while S3 was down: %d handled, %d failed", handled, failed)
	}
	var down *sqsconsumer.DownstreamError
	if !errors.As(col.errs[0], &down) {
		t.Fatalf("an S3 outage failed a message with %v; want a Downstream error", col.errs[0])
	}
	d.setDown(false)
	wait("every message handled once S3 is back", func() bool { h, _ := col.counts(); return h == n && cons.Stats().Acked == n })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range col.bodies {
		if !want[b] {
			t.Fatalf("handled %q", b)
		}
	}
	attrs, err := env.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &dlq, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if v := attrs.Attributes["ApproximateNumberOfMessages"]; v != "0" {
		t.Fatalf("%s messages dead-lettered by an S3 outage", v)
	}
	if keys := env.objects(t, bucket); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
	t.Logf("while down: %d fetches failed, %d probes; S3 requests %d", failed, probes.Load(), d.calls.Load())
}

// A pointer to an object that is gone: the message fails with an error naming bucket and key
// (a MessageFault, which a breaker does not count), is retried until the redrive policy moves
// it to the dead-letter queue, and arrives there as it was sent.
func TestMissingObjectDeadLetteredOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	bucket := env.bucket(t)
	url, dlq, err := queues.CreateWithDLQ(ctx, env.sqs, queues.Spec{Name: fmt.Sprint("missing-", seq.Add(1)), MaxReceiveCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	body := Pointer{bucket, "0e0e0e0e-dead-4bee-8f00-000000000000"}.Body()
	if _, err := env.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body,
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{SizeAttribute: {DataType: aws.String("Number"), StringValue: aws.String("300000")}}}); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c, _ := NewClient(env.sqs, env.s3)
	cons, _ := sqsconsumer.New(c, url, col.handler(c.Fetch()), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return 0 }), sqsconsumer.WithErrorHandler(func(error) {}),
		sqsconsumer.WithBreaker(sqsconsumer.Breaker{}))
	var moved []sqstypes.Message
	run(t, cons, "the message moved to the dead-letter queue", func() bool {
		out, err := env.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &dlq, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, out.Messages...)
		return len(moved) > 0
	})
	handled, failed := col.counts()
	if handled != 0 || failed != 2 {
		t.Fatalf("%d handled, %d failed; want 2 failed receives", handled, failed)
	}
	var fault *sqsconsumer.MessageFaultError
	for _, err := range col.errs {
		if !errors.Is(err, ErrMissingObject) || !errors.As(err, &fault) || !strings.Contains(err.Error(), "s3://"+bucket+"/0e0e0e0e-dead-4bee-8f00-000000000000") {
			t.Fatalf("error %v: want ErrMissingObject, a MessageFault, naming the bucket and key", err)
		}
	}
	if got := aws.ToString(moved[0].Body); got != body || aws.ToString(moved[0].MessageAttributes[SizeAttribute].StringValue) != "300000" {
		t.Fatalf("dead-lettered as %q %v; want the message as sent", got, moved[0].MessageAttributes)
	}
	t.Logf("error: %v", col.errs[0])
}
