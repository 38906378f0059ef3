package sqsconsumer_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// maxDeleteBatchesOpen is the harvester's limit on DeleteMessageBatch calls in flight.
const maxDeleteBatchesOpen = 16

// boundClient watches what a consumer holds: messages received and not yet confirmed deleted,
// against the bound capacity + 10 per DeleteMessageBatch in flight (at most
// maxDeleteBatchesOpen, counting those handed to their sender goroutine and not yet on the
// wire, which this client cannot see) + 10 for the batch being filled.
type boundClient struct {
	sqsconsumer.Client
	capacity int64

	mu          sync.Mutex
	outstanding int64 // received, not confirmed deleted
	deletesOpen int64 // DeleteMessageBatch calls on the wire
	peakOpen    int64
	worst       int64 // the most outstanding exceeded its bound by (<= 0 is within it)
	peak        int64
}

func (c *boundClient) check() {
	over := c.outstanding - (c.capacity + 10*maxDeleteBatchesOpen + 10)
	c.worst = max(c.worst, over)
	c.peak = max(c.peak, c.outstanding)
}

func (c *boundClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := c.Client.ReceiveMessage(ctx, in, optFns...)
	if err == nil {
		c.mu.Lock()
		c.outstanding += int64(len(out.Messages))
		c.check()
		c.mu.Unlock()
	}
	return out, err
}

func (c *boundClient) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	c.mu.Lock()
	c.deletesOpen++
	c.peakOpen = max(c.peakOpen, c.deletesOpen)
	c.mu.Unlock()
	out, err := c.Client.DeleteMessageBatch(ctx, in, optFns...)
	c.mu.Lock()
	c.deletesOpen--
	if err == nil {
		c.outstanding -= int64(len(out.Successful))
	}
	c.check()
	c.mu.Unlock()
	return out, err
}

// With a 1,000,000-message backlog the consumer holds no more than its capacity (concurrency +
// waiting room) of received, unacknowledged messages, plus the deletes on their way: checked
// at every receive and delete over the first 100,000 messages.
func TestMemoryBoundedAtDeepBacklog(t *testing.T) {
	const backlog, watched, concurrency = 1_000_000, 100_000, 64
	s := sqstest.New()
	url := s.MustCreateQueue("deep", nil)
	if err := benchkit.SendN(context.Background(), s, url, backlog); err != nil {
		t.Fatal(err)
	}
	bc := &boundClient{Client: s, capacity: int64(concurrency + worker.DefaultWaitingRoom(concurrency))} // the pool's default room
	var handled atomic.Int64
	enough := make(chan struct{})
	c, err := sqsconsumer.New(bc, url, func(context.Context, *sqsconsumer.Message) error {
		if handled.Add(1) == watched {
			close(enough)
		}
		return nil
	}, sqsconsumer.WithConcurrency(concurrency), sqsconsumer.WithStrategy(pool.Factory()), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	<-enough
	bc.mu.Lock()
	worst, peak, peakOpen := bc.worst, bc.peak, bc.peakOpen
	bc.mu.Unlock()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if worst > 0 {
		t.Fatalf("held %d messages more than capacity %d + 10 per delete batch in flight (peak %d outstanding)", worst, bc.capacity, peak)
	}
	if peakOpen > maxDeleteBatchesOpen {
		t.Fatalf("%d DeleteMessageBatch calls at once, limit %d", peakOpen, maxDeleteBatchesOpen)
	}
	if peak < concurrency {
		t.Fatalf("peak %d outstanding: the consumer never used its concurrency", peak)
	}
	st, _ := s.Stats(url)
	if st.InFlight != 0 || st.Visible != backlog-int(st.Deleted) {
		t.Fatalf("after Run: %+v", st)
	}
	t.Logf("peak %d received-and-undeleted messages with capacity %d; peak %d delete calls at once", peak, bc.capacity, peakOpen)
}
