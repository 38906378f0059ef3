package jobs_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/jobs"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

type Resize struct {
	Image string `json:"image"`
	Width int    `json:"width"`
}

// Jobs are enqueued by name with a typed payload and handled by a registry of typed handlers.
func Example() {
	ctx := context.Background()
	client := sqstest.New()
	url := client.MustCreateQueue("jobs", nil)

	p, _ := producer.New(client, url)
	e := jobs.NewEnqueuer(p, nil)
	e.Enqueue(ctx, "resize", Resize{Image: "cat.png", Width: 640})
	p.Close(ctx)

	runCtx, cancel := context.WithCancel(ctx)
	r := jobs.NewRegistry(nil)
	jobs.Register(r, "resize", func(ctx context.Context, m *sqsconsumer.Message, job Resize) error {
		fmt.Println("resize", job.Image, "to", job.Width)
		cancel()
		return nil
	})
	c, _ := sqsconsumer.New(client, url, r.Handle, sqsconsumer.WithWaitTime(time.Second))
	c.Run(runCtx)
	// Output: resize cat.png to 640
}
