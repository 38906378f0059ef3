package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Sender is the SQS call Reroute needs. *sqs.Client and sqstest.Server satisfy it.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// MaxRerouteDelay is the longest delay SQS accepts on a sent message.
const MaxRerouteDelay = 15 * time.Minute

// RerouteError is a handler outcome that moves the message to another queue, e.g. a delay
// queue when a downstream is saturated, or a priority queue. Build it with Reroute.
type RerouteError struct {
	QueueURL string        // where the message goes
	Delay    time.Duration // before it is visible there: 0..15 min, whole seconds; none on FIFO
	Err      error         // why, for the record; may be nil
}

// Reroute returns an outcome that moves the message to queueURL, visible there after delay.
// The consumer sends a copy (body, message attributes, and on a FIFO target the group id,
// with the message id as deduplication id) and only when the send succeeded deletes the
// original, so nothing is lost: a failed send leaves the message to the backoff policy, as if
// the handler had returned err. A delay above 15 min, or any delay to a FIFO queue (which take
// no per-message delay), fails the same way, reported to the error handler.
func Reroute(queueURL string, delay time.Duration, err error) error {
	return &RerouteError{QueueURL: queueURL, Delay: delay, Err: err}
}

func (e *RerouteError) Error() string {
	s := fmt.Sprintf("sqsconsumer: reroute to %s after %v", e.QueueURL, e.Delay)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the reason.
func (e *RerouteError) Unwrap() error { return e.Err }

// ErrReroute is wrapped by the errors a reroute that could not be done is reported with.
var ErrReroute = errors.New("sqsconsumer: reroute failed")

const rerouteTimeout = 30 * time.Second

// reroute sends m's copy, as it was received, as r says. An error means the original must
// stay.
func (q *queue) reroute(m *Message, r *RerouteError) error {
	fifo := strings.HasSuffix(r.QueueURL, ".fifo")
	switch {
	case q.s.sender == nil:
		return fmt.Errorf("%w: message %s: the client cannot send; set WithSender", ErrReroute, m.id())
	case r.Delay < 0 || r.Delay > MaxRerouteDelay:
		return fmt.Errorf("%w: message %s: delay %v outside 0..15m", ErrReroute, m.id(), r.Delay)
	case fifo && r.Delay > 0:
		return fmt.Errorf("%w: message %s: FIFO queue %s takes no per-message delay", ErrReroute, m.id(), r.QueueURL)
	}
	in := &sqs.SendMessageInput{
		QueueUrl:          &r.QueueURL,
		MessageBody:       &m.received, // as received: middleware such as Unwrap may have changed Body
		MessageAttributes: m.MessageAttributes,
		DelaySeconds:      visibilitySeconds(r.Delay),
	}
	if fifo {
		group := m.GroupID()
		if group == "" {
			group = "rerouted"
		}
		in.MessageGroupId, in.MessageDeduplicationId = &group, m.MessageId
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), rerouteTimeout)
	defer cancel()
	q.requested(opSend)
	if _, err := q.s.sender.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("%w: message %s to %s: %w", ErrReroute, m.id(), r.QueueURL, err)
	}
	return nil
}
