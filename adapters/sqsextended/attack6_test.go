package sqsextended

// attack6: adversarial tests of the large-payload change (issue 20). Each test states the
// property it holds the code to; they are expected to fail against commit 1f2aea7.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// A handler that reroutes an offloaded message (sqsconsumer.Reroute: "nothing is lost") on a
// consumer over the Client: the consumer sends the copy (the pointer body, as received) to the
// other queue and then deletes the original through the Client, which deletes the S3 object
// the copy still points at. The payload is lost: the copy's Fetch finds no object.
func TestAttack6RerouteKeepsThePayload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		delayURL := srv.MustCreateQueue("delay", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		payload := "a payload over the threshold"
		if _, err := p.Send(ctx, producer.Message{Body: payload}); err != nil {
			t.Fatal(err)
		}
		_ = p.Close(ctx)

		c, _ := NewClient(srv, store)
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(delayURL, 0, errors.New("downstream saturated"))
		}, c.Fetch())
		cons, err := sqsconsumer.New(c, url, h, sqsconsumer.WithSender(srv), sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if st := cons.Report(); st.Rerouted != 1 {
			t.Fatalf("rerouted %d, want 1", st.Rerouted)
		}

		out, err := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &delayURL, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("rerouted copy: %v, %d messages", err, len(out.Messages))
		}
		var seen string
		m := sqsconsumer.NewMessage(out.Messages[0], delayURL)
		err = Fetch(store)(func(_ context.Context, m *sqsconsumer.Message) error { seen = *m.Body; return nil })(ctx, m)
		if err != nil || seen != payload {
			t.Fatalf("the rerouted copy's payload is gone: Fetch = %q, %v (S3 deletes %v)", seen, err, store.deletes)
		}
	})
}

// The rerouted copy of an offloaded message must still be an extended-client message: the
// Java, Python and .NET clients recognise a pointer only by the ExtendedPayloadSize attribute.
// Fetch deletes that attribute from m.MessageAttributes in place, and Reroute sends
// m.MessageAttributes with the body as received, so the copy is a bare pointer that those
// clients hand to their application as the payload.
func TestAttack6RerouteCopyKeepsSizeAttribute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		delayURL := srv.MustCreateQueue("delay", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		if _, err := p.Send(ctx, producer.Message{Body: "a payload over the threshold"}); err != nil {
			t.Fatal(err)
		}
		_ = p.Close(ctx)

		// The plain SQS client: only the copy's attributes are looked at here.
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(delayURL, 0, nil)
		}, Fetch(store))
		cons, err := sqsconsumer.New(srv, url, h, sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &delayURL, MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("rerouted copy: %v, %d messages", err, len(out.Messages))
		}
		cp := out.Messages[0]
		if _, ok, _ := ParsePointer(aws.ToString(cp.Body)); !ok {
			t.Fatalf("copy body %q", aws.ToString(cp.Body))
		}
		if _, ok := cp.MessageAttributes[SizeAttribute]; !ok {
			t.Fatalf("the rerouted copy is a pointer without %s (attributes %v): the Java/Python clients will not fetch it", SizeAttribute, cp.MessageAttributes)
		}
	})
}

// SQS accepts a delete with a superseded receipt handle without deleting the message
// (DESIGN, invariant 2; sqstest models it outside strict mode). The Client takes SQS's
// "Successful" as proof the message is gone and deletes the object, while the message is
// still in the queue under its newer handle: its next Fetch finds no object. The Client's
// doc promises "The object is deleted after SQS confirmed the message's deletion, never
// before".
func TestAttack6StaleHandleDeleteKeepsObject(t *testing.T) {
	ctx := context.Background()
	srv := sqstest.New() // SQS's behaviour: a stale handle's delete "succeeds"
	url := srv.MustCreateQueue("q", nil)
	store := &memS3{objects: map[string]string{"b/k": "payload"}}
	c, _ := NewClient(srv, store)
	if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
		t.Fatal(err)
	}
	first, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	if err != nil || len(first.Messages) != 1 {
		t.Fatal(err)
	}
	h1 := first.Messages[0].ReceiptHandle
	// Its handler succeeded: the Client's Fetch notes the object for deletion with h1.
	if err := c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })(ctx, sqsconsumer.NewMessage(first.Messages[0], url)); err != nil {
		t.Fatal(err)
	}
	// The first receiver's visibility lapses (here: is set to 0) and another receive takes it.
	if _, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url,
		Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: h1}}}); err != nil {
		t.Fatal(err)
	}
	second, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
	if err != nil || len(second.Messages) != 1 {
		t.Fatal(err)
	}
	// The first receiver deletes with its old handle: SQS answers Successful, deletes nothing.
	del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url,
		Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: h1}}})
	if err != nil || len(del.Successful) != 1 {
		t.Fatalf("stale delete: %v %+v", err, del)
	}
	if st, _ := srv.Stats(url); st.Deleted != 0 {
		t.Fatalf("setup: sqstest deleted the message")
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m := sqsconsumer.NewMessage(second.Messages[0], url)
	err = Fetch(store)(func(context.Context, *sqsconsumer.Message) error { return nil })(ctx, m)
	if err != nil {
		t.Fatalf("the message is still in the queue but its object was deleted: %v", err)
	}
}

// An SQS call that fails ambiguously (the request reached SQS, the answer was lost: a timeout
// or a reset connection) is retried by the producer; when every attempt fails that way the
// message was in fact sent (here four times), yet the producer hands it to Unsent and the
// Offloader deletes the object every copy points at. Payload lost for messages in the queue.
func TestAttack6AmbiguousSendFailureKeepsObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(lostAnswer{srv}, url, producer.WithOffload(o), producer.WithMaxMessageSize(1<<20))
		_, err := p.Send(ctx, producer.Message{Body: "a payload over the threshold"})
		if err == nil {
			t.Fatal("setup: every answer was lost, Send should fail")
		}
		out, _ := srv.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if len(out.Messages) == 0 {
			t.Fatal("setup: nothing reached the queue")
		}
		if store.count() != 1 {
			t.Fatalf("%d messages in the queue point at an object Unsent deleted (Send: %v; deletes %v)", len(out.Messages), err, store.deletes)
		}
	})
}

// lostAnswer delivers each batch to SQS and then loses the answer, as a timed-out or reset
// connection does after the request was processed.
type lostAnswer struct{ *sqstest.Server }

func (l lostAnswer) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if _, err := l.Server.SendMessageBatch(ctx, in, optFns...); err != nil {
		return nil, err
	}
	return nil, errors.New("read tcp 10.0.0.1:443: connection reset by peer")
}

// Unsent must delete only an object the Offloader stored. A message that Offload left as it
// was (under the threshold) whose body is itself a pointer (a message forwarded, e.g. a
// redrive tool re-sending bodies it read with a plain client) is passed to Unsent when SQS
// refuses it, and Unsent deletes the object of the original message, which is still queued
// elsewhere.
func TestAttack6UnsentLeavesForeignPointer(t *testing.T) {
	ctx := context.Background()
	srv := sqstest.New()
	url := srv.MustCreateQueue("q", nil)
	store := &memS3{objects: map[string]string{"b/original": "the original message's payload"}}
	o, _ := NewOffloader(store, "b")
	p, _ := producer.New(srv, url, producer.WithOffload(o), producer.WithBatchWindow(0))
	srv.SetFaults(sqstest.Faults{Entry: func(op, _ string) *sqstypes.BatchResultErrorEntry {
		if op == "SendMessageBatch" {
			return sqstest.EntryError("InvalidParameterValue", true)
		}
		return nil
	}})
	forwarded := Pointer{"b", "original"}.Body() // 110 bytes: not offloaded again
	if _, err := p.Send(ctx, producer.Message{Body: forwarded}); err == nil {
		t.Fatal("setup: SQS refused the message, Send should fail")
	}
	if store.count() != 1 {
		t.Fatalf("Unsent deleted %v, an object the Offloader never stored", store.deletes)
	}
}

// The pointer's JSON is read case-insensitively (encoding/json), so a body the Java client
// would not take for a pointer (Jackson matches "s3BucketName"/"s3Key" exactly) is fetched in
// the payload's place and its "object" deleted by the Client. attack5 fixed the same slip in
// envelope.Parse with internal/strictjson.
func TestAttack6PointerFieldNamesExact(t *testing.T) {
	for _, body := range []string{
		`["software.amazon.payloadoffloading.PayloadS3Pointer",{"S3BucketName":"b","S3Key":"k"}]`,
		`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3bucketname":"b","s3key":"k"}]`,
	} {
		if p, ok, err := ParsePointer(body); ok {
			t.Errorf("%s read as pointer %v (%v); the Java client rejects these field names", body, p, err)
		}
	}
}

// Concurrent Sends on a consumer-less producer, a few refused by SQS: each refused message's
// object is deleted, each sent one's kept; run with -race many times.
func TestAttack6ConcurrentPartialRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		var mu sync.Mutex
		n := 0
		srv.SetFaults(sqstest.Faults{Entry: func(op, _ string) *sqstypes.BatchResultErrorEntry {
			if op != "SendMessageBatch" {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			n++
			if n%3 == 0 {
				return sqstest.EntryError("InvalidParameterValue", true)
			}
			return nil
		}})
		var wg sync.WaitGroup
		var sent, refused sync.Map
		for i := range 40 {
			wg.Go(func() {
				body := strings.Repeat("x", 20) + string(rune('a'+i%26)) + strings.Repeat("y", i)
				if _, err := p.Send(ctx, producer.Message{Body: body}); err != nil {
					refused.Store(body, true)
				} else {
					sent.Store(body, true)
				}
			})
		}
		wg.Wait()
		_ = p.Close(ctx)
		nsent := 0
		sent.Range(func(_, _ any) bool { nsent++; return true })
		if store.count() != nsent {
			t.Fatalf("%d objects for %d sent messages", store.count(), nsent)
		}
	})
}

// hangingDeletes is an S3 whose DeleteObject does not answer until its ctx ends (an S3
// DELETE outage); GETs work.
type hangingDeletes struct {
	*memS3
	entered chan struct{} // if not nil, told (without blocking) of each DeleteObject call
}

func (h hangingDeletes) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if h.entered != nil {
		select {
		case h.entered <- struct{}{}:
		default:
		}
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// The object delete is best effort (a failure leaves an orphan for the lifecycle rule), but
// the Client makes it inside DeleteMessageBatch, so the consumer's ack path waits for S3. On
// a FIFO queue the next message of a group starts only once the previous delete "landed"
// (DESIGN), so an S3 DELETE outage, with SQS healthy, throttles every group to one message
// per WithDeleteTimeout (10 s).
func TestAttack6FIFOGroupNotHeldByObjectDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true"})
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		for i := range 5 {
			if _, err := p.Send(ctx, producer.Message{Body: fmt.Sprintf("payload number %d over the threshold", i),
				GroupID: "g", DeduplicationID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		_ = p.Close(ctx)
		c, _ := NewClient(srv, hangingDeletes{memS3: store})
		start := time.Now()
		var last time.Time
		var mu sync.Mutex
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			return nil
		}, c.Fetch())
		cons, err := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithStopPolicy(sqsconsumer.StopAfter(5)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if took := last.Sub(start); took > 5*time.Second {
			t.Fatalf("5 messages of one FIFO group took %v to handle: each waited for the previous message's S3 DELETE", took)
		}
		_ = c.Close(ctx) // the hanging deletions end at WithDeleteTimeout
	})
}

// Shutdown on an idle queue: the last ack's SQS delete has succeeded, only the best-effort
// object delete is hanging; Run should return within about a second of its ctx ending
// (invariant 5), not after WithDeleteTimeout.
func TestAttack6ShutdownNotHeldByObjectDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		if _, err := srv.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
			t.Fatal(err)
		}
		entered := make(chan struct{}, 1)
		c, _ := NewClient(srv, hangingDeletes{memS3: store, entered: entered})
		ctx, cancel := context.WithCancel(context.Background())
		h := sqsconsumer.Chain(func(context.Context, *sqsconsumer.Message) error { return nil }, c.Fetch())
		cons, _ := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}))
		done := make(chan time.Time)
		go func() { _ = cons.Run(ctx); done <- time.Now() }()
		<-entered // SQS deleted the message; the object's DELETE is under way
		if st, _ := srv.Stats(url); st.Deleted != 1 {
			t.Fatalf("setup: SQS deleted %d", st.Deleted)
		}
		cancelled := time.Now()
		cancel()
		if took := (<-done).Sub(cancelled); took > 2*time.Second {
			t.Fatalf("Run returned %v after its ctx ended, held by a best-effort S3 DELETE", took)
		}
		_ = c.Close(context.Background()) // the hanging deletion ends at WithDeleteTimeout
	})
}

// WithThreshold(0) offloads every message with a body (size above 0), as the Java client's
// threshold does; an empty one only AlwaysThroughS3 offloads (attack6 found the doc promising
// otherwise; the doc now says this).
func TestAttack6ThresholdZeroIsAlways(t *testing.T) {
	o, _ := NewOffloader(&memS3{}, "b", WithThreshold(0))
	got, err := o.Offload(context.Background(), producer.Message{Body: "x"})
	if _, ok, _ := ParsePointer(got.Body); err != nil || !ok {
		t.Fatalf("WithThreshold(0), 1-byte body: %q %v; want it offloaded", got.Body, err)
	}
	if got, err := o.Offload(context.Background(), producer.Message{Body: ""}); err != nil || got.Body != "" {
		t.Fatalf("WithThreshold(0), empty body: %q %v; want it left (size 0 is not above 0)", got.Body, err)
	}
	a, _ := NewOffloader(&memS3{}, "b", AlwaysThroughS3())
	if got, err := a.Offload(context.Background(), producer.Message{Body: ""}); err != nil || got.Body == "" {
		t.Fatalf("AlwaysThroughS3, empty body: %q %v; want it offloaded", got.Body, err)
	}
}

// cancellingStore cancels a ctx after n uploads and refuses uploads on an ended ctx, as the
// SDK does.
type cancellingStore struct {
	*memS3
	mu     sync.Mutex
	n      int
	cancel func()
}

func (c *cancellingStore) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := c.memS3.PutObject(ctx, in, optFns...)
	c.mu.Lock()
	if c.n--; c.n == 0 {
		c.cancel()
	}
	c.mu.Unlock()
	return out, err
}

// SendBatch whose ctx ends mid-offload, and Close racing with Sends: every stored object
// belongs to a queued message and every queued message's object exists. (Held up.)
func TestAttack6OffloadCancelAndCloseNoOrphans(t *testing.T) {
	for _, known := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			srv := sqstest.New()
			url := srv.MustCreateQueue("q", nil)
			ctx, cancel := context.WithCancel(context.Background())
			store := &cancellingStore{memS3: &memS3{}, n: 5, cancel: cancel}
			o, _ := NewOffloader(store, "b", WithThreshold(10))
			opts := []producer.Option{producer.WithOffload(o)}
			if known {
				opts = append(opts, producer.WithMaxMessageSize(1<<20))
			}
			p, _ := producer.New(srv, url, opts...)
			var msgs []producer.Message
			for i := range 20 {
				msgs = append(msgs, producer.Message{Body: fmt.Sprintf("message %02d over the threshold", i)})
			}
			_ = p.SendBatch(ctx, msgs)
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Go(func() {
					_, _ = p.Send(context.Background(), producer.Message{Body: fmt.Sprintf("late %02d over the threshold", i)})
				})
			}
			wg.Go(func() { _ = p.Close(context.Background()) })
			wg.Wait()
			synctest.Wait()
			queued := 0
			for {
				out, _ := srv.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
				if len(out.Messages) == 0 {
					break
				}
				for _, m := range out.Messages {
					queued++
					ptr, ok, _ := ParsePointer(*m.Body)
					if !ok || store.memS3.objects["b/"+ptr.Key] == "" {
						t.Errorf("queued message %q has no object", *m.Body)
					}
				}
			}
			if store.count() != queued {
				t.Errorf("known limit %v: %d objects for %d queued messages", known, store.count(), queued)
			}
		})
	}
}

// A handler outliving the visibility timeout several times over: the lease extends the
// marked handle through the Client (strict sqstest refuses a stale handle), the message is
// deleted once and its object after it. (Held up.)
func TestAttack6LeaseWithMarkedHandles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", map[string]string{"VisibilityTimeout": "2"})
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
			t.Fatal(err)
		}
		c, _ := NewClient(srv, store)
		var calls int
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			calls++
			time.Sleep(20 * time.Second) // fake time: the work outlives the visibility timeout
			return ctx.Err()
		}, c.Fetch())
		var errs []error
		var mu sync.Mutex
		cons, _ := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithVisibilityTimeout(2*time.Second),
			sqsconsumer.WithErrorHandler(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(5*time.Second)))
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil { // the object's deletion runs in the background
			t.Fatal(err)
		}
		st, _ := srv.Stats(url)
		if calls != 1 || st.Deleted != 1 || store.count() != 0 || len(errs) != 0 {
			t.Fatalf("calls %d, deleted %d, objects %d, errors %v", calls, st.Deleted, store.count(), errs)
		}
	})
}

// Fetch looks for a declared size with m.Envelope() when the message has no size attribute
// (ParsePointer accepts such pointers; the size attribute is optional to Fetch), which
// caches the pointer body's envelope (Raw) in m. After Fetch replaces the body with the
// payload, a handler's m.Envelope() still describes the pointer: here the payload is an
// EventBridge event, and the handler is told it is a Raw message whose payload is the pointer.
func TestAttack6EnvelopeAfterFetchDescribesPayload(t *testing.T) {
	event := `{"version":"0","id":"e1","detail-type":"Order placed","source":"shop","account":"1","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{"order":42}}`
	store := &memS3{objects: map[string]string{"b/k": event}}
	body := Pointer{"b", "k"}.Body()
	m := &sqsconsumer.Message{}
	m.MessageId, m.Body = aws.String("id-1"), &body
	var kind envelope.Kind
	var payload string
	err := Fetch(store)(func(_ context.Context, m *sqsconsumer.Message) error {
		env, err := m.Envelope()
		if err != nil {
			return err
		}
		kind, payload = env.Kind, env.Payload
		return nil
	})(context.Background(), m)
	if err != nil || *m.Body != event {
		t.Fatalf("Fetch: %v, body %q", err, *m.Body)
	}
	if kind != envelope.EventBridge || payload != `{"order":42}` {
		t.Fatalf("handler's m.Envelope() after Fetch: %v %q, want EventBridge with the event's detail", kind, payload)
	}
}
