package sqsextended

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// The README's setup is sqsconsumer.New(ext, url, Chain(h, ext.Fetch())) and the Client's
// doc describes rerouted messages keeping their object. But the consumer finds its Sender by
// asserting the client it was given to sqsconsumer.Sender, and a *Client wrapping an
// *sqs.Client (or sqstest.Server) does not have SendMessage: every Reroute then fails with
// "the client cannot send; set WithSender" unless the user knows to pass WithSender.
func TestAttack8RerouteThroughClientWithoutWithSender(t *testing.T) {
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

		c, _ := NewClient(srv, store)
		var errs []error
		var mu sync.Mutex
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(delayURL, 0, errors.New("downstream saturated"))
		}, c.Fetch())
		cons, err := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }),
			sqsconsumer.WithErrorHandler(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(ctx)
		if st := cons.Report(); st.Rerouted != 1 {
			t.Fatalf("rerouted %d, want 1 (the Client hides the wrapped client's SendMessage); errors: %v", st.Rerouted, errs)
		}
	})
}

// The delay-queue pattern through one Client: a message is rerouted from q to a delay queue
// and later handled from there (same Client: a Group, or a second consumer). The original's
// delete carries no note (its handler returned the RerouteError), so its receipt stays in
// c.latest and keeps holders[p] at 1 for 13 h: when the copy is handled and deleted, the
// Client thinks another message still points at the object and never deletes it. Every
// rerouted pointer message also holds ~0.5 KB (receipt handle, id, pointer) for 13 h.
func TestAttack8RerouteThenCopyHandledDeletesObject(t *testing.T) {
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

		c, _ := NewClient(srv, store)
		first := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			return sqsconsumer.Reroute(delayURL, 0, errors.New("later"))
		}, c.Fetch())
		var seen atomic.Int32
		second := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body != "a payload over the threshold" {
				return errors.New("wrong payload")
			}
			seen.Add(1)
			return nil
		}, c.Fetch())
		for _, run := range []struct {
			url string
			h   sqsconsumer.Handler
		}{{url, first}, {delayURL, second}} {
			cons, err := sqsconsumer.New(c, run.url, run.h, sqsconsumer.WithSender(srv), sqsconsumer.WithWaitTime(time.Second),
				sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			if err := cons.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if seen.Load() != 1 {
			t.Fatalf("copy handled %d times, want 1", seen.Load())
		}
		c.mu.Lock()
		latest, holders := len(c.latest), len(c.holders)
		c.mu.Unlock()
		if store.count() != 0 {
			t.Fatalf("%d objects left after the last message pointing at it was handled and deleted (S3 deletes %v; Client still holds %d receipts, %d holders)",
				store.count(), store.deletes, latest, holders)
		}
		if latest != 0 || holders != 0 {
			t.Fatalf("both messages are deleted, yet the Client holds %d receipts and %d holders (kept for 13 h)", latest, holders)
		}
	})
}

// Java's extended client decides that a message is a pointer by the size attribute, and reads
// the body with Jackson, which decodes JSON escapes and ignores trailing tokens. A body with
// ExtendedPayloadSize that ParsePointer does not read as a pointer (its cheap exit looks for
// the literal "S3Pointer" and a leading '['; encoding/json refuses a BOM and trailing data)
// is handed to the handler as if it were the payload: the handler gets pointer JSON with
// nothing telling it so. Either read it, or fail the message as ErrMalformedPointer.
func TestAttack8SizeAttributeWithUnreadPointerNotHandedOn(t *testing.T) {
	ctx := context.Background()
	store := &memS3{objects: map[string]string{"b/k": "the payload"}}
	for name, body := range map[string]string{
		"escaped class":  `["software.amazon.payloadoffloading.PayloadS3\u0050ointer",{"s3BucketName":"b","s3Key":"k"}]`,
		"leading BOM":    "\ufeff" + `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]`,
		"trailing token": `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}] x`,
	} {
		t.Run(name, func(t *testing.T) {
			m := sqsconsumer.NewMessage(sqstypes.Message{Body: aws.String(body), MessageId: aws.String("m"), ReceiptHandle: aws.String("h"),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{SizeAttribute: {DataType: aws.String("Number"), StringValue: aws.String("11")}}}, "u")
			var got *string
			err := Fetch(store)(func(_ context.Context, m *sqsconsumer.Message) error { got = m.Body; return nil })(ctx, m)
			if err == nil && *got != "the payload" {
				t.Fatalf("the handler was given %q as the payload of a message with %s", *got, SizeAttribute)
			}
		})
	}
}

// A body that errors mid-read is Downstream and is closed; a handler timeout during the read
// is a failure (not a success), and the body is closed.
type erroringBody struct {
	read   int
	err    error
	block  <-chan struct{}
	closed atomic.Bool
}

func (b *erroringBody) Read(p []byte) (int, error) {
	if b.read == 0 {
		b.read = 1
		return copy(p, "part"), nil
	}
	if b.block != nil {
		<-b.block
	}
	return 0, b.err
}
func (b *erroringBody) Close() error { b.closed.Store(true); return nil }

type bodyS3 struct{ body io.ReadCloser }

func (s bodyS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return &s3.GetObjectOutput{Body: s.body}, nil
}

func TestAttack8BodyErrorMidRead(t *testing.T) {
	body := &erroringBody{err: io.ErrUnexpectedEOF}
	m := sqsconsumer.NewMessage(sqstypes.Message{Body: aws.String(Pointer{"b", "k"}.Body()), MessageId: aws.String("m")}, "u")
	err := Fetch(bodyS3{body})(func(context.Context, *sqsconsumer.Message) error { return nil })(context.Background(), m)
	var ds *sqsconsumer.DownstreamError
	if !errors.As(err, &ds) || !errors.Is(err, io.ErrUnexpectedEOF) || !body.closed.Load() {
		t.Fatalf("err %v (downstream %v), closed %v", err, ds != nil, body.closed.Load())
	}
	if !strings.Contains(*m.Body, "S3Pointer") {
		t.Fatalf("body replaced after a failed read: %q", *m.Body)
	}
}

// sqs.Client is the wrapped client's type in production; keep the compiler honest that it
// has SendMessage, which the Client does not pass on.
var _ sqsconsumer.Sender = (*sqs.Client)(nil)

// ctxBody blocks its reads until the GET's ctx ends, as an HTTP body does.
type ctxBody struct {
	ctx    context.Context
	closed *atomic.Bool
	first  bool
}

func (b *ctxBody) Read(p []byte) (int, error) {
	if !b.first {
		b.first = true
		return copy(p, "part"), nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
func (b *ctxBody) Close() error { b.closed.Store(true); return nil }

type slowS3 struct {
	*memS3
	started chan struct{}
	closed  *atomic.Bool
}

func (s slowS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	return &s3.GetObjectOutput{Body: &ctxBody{ctx: ctx, closed: s.closed}}, nil
}

// A GET in progress at shutdown: the message is released (Cancelled), not failed, and the
// body is closed; under a handler timeout it fails as timed out, and the body is closed.
func TestAttack8SlowGetAtShutdownAndTimeout(t *testing.T) {
	for _, tc := range []string{"shutdown", "handler timeout"} {
		t.Run(tc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := sqstest.New(sqstest.WithStrict())
				url := srv.MustCreateQueue("q", map[string]string{"VisibilityTimeout": "30"})
				if _, err := srv.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
					t.Fatal(err)
				}
				store := slowS3{memS3: &memS3{}, started: make(chan struct{}, 1), closed: new(atomic.Bool)}
				c, _ := NewClient(srv, store)
				called := atomic.Bool{}
				h := sqsconsumer.Chain(func(context.Context, *sqsconsumer.Message) error { called.Store(true); return nil }, c.Fetch())
				opts := []sqsconsumer.Option{sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
					sqsconsumer.WithShutdownTimeout(5 * time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour })}
				if tc == "handler timeout" {
					opts = append(opts, sqsconsumer.WithHandlerTimeout(3*time.Second), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(10*time.Second)))
				}
				cons, err := sqsconsumer.New(c, url, h, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- cons.Run(ctx) }()
				<-store.started
				if tc == "shutdown" {
					cancel()
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				_ = c.Close(context.Background())
				st := cons.Report()
				if called.Load() || !store.closed.Load() {
					t.Fatalf("handler called %v, body closed %v", called.Load(), store.closed.Load())
				}
				switch tc {
				case "shutdown":
					if st.Failed != 0 || st.Cancelled != 1 {
						t.Fatalf("shutdown during the GET: %+v", st)
					}
				default:
					if st.TimedOut != 1 {
						t.Fatalf("handler timeout during the GET: %+v", st)
					}
				}
			})
		})
	}
}

// Message.ReceivedBody promises the body as SQS delivered it "whatever middleware has since
// put in m.Body", and Reroute and the Client's Fetch rely on it. But the consumer keeps the
// same *string as m.Body (lifecycle.go: received: tm.Body; NewMessage likewise), so a
// middleware that writes through the pointer (*m.Body = decoded) rewrites the "received" body
// too: Reroute then sends the rewritten body, and the Client judges pointers by it.
func TestAttack8ReceivedBodySurvivesInPlaceWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("original")}); err != nil {
			t.Fatal(err)
		}
		var got string
		h := func(ctx context.Context, m *sqsconsumer.Message) error {
			*m.Body = "rewritten in place"
			got = m.ReceivedBody()
			return nil
		}
		cons, _ := sqsconsumer.New(srv, url, h, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got != "original" {
			t.Fatalf("ReceivedBody() = %q after a handler wrote *m.Body, want %q", got, "original")
		}
		m := sqsconsumer.NewMessage(sqstypes.Message{Body: aws.String("original")}, url)
		*m.Body = "rewritten"
		if m.ReceivedBody() != "original" {
			t.Fatalf("NewMessage: ReceivedBody() = %q", m.ReceivedBody())
		}
	})
}

// A handler that returns nil after WithHandlerTimeout passed: the consumer fails the message
// (ErrHandlerTimeout) and never deletes it with this handle, but the Client's Fetch noted it
// (its inner handler returned nil). The note (receipt handle, id, pointer) stays for 13 h; a
// consumer whose handlers regularly overrun keeps one per overrun.
func TestAttack8TimedOutSuccessLeavesNoNote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
			t.Fatal(err)
		}
		c, _ := NewClient(srv, store)
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			<-time.After(2 * time.Second) // a slow handler that ignores ctx
			return nil
		}, c.Fetch())
		cons, _ := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
			sqsconsumer.WithHandlerTimeout(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }),
			sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(5*time.Second)))
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(ctx)
		if st := cons.Report(); st.TimedOut != 1 || st.Acked != 0 {
			t.Fatalf("%+v", st)
		}
		c.mu.Lock()
		notes := len(c.done)
		c.mu.Unlock()
		if notes != 0 {
			t.Fatalf("%d notes kept for a message the consumer failed (not deleted with that handle); held 13 h", notes)
		}
	})
}
