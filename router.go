package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// ErrNoRoute is wrapped by the error the default fallback returns for a message no route
// claims: it is retried and, with a redrive policy, reaches the dead-letter queue; it is never
// deleted unhandled.
var ErrNoRoute = errors.New("sqsconsumer: no route")

// NoRouteError says which key found no route.
type NoRouteError struct {
	MessageID string
	Key       string
}

func (e *NoRouteError) Error() string {
	return fmt.Sprintf("sqsconsumer: no route for message %s (key %q)", e.MessageID, e.Key)
}

// Unwrap returns ErrNoRoute.
func (e *NoRouteError) Unwrap() error { return ErrNoRoute }

// RouteKey extracts the key a Router dispatches on. An error is the message's outcome.
type RouteKey func(m *Message) (string, error)

// ByAttribute routes by a message attribute's string value; for an SNS notification without
// that SQS attribute it uses the SNS message attribute of the same name.
func ByAttribute(name string) RouteKey {
	return func(m *Message) (string, error) {
		if v, ok := m.MessageAttributes[name]; ok && v.StringValue != nil {
			return *v.StringValue, nil
		}
		env, err := m.Envelope()
		if err != nil {
			return "", err
		}
		return env.Attributes[name].Value, nil
	}
}

// BySNSTopic routes SNS notifications by topic: a route may be registered under the full
// topic ARN or the topic's name (the ARN's last segment); the full ARN is tried first. A body
// that is not an SNS notification (an SNS confirmation included) has the key "".
func BySNSTopic() RouteKey {
	return func(m *Message) (string, error) {
		env, err := m.Envelope()
		if err != nil || env.Kind != envelope.SNS {
			return "", err
		}
		return env.TopicArn, nil
	}
}

// ByFunc routes by what f returns.
func ByFunc(f func(m *Message) string) RouteKey {
	return func(m *Message) (string, error) { return f(m), nil }
}

// Router dispatches each message to the handler registered for its key. Register routes
// before the consumer runs (Route is not safe for concurrent use); Handle is then safe for
// concurrent use.
type Router struct {
	key      RouteKey
	topics   bool // keys are topic ARNs: fall back to the topic's name
	routes   map[string]Handler
	fallback Handler
}

// NewRouter returns a router that dispatches on key. Messages no route claims go to the
// fallback, by default a handler that returns a *NoRouteError.
func NewRouter(key RouteKey) *Router {
	return &Router{key: key, routes: map[string]Handler{}}
}

// NewTopicRouter returns a router on BySNSTopic, whose routes may name topics by ARN or name.
func NewTopicRouter() *Router {
	r := NewRouter(BySNSTopic())
	r.topics = true
	return r
}

// Route registers h for key and returns r. Like http.ServeMux, it panics when key already has
// a route or h is nil: a second registration is a programming error, and letting it replace
// the first would send the first's messages to the wrong handler. Routes are set up before the
// consumer runs; Route must not be called concurrently with Handle or with itself.
func (r *Router) Route(key string, h Handler) *Router {
	if h == nil {
		panic(fmt.Sprintf("sqsconsumer: Router.Route(%q): nil handler", key))
	}
	if _, dup := r.routes[key]; dup {
		panic(fmt.Sprintf("sqsconsumer: Router.Route(%q): key already routed", key))
	}
	r.routes[key] = h
	return r
}

// Fallback sets the handler for messages no route claims, and returns r.
func (r *Router) Fallback(h Handler) *Router {
	r.fallback = h
	return r
}

// Handle is the router as a Handler: pass r.Handle to New.
func (r *Router) Handle(ctx context.Context, m *Message) error {
	key, err := r.key(m)
	if err != nil {
		return err
	}
	h, ok := r.routes[key]
	if !ok && r.topics {
		if i := strings.LastIndexByte(key, ':'); i >= 0 {
			h, ok = r.routes[key[i+1:]]
		}
	}
	if ok {
		return h(ctx, m)
	}
	if r.fallback != nil {
		return r.fallback(ctx, m)
	}
	return &NoRouteError{MessageID: m.id(), Key: key}
}
