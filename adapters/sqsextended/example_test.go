package sqsextended_test

import (
	"context"
	"log"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsextended"
	"github.com/sqsconsumer/sqsconsumer/producer"
)

// A producer that sends bodies over 256 KiB through S3, readable by the Java, Python, .NET and
// Node extended clients.
func ExampleNewOffloader() {
	ctx := context.Background()
	cfg := aws.Config{Region: "eu-west-1"} // in a service: config.LoadDefaultConfig(ctx)
	off, err := sqsextended.NewOffloader(s3.NewFromConfig(cfg), "my-payloads", sqsextended.WithKeyPrefix("orders/"))
	if err != nil {
		log.Fatal(err)
	}
	p, err := producer.New(sqs.NewFromConfig(cfg), "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
		producer.WithOffload(off))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	if _, err := p.Send(ctx, producer.Message{Body: strings.Repeat("x", 600<<10)}); err != nil {
		log.Print(err) // an upload failure wraps sqsextended.ErrUpload
	}
}

// A consumer whose handler sees the payloads, and whose Client deletes each object once its
// message was handled and deleted.
func ExampleNewClient() {
	ctx := context.Background()
	cfg := aws.Config{Region: "eu-west-1"}
	ext, err := sqsextended.NewClient(sqs.NewFromConfig(cfg), s3.NewFromConfig(cfg))
	if err != nil {
		log.Fatal(err)
	}
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		log.Printf("order of %d bytes", len(*m.Body)) // the payload, not the pointer
		return nil
	}
	c, err := sqsconsumer.New(ext, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
		sqsconsumer.Chain(handler, sqsconsumer.Unwrap(), ext.Fetch()))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		log.Print(err)
	}
	if err := ext.Close(ctx); err != nil { // the object deletions under way
		log.Print(err)
	}
}
