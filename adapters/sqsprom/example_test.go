package sqsprom_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsprom"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// One Metrics per registry, passed to every consumer as a hook; a service registers with
// prometheus.DefaultRegisterer and serves promhttp.Handler().
func Example() {
	reg := prometheus.NewRegistry()
	m := sqsprom.New(reg)

	client := sqstest.New()
	url := client.MustCreateQueue("orders", nil)
	for _, body := range []string{"apples", "pears", "plums"} {
		client.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, msg *sqsconsumer.Message) error {
		defer func() {
			if handled.Add(1) == 3 {
				cancel()
			}
		}()
		if *msg.Body == "pears" {
			return sqsconsumer.RetryAfter(time.Minute, errors.New("out of pears"))
		}
		return nil
	}, sqsconsumer.WithHooks(m), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Run(ctx); err != nil {
		fmt.Println(err)
		return
	}

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		if f.GetName() != "sqsconsumer_handled_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "outcome" {
					fmt.Printf("%s{outcome=%q} %v\n", f.GetName(), l.GetValue(), s.GetCounter().GetValue())
				}
			}
		}
	}
	// Output:
	// sqsconsumer_handled_total{outcome="error"} 1
	// sqsconsumer_handled_total{outcome="ok"} 2
}
