package sqsconsumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sqsconsumer/sqsconsumer/envelope"
	"github.com/sqsconsumer/sqsconsumer/internal/strictjson"
)

// Middleware wraps a Handler with behaviour of its own.
type Middleware func(Handler) Handler

// Chain returns h wrapped in mw; the first middleware is the outermost, so
// Chain(h, Logging(l), Unwrap()) logs, then unwraps, then calls h.
func Chain(h Handler, mw ...Middleware) Handler {
	for _, m := range slices.Backward(mw) {
		h = m(h)
	}
	return h
}

// Recover turns a panic in the handler into a returned *PanicError. The consumer already does
// this for the handler it is given; Recover is for handlers called elsewhere, and to let the
// middleware outside it (logging, metrics) see the panic as an error.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next(ctx, m)
		}
	}
}

// Timeout bounds the handler like WithHandlerTimeout, for one route or handler: its ctx ends
// after d with cause ErrHandlerTimeout, and an outcome reached after that is a failure.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			ctx, cancel := context.WithTimeoutCause(ctx, d, ErrHandlerTimeout)
			defer cancel()
			err := next(ctx, m)
			if context.Cause(ctx) == ErrHandlerTimeout && !errors.Is(err, ErrHandlerTimeout) {
				if err == nil {
					return ErrHandlerTimeout
				}
				return fmt.Errorf("%w: %w", ErrHandlerTimeout, err)
			}
			return err
		}
	}
}

// Logging logs each success with l at level Debug, with the message id, receive count and
// duration as attributes, through the handler's ctx (so a ctx-aware slog.Handler can add trace
// ids). It does not log failures: the error goes back to the consumer, which logs every failed
// handler itself at level Warn (see WithLogger) and decides what becomes of the message, so a
// failure is logged once, where it is handled. Outside a consumer, whoever calls the handler
// logs the error it returns.
func Logging(l *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			start := time.Now()
			err := next(ctx, m)
			if err == nil && l.Enabled(ctx, slog.LevelDebug) {
				l.LogAttrs(ctx, slog.LevelDebug, "sqsconsumer: handled",
					slog.String("message_id", m.id()),
					slog.Int("receive_count", m.ReceiveCount()),
					slog.Duration("duration", time.Since(start)))
			}
			return err
		}
	}
}

// DecodeError is the outcome of a body that JSON could not decode: the message's own fault,
// not the handler's. It is retried like any error (after the backoff policy's delay, so it
// does not loop hot), so with a redrive policy a malformed message ends in the dead-letter
// queue; it is never deleted unhandled. A handler may return one too, for a payload that
// decoded but is not valid (a required field missing).
type DecodeError struct {
	MessageID string
	Err       error
}

func (e *DecodeError) Error() string {
	return "sqsconsumer: message " + e.MessageID + ": malformed body: " + e.Err.Error()
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// JSONOption configures JSON.
type JSONOption func(*jsonSettings)

type jsonSettings struct {
	strict bool
}

// StrictJSON makes JSON refuse a payload of the wrong shape, which encoding/json would decode
// into zero values and let the handler act on: a field T has no place for (at any depth) and
// a null payload are then *DecodeErrors too. It refuses fields a newer producer added as well,
// so roll such changes out to consumers first. Missing fields cannot be told from zero values
// by encoding/json; check them in the handler and return a *DecodeError.
func StrictJSON() JSONOption {
	return func(s *jsonSettings) { s.strict = true }
}

// JSON returns a Handler that decodes the message's payload into a T and calls f with it.
// The payload is the body, or what an SNS or EventBridge envelope wraps when Unwrap runs
// before it. A payload that does not decode (bad syntax, a value of the wrong type, data after
// the JSON value) is a *DecodeError and f is not called. Unknown fields are ignored and null
// decodes to T's zero value unless StrictJSON is given.
func JSON[T any](f func(ctx context.Context, m *Message, v T) error, opts ...JSONOption) Handler {
	var s jsonSettings
	for _, o := range opts {
		o(&s)
	}
	unmarshal := json.Unmarshal
	if s.strict {
		unmarshal = strictjson.Unmarshal
	}
	return func(ctx context.Context, m *Message) error {
		var v T
		if m.Body == nil {
			return &DecodeError{MessageID: m.id(), Err: errors.New("no body")}
		}
		if err := unmarshal([]byte(*m.Body), &v); err != nil {
			return &DecodeError{MessageID: m.id(), Err: err}
		}
		return f(ctx, m, v)
	}
}

// ErrTopicNotAllowed is returned (wrapped) by Unwrap for an SNS notification from a topic
// outside AllowTopics: a body that merely looks like a notification from elsewhere is refused.
var ErrTopicNotAllowed = errors.New("sqsconsumer: SNS topic not allowed")

// ErrSNSConfirmation is returned (wrapped) by Unwrap for an SNS SubscriptionConfirmation or
// UnsubscribeConfirmation when OnConfirmation is not set, whatever the other options (AllowRaw
// included): they are SNS's messages about a subscription, never a payload for the handler.
var ErrSNSConfirmation = errors.New("sqsconsumer: SNS confirmation not handled")

// UnwrapOption configures Unwrap.
type UnwrapOption func(*unwrapSettings)

type unwrapSettings struct {
	topics         []string
	verifier       *envelope.Verifier
	allowRaw       bool
	onConfirmation func(ctx context.Context, m *Message, env *envelope.Envelope) error
}

// AllowTopics accepts SNS notifications only from these topic ARNs; any other is an error
// wrapping ErrTopicNotAllowed, and so is a body that is not an SNS notification at all (a raw
// body or an EventBridge event: anyone allowed to SendMessage to the queue could otherwise
// bypass the check), unless AllowRaw is given too. Without it every topic is accepted: nothing
// in an SQS message proves SNS sent it, so set it (or VerifySignatures) whenever the topic
// matters.
func AllowTopics(arns ...string) UnwrapOption {
	return func(s *unwrapSettings) { s.topics = append(s.topics, arns...) }
}

// VerifySignatures checks each SNS notification's signature with v (see envelope.Verifier);
// a notification that does not verify is an error, and so is a body that is not an SNS
// notification, unless AllowRaw is given too.
func VerifySignatures(v *envelope.Verifier) UnwrapOption {
	return func(s *unwrapSettings) { s.verifier = v }
}

// OnConfirmation has Unwrap call f instead of the handler for an SNS SubscriptionConfirmation or
// UnsubscribeConfirmation (env.Kind is envelope.SNSConfirmation, env.Type says which) from a
// topic AllowTopics accepts, once VerifySignatures' verifier has verified it when that option is
// given; f's error is the message's outcome (nil deletes it). SNS sends a SubscriptionConfirmation
// into the queue when a topic of another account subscribes it. Without VerifySignatures f also
// sees confirmations anyone allowed to send to the queue could have written: to confirm, call
// envelope.Verifier.Confirm, which verifies before it requests anything. Without OnConfirmation
// a confirmation is an error wrapping ErrSNSConfirmation.
func OnConfirmation(f func(ctx context.Context, m *Message, env *envelope.Envelope) error) UnwrapOption {
	return func(s *unwrapSettings) { s.onConfirmation = f }
}

// AllowRaw lets bodies that are not SNS notifications (raw bodies, EventBridge events) through
// to the handler even with AllowTopics or VerifySignatures, which otherwise refuse them. Use it
// when the queue also receives messages sent to it directly, on purpose.
func AllowRaw() UnwrapOption {
	return func(s *unwrapSettings) { s.allowRaw = true }
}

// checkSNS applies AllowTopics and VerifySignatures to an SNS notification or confirmation.
func (s *unwrapSettings) checkSNS(ctx context.Context, env *envelope.Envelope) error {
	if len(s.topics) > 0 && !slices.Contains(s.topics, env.TopicArn) {
		return fmt.Errorf("%w: %s", ErrTopicNotAllowed, env.TopicArn)
	}
	if s.verifier != nil {
		return s.verifier.Verify(ctx, env)
	}
	return nil
}

// Unwrap recognises SNS notifications and EventBridge events in the body: the handler it
// wraps sees m.Body set to the payload inside, and m.Envelope() returns the envelope's fields
// (topic, subject, attributes, source, ...). A raw body passes through unchanged, unless
// AllowTopics or VerifySignatures guard the handler (see AllowRaw). An SNS subscription or
// unsubscribe confirmation never reaches the handler (see OnConfirmation). A malformed envelope,
// a topic not allowed, a body that is not a notification behind a guard, an unhandled
// confirmation, or a signature that does not verify is an error (retried, and with a redrive
// policy dead-lettered), never a silent delete.
func Unwrap(opts ...UnwrapOption) Middleware {
	var s unwrapSettings
	for _, o := range opts {
		o(&s)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			env, err := m.Envelope()
			if err != nil {
				return err
			}
			if env.Kind == envelope.SNSConfirmation {
				if s.onConfirmation == nil {
					return fmt.Errorf("%w: message %s is an SNS %s from %s; OnConfirmation handles them", ErrSNSConfirmation, m.id(), env.Type, env.TopicArn)
				}
				if err := s.checkSNS(ctx, env); err != nil {
					return err
				}
				return s.onConfirmation(ctx, m, env)
			}
			guarded := len(s.topics) > 0 || s.verifier != nil
			if env.Kind != envelope.SNS && guarded && !s.allowRaw {
				return fmt.Errorf("%w: message %s is not an SNS notification (%s); AllowRaw lets such bodies through", ErrTopicNotAllowed, m.id(), env.Kind)
			}
			if env.Kind == envelope.SNS {
				if err := s.checkSNS(ctx, env); err != nil {
					return err
				}
			}
			if env.Kind != envelope.Raw {
				payload := env.Payload
				m.Body = &payload
			}
			return next(ctx, m)
		}
	}
}
