package sqsconsumer_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// hangFirstDelete is an sqstest server whose first DeleteMessageBatch call hangs until its ctx
// ends (a connection that stopped answering); every other call answers at once.
type hangFirstDelete struct {
	*sqstest.Server
	hung atomic.Bool
}

func (h *hangFirstDelete) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, o ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if h.hung.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Server.DeleteMessageBatch(ctx, in, o...)
}

// On a FIFO queue a group stays locked until its delete lands, and the harvester holds a
// partial batch while a call of its kind is on its first attempt. One call that hangs (a
// connection that stopped answering, up to the 30 s per-attempt timeout) must not hold every
// other group's delete, and so every other group, for that long: group B has nothing to do with
// group A's stuck call, yet its next message waits for it.
func TestAttackFIFOHungDeleteDoesNotStallOtherGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := fifoQueue(s, "q")
		sendGroup(t, s, url, "A", "a0")
		sendGroup(t, s, url, "B", "b0")
		sendGroup(t, s, url, "B", "b1")
		client := &hangFirstDelete{Server: s}
		var mu sync.Mutex
		startedAt := map[string]time.Time{}
		doneAt := map[string]time.Time{}
		b1 := make(chan struct{})
		c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			startedAt[*m.Body] = time.Now()
			mu.Unlock()
			switch *m.Body {
			case "a0":
				advance(10 * time.Millisecond)
			case "b0":
				advance(100 * time.Millisecond) // its delete comes while a0's call hangs
			case "b1":
				close(b1)
			}
			mu.Lock()
			doneAt[*m.Body] = time.Now()
			mu.Unlock()
			return nil
		}, sqsconsumer.WithConcurrency(4), sqsconsumer.WithWaitTime(time.Second), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		<-b1
		mu.Lock()
		wait := startedAt["b1"].Sub(doneAt["b0"])
		mu.Unlock()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		if wait > 2*time.Second {
			t.Errorf("b1 started %v after b0 succeeded: b0's delete waited behind group A's hung call (want about a round trip, here 0)", wait)
		}
	})
}
