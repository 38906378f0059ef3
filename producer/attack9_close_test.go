package producer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// a9Offload stores every body (it returns a pointer), optionally panicking, blocking until
// released, or blocking in Unsent.
type a9Offload struct {
	panics      bool
	entered     chan struct{} // receives one value per Offload call, when set
	release     chan struct{} // Offload waits for it to be closed, when set
	unsentGate  chan struct{} // Unsent waits for it to be closed, when set
	unsentStart atomic.Int32
	unsentDone  atomic.Int32
	big         bool // return a body over the producer's limit
}

func (o *a9Offload) Offload(_ context.Context, m producer.Message) (producer.Message, error) {
	if o.panics {
		panic("offloader bug")
	}
	if o.entered != nil {
		o.entered <- struct{}{}
	}
	if o.release != nil {
		<-o.release
	}
	if o.big {
		m.Body = fmt.Sprintf("%02000d", 0)
		return m, nil
	}
	m.Body = "pointer:" + m.Body
	return m, nil
}

func (o *a9Offload) Unsent(context.Context, producer.Message) {
	o.unsentStart.Add(1)
	if o.unsentGate != nil {
		<-o.unsentGate
	}
	o.unsentDone.Add(1)
}

// An Offloader that panics (a bug, or a panic in the S3 SDK's middleware) in a Send whose
// caller recovers (net/http recovers every request's panic): prepare took a place for the
// message and no deferred code gives it up, so every later Close blocks until its ctx ends,
// although nothing is being offloaded and nothing is pending.
func TestAttack9OffloadPanicLeavesClosedWaitingForever(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		p, _ := producer.New(srv, url, producer.WithOffload(&a9Offload{panics: true}))
		done := make(chan any)
		go func() {
			defer func() { done <- recover() }()
			_, _ = p.Send(context.Background(), producer.Message{Body: "x"})
		}()
		if v := <-done; v == nil {
			t.Fatal("Offload did not panic")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close after a recovered Offloader panic: %v (the panicking message's place is never given up)", err)
		}
	})
}

// Close waits for a message still being offloaded, but add gives its place up before the
// message's Unsent runs (enqueue calls unsent after add returned). When the upload turns out
// too large after all, Close returns while Unsent (the S3 delete) has not finished: a process
// that exits after Close, as shutdown code does, leaves the object an orphan. The docs say
// Close waits for Unsent of SQS-refused messages; for this one it does not.
func TestAttack9CloseReturnsBeforeUnsentOfAWaitedMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		o := &a9Offload{big: true, entered: make(chan struct{}), release: make(chan struct{}), unsentGate: make(chan struct{})}
		p, _ := producer.New(srv, url, producer.WithOffload(o), producer.WithMaxMessageSize(1024))
		sent := make(chan error, 1)
		go func() { _, err := p.Send(context.Background(), producer.Message{Body: "large"}); sent <- err }()
		<-o.entered
		closed := make(chan error, 1)
		go func() { closed <- p.Close(context.Background()) }()
		synctest.Wait()
		close(o.release)
		synctest.Wait() // Send is now in Unsent, blocked on unsentGate
		select {
		case err := <-closed:
			unfinished := o.unsentStart.Load() - o.unsentDone.Load()
			close(o.unsentGate)
			<-sent
			if unfinished > 0 {
				t.Fatalf("Close returned %v while the Unsent of the message it waited for was still running", err)
			}
		default:
			close(o.unsentGate)
			if err := <-sent; !errors.Is(err, producer.ErrTooLarge) {
				t.Fatalf("Send: %v, want ErrTooLarge", err)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// SendBatch offloads at most 8 messages at a time and each takes its place in prepare only
// when its turn comes. Close called while the first 8 of 9 large messages are uploading waits
// for those 8, but the 9th, handed to SendBatch before Close, gets ErrClosed: the docs say
// Close "waits for the messages Send or SendBatch was given before it".
func TestAttack9SendBatchMessagesGivenBeforeCloseAreRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		o := &a9Offload{entered: make(chan struct{}, 16), release: make(chan struct{})}
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		msgs := make([]producer.Message, 9)
		for i := range msgs {
			msgs[i] = producer.Message{Body: fmt.Sprintf("large %d", i)}
		}
		res := make(chan []producer.Result, 1)
		go func() { res <- p.SendBatch(context.Background(), msgs) }()
		for range 8 {
			<-o.entered
		}
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- p.Close(context.Background()) }()
		synctest.Wait()
		close(o.release)
		out := <-res
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		for i, r := range out {
			if r.Err != nil {
				t.Errorf("message %d given to SendBatch before Close: %v", i, r.Err)
			}
		}
	})
}
