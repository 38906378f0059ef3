package sqsotel_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsotel"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// The producer injects its span into the message's attributes; the consumer's hook starts a
// span per message linked to it. A service passes otel.GetTracerProvider() and
// otel.GetMeterProvider() instead of the SDK providers built here.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	mp := sdkmetric.NewMeterProvider()
	hook, err := sqsotel.New(tp, mp)
	if err != nil {
		fmt.Println(err)
		return
	}

	client := sqstest.New()
	url := client.MustCreateQueue("orders", nil)
	producerCtx, producerSpan := tp.Tracer("producer").Start(context.Background(), "send order")
	attrs := map[string]types.MessageAttributeValue{}
	sqsotel.Inject(producerCtx, attrs)
	client.SendMessage(producerCtx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("apples"), MessageAttributes: attrs})
	producerSpan.End()

	ctx, cancel := context.WithCancel(context.Background())
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		cancel()
		return nil
	}, sqsconsumer.WithHooks(hook), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Run(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range spans.Ended() {
		if s.SpanKind().String() != "consumer" {
			continue
		}
		linked := len(s.Links()) == 1 && s.Links()[0].SpanContext.TraceID() == producerSpan.SpanContext().TraceID()
		fmt.Printf("%s, linked to the producer: %v\n", s.Name(), linked)
	}
	// Output: process orders, linked to the producer: true
}
