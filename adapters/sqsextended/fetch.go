package sqsextended

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqsconsumer/sqsconsumer"
)

// S3 is the S3 call Fetch makes; *s3.Client satisfies it.
type S3 interface {
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
// points at, read from S3, before calling the handler; other bodies pass unchanged. Put it
// inside sqsconsumer.Unwrap when the pointers come through SNS (the SNS extended client puts
// the pointer in the notification's Message): Chain(h, Unwrap(), Fetch(client)).
//
// It blocks for the GET (the S3 client's retryer retries transient errors). Failures fail the
// message, which stays in SQS and is retried by the consumer's backoff: a missing object
// (ErrMissingObject, naming bucket and key), a payload above the cap (ErrTooLarge) or a
// malformed pointer (ErrMalformedPointer) are marked sqsconsumer.MessageFault, so a breaker
// ignores them and a redrive policy dead-letters the message; any other S3 error is marked
// sqsconsumer.Downstream. Fetch never deletes the object.
func Fetch(client S3, opts ...FetchOption) sqsconsumer.Middleware {
	s := fetchSettings{maxSize: DefaultMaxSize}
	for _, o := range opts {
		o(&s)
	}
	return func(next sqsconsumer.Handler) sqsconsumer.Handler {
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			if m.Body == nil {
				return next(ctx, m)
			}
			p, ok, err := ParsePointer(*m.Body)
			if err != nil {
				return sqsconsumer.MessageFault(err)
			}
			if !ok {
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
			return next(ctx, m)
		}
	}
}

// declaredSize reads the size attribute a producer set, if any.
func declaredSize(m *sqsconsumer.Message) (int64, bool) {
	for _, name := range []string{SizeAttribute, LegacySizeAttribute} {
		if a, ok := m.MessageAttributes[name]; ok && a.StringValue != nil {
			if n, err := strconv.ParseInt(*a.StringValue, 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

func get(ctx context.Context, client S3, p Pointer, maxSize int64) (string, error) {
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
	b, err := io.ReadAll(io.LimitReader(out.Body, maxSize+1))
	if err != nil {
		return "", sqsconsumer.Downstream(fmt.Errorf("sqsextended: reading %s: %w", p, err))
	}
	if int64(len(b)) > maxSize {
		return "", sqsconsumer.MessageFault(fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, p, maxSize))
	}
	return string(b), nil
}
