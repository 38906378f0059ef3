package producer_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// gatedSend holds each SendMessageBatch until released.
type gatedSend struct {
	*sqstest.Server
	gate chan struct{}
}

func (g gatedSend) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	<-g.gate
	return g.Server.SendMessageBatch(ctx, in, optFns...)
}

// Flush waits on the WaitGroup of batches (p.sends.Wait) while a concurrent Send's flush may
// Add to it from zero, which sync.WaitGroup forbids ("calls with a positive delta that occur
// when the counter is zero must happen before a Wait"): the race detector reports it here
// every time, and without -race the same interleaving, when the Add lands between the last
// Done and the waiter waking, panics in Flush's goroutine with "sync: WaitGroup is reused
// before previous Wait has returned", killing the process (seen with Flush called in a loop
// beside Sends). Flush is documented for use while sending goes on.
func TestAttack7FlushConcurrentWithSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		g := gatedSend{Server: s, gate: make(chan struct{})}
		p, err := producer.New(g, url, producer.WithBatchWindow(0), producer.WithMaxMessageSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		first := make(chan error)
		go func() { _, err := p.Send(ctx, producer.Message{Body: "a"}); first <- err }()
		flushed := make(chan error)
		go func() { flushed <- p.Flush(ctx) }()
		synctest.Wait() // the batch is in flight, Flush is waiting for it
		close(g.gate)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		// The batch is settled; Flush's waiter may not have returned yet. A new Send now.
		if _, err := p.Send(ctx, producer.Message{Body: "b"}); err != nil {
			t.Fatal(err)
		}
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
