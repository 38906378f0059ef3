// Command largepayload sends messages of 1 KiB, 600 KiB and 3 MiB through a producer that
// offloads bodies over 256 KiB to S3 in the AWS extended clients' format, consumes them with
// Fetch (the handler sees every payload as sent), and deletes each object once its message
// is deleted. By default it runs on an in-memory queue and an in-memory bucket, no AWS
// account needed:
//
//	go -C examples/largepayload run .
//
// With -endpoint it uses real SQS and S3 clients against that endpoint (an emulator serving
// both, such as fauxqs), creating the queue and the bucket.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsextended"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func main() {
	endpoint := flag.String("endpoint", "", "SQS and S3 endpoint (e.g. an emulator); empty: in memory")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "largepayload:", err)
		os.Exit(1)
	}
}

// objectStore is what the example needs of S3; *s3.Client and memBucket satisfy it.
type objectStore interface {
	sqsextended.ObjectStore
	sqsextended.ObjectGetter
	count(ctx context.Context, bucket string) (int, error)
}

func run(ctx context.Context, out io.Writer, endpoint string) error {
	var (
		queue sqsconsumer.Client
		send  producer.Client
		store objectStore
		url   string
	)
	const bucket = "example-payloads"
	if endpoint == "" {
		mem := sqstest.New()
		url = mem.MustCreateQueue("orders", nil)
		queue, send, store = mem, mem, &memBucket{objects: map[string][]byte{}}
	} else {
		creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		})
		sc := sqs.New(sqs.Options{BaseEndpoint: &endpoint, Region: "us-east-1", Credentials: creds})
		s3c := s3.New(s3.Options{BaseEndpoint: &endpoint, Region: "us-east-1", Credentials: creds, UsePathStyle: true})
		q, err := sc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders")})
		if err != nil {
			return err
		}
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			var owned *s3types.BucketAlreadyOwnedByYou
			if !errors.As(err, &owned) {
				return err
			}
		}
		url, queue, send, store = *q.QueueUrl, sc, sc, realBucket{s3c}
	}

	// Producer side: bodies over 256 KiB (body and attributes, as SQS counts) go to S3.
	off, err := sqsextended.NewOffloader(store, bucket, sqsextended.WithKeyPrefix("orders/"))
	if err != nil {
		return err
	}
	p, err := producer.New(send, url, producer.WithOffload(off))
	if err != nil {
		return err
	}
	sent := map[string][32]byte{} // MessageId -> SHA-256 of the body sent
	for i, size := range []int{1 << 10, 600 << 10, 3 << 20} {
		body := fmt.Sprintf("order %d: %s", i, strings.Repeat("x", size))
		id, err := p.Send(ctx, producer.Message{Body: body})
		if err != nil {
			return err
		}
		sent[id] = sha256.Sum256([]byte(body))
	}
	if err := p.Close(ctx); err != nil {
		return err
	}
	stored, err := store.count(ctx, bucket)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sent %d messages, %d of them through S3\n", len(sent), stored)

	// Consumer side: the Client's Fetch puts the payload in the body before the handler runs,
	// and the Client deletes the object once the handler succeeded and SQS deleted the message.
	client, err := sqsextended.NewClient(queue, store)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var lines []string
	pointers := map[string]int{} // MessageId -> size of the pointer SQS carried
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		mu.Lock()
		defer mu.Unlock()
		want, ok := sent[*m.MessageId]
		intact := ok && sha256.Sum256([]byte(*m.Body)) == want
		head, _, _ := strings.Cut(*m.Body, ":")
		how := "in the message"
		if n, ok := pointers[*m.MessageId]; ok {
			how = fmt.Sprintf("through S3 (SQS carried a %d-byte pointer)", n)
		}
		lines = append(lines, fmt.Sprintf("%s: %d bytes %s, intact: %v", head, len(*m.Body), how, intact))
		if len(lines) == len(sent) {
			cancel()
		}
		return nil
	}
	// Outside Fetch, a middleware sees the body as SQS delivered it.
	travelled := func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			if _, ok, _ := sqsextended.ParsePointer(*m.Body); ok {
				mu.Lock()
				pointers[*m.MessageId] = len(*m.Body)
				mu.Unlock()
			}
			return next(ctx, m)
		}
	}
	c, err := sqsconsumer.New(client, url, sqsconsumer.Chain(handler, travelled, client.Fetch()),
		sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	if err := c.Run(runCtx); err != nil {
		return err
	}
	if err := client.Close(ctx); err != nil { // the object deletions under way
		return err
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	left, err := store.count(ctx, bucket)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "objects left in the bucket: %d\n", left)
	return nil
}

// realBucket is an S3 client with the count the example prints.
type realBucket struct{ *s3.Client }

func (b realBucket) count(ctx context.Context, bucket string) (int, error) {
	out, err := b.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("orders/")})
	if err != nil {
		return 0, err
	}
	return len(out.Contents), nil
}

// memBucket is an in-memory stand-in for S3, enough for the example.
type memBucket struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (b *memBucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[*in.Bucket+"/"+*in.Key] = data
	return &s3.PutObjectOutput{}, nil
}

func (b *memBucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.objects[*in.Bucket+"/"+*in.Key]
	if !ok {
		return nil, &s3types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(string(data))), ContentLength: aws.Int64(int64(len(data)))}, nil
}

func (b *memBucket) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, *in.Bucket+"/"+*in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (b *memBucket) count(_ context.Context, bucket string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k := range b.objects {
		if strings.HasPrefix(k, bucket+"/orders/") {
			n++
		}
	}
	return n, nil
}
