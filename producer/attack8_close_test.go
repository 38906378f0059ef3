package producer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// gatedOffload blocks in Offload (a large upload) until released.
type gatedOffload struct {
	entered, release chan struct{}
	unsentAfterClose atomic.Bool
	closed           *atomic.Bool
}

func (g *gatedOffload) Offload(_ context.Context, m producer.Message) (producer.Message, error) {
	g.entered <- struct{}{}
	<-g.release
	m.Body = "pointer:" + m.Body
	return m, nil
}

func (g *gatedOffload) Unsent(context.Context, producer.Message) {
	if g.closed.Load() {
		g.unsentAfterClose.Store(true)
	}
}

// A Send that was called before Close and is still uploading when Close is called: Close
// returns nil at once, then the Send, its upload done, fails with ErrClosed, and its object is
// deleted after Close returned (a process that exits after Close, as shutdown code does,
// leaves it an orphan and loses a message the caller handed over before Close). The package
// promises "Flush and Close lose nothing" and Close "refuses further messages": a Send that
// began before Close should be waited for and sent.
func TestAttack8CloseDuringOffload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		closed := new(atomic.Bool)
		o := &gatedOffload{entered: make(chan struct{}), release: make(chan struct{}), closed: closed}
		p, _ := producer.New(srv, url, producer.WithOffload(o))
		sent := make(chan error, 1)
		go func() { _, err := p.Send(ctx, producer.Message{Body: "large"}); sent <- err }()
		<-o.entered
		closeDone := make(chan error, 1)
		go func() { closeDone <- p.Close(ctx) }()
		synctest.Wait()
		select {
		case err := <-closeDone:
			closed.Store(true)
			close(o.release)
			sendErr := <-sent
			t.Fatalf("Close returned %v while a Send begun before it was still offloading; that Send then returned %v (Unsent after Close: %v)",
				err, sendErr, o.unsentAfterClose.Load())
		default:
		}
		close(o.release)
		if err := <-sent; err != nil {
			t.Fatalf("Send begun before Close: %v", err)
		}
		if err := <-closeDone; err != nil {
			t.Fatal(err)
		}
	})
}
