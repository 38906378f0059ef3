package sqsextended

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
)

func TestParsePointer(t *testing.T) {
	for body, want := range map[string]struct {
		p   Pointer
		ok  bool
		err bool
	}{
		// As the Java extended client writes it (payload-offloading-java-common's PayloadS3Pointer).
		`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k-1"}]`:  {Pointer{"b", "k-1"}, true, false},
		`["com.amazon.sqs.javamessaging.MessageS3Pointer",{"s3BucketName":"old","s3Key":"x"}]`:       {Pointer{"old", "x"}, true, false},
		` ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3Key":"k","s3BucketName":"b"}] `: {Pointer{"b", "k"}, true, false},
		`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b"}]`:                {err: true},
		`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":1}]`:      {err: true},
		`["somebody.Else.S3Pointer",{"s3BucketName":"b","s3Key":"k"}]`:                               {},
		`["software.amazon.payloadoffloading.PayloadS3Pointer"]`:                                     {},
		`{"s3BucketName":"b","s3Key":"k"}`:                                                           {},
		`plain`:                                                                                      {},
	} {
		p, ok, err := ParsePointer(body)
		if p != want.p || ok != want.ok || (err != nil) != want.err || (err != nil && !errors.Is(err, ErrMalformedPointer)) {
			t.Errorf("%s: %+v %v %v; want %+v %v err=%v", body, p, ok, err, want.p, want.ok, want.err)
		}
	}
	p := Pointer{"b", "k"}
	if got, ok, _ := ParsePointer(p.Body()); !ok || got != p {
		t.Fatalf("Body does not round trip: %s", p.Body())
	}
}

// On the emulator's S3 and SQS: messages in the Java client's format (built here byte for
// byte from the documented format), current and legacy names, payloads of 0 B, 256 KiB and
// 5 MiB, reach the handler as the payload; a missing object fails the message with an error
// naming bucket and key, and the message stays in the queue.
func TestFetchOnTheEmulator(t *testing.T) {
	env := onEmulator(t)
	ctx := context.Background()
	s3c := env.s3
	bucket := env.bucket(t)
	q := env.sqs
	qo, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprint("extended-", seq.Add(1)))})
	if err != nil {
		t.Fatal(err)
	}
	url := *qo.QueueUrl
	payloads := map[string][]byte{
		"empty": {},
		"256k":  bytes.Repeat([]byte("x"), 256<<10),
		"5m":    bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16),
	}
	want := map[string]string{}
	for key, b := range payloads {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
		want[key] = string(b)
	}
	send := func(body, sizeAttr string, size int) {
		in := &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}
		if sizeAttr != "" {
			in.MessageAttributes = map[string]sqstypes.MessageAttributeValue{sizeAttr: {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(size))}}
		}
		if _, err := q.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	send(`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"`+bucket+`","s3Key":"5m"}]`, SizeAttribute, len(payloads["5m"]))
	send(`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"`+bucket+`","s3Key":"256k"}]`, SizeAttribute, len(payloads["256k"]))
	send(`["com.amazon.sqs.javamessaging.MessageS3Pointer",{"s3BucketName":"`+bucket+`","s3Key":"empty"}]`, LegacySizeAttribute, 0)
	send("an ordinary body", "", 0)
	send(`["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"`+bucket+`","s3Key":"gone"}]`, SizeAttribute, 10)

	var mu sync.Mutex
	got := map[string]string{}
	var failures []error
	handler := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[*m.MessageId] = *m.Body
		return nil
	}, func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			err := next(ctx, m)
			if err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
			return err
		}
	}, Fetch(s3c))
	c, err := sqsconsumer.New(q, url, handler, sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, f := len(got), len(failures)
		mu.Unlock()
		if n == 4 && f == 1 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("handled %d of 4, failed %d of 1 within 30 s", n, f)
		}
		<-time.After(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bodies := map[string]bool{}
	for _, b := range got {
		bodies[b] = true
	}
	for key, w := range want {
		if !bodies[w] {
			t.Errorf("payload %s (%d bytes) did not reach the handler unchanged", key, len(w))
		}
	}
	if !bodies["an ordinary body"] {
		t.Error("an ordinary body was changed")
	}
	var fault *sqsconsumer.MessageFaultError
	if err := failures[0]; !errors.Is(err, ErrMissingObject) || !errors.As(err, &fault) || !strings.Contains(err.Error(), "s3://"+bucket+"/gone") {
		t.Fatalf("missing object: %v; want ErrMissingObject, a MessageFault, naming s3://%s/gone", err, bucket)
	}
	st := c.Report().Stats
	if st.Acked != 4 || st.Failed != 1 {
		t.Fatalf("report %+v: want 4 deleted and the missing object's message failed (left in the queue)", st)
	}
}
