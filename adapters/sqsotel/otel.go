// Package sqsotel traces and measures an sqsconsumer consumer with OpenTelemetry: a consumer span
// per message, linked to the producer's span through the traceparent message attribute (W3C)
// or the AWSTraceHeader system attribute (X-Ray), and handler metrics through the OTel metric
// API. It is its own module, so the library never depends on OpenTelemetry.
//
//	h, err := sqsotel.New(otel.GetTracerProvider(), otel.GetMeterProvider())
//	c, err := sqsconsumer.New(client, url, handler, sqsconsumer.WithHooks(h))
package sqsotel

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sqsconsumer/sqsconsumer"
)

const scope = "github.com/sqsconsumer/sqsconsumer/adapters/sqsotel"

// TraceparentAttribute is the message attribute Inject writes and the hook reads.
const TraceparentAttribute = "traceparent"

// maxAttributes is SQS's limit on message attributes.
const maxAttributes = 10

// Hook is an sqsconsumer hook emitting a span per handled message and handler metrics.
type Hook struct {
	tracer   trace.Tracer
	handled  metric.Int64Counter
	duration metric.Float64Histogram
}

var (
	_ sqsconsumer.HookHandlerStart = (*Hook)(nil)
	_ sqsconsumer.HookHandlerEnd   = (*Hook)(nil)
)

// New returns a hook using tp for spans and mp for metrics
// (sqsconsumer.handled{outcome} and sqsconsumer.handler.duration in seconds).
func New(tp trace.TracerProvider, mp metric.MeterProvider) (*Hook, error) {
	meter := mp.Meter(scope)
	handled, err := meter.Int64Counter("sqsconsumer.handled", metric.WithDescription("Handler calls by outcome."))
	if err != nil {
		return nil, err
	}
	duration, err := meter.Float64Histogram("sqsconsumer.handler.duration", metric.WithUnit("s"), metric.WithDescription("Handler latency."))
	if err != nil {
		return nil, err
	}
	return &Hook{tracer: tp.Tracer(scope), handled: handled, duration: duration}, nil
}

// OnHandlerStart implements sqsconsumer.HookHandlerStart: it starts the message's consumer
// span, linked to the producer's span when the message carries one.
func (h *Hook) OnHandlerStart(ctx context.Context, m *sqsconsumer.Message) context.Context {
	queue := m.QueueURL()
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "aws_sqs"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", queue[strings.LastIndexByte(queue, '/')+1:]),
			attribute.String("messaging.message.id", aws.ToString(m.MessageId)),
			attribute.Int("sqsconsumer.receive_count", m.ReceiveCount()),
		),
	}
	if producer := ProducerContext(m); producer.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: producer}))
	}
	ctx, _ = h.tracer.Start(ctx, "process "+queue[strings.LastIndexByte(queue, '/')+1:], opts...)
	return ctx
}

// OnHandlerEnd implements sqsconsumer.HookHandlerEnd.
func (h *Hook) OnHandlerEnd(ctx context.Context, m *sqsconsumer.Message, err error, took time.Duration) {
	span := trace.SpanFromContext(ctx)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	attrs := metric.WithAttributes(attribute.String("outcome", outcome))
	h.handled.Add(ctx, 1, attrs)
	h.duration.Record(ctx, took.Seconds(), attrs)
}

// attributeCarrier reads and writes W3C trace context in SQS message attributes.
type attributeCarrier map[string]types.MessageAttributeValue

func (c attributeCarrier) Get(key string) string { return aws.ToString(c[key].StringValue) }
func (c attributeCarrier) Set(key, value string) {
	c[key] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(value)}
}
func (c attributeCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject adds ctx's span as a traceparent attribute to attrs, for a producer, unless attrs
// already holds SQS's limit of 10 attributes (then it adds nothing and reports false: the
// consumer can still link through AWSTraceHeader when X-Ray is on).
func Inject(ctx context.Context, attrs map[string]types.MessageAttributeValue) bool {
	if _, ok := attrs[TraceparentAttribute]; !ok && len(attrs) >= maxAttributes {
		return false
	}
	propagation.TraceContext{}.Inject(ctx, attributeCarrier(attrs))
	_, ok := attrs[TraceparentAttribute]
	return ok
}

// ProducerContext returns the producer's span context a message carries: its traceparent
// message attribute, else its AWSTraceHeader system attribute (X-Ray), else an invalid one.
func ProducerContext(m *sqsconsumer.Message) trace.SpanContext {
	if _, ok := m.MessageAttributes[TraceparentAttribute]; ok {
		ctx := propagation.TraceContext{}.Extract(context.Background(), attributeCarrier(m.MessageAttributes))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			return sc
		}
	}
	return parseXRay(m.Attributes["AWSTraceHeader"])
}

// parseXRay reads "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".
func parseXRay(h string) trace.SpanContext {
	var cfg trace.SpanContextConfig
	for _, part := range strings.Split(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Root":
			fields := strings.Split(v, "-")
			if len(fields) != 3 || fields[0] != "1" || len(fields[1]) != 8 || len(fields[2]) != 24 {
				return trace.SpanContext{}
			}
			id, err := trace.TraceIDFromHex(fields[1] + fields[2])
			if err != nil {
				return trace.SpanContext{}
			}
			cfg.TraceID = id
		case "Parent":
			id, err := trace.SpanIDFromHex(v)
			if err != nil {
				return trace.SpanContext{}
			}
			cfg.SpanID = id
		case "Sampled":
			if v == "1" {
				cfg.TraceFlags = trace.FlagsSampled
			}
		}
	}
	cfg.Remote = true
	return trace.NewSpanContext(cfg)
}
