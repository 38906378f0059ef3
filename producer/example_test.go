package producer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// Send from many goroutines: the producer batches them; Close sends what waits.
func Example() {
	ctx := context.Background()
	client := sqstest.New() // or sqs.NewFromConfig(cfg)
	url := client.MustCreateQueue("emails", nil)
	p, err := producer.New(client, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	results := p.SendBatch(ctx, []producer.Message{
		{Body: "welcome ada"},
		{Body: "remind bob", Delay: 10 * time.Minute},
		{Body: ""}, // refused before any request
	})
	for _, r := range results {
		fmt.Println(r.MessageID != "", r.Err)
	}
	if err := p.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("requests:", p.Requests())
	// Output:
	// true <nil>
	// true <nil>
	// false producer: invalid message: empty body
	// requests: 1
}
