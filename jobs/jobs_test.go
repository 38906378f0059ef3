package jobs_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/jobs"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Welcome struct {
	User string `json:"user"`
}

type Invoice struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
}

func TestEnqueueAndHandleByName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("jobs", nil)
		p, _ := producer.New(s, url)
		e := jobs.NewEnqueuer(p, nil)
		ctx := context.Background()
		if _, err := e.Enqueue(ctx, "welcome", Welcome{User: "ada"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Enqueue(ctx, "invoice", Invoice{ID: 7, Total: 12.5}, jobs.Delay(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Enqueue(ctx, "", Welcome{}); !errors.Is(err, producer.ErrInvalid) {
			t.Fatalf("empty name: %v", err)
		}
		// An unknown job and a malformed payload, sent by hand.
		for name, body := range map[string]string{"retired-job": "{}", "invoice": `{"id":"seven"}`} {
			s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body),
				MessageAttributes: map[string]types.MessageAttributeValue{jobs.NameAttribute: {DataType: aws.String("String"), StringValue: aws.String(name)}}})
		}
		p.Close(ctx)

		var mu sync.Mutex
		var got []string
		r := jobs.NewRegistry(nil)
		jobs.Register(r, "welcome", func(ctx context.Context, w Welcome, m *sqsconsumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, "welcome "+w.User)
			return nil
		})
		jobs.Register(r, "invoice", func(ctx context.Context, inv Invoice, m *sqsconsumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, "invoice")
			if inv.ID != 7 || inv.Total != 12.5 {
				t.Errorf("invoice %+v", inv)
			}
			return nil
		})
		var errs []error
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			err := r.Handle(ctx, m)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		}, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithWaitTime(time.Second))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- c.Run(runCtx) }()
		<-time.After(2 * time.Minute) // past the invoice's delay
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("handled %v", got)
		}
		var unknown, malformed int
		for _, err := range errs {
			var de *sqsconsumer.DecodeError
			switch {
			case errors.Is(err, jobs.ErrUnknownJob):
				unknown++
			case errors.As(err, &de):
				malformed++
			}
		}
		if unknown != 1 || malformed != 1 {
			t.Fatalf("errors %v", errs)
		}
		if st, _ := s.Stats(url); st.Deleted != 2 || st.InFlight != 2 {
			t.Fatalf("queue %+v: the unknown and malformed jobs must stay for the DLQ", st)
		}
	})
}
