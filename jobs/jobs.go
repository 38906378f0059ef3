// Package jobs sends and handles typed jobs over SQS: a job is a payload and a name, carried as
// the message body (encoded by a Codec, JSON by default) and the "job" message attribute.
// Producers call Enqueue; a consumer's handler is a Registry of typed handlers by job name.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/strictjson"
	"github.com/sqsconsumer/sqsconsumer/producer"
)

// NameAttribute is the message attribute that carries the job name.
const NameAttribute = "job"

// ErrUnknownJob is wrapped by the outcome of a message whose job name no handler is
// registered for: it is retried and, with a redrive policy, dead-lettered, never dropped. The
// outcome is a sqsconsumer.MessageFault, so it never opens a breaker (WithBreaker).
var ErrUnknownJob = errors.New("jobs: unknown job")

// Codec turns payloads into message bodies and back.
type Codec interface {
	Marshal(v any) (string, error)
	Unmarshal(body string, v any) error
}

// JSON is the default codec.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// Unmarshal decodes JSON into v. Fields v has no place for are ignored, and null leaves v as
// it is; StrictJSON refuses both.
func (JSON) Unmarshal(body string, v any) error { return json.Unmarshal([]byte(body), v) }

// StrictJSON is the JSON codec refusing a payload of the wrong shape: a field the payload type
// has no place for (at any depth), a null payload, or data after the JSON value is a decode
// error, so the job is retried and dead-lettered instead of handled as zero values. It refuses
// fields a newer producer added too: roll such changes out to consumers first.
type StrictJSON struct{}

// Marshal encodes v as JSON.
func (StrictJSON) Marshal(v any) (string, error) { return JSON{}.Marshal(v) }

// Unmarshal decodes JSON into v, refusing a payload of the wrong shape.
func (StrictJSON) Unmarshal(body string, v any) error { return strictjson.Unmarshal([]byte(body), v) }

// Registry dispatches messages to typed handlers by job name. It is safe for concurrent use:
// Register may be called while Handle runs (a handler registered late serves the messages that
// arrive after it).
type Registry struct {
	codec    Codec
	mu       sync.Mutex                                     // serialises Register
	handlers atomic.Pointer[map[string]sqsconsumer.Handler] // copied on write: Handle takes no lock
}

// NewRegistry returns an empty registry using codec (nil: JSON).
func NewRegistry(codec Codec) *Registry {
	if codec == nil {
		codec = JSON{}
	}
	r := &Registry{codec: codec}
	r.handlers.Store(&map[string]sqsconsumer.Handler{})
	return r
}

// Register adds h as the handler of the job called name, whose payload is a T; h receives the
// message and the decoded payload in the order sqsconsumer.JSON uses. A payload that does not
// decode is a *sqsconsumer.DecodeError (retried, then dead-lettered).
//
// Like http.ServeMux, Register panics when name already has a handler or h is nil: replacing
// the first handler would have the second one handle (and delete) the first one's jobs.
func Register[T any](r *Registry, name string, h func(ctx context.Context, m *sqsconsumer.Message, payload T) error) {
	if h == nil {
		panic(fmt.Sprintf("jobs: Register(%q): nil handler", name))
	}
	r.add(name, func(ctx context.Context, m *sqsconsumer.Message) error {
		var v T
		if err := r.codec.Unmarshal(aws.ToString(m.Body), &v); err != nil {
			return &sqsconsumer.DecodeError{MessageID: aws.ToString(m.MessageId), Err: err}
		}
		return h(ctx, m, v)
	})
}

// add publishes a copy of the handlers with name added; it panics if name is taken.
func (r *Registry) add(name string, h sqsconsumer.Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.handlers.Load()
	if _, dup := old[name]; dup {
		panic(fmt.Sprintf("jobs: Register(%q): job already registered", name))
	}
	next := maps.Clone(old)
	next[name] = h
	r.handlers.Store(&next)
}

// Handle is the registry as a sqsconsumer.Handler.
func (r *Registry) Handle(ctx context.Context, m *sqsconsumer.Message) error {
	name := ""
	if a, ok := m.MessageAttributes[NameAttribute]; ok {
		name = aws.ToString(a.StringValue)
	}
	h, ok := (*r.handlers.Load())[name]
	if !ok {
		return sqsconsumer.MessageFault(fmt.Errorf("%w %q (message %s)", ErrUnknownJob, name, aws.ToString(m.MessageId)))
	}
	return h(ctx, m)
}

// Enqueuer sends jobs through a producer.
type Enqueuer struct {
	p     *producer.Producer
	codec Codec
}

// NewEnqueuer returns an enqueuer sending through p with codec (nil: JSON).
func NewEnqueuer(p *producer.Producer, codec Codec) *Enqueuer {
	if codec == nil {
		codec = JSON{}
	}
	return &Enqueuer{p: p, codec: codec}
}

// EnqueueOption sets how one job is sent.
type EnqueueOption func(*producer.Message)

// Delay makes the job visible after d (at most 15 min; not on FIFO queues).
func Delay(d time.Duration) EnqueueOption { return func(m *producer.Message) { m.Delay = d } }

// Group sets the MessageGroupId (required on FIFO queues).
func Group(id string) EnqueueOption { return func(m *producer.Message) { m.GroupID = id } }

// Dedup sets the MessageDeduplicationId (FIFO queues without content-based deduplication).
func Dedup(id string) EnqueueOption { return func(m *producer.Message) { m.DeduplicationID = id } }

// Enqueue encodes payload and sends it as the job called name, blocking until SQS accepted it
// (returning its MessageId) or refused it (see producer.Producer.Send).
func (e *Enqueuer) Enqueue(ctx context.Context, name string, payload any, opts ...EnqueueOption) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty job name", producer.ErrInvalid)
	}
	body, err := e.codec.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("jobs: encode %s: %w", name, err)
	}
	m := producer.Message{Body: body, Attributes: map[string]types.MessageAttributeValue{
		NameAttribute: {DataType: aws.String("String"), StringValue: aws.String(name)},
	}}
	for _, o := range opts {
		o(&m)
	}
	return e.p.Send(ctx, m)
}
