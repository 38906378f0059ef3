package sqsextended

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// ObjectGetter is the S3 call Fetch makes; *s3.Client satisfies it.
type ObjectGetter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// DefaultMaxSize is the largest payload Fetch reads unless WithMaxSize says otherwise.
const DefaultMaxSize = 64 << 20

// ErrTooLarge is wrapped by Fetch's error for a payload above the size cap.
var ErrTooLarge = errors.New("sqsextended: payload above the size cap")

// ErrMissingObject is wrapped by Fetch's error when the pointer's object does not exist.
var ErrMissingObject = errors.New("sqsextended: S3 object missing")

// FetchOption configures Fetch.
type FetchOption func(*fetchSettings)

type fetchSettings struct{ maxSize int64 }

// WithMaxSize caps the payload Fetch reads (default DefaultMaxSize); a larger one fails the
// message with an error wrapping ErrTooLarge. n <= 0 keeps the default.
func WithMaxSize(n int64) FetchOption {
	return func(s *fetchSettings) {
		if n > 0 {
			s.maxSize = n
		}
	}
}

// Fetch returns a middleware that replaces a pointer body (ParsePointer) with the payload it
// points at, read from S3, before calling the handler; other bodies pass unchanged. The
// handler sees the message as it was sent: the payload as the body, byte for byte, and the
// size attribute (ExtendedPayloadSize or SQSLargePayloadSize) removed. Put it inside
// sqsconsumer.Unwrap when the pointers come through SNS (the SNS extended client puts the
// pointer in the notification's Message): Chain(h, Unwrap(), Fetch(client)); the other order
// fails such messages with ErrUnwrapFirst rather than hand the handler a pointer.
//
// It blocks for the GET (the S3 client's retryer retries transient errors) and reads at most
// the cap, sized from the object's length. Failures fail the message, which stays in SQS and
// is retried by the consumer's backoff: a missing object (ErrMissingObject, naming bucket and
// key), a payload above the cap (ErrTooLarge) or a malformed pointer (ErrMalformedPointer)
// are marked sqsconsumer.MessageFault, so a breaker ignores them and a redrive policy
// dead-letters the message; any other S3 error is marked sqsconsumer.Downstream, so with
// sqsconsumer.WithBreaker an S3 outage pauses the consumer instead of dead-lettering
// messages. Fetch never deletes the object; a Client's Fetch has it deleted after the
// message is.
func Fetch(client ObjectGetter, opts ...FetchOption) sqsconsumer.Middleware {
	s := fetchSettings{maxSize: DefaultMaxSize}
	for _, o := range opts {
		o(&s)
	}
	return func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			if m.Body == nil {
				return next(ctx, m)
			}
			p, ok, err := pointerIn(*m.Body, m.MessageAttributes)
			if err != nil {
				return sqsconsumer.MessageFault(err)
			}
			if !ok {
				if err := pointerInEnvelope(m); err != nil {
					return err
				}
				return next(ctx, m)
			}
			if size, ok := declaredSize(m); ok && size > s.maxSize {
				return sqsconsumer.MessageFault(fmt.Errorf("%w: %s is %d bytes, cap %d", ErrTooLarge, p, size, s.maxSize))
			}
			payload, err := get(ctx, client, p, s.maxSize)
			if err != nil {
				return err
			}
			m.Body = &payload
			// The handler sees the message as it was sent (the Java client drops the size
			// attribute too), on a copy: what is outside Fetch (Reroute sending the message on
			// as received, hooks) keeps the attributes SQS delivered.
			if hasSizeAttribute(m.MessageAttributes) {
				received := m.MessageAttributes
				m.MessageAttributes = maps.Clone(received)
				for _, name := range sizeAttributes {
					delete(m.MessageAttributes, name)
				}
				defer func() { m.MessageAttributes = received }()
			}
			return next(ctx, m)
		}
	}
}

// ErrUnwrapFirst is wrapped by Fetch's error for an SNS notification carrying a pointer that
// reached Fetch still wrapped: sqsconsumer.Unwrap must run first (be outside Fetch).
var ErrUnwrapFirst = errors.New("sqsextended: an SNS notification with an S3 pointer reached Fetch before Unwrap")

// pointerInEnvelope reports an SNS notification whose payload is a pointer: Fetch was placed
// outside Unwrap (or Unwrap is missing), and the handler would be given the pointer.
func pointerInEnvelope(m *sqsconsumer.Message) error {
	if !strings.HasPrefix(strings.TrimSpace(*m.Body), "{") || !strings.Contains(*m.Body, "S3Pointer") {
		return nil
	}
	env, err := m.Envelope()
	if err != nil || env.Kind != envelope.SNS {
		return nil
	}
	if p, ok, _ := ParsePointer(env.Payload); ok {
		return fmt.Errorf("%w: message %s points at %s; chain Unwrap before Fetch: Chain(h, Unwrap(), Fetch(s3))", ErrUnwrapFirst, aws.ToString(m.MessageId), p)
	}
	return nil
}

// declaredSize reads the size attribute a producer set on the message, if any. (The SNS
// extended client sets it on the notification instead; the object's length then serves.)
func declaredSize(m *sqsconsumer.Message) (int64, bool) {
	for _, name := range sizeAttributes {
		if a, ok := m.MessageAttributes[name]; ok && a.StringValue != nil {
			if n, err := strconv.ParseInt(*a.StringValue, 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

func get(ctx context.Context, client ObjectGetter, p Pointer, maxSize int64) (string, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.Bucket, Key: &p.Key})
	if err != nil {
		var nsk *types.NoSuchKey
		var nf *types.NotFound
		var nsb *types.NoSuchBucket
		if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nsb) {
			return "", sqsconsumer.MessageFault(fmt.Errorf("%w: %s: %v", ErrMissingObject, p, err))
		}
		return "", sqsconsumer.Downstream(fmt.Errorf("sqsextended: GET %s: %w", p, err))
	}
	defer out.Body.Close()
	var b strings.Builder
	if n := aws.ToInt64(out.ContentLength); n > maxSize {
		return "", sqsconsumer.MessageFault(fmt.Errorf("%w: %s is %d bytes, cap %d", ErrTooLarge, p, n, maxSize))
	} else if n > 0 {
		b.Grow(int(n))
	}
	if _, err := io.Copy(&b, io.LimitReader(out.Body, maxSize+1)); err != nil {
		return "", sqsconsumer.Downstream(fmt.Errorf("sqsextended: reading %s: %w", p, err))
	}
	if int64(b.Len()) > maxSize {
		return "", sqsconsumer.MessageFault(fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, p, maxSize))
	}
	return b.String(), nil
}
