package sqsconsumer

import (
	"context"
	"log/slog"
	"time"
)

// A Hook observes a consumer: metrics, tracing and logging plug in here without a fork. A
// hook implements any of the Hook* interfaces below, and the consumer calls the methods it
// implements, from its own goroutines: they must be safe for concurrent use and quick.
type Hook any

// HookRequest is told of every SQS API request the consumer makes, failed ones and retries
// included: op is "ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch" or
// "SendMessage" (Reroute). Requests per message is their count over the messages received.
type HookRequest interface {
	OnRequest(queueURL, op string)
}

// HookReceive is told of every ReceiveMessage call: how many messages it brought, or its error.
type HookReceive interface {
	OnReceive(queueURL string, messages int, err error)
}

// HookHandlerStart is called before a handler runs; the ctx it returns is the handler's
// (return ctx unchanged, or a child carrying e.g. a tracing span).
type HookHandlerStart interface {
	OnHandlerStart(ctx context.Context, m *Message) context.Context
}

// HookHandlerEnd is called when a handler returned, with its outcome and duration, and the
// ctx HookHandlerStart returned.
type HookHandlerEnd interface {
	OnHandlerEnd(ctx context.Context, m *Message, err error, took time.Duration)
}

// HookAck is told of deletes SQS confirmed, n at a time.
type HookAck interface {
	OnAck(queueURL string, n int)
}

// HookAckFailure is told of each delete or visibility change that failed for good.
type HookAckFailure interface {
	OnAckFailure(queueURL string, err *AckError)
}

// HookLeaseExtended is told of visibility extensions SQS confirmed, n at a time.
type HookLeaseExtended interface {
	OnLeaseExtended(queueURL string, n int)
}

// HookLeaseLost is told of a message whose lease was lost or expired (cause is ErrLeaseLost or
// ErrLeaseExpired, possibly wrapping SQS's reason), once its handler returned.
type HookLeaseLost interface {
	OnLeaseLost(m *Message, cause error)
}

// hooks holds a consumer's hooks sorted by what they observe.
type hooks struct {
	request      []HookRequest
	receive      []HookReceive
	start        []HookHandlerStart
	end          []HookHandlerEnd
	ack          []HookAck
	ackFailure   []HookAckFailure
	leaseExtends []HookLeaseExtended
	leaseLost    []HookLeaseLost
	breaker      []HookBreaker
}

func sortHooks(all []Hook) hooks {
	var h hooks
	for _, x := range all {
		if v, ok := x.(HookRequest); ok {
			h.request = append(h.request, v)
		}
		if v, ok := x.(HookReceive); ok {
			h.receive = append(h.receive, v)
		}
		if v, ok := x.(HookHandlerStart); ok {
			h.start = append(h.start, v)
		}
		if v, ok := x.(HookHandlerEnd); ok {
			h.end = append(h.end, v)
		}
		if v, ok := x.(HookAck); ok {
			h.ack = append(h.ack, v)
		}
		if v, ok := x.(HookAckFailure); ok {
			h.ackFailure = append(h.ackFailure, v)
		}
		if v, ok := x.(HookLeaseExtended); ok {
			h.leaseExtends = append(h.leaseExtends, v)
		}
		if v, ok := x.(HookLeaseLost); ok {
			h.leaseLost = append(h.leaseLost, v)
		}
		if v, ok := x.(HookBreaker); ok {
			h.breaker = append(h.breaker, v)
		}
	}
	return h
}

// logOutcome logs a handler's outcome at Debug (success) or Warn (failure, with the stack of a
// panic; identical failures rate-limited, see WithLogger), on the handler's ctx (as hooks left
// it), so a handler that logs with trace ids finds them on the consumer's line too.
func (q *queue) logOutcome(ctx context.Context, m *Message, err error, took time.Duration) {
	level, outcome := slog.LevelDebug, "succeeded"
	if err != nil {
		level, outcome = slog.LevelWarn, "failed"
	}
	if !q.s.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("queue", q.url), slog.String("message_id", m.id()), slog.String("outcome", outcome),
		slog.Int("receive_count", m.ReceiveCount()), slog.Duration("took", took)}
	if err == nil {
		q.s.logger.LogAttrs(ctx, level, "sqsconsumer: message handled", attrs...)
		return
	}
	logLimited(ctx, q.s.logger, q.repeats, level, "sqsconsumer: message handled", err, append(attrs, panicAttrs(err)...)...)
}

// requested counts one API request of op and tells the hooks.
func (q *queue) requested(op string) {
	q.stats.requests.Add(1)
	for _, h := range q.hooks.request {
		q.contain("OnRequest hook", func() { h.OnRequest(q.url, op) })
	}
}
