package sqsextended

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
)

// The markers the Java extended client puts around the bucket and the key it adds to the
// front of a receipt handle, so that deleting the message can delete its object too.
const (
	bucketMarker = "-..s3BucketName..-"
	keyMarker    = "-..s3Key..-"
)

// ObjectDeleter is the S3 call a Client makes; *s3.Client satisfies it.
type ObjectDeleter interface {
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithDeleteErrors has f told when an object could not be deleted after its message was
// (the object is then an orphan, left to the bucket's lifecycle rule). By default such
// errors are dropped.
func WithDeleteErrors(f func(Pointer, error)) ClientOption {
	return func(c *Client) error {
		if f == nil {
			return fmt.Errorf("%w: WithDeleteErrors(nil)", ErrInvalidOption)
		}
		c.onError = f
		return nil
	}
}

// WithDeleteTimeout bounds the object deletions that follow one delete call (default 10 s).
// They run even when the caller's context has ended, so that a shutdown does not leave
// orphans; d must be > 0.
func WithDeleteTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithDeleteTimeout %v, want > 0", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// Client wraps the SQS client of a consumer so that the S3 object behind an offloaded
// message is deleted once SQS has deleted the message: the extended clients' payload
// cleanup. Use it only where this queue is the one reader of the objects; see NewClient.
//
// Like the Java client, it records the pointer in the receipt handle: ReceiveMessage puts
// "-..s3BucketName..-bucket-..s3BucketName..--..s3Key..-key-..s3Key..-" before the handle of a
// message whose body is a pointer, and the delete and visibility calls take it off again. A
// handler that passes m.ReceiptHandle to another client must strip it with ReceiptHandle.
//
// A Client is safe for concurrent use. It satisfies sqsconsumer.Client.
type Client struct {
	sqs     sqsconsumer.Client
	s3      ObjectDeleter
	onError func(Pointer, error)
	timeout time.Duration
}

var _ sqsconsumer.Client = (*Client)(nil)

// NewClient returns a Client over sqsClient deleting objects through s3Client. It makes no
// call; errors wrap ErrInvalidOption.
//
// Deleting is right only when nothing else reads the object: not with SNS fan-out to several
// queues, nor when another consumer of the same messages (a second service, a replay from a
// dead-letter queue) may still need them. Only a pointer that is the message body itself is
// recorded; a pointer inside an SNS notification (raw delivery off) is never deleted, since
// every subscriber of the topic received the same one. The object is deleted after SQS
// confirmed the message's deletion, never before (the Java and Python clients delete it
// first, which loses the payload if the message is then received again); a crash between
// the two, or a failed DELETE, leaves an orphan: give the bucket a lifecycle rule that
// expires objects some days after the queue's retention period.
func NewClient(sqsClient sqsconsumer.Client, s3Client ObjectDeleter, opts ...ClientOption) (*Client, error) {
	if sqsClient == nil || s3Client == nil {
		return nil, fmt.Errorf("%w: nil SQS or S3 client", ErrInvalidOption)
	}
	c := &Client{sqs: sqsClient, s3: s3Client, timeout: 10 * time.Second}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ReceiveMessage calls the wrapped client and records, in the receipt handle of each message
// whose body is a pointer, its bucket and key.
func (c *Client) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := c.sqs.ReceiveMessage(ctx, in, optFns...)
	if err != nil || out == nil {
		return out, err
	}
	for i := range out.Messages {
		m := &out.Messages[i]
		if m.Body == nil || m.ReceiptHandle == nil {
			continue
		}
		if p, ok, _ := ParsePointer(*m.Body); ok {
			h := mark(p, *m.ReceiptHandle)
			m.ReceiptHandle = &h
		}
	}
	return out, nil
}

// DeleteMessageBatch deletes the messages with the handles SQS gave, then the objects of the
// ones SQS reports deleted. It returns SQS's answer; object deletions do not change it (their
// failures go to WithDeleteErrors).
func (c *Client) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	stripped := *in
	stripped.Entries = append(stripped.Entries[:0:0], in.Entries...)
	objects := map[string]Pointer{}
	for i := range stripped.Entries {
		e := &stripped.Entries[i]
		if p, h, ok := unmark(aws.ToString(e.ReceiptHandle)); ok {
			objects[aws.ToString(e.Id)] = p
			e.ReceiptHandle = aws.String(h)
		}
	}
	out, err := c.sqs.DeleteMessageBatch(ctx, &stripped, optFns...)
	if err != nil || len(objects) == 0 {
		return out, err
	}
	var deleted []Pointer
	for _, ok := range out.Successful {
		if p, found := objects[aws.ToString(ok.Id)]; found {
			deleted = append(deleted, p)
		}
	}
	c.deleteObjects(ctx, deleted)
	return out, nil
}

// ChangeMessageVisibilityBatch calls the wrapped client with the handles SQS gave.
func (c *Client) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	stripped := *in
	stripped.Entries = append(stripped.Entries[:0:0], in.Entries...)
	for i := range stripped.Entries {
		e := &stripped.Entries[i]
		e.ReceiptHandle = aws.String(ReceiptHandle(aws.ToString(e.ReceiptHandle)))
	}
	return c.sqs.ChangeMessageVisibilityBatch(ctx, &stripped, optFns...)
}

// deleteObjects deletes ps, up to 10 at a time, whether or not ctx has ended, within the
// Client's timeout.
func (c *Client) deleteObjects(ctx context.Context, ps []Pointer) {
	if len(ps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for _, p := range ps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(p.Key)})
			if err != nil && c.onError != nil {
				c.onError(p, err)
			}
		})
	}
	wg.Wait()
}

// mark returns h with p recorded in front of it, as the Java extended client writes it.
func mark(p Pointer, h string) string {
	return bucketMarker + p.Bucket + bucketMarker + keyMarker + p.Key + keyMarker + h
}

// unmark takes apart a handle mark made; ok is false for any other handle, returned as is.
func unmark(h string) (p Pointer, original string, ok bool) {
	rest, found := strings.CutPrefix(h, bucketMarker)
	if !found {
		return Pointer{}, h, false
	}
	bucket, rest, found := strings.Cut(rest, bucketMarker)
	if !found {
		return Pointer{}, h, false
	}
	rest, found = strings.CutPrefix(rest, keyMarker)
	if !found {
		return Pointer{}, h, false
	}
	// The key marker's last occurrence ends the key: SQS's handles have no dots in them.
	i := strings.LastIndex(rest, keyMarker)
	if i < 0 {
		return Pointer{}, h, false
	}
	key, original := rest[:i], rest[i+len(keyMarker):]
	if bucket == "" || key == "" {
		return Pointer{}, h, false
	}
	return Pointer{Bucket: bucket, Key: key}, original, true
}

// ReceiptHandle returns the receipt handle SQS gave for h, a handle a Client (or the Java
// extended client) has recorded a pointer in; any other handle is returned unchanged.
func ReceiptHandle(h string) string {
	_, original, _ := unmark(h)
	return original
}

// PointerOf returns the pointer a Client recorded in receipt handle h, if any.
func PointerOf(h string) (Pointer, bool) {
	p, _, ok := unmark(h)
	return p, ok
}
