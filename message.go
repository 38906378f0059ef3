package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/envelope"
	"github.com/sqsconsumer/sqsconsumer/internal/lease"
)

// Handler handles one message. It returns nil when the message is done, and the consumer
// deletes it; any other error means "retry": the message is not deleted and becomes visible
// again according to the backoff policy, or as a RetryError says. A panic is recovered and
// treated as an error (a *PanicError).
//
// ctx ends when the handler must stop: when the consumer can no longer keep the message
// (context.Cause is ErrLeaseLost or ErrLeaseExpired), when the handler timeout passes
// (ErrHandlerTimeout), or when the shutdown timeout passes (ErrShutdownTimeout). Run's own ctx is not ctx's parent, so cancelling Run lets running
// handlers finish.
type Handler func(ctx context.Context, m *Message) error

// Message is one received SQS message. It embeds types.Message, so m.Body, m.MessageId,
// m.ReceiptHandle, m.Attributes and m.MessageAttributes read as in the SDK; every receive asks
// for all system and message attributes. A handler must not keep m after it returns.
type Message struct {
	types.Message

	receivedAt time.Time
	queueURL   string
	env        *envelope.Envelope // parsed on first use by Envelope
	received   string             // the body as received, a copy: whatever is done to Body or *Body

	// The consumer's bookkeeping; see lifecycle.go.
	q        *queue
	ctx      context.Context // the handler's, before hooks and timeouts
	cancel   context.CancelCauseFunc
	lease    lease.Entry
	deadline time.Time // when the visibility from the receipt lapses (without a lease)
	unit     unit      // the capacity unit, while the message and not the strategy holds it
	lane     bool      // holds one of its lane's running places (see lanes)
	// laneAtSettle: the lane's place is given back when the delete is settled, not at exit (FIFO)
	laneAtSettle bool
	queued       bool // counted in the pacer as handed to the strategy and not started
	gone         bool // has left through exit
	// claimed: the strategy's task for m has started, or m was taken back from it unstarted
	// (the breaker opening, Close): whoever claims it first lets it leave.
	claimed atomic.Bool
	waiting bool // in the queue's set of messages waiting in the strategy (breaker)
	// The breaker's: the epoch and probe of the ticket m was received with, and what its
	// outcome tells the breaker (set by handle before exit).
	epoch, probe uint64
	verdict      verdict
	failure      error
}

// ReceiveCount returns the ApproximateReceiveCount system attribute: 1 on the first delivery.
// It returns 1 when the attribute is missing or malformed.
func (m *Message) ReceiveCount() int {
	n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// QueueURL returns the URL of the queue the message came from (useful with a Group).
func (m *Message) QueueURL() string { return m.queueURL }

// ReceivedAt returns when this consumer received the message.
func (m *Message) ReceivedAt() time.Time { return m.receivedAt }

// ReceivedBody returns the body as SQS delivered it, whatever middleware (Unwrap, a payload
// fetch) has since put in m.Body.
func (m *Message) ReceivedBody() string { return m.received }

// NewMessage returns m as the Message a consumer of queueURL would pass its handler, received
// now, for code that gets messages by other means: the Lambda adapter, a test of a handler.
// Outside a consumer nothing leases, deletes or retries the message; its caller does.
func NewMessage(m types.Message, queueURL string) *Message {
	return &Message{Message: m, receivedAt: time.Now(), queueURL: queueURL, received: aws.ToString(m.Body)}
}

// GroupID returns the MessageGroupId system attribute, or "" when there is none.
func (m *Message) GroupID() string {
	return m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
}

// Envelope returns what wrapped the message's body: an SNS notification, an EventBridge event,
// or nothing (Kind Raw). It parses the body on the first call and keeps the result, so after
// Unwrap has replaced m.Body with the payload it still returns the envelope. The error wraps
// envelope.ErrMalformed.
func (m *Message) Envelope() (*envelope.Envelope, error) {
	if m.env == nil {
		body := ""
		if m.Body != nil {
			body = *m.Body
		}
		env, err := envelope.Parse(body)
		if err != nil {
			return nil, fmt.Errorf("sqsconsumer: message %s: %w", m.id(), err)
		}
		m.env = env
	}
	return m.env, nil
}

func (m *Message) id() string {
	if m.MessageId == nil {
		return ""
	}
	return *m.MessageId
}

// Causes that end a handler's ctx, read with context.Cause.
var (
	// ErrLeaseLost: SQS refused to extend the message's visibility, or it lapsed; another
	// consumer may already have it, so the consumer neither deletes nor releases it.
	ErrLeaseLost = lease.ErrLost
	// ErrLeaseExpired: the lease reached its cap (WithMaxLease); the message becomes visible
	// again when its current visibility lapses.
	ErrLeaseExpired = lease.ErrExpired
	// ErrShutdownTimeout: Run was stopped and the handler was still running when the shutdown
	// timeout passed. A handler that still returns nil gets its message deleted; otherwise the
	// message is released at once.
	ErrShutdownTimeout = errors.New("sqsconsumer: shutdown timeout")
	// ErrHandlerTimeout: the handler ran longer than WithHandlerTimeout allows. The message is
	// treated as failed.
	ErrHandlerTimeout = errors.New("sqsconsumer: handler timeout")
)

// RetryError is a handler outcome with a say over when the message is retried. Build it with
// RetryAfter or Keep and return it (wrapped or not) from a Handler; the consumer finds it with
// errors.As.
type RetryError struct {
	// Err is the underlying failure; may be nil.
	Err error
	// Delay is how long the message stays invisible before it is retried, from when the
	// handler returned, replacing the backoff policy's delay. Rounded up to whole seconds;
	// more than 12 h counts as 12 h.
	Delay time.Duration
	// Keep leaves the message's visibility as it is (the visibility timeout from the last
	// extension) instead of changing it.
	Keep bool
}

// RetryAfter returns an error telling the consumer to retry the message after d.
func RetryAfter(d time.Duration, err error) error { return &RetryError{Err: err, Delay: max(d, 0)} }

// Keep returns an error telling the consumer to leave the message's visibility as it is: it is
// retried when the visibility it has now lapses.
func Keep(err error) error { return &RetryError{Err: err, Keep: true} }

func (e *RetryError) Error() string {
	what := "retry after " + e.Delay.String()
	if e.Keep {
		what = "retry when visibility lapses"
	}
	if e.Err == nil {
		return "sqsconsumer: " + what
	}
	return "sqsconsumer: " + what + ": " + e.Err.Error()
}

// Unwrap returns the underlying failure.
func (e *RetryError) Unwrap() error { return e.Err }

// PanicError is the error a panicking handler is treated as having returned.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the handler goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("sqsconsumer: handler panic: %v", e.Value) }
