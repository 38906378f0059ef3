package sqsextended

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// memS3 is an in-memory bucket store with fault injection, for the fast tests; the
// emulator's S3 is used for the interoperability tests.
type memS3 struct {
	mu      sync.Mutex
	objects map[string]string // bucket/key
	puts    []*s3.PutObjectInput
	deletes []string
	fail    map[string]error // by operation
}

func (f *memS3) err(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[op]
}

func (f *memS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := f.err("PutObject"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string]string{}
	}
	f.objects[*in.Bucket+"/"+*in.Key] = string(b)
	f.puts = append(f.puts, in)
	return &s3.PutObjectOutput{}, nil
}

func (f *memS3) GetObject(ctx context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if err := f.err("GetObject"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[*in.Bucket+"/"+*in.Key]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(b)), ContentLength: aws.Int64(int64(len(b)))}, nil
}

func (f *memS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if err := f.err("DeleteObject"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, *in.Bucket+"/"+*in.Key)
	f.deletes = append(f.deletes, *in.Bucket+"/"+*in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *memS3) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects)
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestOffloadThresholdAndFormat(t *testing.T) {
	ctx := context.Background()
	store := &memS3{}
	o, err := NewOffloader(store, "bucket")
	if err != nil {
		t.Fatal(err)
	}
	attr := map[string]sqstypes.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v")}}
	// Body and attributes count: "k"+"String"+"v" is 8 bytes.
	at := producer.Message{Body: strings.Repeat("x", DefaultThreshold-8), Attributes: attr}
	if got, err := o.Offload(ctx, at); err != nil || got.Body != at.Body || len(got.Attributes) != 1 {
		t.Fatalf("exactly at the threshold: offloaded (%d bytes) or %v", len(got.Body), err)
	}
	over := producer.Message{Body: strings.Repeat("é", (DefaultThreshold-8)/2) + "x", Attributes: attr}
	got, err := o.Offload(ctx, over)
	if err != nil {
		t.Fatal(err)
	}
	p, ok, err := ParsePointer(got.Body)
	if !ok || err != nil || p.Bucket != "bucket" || !uuidV4.MatchString(p.Key) {
		t.Fatalf("one byte over: body %q (%v %v)", got.Body, ok, err)
	}
	if want := `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"bucket","s3Key":"` + p.Key + `"}]`; got.Body != want {
		t.Fatalf("pointer body\n%s\nwant the Java client's bytes\n%s", got.Body, want)
	}
	size := got.Attributes[SizeAttribute]
	if aws.ToString(size.DataType) != "Number" || aws.ToString(size.StringValue) != fmt.Sprint(len(over.Body)) || aws.ToString(got.Attributes["k"].StringValue) != "v" || len(got.Attributes) != 2 {
		t.Fatalf("attributes %+v", got.Attributes)
	}
	if len(over.Attributes) != 1 {
		t.Fatal("Offload changed the caller's attribute map")
	}
	if store.objects["bucket/"+p.Key] != over.Body {
		t.Fatal("the stored object is not the body")
	}

	// Errors: a reserved attribute, too many attributes when offloading, a failed upload.
	for _, name := range []string{SizeAttribute, LegacySizeAttribute} {
		m := producer.Message{Body: "x", Attributes: map[string]sqstypes.MessageAttributeValue{name: {DataType: aws.String("Number"), StringValue: aws.String("1")}}}
		if _, err := o.Offload(ctx, m); !errors.Is(err, ErrReservedAttribute) {
			t.Fatalf("reserved %s: %v", name, err)
		}
	}
	ten := map[string]sqstypes.MessageAttributeValue{}
	for i := range 10 {
		ten[fmt.Sprint("a", i)] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("v")}
	}
	if m, err := o.Offload(ctx, producer.Message{Body: "small", Attributes: ten}); err != nil || m.Body != "small" {
		t.Fatalf("10 attributes on a small message: %v", err)
	}
	if _, err := o.Offload(ctx, producer.Message{Body: strings.Repeat("x", DefaultThreshold), Attributes: ten}); !errors.Is(err, ErrTooManyAttributes) {
		t.Fatalf("10 attributes offloaded: %v", err)
	}
	store.fail = map[string]error{"PutObject": errors.New("503 SlowDown")}
	if _, err := o.Offload(ctx, producer.Message{Body: strings.Repeat("x", DefaultThreshold+1)}); !errors.Is(err, ErrUpload) || !strings.Contains(err.Error(), "s3://bucket/") {
		t.Fatalf("failed upload: %v", err)
	}
}

func TestOffloaderOptions(t *testing.T) {
	ctx := context.Background()
	store := &memS3{}
	for _, tc := range []struct {
		name string
		opts []OffloadOption
	}{
		{"negative threshold", []OffloadOption{WithThreshold(-1)}},
		{"threshold over 1 MiB", []OffloadOption{WithThreshold(1<<20 + 1)}},
		{"prefix with ..", []OffloadOption{WithKeyPrefix("a/../b")}},
		{"prefix starting with /", []OffloadOption{WithKeyPrefix("/a")}},
		{"prefix with a space inside", []OffloadOption{WithKeyPrefix("a b")}},
		{"prefix too long", []OffloadOption{WithKeyPrefix(strings.Repeat("a", 989))}},
		{"nil put hook", []OffloadOption{WithPutObject(nil)}},
		{"nil error func", []OffloadOption{WithUnsentErrors(nil)}},
	} {
		if _, err := NewOffloader(store, "b", tc.opts...); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", tc.name, err)
		}
	}
	if _, err := NewOffloader(nil, "b"); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("nil client: %v", err)
	}
	if _, err := NewOffloader(store, " "); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("empty bucket: %v", err)
	}

	o, err := NewOffloader(store, "b", AlwaysThroughS3(), WithKeyPrefix("payloads/2026/"), WithLegacySizeAttribute(),
		WithPutObject(func(in *s3.PutObjectInput) {
			in.ServerSideEncryption = s3types.ServerSideEncryptionAwsKms
			in.Key = aws.String("ignored") // Bucket, Key and Body are the Offloader's
		}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Offload(ctx, producer.Message{Body: ""})
	if err != nil {
		t.Fatal(err)
	}
	p, ok, _ := ParsePointer(got.Body)
	if !ok || !strings.HasPrefix(p.Key, "payloads/2026/") || !uuidV4.MatchString(strings.TrimPrefix(p.Key, "payloads/2026/")) {
		t.Fatalf("always through S3 with a prefix: %q", got.Body)
	}
	if v := got.Attributes[LegacySizeAttribute]; aws.ToString(v.StringValue) != "0" || len(got.Attributes) != 1 {
		t.Fatalf("legacy size attribute: %+v", got.Attributes)
	}
	if in := store.puts[len(store.puts)-1]; in.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || *in.Key != p.Key {
		t.Fatalf("put: %+v", in)
	}

	// Unsent deletes only what this Offloader stored.
	var unsentErrs []error
	o2, _ := NewOffloader(store, "b", WithKeyPrefix("payloads/2026/"), WithLegacySizeAttribute(), WithUnsentErrors(func(_ Pointer, err error) { unsentErrs = append(unsentErrs, err) }))
	o2.Unsent(ctx, producer.Message{Body: Pointer{"other", "payloads/2026/x"}.Body()})
	o2.Unsent(ctx, producer.Message{Body: Pointer{"b", "elsewhere"}.Body()})
	o2.Unsent(ctx, producer.Message{Body: "not a pointer"})
	if len(store.deletes) != 0 {
		t.Fatalf("deleted %v: none of those were the Offloader's", store.deletes)
	}
	o2.Unsent(ctx, got)
	if len(store.deletes) != 1 || store.count() != 0 {
		t.Fatalf("deletes %v, %d objects left", store.deletes, store.count())
	}
	store.fail = map[string]error{"DeleteObject": errors.New("AccessDenied")}
	o2.Unsent(ctx, got)
	if len(unsentErrs) != 1 {
		t.Fatalf("a failed delete was not reported: %v", unsentErrs)
	}
}

// The Client on sqstest, driven as a consumer drives it: an object goes only once its
// message's handler succeeded (noted by the Client's Fetch) and SQS reported the message
// deleted; not when the handler failed, the delete entry failed, the call failed, or the
// pointer came inside an SNS notification; the receipt handles are SQS's own.
func TestClientDeletesObjectsAfterTheMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{"b/ok": "one", "b/entryfails": "two", "b/handlerfails": "three", "b/sns": "four"}}
		var mu sync.Mutex
		var deleteErrs []error
		c, err := NewClient(srv, store, WithDeleteErrors(func(_ Pointer, err error) { mu.Lock(); deleteErrs = append(deleteErrs, err); mu.Unlock() }))
		if err != nil {
			t.Fatal(err)
		}
		sns := `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":` +
			fmt.Sprintf("%q", Pointer{"b", "sns"}.Body()) + `,"Timestamp":"2026-01-01T00:00:00Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}`
		for _, body := range []string{Pointer{"b", "ok"}.Body(), Pointer{"b", "entryfails"}.Body(), Pointer{"b", "handlerfails"}.Body(), sns, "plain"} {
			if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
		if err != nil || len(out.Messages) != 5 {
			t.Fatalf("receive: %v %d", err, len(out.Messages))
		}
		h := sqsconsumer.Chain(func(_ context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "three" {
				return errors.New("handler failed")
			}
			return nil
		}, sqsconsumer.Unwrap(), c.Fetch())
		handles := map[string]string{}
		for _, tm := range out.Messages {
			m := sqsconsumer.NewMessage(tm, url)
			_ = h(ctx, m)
			key := *tm.Body
			if p, ok, _ := ParsePointer(key); ok {
				key = p.Key
			} else if key != "plain" {
				key = "sns"
			}
			handles[key] = *tm.ReceiptHandle
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for key, handle := range handles {
			if key != "handlerfails" {
				entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(key), ReceiptHandle: aws.String(handle)})
			}
		}
		// First the call fails as a whole: nothing is deleted, the notes are kept for the retry.
		srv.SetFaults(sqstest.Faults{Call: func(op string, _ any) error {
			if op == "DeleteMessageBatch" {
				return errors.New("connection reset")
			}
			return nil
		}})
		if _, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err == nil {
			t.Fatal("the injected failure did not fail the call")
		}
		srv.SetFaults(sqstest.Faults{Entry: func(op, h string) *sqstypes.BatchResultErrorEntry {
			if op == "DeleteMessageBatch" && h == handles["entryfails"] {
				return sqstest.EntryError("InternalError", false)
			}
			return nil
		}})
		del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil || len(del.Successful) != 3 || len(del.Failed) != 1 {
			t.Fatalf("delete: %v %+v", err, del)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"b/entryfails": "two", "b/handlerfails": "three", "b/sns": "four"}
		if len(store.objects) != len(want) || len(store.deletes) != 1 || store.deletes[0] != "b/ok" {
			t.Fatalf("objects %v, deletes %v; want only b/ok deleted", store.objects, store.deletes)
		}
		st, _ := srv.Stats(url)
		if st.Deleted != 3 || st.StaleDeletes != 0 {
			t.Fatalf("SQS deleted %d (stale %d)", st.Deleted, st.StaleDeletes)
		}

		// A failed S3 DELETE is reported; the SQS answer stands.
		srv.SetFaults(sqstest.Faults{})
		m := sqsconsumer.NewMessage(out.Messages[0], url)
		for _, tm := range out.Messages {
			if *tm.ReceiptHandle == handles["entryfails"] {
				m = sqsconsumer.NewMessage(tm, url)
			}
		}
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
		store.mu.Lock()
		store.fail = map[string]error{"DeleteObject": errors.New("AccessDenied")}
		store.mu.Unlock()
		del, err = c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url,
			Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("x"), ReceiptHandle: aws.String(handles["entryfails"])}}})
		if err != nil || len(del.Successful) != 1 {
			t.Fatalf("delete: %v %+v", err, del)
		}
		c.Close(ctx)
		mu.Lock()
		defer mu.Unlock()
		if len(deleteErrs) != 1 {
			t.Fatalf("a failed S3 DELETE was not reported: %v", deleteErrs)
		}
	})
}

// Past MaxPendingDeletes deletions in flight (S3 hanging), further objects are reported as
// ErrDeleteBacklog and left; the SQS deletes are never held.
func TestClientDeleteBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{}}
		var backlog atomic.Int64
		c, _ := NewClient(srv, hangingDeletes{memS3: store}, WithDeleteTimeout(time.Minute), WithDeleteErrors(func(_ Pointer, err error) {
			if errors.Is(err, ErrDeleteBacklog) {
				backlog.Add(1)
			}
		}))
		const n = MaxPendingDeletes + 25
		for i := range n {
			key := fmt.Sprint("k", i)
			store.objects["b/"+key] = "x"
			if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", key}.Body())}); err != nil {
				t.Fatal(err)
			}
		}
		fetch := c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })
		for deleted := 0; deleted < n; {
			out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
			if err != nil {
				t.Fatal(err)
			}
			var entries []sqstypes.DeleteMessageBatchRequestEntry
			for i, tm := range out.Messages {
				if err := fetch(ctx, sqsconsumer.NewMessage(tm, url)); err != nil {
					t.Fatal(err)
				}
				entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: tm.ReceiptHandle})
			}
			start := time.Now()
			if _, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 0 {
				t.Fatal("DeleteMessageBatch waited for S3")
			}
			deleted += len(entries)
		}
		closeCtx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := c.Close(closeCtx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with deletions hanging: %v", err)
		}
		if err := c.Close(ctx); err != nil { // they end at WithDeleteTimeout
			t.Fatal(err)
		}
		if backlog.Load() != 25 {
			t.Fatalf("%d reported as backlog, want 25", backlog.Load())
		}
	})
}

func TestClientOptions(t *testing.T) {
	srv := sqstest.New()
	for name, err := range map[string]error{
		"nil sqs":     func() error { _, err := NewClient(nil, &memS3{}); return err }(),
		"nil s3":      func() error { _, err := NewClient(srv, nil); return err }(),
		"nil errfunc": func() error { _, err := NewClient(srv, &memS3{}, WithDeleteErrors(nil)); return err }(),
		"timeout 0":   func() error { _, err := NewClient(srv, &memS3{}, WithDeleteTimeout(0)); return err }(),
	} {
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A consumer on the Client and Fetch, on sqstest: payloads reach the handler unchanged, the
// objects of handled messages are deleted once their messages are, a failing handler's object
// stays, and deletes after the caller's context ended (shutdown) still remove the object.
func TestConsumerWithClientAndFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", map[string]string{"VisibilityTimeout": "30"})
		store := &memS3{}
		o, _ := NewOffloader(store, "b", WithThreshold(10))
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		ctx := context.Background()
		want := map[string]bool{}
		for i := range 30 {
			body := fmt.Sprintf("payload %02d %s", i, strings.Repeat("é", i))
			if i%3 == 0 {
				body = fmt.Sprint(i) // under the threshold: sent as it is
			}
			if i == 7 {
				body = "FAIL " + body
			}
			want[body] = true
			if _, err := p.Send(ctx, producer.Message{Body: body}); err != nil {
				t.Fatal(err)
			}
		}
		p.Close(ctx)
		if store.count() != 20 {
			t.Fatalf("%d objects stored, want 20", store.count())
		}
		c, _ := NewClient(srv, store)
		var mu sync.Mutex
		got := map[string]bool{}
		h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			if _, ok := m.MessageAttributes[SizeAttribute]; ok {
				return errors.New("the size attribute reached the handler")
			}
			if strings.HasPrefix(*m.Body, "FAIL") {
				return errors.New("handler failed")
			}
			mu.Lock()
			got[*m.Body] = true
			mu.Unlock()
			return nil
		}, c.Fetch())
		cons, err := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if len(got) != 29 {
			t.Fatalf("handled %d of 29", len(got))
		}
		for b := range got {
			if !want[b] {
				t.Fatalf("handler saw %q, never sent", b)
			}
		}
		if store.count() != 1 {
			t.Fatalf("%d objects left, want only the failed message's", store.count())
		}
		for k, v := range store.objects {
			if !strings.HasPrefix(v, "FAIL") {
				t.Fatalf("object %s left: %q", k, v)
			}
		}
	})
}

func TestFetchEdgeCases(t *testing.T) {
	ctx := context.Background()
	store := &memS3{objects: map[string]string{"b/big": strings.Repeat("x", 100), "b/ok": "payload"}}
	call := func(body string, attrs map[string]sqstypes.MessageAttributeValue, opts ...FetchOption) (string, error) {
		m := &sqsconsumer.Message{}
		m.MessageId, m.Body, m.MessageAttributes = aws.String("id-1"), &body, attrs
		var seen string
		err := Fetch(store, opts...)(func(_ context.Context, m *sqsconsumer.Message) error { seen = *m.Body; return nil })(ctx, m)
		return seen, err
	}
	var fault *sqsconsumer.MessageFaultError
	if _, err := call(Pointer{"b", "big"}.Body(), nil, WithMaxSize(99)); !errors.Is(err, ErrTooLarge) || !errors.As(err, &fault) {
		t.Fatalf("object over the cap: %v", err)
	}
	declared := map[string]sqstypes.MessageAttributeValue{LegacySizeAttribute: {DataType: aws.String("Number"), StringValue: aws.String("1000")}}
	if _, err := call(Pointer{"b", "ok"}.Body(), declared, WithMaxSize(999)); !errors.Is(err, ErrTooLarge) || len(store.deletes) != 0 {
		t.Fatalf("declared size over the cap: %v", err)
	}
	if got, err := call(Pointer{"b", "big"}.Body(), nil, WithMaxSize(100)); err != nil || len(got) != 100 {
		t.Fatalf("object at the cap: %v", err)
	}
	if _, err := call(`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b"}]`, nil); !errors.Is(err, ErrMalformedPointer) || !errors.As(err, &fault) {
		t.Fatalf("malformed pointer: %v", err)
	}
	store.fail = map[string]error{"GetObject": errors.New("503 Service Unavailable")}
	var down *sqsconsumer.DownstreamError
	if _, err := call(Pointer{"b", "ok"}.Body(), nil); !errors.As(err, &down) || errors.As(err, &fault) {
		t.Fatalf("S3 failing: %v, want a Downstream error", err)
	}
	store.fail = nil
	// An SNS notification carrying a pointer, with Fetch before Unwrap.
	sns := `{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":` +
		fmt.Sprintf("%q", Pointer{"b", "ok"}.Body()) + `,"Timestamp":"2026-01-01T00:00:00Z","SignatureVersion":"1","Signature":"x","SigningCertURL":"https://sns.us-east-1.amazonaws.com/c.pem"}`
	if _, err := call(sns, nil); !errors.Is(err, ErrUnwrapFirst) {
		t.Fatalf("pointer in an envelope reaching Fetch first: %v", err)
	}
	m := &sqsconsumer.Message{}
	m.MessageId, m.Body = aws.String("id-2"), &sns
	var seen string
	h := sqsconsumer.Chain(func(_ context.Context, m *sqsconsumer.Message) error { seen = *m.Body; return nil }, sqsconsumer.Unwrap(), Fetch(store))
	if err := h(ctx, m); err != nil || seen != "payload" {
		t.Fatalf("Unwrap then Fetch: %q %v", seen, err)
	}
	if got, err := call(`{"some":"json", "S3Pointer": 1}`, nil); err != nil || got != `{"some":"json", "S3Pointer": 1}` {
		t.Fatalf("ordinary JSON: %q %v", got, err)
	}
}

// Two messages received through one Client pointing at one object (here copies of a raw
// SNS fan-out to two queues of one Group, both received before either is done): it is
// deleted once, after the last is; while one still fails, it stays. (A copy not received yet
// cannot be seen, so the docs still rule a Client out for fan-out; see attack9.)
func TestClientSharedObjectAcrossQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		store := &memS3{objects: map[string]string{"b/shared": "payload", "b/other": "x"}}
		c, _ := NewClient(srv, store)
		var urls []string
		for _, name := range []string{"a", "b"} {
			url := srv.MustCreateQueue(name, nil)
			urls = append(urls, url)
			for _, key := range []string{"shared", "other"} {
				if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", key}.Body())}); err != nil {
					t.Fatal(err)
				}
			}
		}
		var failB atomic.Bool
		failB.Store(true)
		handled, failed := make(chan struct{}, 100), make(chan struct{}, 100)
		g, err := sqsconsumer.NewGroup(sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
		if err != nil {
			t.Fatal(err)
		}
		for _, url := range urls {
			h := sqsconsumer.Chain(func(_ context.Context, m *sqsconsumer.Message) error {
				if m.QueueURL() == urls[1] && *m.Body == "payload" && failB.Load() {
					failed <- struct{}{}
					return errors.New("queue b's handler fails for now")
				}
				handled <- struct{}{}
				return nil
			}, c.Fetch())
			if err := g.Add(c, url, h, sqsconsumer.Share{}, sqsconsumer.WithWaitTime(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		wait := func(ch chan struct{}, what string) {
			t.Helper()
			select {
			case <-ch:
			case <-time.After(time.Minute): // fake time
				t.Fatalf("%s: not within a minute", what)
			}
		}
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- g.Run(runCtx) }()
		for range 3 {
			wait(handled, "queue a's messages and queue b's other message handled")
		}
		// Queue b's copy failing twice (1 s apart): queue a's acks have long been sent.
		wait(failed, "queue b's copy failing")
		wait(failed, "queue b's copy failing again (is its object there?)")
		if err := c.Close(ctx); err != nil { // the deletions a's acks started
			t.Fatal(err)
		}
		store.mu.Lock()
		shared := store.objects["b/shared"]
		store.mu.Unlock()
		if shared != "payload" {
			t.Fatal("the shared object was deleted while queue b's copy still needed it")
		}
		failB.Store(false)
		wait(handled, "queue b's copy handled")
		for st, _ := srv.Stats(urls[1]); st.Deleted < 2; st, _ = srv.Stats(urls[1]) {
			<-time.After(100 * time.Millisecond) // fake time: the ack's flush
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if len(store.objects) != 0 {
			t.Fatalf("objects left: %v", store.objects)
		}
		n := 0
		for _, d := range store.deletes {
			if d == "b/shared" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the shared object was deleted %d times, want once after the last copy", n)
		}
	})
}
