package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// messyClient is an sqstest server whose receives sometimes lose their response after taking
// the messages (the messages stay invisible), and on FIFO queues sometimes bring more than
// asked for (a retry with the attempt id returns the first attempt's messages).
type messyClient struct {
	*sqstest.Server
	fifo bool
}

func (c *messyClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	cp := *in
	if c.fifo && rand.IntN(4) == 0 {
		cp.MaxNumberOfMessages = 10
	}
	out, err := c.Server.ReceiveMessage(ctx, &cp, o...)
	if err == nil && rand.IntN(10) == 0 {
		return nil, sqstest.ServerError() // the response was lost
	}
	return out, err
}

// Every path at once, at a random moment of shutdown: FIFO lanes or a group limit (overflow),
// both strategies, weights too heavy to run, receives that lose their response or bring more
// than asked, extensions refused (leases lost while messages wait in a lane or the strategy),
// failing and slow handlers. While running the pacer's counts never go negative nor above the
// capacity, and after Run they are zero and the report adds up.
func TestAttackPacerCountsUnderEverything(t *testing.T) {
	for round := range 100 {
		fifo := round%2 == 0
		strategy := []string{"pool", "semaphore"}[round/2%2]
		t.Run(fmt.Sprintf("%d-fifo=%v-%s", round, fifo, strategy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				name, attrs := "q", map[string]string(nil)
				if fifo {
					name, attrs = "q.fifo", map[string]string{"FifoQueue": "true"}
				}
				url := s.MustCreateQueue(name, attrs)
				for i := 0; i < 300; i += 10 {
					var entries []types.SendMessageBatchRequestEntry
					for j := i; j < i+10; j++ {
						id, body := fmt.Sprint(j), fmt.Sprint(j)
						g := fmt.Sprint(rand.IntN(5))
						e := types.SendMessageBatchRequestEntry{Id: &id, MessageBody: &body, MessageGroupId: &g}
						if fifo {
							e.MessageDeduplicationId = &id
						}
						entries = append(entries, e)
					}
					if _, err := s.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
						t.Fatal(err)
					}
				}
				refuse := time.Now().Add(time.Duration(rand.IntN(20)) * time.Second)
				s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
					if op == "ChangeMessageVisibilityBatch" && time.Now().Before(refuse) && rand.IntN(3) == 0 {
						return sqstest.EntryError("ReceiptHandleIsInvalid", true)
					}
					return nil
				}, Latency: func(string, any) time.Duration { return time.Duration(rand.IntN(20)) * time.Millisecond }})
				conc := 1 + rand.IntN(6)
				opts := []Option{WithConcurrency(conc), WithWaitTime(time.Second), WithVisibilityTimeout(2 * time.Second),
					WithPollers(1 + rand.IntN(3)), WithShutdownTimeout(time.Duration(rand.IntN(3)) * time.Second),
					WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithErrorHandler(func(error) {}),
					WithWeight(func(m *Message) int64 {
						if rand.IntN(20) == 0 {
							return 1000
						}
						return 1
					})}
				if !fifo {
					opts = append(opts, WithGroupLimit(1+rand.IntN(2)))
				}
				if strategy == "semaphore" {
					opts = append(opts, WithStrategy(semaphore.Factory()))
				}
				c, err := New(&messyClient{Server: s, fifo: fifo}, url, func(ctx context.Context, m *Message) error {
					select {
					case <-time.After(time.Duration(rand.IntN(3000)) * time.Millisecond):
					case <-ctx.Done():
						return ctx.Err()
					}
					if rand.IntN(4) == 0 {
						return errors.New("fail")
					}
					return nil
				}, opts...)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				var bad atomic.Value
				sampling, returned := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(sampling)
					for {
						select {
						case <-returned:
							return
						case <-time.After(7 * time.Millisecond):
						}
						q, a := c.q.pacer.queued.Load(), c.q.pacer.asked.Load()
						if q < 0 || a < 0 || q > int64(conc)+100 {
							bad.CompareAndSwap(nil, fmt.Sprintf("queued %d, asked %d", q, a))
						}
					}
				}()
				time.Sleep(time.Duration(rand.IntN(30000)) * time.Millisecond)
				cancel()
				began := time.Now()
				var runErr error
				select {
				case runErr = <-done:
				case <-time.After(10 * time.Minute):
					t.Fatal("Run did not return")
				}
				close(returned)
				<-sampling
				if runErr != nil {
					t.Fatal(runErr)
				}
				if took := time.Since(began); took > 15*time.Second {
					t.Errorf("Run took %v to return", took)
				}
				if v := bad.Load(); v != nil {
					t.Errorf("while running: %s", v)
				}
				if q, a := c.q.pacer.queued.Load(), c.q.pacer.asked.Load(); q != 0 || a != 0 {
					t.Errorf("after Run: queued %d, asked %d", q, a)
				}
				r := c.Report()
				if sum := r.Succeeded + r.Failed + r.Released + r.Cancelled + r.LeaseLost; r.Received != sum || r.InFlight != 0 {
					t.Errorf("report does not add up: received %d, sum %d, in flight %d", r.Received, sum, r.InFlight)
				}
			})
		})
	}
}
