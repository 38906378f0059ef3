package sqsotel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsotel"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestSpansLinkToProducerAndMetrics(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	hook, err := sqsotel.New(tp, mp)
	if err != nil {
		t.Fatal(err)
	}

	s := sqstest.New()
	url := s.MustCreateQueue("orders", nil)
	// A producer span, propagated in a traceparent attribute.
	producerCtx, producerSpan := tp.Tracer("producer").Start(context.Background(), "send")
	attrs := map[string]types.MessageAttributeValue{}
	if !sqsotel.Inject(producerCtx, attrs) {
		t.Fatal("Inject added nothing")
	}
	producerSpan.End()
	s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("traced"), MessageAttributes: attrs})
	s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("fails")})

	done := make(chan struct{}, 2)
	c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		defer func() { done <- struct{}{} }()
		if !trace.SpanFromContext(ctx).SpanContext().IsValid() {
			t.Error("handler ctx carries no span")
		}
		if *m.Body == "fails" {
			return errors.New("nope")
		}
		return nil
	}, sqsconsumer.WithHooks(hook), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	<-done
	<-done
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	var consumerSpans []sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		if sp.SpanKind() == trace.SpanKindConsumer {
			consumerSpans = append(consumerSpans, sp)
		}
	}
	if len(consumerSpans) != 2 {
		t.Fatalf("%d consumer spans", len(consumerSpans))
	}
	linked, failed := 0, 0
	for _, sp := range consumerSpans {
		if sp.Name() != "process orders" {
			t.Errorf("span name %q", sp.Name())
		}
		for _, l := range sp.Links() {
			if l.SpanContext.TraceID() == producerSpan.SpanContext().TraceID() && l.SpanContext.SpanID() == producerSpan.SpanContext().SpanID() {
				linked++
			}
		}
		if sp.Status().Code.String() == "Error" {
			failed++
		}
	}
	if linked != 1 || failed != 1 {
		t.Fatalf("linked %d, failed %d", linked, failed)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "sqsconsumer.handled" {
				for _, dp := range sum.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	if total != 2 {
		t.Fatalf("sqsconsumer.handled total %d", total)
	}
}

func TestXRayHeaderAndAttributeLimit(t *testing.T) {
	m := &sqsconsumer.Message{}
	m.Attributes = map[string]string{"AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}
	sc := sqsotel.ProducerContext(m)
	if !sc.IsValid() || sc.TraceID().String() != "5759e988bd862e3fe1be46a994272793" || sc.SpanID().String() != "53995c3f42cd8ad8" || !sc.IsSampled() {
		t.Fatalf("X-Ray context %+v", sc)
	}
	m.Attributes["AWSTraceHeader"] = "Root=garbage"
	if sqsotel.ProducerContext(m).IsValid() {
		t.Fatal("a malformed header gave a context")
	}
	full := map[string]types.MessageAttributeValue{}
	for i := 0; i < 10; i++ {
		full[fmt.Sprint("a", i)] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("v")}
	}
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	if sqsotel.Inject(ctx, full) || len(full) != 10 {
		t.Fatal("Inject went past SQS's 10-attribute limit")
	}
}
