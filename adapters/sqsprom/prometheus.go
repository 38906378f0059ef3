// Package sqsprom exports an sqsconsumer consumer's activity as Prometheus metrics. It is
// its own module, so the library never depends on client_golang. Its name is not client_golang's
// (prometheus), so both import without a rename:
//
//	m := sqsprom.New(prometheus.DefaultRegisterer)
//	c, err := sqsconsumer.New(client, url, handler, sqsconsumer.WithHooks(m))
package sqsprom

import (
	"context"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/sqsconsumer/sqsconsumer"
)

// Metrics is an sqsconsumer hook that records:
//
//	sqsconsumer_received_total{queue}                 messages received
//	sqsconsumer_receive_errors_total{queue}           failed receives
//	sqsconsumer_handled_total{queue,outcome}          handler calls by outcome (ok, error)
//	sqsconsumer_handler_seconds{queue}                handler latency histogram
//	sqsconsumer_in_flight{queue}                      handlers running now
//	sqsconsumer_acked_total{queue}                    deletes SQS confirmed
//	sqsconsumer_ack_failures_total{queue,op}          deletes and visibility changes failed for good
//	sqsconsumer_lease_extended_total{queue}           visibility extensions
//	sqsconsumer_lease_lost_total{queue}               leases lost or expired
//	sqsconsumer_requests_total{queue,op}              API requests by operation (ReceiveMessage, ...)
//	sqsconsumer_breaker_state{queue}                  the breaker's state: 0 closed, 1 half-open, 2 open (WithBreaker)
//	sqsconsumer_breaker_opened_total{queue}           times the breaker opened
//
// Requests per message is sqsconsumer_requests_total / sqsconsumer_received_total.
type Metrics struct {
	received, receiveErrors, acked, leaseExtended, leaseLost *prom.CounterVec
	handled, ackFailures, requests                           *prom.CounterVec
	latency                                                  *prom.HistogramVec
	inFlight, breakerState                                   *prom.GaugeVec
	breakerOpened                                            *prom.CounterVec
}

var (
	_ sqsconsumer.HookRequest       = (*Metrics)(nil)
	_ sqsconsumer.HookReceive       = (*Metrics)(nil)
	_ sqsconsumer.HookHandlerStart  = (*Metrics)(nil)
	_ sqsconsumer.HookHandlerEnd    = (*Metrics)(nil)
	_ sqsconsumer.HookAck           = (*Metrics)(nil)
	_ sqsconsumer.HookAckFailure    = (*Metrics)(nil)
	_ sqsconsumer.HookLeaseExtended = (*Metrics)(nil)
	_ sqsconsumer.HookLeaseLost     = (*Metrics)(nil)
	_ sqsconsumer.HookBreaker       = (*Metrics)(nil)
)

// New creates the metrics and registers them with reg. It panics if they are registered
// already, as client_golang's MustRegister does: create one Metrics per registry and pass it
// to every consumer (the queue label tells them apart).
func New(reg prom.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prom.CounterVec {
		return prom.NewCounterVec(prom.CounterOpts{Namespace: "sqsconsumer", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		received:      counter("received_total", "Messages received.", "queue"),
		receiveErrors: counter("receive_errors_total", "ReceiveMessage calls that failed.", "queue"),
		handled:       counter("handled_total", "Handler calls by outcome.", "queue", "outcome"),
		acked:         counter("acked_total", "Deletes SQS confirmed.", "queue"),
		ackFailures:   counter("ack_failures_total", "Deletes and visibility changes that failed for good.", "queue", "op"),
		leaseExtended: counter("lease_extended_total", "Visibility extensions SQS confirmed.", "queue"),
		leaseLost:     counter("lease_lost_total", "Leases lost or expired.", "queue"),
		requests:      counter("requests_total", "SQS API requests by operation.", "queue", "op"),
		latency: prom.NewHistogramVec(prom.HistogramOpts{Namespace: "sqsconsumer", Name: "handler_seconds",
			Help: "Handler latency.", Buckets: prom.ExponentialBuckets(0.001, 2, 16)}, []string{"queue"}),
		inFlight: prom.NewGaugeVec(prom.GaugeOpts{Namespace: "sqsconsumer", Name: "in_flight", Help: "Handlers running."}, []string{"queue"}),
		breakerState: prom.NewGaugeVec(prom.GaugeOpts{Namespace: "sqsconsumer", Name: "breaker_state",
			Help: "The queue's breaker: 0 closed, 1 half-open, 2 open."}, []string{"queue"}),
		breakerOpened: counter("breaker_opened_total", "Times the queue's breaker opened.", "queue"),
	}
	reg.MustRegister(m.received, m.receiveErrors, m.handled, m.acked, m.ackFailures, m.leaseExtended, m.leaseLost, m.requests, m.latency, m.inFlight,
		m.breakerState, m.breakerOpened)
	return m
}

func queueOf(m *sqsconsumer.Message) string { return m.QueueURL() }

// OnRequest implements sqsconsumer.HookRequest.
func (m *Metrics) OnRequest(queue, op string) { m.requests.WithLabelValues(queue, op).Inc() }

// OnReceive implements sqsconsumer.HookReceive.
func (m *Metrics) OnReceive(queue string, n int, err error) {
	if err != nil {
		m.receiveErrors.WithLabelValues(queue).Inc()
		return
	}
	m.received.WithLabelValues(queue).Add(float64(n))
}

// OnHandlerStart implements sqsconsumer.HookHandlerStart.
func (m *Metrics) OnHandlerStart(ctx context.Context, msg *sqsconsumer.Message) context.Context {
	m.inFlight.WithLabelValues(queueOf(msg)).Inc()
	return ctx
}

// OnHandlerEnd implements sqsconsumer.HookHandlerEnd.
func (m *Metrics) OnHandlerEnd(_ context.Context, msg *sqsconsumer.Message, err error, took time.Duration) {
	q := queueOf(msg)
	m.inFlight.WithLabelValues(q).Dec()
	m.latency.WithLabelValues(q).Observe(took.Seconds())
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.handled.WithLabelValues(q, outcome).Inc()
}

// OnAck implements sqsconsumer.HookAck.
func (m *Metrics) OnAck(queue string, n int) {
	m.acked.WithLabelValues(queue).Add(float64(n))
}

// OnAckFailure implements sqsconsumer.HookAckFailure.
func (m *Metrics) OnAckFailure(queue string, e *sqsconsumer.AckError) {
	m.ackFailures.WithLabelValues(queue, e.Op).Inc()
}

// OnLeaseExtended implements sqsconsumer.HookLeaseExtended.
func (m *Metrics) OnLeaseExtended(queue string, n int) {
	m.leaseExtended.WithLabelValues(queue).Add(float64(n))
}

// OnLeaseLost implements sqsconsumer.HookLeaseLost.
func (m *Metrics) OnLeaseLost(msg *sqsconsumer.Message, _ error) {
	m.leaseLost.WithLabelValues(queueOf(msg)).Inc()
}

// OnBreaker implements sqsconsumer.HookBreaker.
func (m *Metrics) OnBreaker(c sqsconsumer.BreakerChange) {
	m.breakerState.WithLabelValues(c.QueueURL).Set(float64(c.To))
	if c.To == sqsconsumer.BreakerOpen {
		m.breakerOpened.WithLabelValues(c.QueueURL).Inc()
	}
}
