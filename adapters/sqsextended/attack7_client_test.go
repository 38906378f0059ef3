package sqsextended

// attack7: adversarial tests of the redesigned Client (delete the object after SQS confirmed
// the message's delete) and of the producer's Unsent. Each test states the property it holds
// the code to; they are expected to fail against commit 8db4c9f.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// A DeleteMessageBatch entry that SQS fails as its own fault (InternalError, senderFault
// false) is retried by the consumer's harvester with the same receipt handle (invariant 2),
// and the retry deletes the message. The Client dropped the note on the first, failed answer
// ("the message comes back under a new handle") so the retry's success finds no note: the
// message is gone and its object is never deleted. The Client promises the object is deleted
// once the message is done with; an orphan is promised only for a crash, a failed DELETE or
// a backlog.
func TestAttack7RetriedDeleteEntryStillDeletesObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New(sqstest.WithStrict())
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
			t.Fatal(err)
		}
		var failed atomic.Bool
		srv.SetFaults(sqstest.Faults{Entry: func(op, _ string) *sqstypes.BatchResultErrorEntry {
			if op == "DeleteMessageBatch" && failed.CompareAndSwap(false, true) {
				return sqstest.EntryError("InternalError", false) // once
			}
			return nil
		}})
		c, _ := NewClient(srv, store)
		h := sqsconsumer.Chain(func(context.Context, *sqsconsumer.Message) error { return nil }, c.Fetch())
		cons, err := sqsconsumer.New(c, url, h, sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithErrorHandler(func(error) {}), sqsconsumer.WithStopPolicy(sqsconsumer.StopWhenIdle(2*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		st, _ := srv.Stats(url)
		if !failed.Load() || st.Deleted != 1 {
			t.Fatalf("setup: entry failure injected %v, SQS deleted %d", failed.Load(), st.Deleted)
		}
		if store.count() != 0 {
			t.Fatalf("SQS deleted the message on the harvester's retry, but its object is left (deletes %v): the note was dropped on the retryable failure", store.deletes)
		}
	})
}

// gatedReceive lets SQS serve a receive and then holds its answer (the response in flight
// on the network, or the receiving goroutine not yet scheduled).
type gatedReceive struct {
	*sqstest.Server
	hold   *atomic.Bool // only while set
	served chan struct{}
	gate   chan struct{}
}

func (g gatedReceive) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := g.Server.ReceiveMessage(ctx, in, optFns...)
	if !g.hold.Load() {
		return out, err
	}
	close(g.served)
	<-g.gate
	return out, err
}

// The superseded-handle guard reads c.latest, which a receive fills only once its answer is
// back in the Client. SQS hands the message to consumer B (new handle h2) and, while B's answer
// is still on its way, consumer A's delete with the superseded h1 "succeeds" without
// deleting (invariant 2). The Client sees no newer handle yet and deletes the object; B then
// gets the message and its Fetch finds no object. The doc: "when that receive came through
// the same Client the object is kept".
func TestAttack7ReceiveInFlightKeepsObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New() // SQS: a superseded handle's delete is accepted, deleting nothing
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{"b/k": "payload"}}
		if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", "k"}.Body())}); err != nil {
			t.Fatal(err)
		}
		g := gatedReceive{Server: srv, hold: new(atomic.Bool), served: make(chan struct{}), gate: make(chan struct{})}
		c, _ := NewClient(g, store)

		// A receives through the Client and handles the message.
		first, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, VisibilityTimeout: 1})
		if err != nil || len(first.Messages) != 1 {
			t.Fatal(err)
		}
		h := c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })
		if err := h(ctx, sqsconsumer.NewMessage(first.Messages[0], url)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // A's visibility lapses (fake clock)

		// B receives through the Client; SQS has served it, the answer is not back.
		g.hold.Store(true)
		bDone := make(chan *sqs.ReceiveMessageOutput)
		go func() {
			out, _ := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
			bDone <- out
		}()
		<-g.served
		// A's delete with the superseded handle: SQS reports success, deletes nothing.
		del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []sqstypes.DeleteMessageBatchRequestEntry{
			{Id: aws.String("0"), ReceiptHandle: first.Messages[0].ReceiptHandle}}})
		if err != nil || len(del.Successful) != 1 {
			t.Fatalf("setup: stale delete %v %+v", err, del)
		}
		close(g.gate)
		second := <-bDone
		if second == nil || len(second.Messages) != 1 {
			t.Fatal("setup: B did not receive the message")
		}
		_ = c.Close(ctx)
		err = c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })(ctx, sqsconsumer.NewMessage(second.Messages[0], url))
		if err != nil {
			t.Errorf("B holds the message but its object is gone: %v (deletes %v)", err, store.deletes)
		}
	})
}

// blockingReport blocks in WithDeleteErrors until released.
type blockingReport struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blockingReport) f(_ Pointer, err error) {
	if errors.Is(err, ErrDeleteBacklog) {
		b.once.Do(func() { close(b.entered) })
		<-b.release
	}
}

// WithDeleteErrors: "f runs on the deleting goroutine", and ErrDeleteBacklog's doc:
// "acknowledgements never wait for S3". But for ErrDeleteBacklog f runs inside
// DeleteMessageBatch, on the harvester's goroutine: a slow f (a logger, a metrics call) holds
// the consumer's acknowledgements, exactly when S3 is already slow.
func TestAttack7BacklogReportOffTheAckPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		srv := sqstest.New()
		url := srv.MustCreateQueue("q", nil)
		store := &memS3{objects: map[string]string{}}
		rep := &blockingReport{entered: make(chan struct{}), release: make(chan struct{})}
		c, _ := NewClient(srv, hangingDeletes{memS3: store}, WithDeleteErrors(rep.f), WithDeleteTimeout(time.Hour))
		defer c.Close(ctx) // the hanging deletions end at WithDeleteTimeout (fake clock)
		h := c.Fetch()(func(context.Context, *sqsconsumer.Message) error { return nil })
		for i := range MaxPendingDeletes + 1 {
			key := fmt.Sprint("k", i)
			store.objects["b/"+key] = "p"
			if _, err := srv.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(Pointer{"b", key}.Body())}); err != nil {
				t.Fatal(err)
			}
			out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url})
			if err != nil || len(out.Messages) != 1 {
				t.Fatal(err)
			}
			if err := h(ctx, sqsconsumer.NewMessage(out.Messages[0], url)); err != nil {
				t.Fatal(err)
			}
			returned := make(chan struct{})
			go func() {
				_, _ = c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: []sqstypes.DeleteMessageBatchRequestEntry{
					{Id: aws.String("0"), ReceiptHandle: out.Messages[0].ReceiptHandle}}})
				close(returned)
			}()
			if i < MaxPendingDeletes {
				<-returned
				continue
			}
			<-rep.entered
			synctest.Wait()
			select {
			case <-returned:
			default:
				t.Error("DeleteMessageBatch (the consumer's acknowledgement) waited for the WithDeleteErrors function")
			}
			close(rep.release)
			<-returned
		}
	})
}
