package sqsextended

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/producer"
)

// ObjectStore is the S3 calls an Offloader makes; *s3.Client satisfies it.
type ObjectStore interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// DefaultThreshold is the size above which an Offloader stores a message's body in S3: the
// extended clients' default (256 KiB), counted as SQS counts a message, body and attributes.
const DefaultThreshold = 262144

// MaxAttributes is how many message attributes an offloaded message may carry of its own: SQS
// allows 10 and the size attribute takes one.
const MaxAttributes = 9

// Errors of NewOffloader and Offload; test with errors.Is.
var (
	ErrInvalidOption     = errors.New("sqsextended: invalid option")
	ErrReservedAttribute = errors.New("sqsextended: message attribute name reserved for the extended client")
	ErrTooManyAttributes = errors.New("sqsextended: too many message attributes for an offloaded message")
	ErrUpload            = errors.New("sqsextended: storing the payload in S3 failed")
)

// OffloadOption configures an Offloader.
type OffloadOption func(*Offloader) error

// WithThreshold sets the size above which a body goes to S3 (default DefaultThreshold). SQS
// counts the body's bytes and every attribute's name, type and value; so does the threshold.
// n must be 0..1 MiB. As in the Java client, a message is offloaded when its size is above n:
// with 0, every message but an empty one (which AlwaysThroughS3 offloads too).
func WithThreshold(n int) OffloadOption {
	return func(o *Offloader) error {
		if n < 0 || n > 1<<20 {
			return fmt.Errorf("%w: WithThreshold %d, want 0..1048576", ErrInvalidOption, n)
		}
		o.threshold = n
		return nil
	}
}

// AlwaysThroughS3 stores every body in S3, whatever its size (the extended clients'
// alwaysThroughS3).
func AlwaysThroughS3() OffloadOption {
	return func(o *Offloader) error {
		o.always = true
		return nil
	}
}

var keyPrefix = regexp.MustCompile(`^[a-zA-Z0-9./_-]*$`)

// WithKeyPrefix puts prefix before each object's key (a UUID), for a lifecycle rule or a
// policy scoped to the prefix. The rules are the Java client's: at most 988 characters of
// a-z A-Z 0-9 . / _ -, not starting with . or /, no "..".
func WithKeyPrefix(prefix string) OffloadOption {
	return func(o *Offloader) error {
		prefix = strings.TrimSpace(prefix)
		if len(prefix) > 1024-36 || !keyPrefix.MatchString(prefix) || strings.HasPrefix(prefix, ".") ||
			strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "..") {
			return fmt.Errorf("%w: WithKeyPrefix %q: at most 988 of a-z A-Z 0-9 . / _ -, not starting with . or /, no ..", ErrInvalidOption, prefix)
		}
		o.prefix = prefix
		return nil
	}
}

// WithLegacySizeAttribute names the size attribute SQSLargePayloadSize instead of
// ExtendedPayloadSize. Every extended client reads both except Powertools' SNS processor and
// the Python client (which read only ExtendedPayloadSize unless told otherwise); use this only
// for readers older than the 2020 rename.
func WithLegacySizeAttribute() OffloadOption {
	return func(o *Offloader) error {
		o.sizeAttribute = LegacySizeAttribute
		return nil
	}
}

// WithPutObject lets f adjust each upload before it is made: server-side encryption, a KMS
// key, a storage class, tags. f must not change Bucket, Key or Body.
func WithPutObject(f func(*s3.PutObjectInput)) OffloadOption {
	return func(o *Offloader) error {
		if f == nil {
			return fmt.Errorf("%w: WithPutObject(nil)", ErrInvalidOption)
		}
		o.put = f
		return nil
	}
}

// WithUnsentErrors has f told when an object whose message was not sent could not be deleted
// (it is then an orphan; see the README on lifecycle rules). By default such errors are
// dropped.
func WithUnsentErrors(f func(Pointer, error)) OffloadOption {
	return func(o *Offloader) error {
		if f == nil {
			return fmt.Errorf("%w: WithUnsentErrors(nil)", ErrInvalidOption)
		}
		o.unsentErr = f
		return nil
	}
}

// Offloader stores large message bodies in S3 and sends a pointer in their place, in the
// format of the AWS extended clients (Java, Python, .NET, Node and Powertools read it): the
// body becomes ["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":...,
// "s3Key":...}] and the attribute ExtendedPayloadSize (Number) holds the payload's size in
// bytes. It is a producer.Offloader: pass it to producer.WithOffload. It is safe for
// concurrent use. Create it with NewOffloader.
type Offloader struct {
	client        ObjectStore
	bucket        string
	threshold     int
	always        bool
	prefix        string
	sizeAttribute string
	put           func(*s3.PutObjectInput)
	unsentErr     func(Pointer, error)
}

var _ producer.Offloader = (*Offloader)(nil)

// NewOffloader returns an Offloader storing bodies in bucket through client. It validates its
// arguments (errors wrap ErrInvalidOption) and makes no call: the bucket must exist and the
// credentials allow s3:PutObject (and s3:DeleteObject, for messages not sent after all).
func NewOffloader(client ObjectStore, bucket string, opts ...OffloadOption) (*Offloader, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil S3 client", ErrInvalidOption)
	}
	if strings.TrimSpace(bucket) == "" {
		return nil, fmt.Errorf("%w: empty bucket name", ErrInvalidOption)
	}
	o := &Offloader{client: client, bucket: bucket, threshold: DefaultThreshold, sizeAttribute: SizeAttribute}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Offload returns m unchanged when it is within the threshold, and otherwise stores its body
// in S3 under a new key and returns m with the pointer as its body and the size attribute
// added. It blocks for the upload (the S3 client's retryer retries transient errors). It
// refuses a message carrying a reserved attribute (ErrReservedAttribute) or, when offloading,
// more than MaxAttributes attributes (ErrTooManyAttributes); a failed upload wraps ErrUpload.
// m itself is not modified.
func (o *Offloader) Offload(ctx context.Context, m producer.Message) (producer.Message, error) {
	for _, name := range sizeAttributes {
		if _, ok := m.Attributes[name]; ok {
			return m, fmt.Errorf("%w: %s", ErrReservedAttribute, name)
		}
	}
	if !o.always && producer.Size(m) <= o.threshold {
		return m, nil
	}
	if len(m.Attributes) > MaxAttributes {
		return m, fmt.Errorf("%w: %d, at most %d", ErrTooManyAttributes, len(m.Attributes), MaxAttributes)
	}
	p := Pointer{Bucket: o.bucket, Key: o.prefix + newKey()}
	in := &s3.PutObjectInput{}
	own := func() { // the Offloader's fields, set again after WithPutObject's function
		in.Bucket, in.Key = aws.String(p.Bucket), aws.String(p.Key)
		in.Body, in.ContentLength = strings.NewReader(m.Body), aws.Int64(int64(len(m.Body)))
	}
	own()
	if o.put != nil {
		o.put(in)
		own()
	}
	if _, err := o.client.PutObject(ctx, in); err != nil {
		return m, fmt.Errorf("%w: PUT %s: %w", ErrUpload, p, err)
	}
	attrs := make(map[string]sqstypes.MessageAttributeValue, len(m.Attributes)+1)
	maps.Copy(attrs, m.Attributes)
	attrs[o.sizeAttribute] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(len(m.Body)))}
	m.Body, m.Attributes = p.Body(), attrs
	return m, nil
}

// Unsent deletes the object of a message Offload returned that was not sent after all; the
// producer calls it. Only pointers into the Offloader's bucket are touched. It blocks for the
// DELETE; a failure goes to WithUnsentErrors's function and leaves an orphan.
func (o *Offloader) Unsent(ctx context.Context, m producer.Message) {
	// Only what Offload made: a pointer into this bucket, under the prefix, with the size
	// attribute Offload adds (and refuses on what it is given). A message that was a pointer
	// already, sent on as it came, is not this Offloader's to clean up.
	p, ok, _ := ParsePointer(m.Body)
	if _, sized := m.Attributes[o.sizeAttribute]; !ok || !sized || p.Bucket != o.bucket || !strings.HasPrefix(p.Key, o.prefix) {
		return
	}
	if _, err := o.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(p.Key)}); err != nil && o.unsentErr != nil {
		o.unsentErr(p, err)
	}
}

// newKey returns a random (version 4) UUID, the key the extended clients give objects.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
