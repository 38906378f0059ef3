package sqsextended

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/sync/errgroup"

	"github.com/sqsconsumer/sqsconsumer"
)

// ClientS3 is the S3 calls a Client makes; *s3.Client satisfies it.
type ClientS3 interface {
	ObjectGetter
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// ErrDeleteBacklog is what WithDeleteErrors is told for an object not deleted because
// MaxPendingDeletes deletions were already waiting (S3 slower than the queue): it is left to
// the bucket's lifecycle rule, and acknowledgements never wait for S3.
var ErrDeleteBacklog = errors.New("sqsextended: too many object deletions pending; object left to the lifecycle rule")

// MaxPendingDeletes bounds the object deletions a Client has started and not finished.
const MaxPendingDeletes = 1000

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithDeleteErrors has f told when an object could not be deleted after its message was
// (the object is then an orphan, left to the bucket's lifecycle rule). f runs on a deleting
// goroutine, never on the consumer's; a panic in it is recovered. By default such errors are
// dropped.
func WithDeleteErrors(f func(Pointer, error)) ClientOption {
	return func(c *Client) error {
		if f == nil {
			return fmt.Errorf("%w: WithDeleteErrors(nil)", ErrInvalidOption)
		}
		c.onError = f
		return nil
	}
}

// WithDeleteTimeout bounds each object deletion (default 10 s). d must be > 0.
func WithDeleteTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithDeleteTimeout %v, want > 0", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// Client wraps the SQS client of a consumer so that the S3 object behind an offloaded
// message is deleted once the message is done with: the extended clients' payload cleanup.
// Its Fetch middleware reads payloads as the package's Fetch does, and notes each message
// whose handler succeeded; when SQS then confirms that message's delete, the Client deletes
// its object in the background. Use it only where this queue is the one reader of the
// objects; see NewClient.
//
// A Client is safe for concurrent use. It satisfies sqsconsumer.Client and
// sqsconsumer.Sender; give the consumer the Client and chain its Fetch. Call Close when the
// consumer's Run has returned, to wait for the deletions under way. (sqsconsumer.New checks
// the region and HTTP timeout of an *sqs.Client it is given; it cannot see them through the
// Client.)
type Client struct {
	sqs     sqsconsumer.Client
	s3      ClientS3
	onError func(Pointer, error)
	timeout time.Duration

	mu        sync.Mutex
	done      map[string]noted         // receipt handle -> the object of a message handled successfully
	latest    map[string]received      // message id -> its newest receipt, for pointer messages
	holders   map[Pointer]int          // messages in latest pointing at each object
	byHandle  map[string]string        // latest's receipt handles -> message id
	skipped   map[Pointer]struct{}     // objects left to a holder still in the queue
	notes     int                      // notes since the last sweep
	pending   int                      // objects to delete, not yet deleted
	workers   int                      // goroutines deleting objects
	idle      chan struct{}            // closed while workers is 0
	receiving map[uint64]chan struct{} // receives in flight, closed when they have recorded
	// nextReceive numbers the receives.
	nextReceive uint64
}

type noted struct {
	p  Pointer
	id string // the message's id
	at time.Time
}

type received struct {
	handle string
	p      Pointer
	at     time.Time
}

var _ sqsconsumer.Client = (*Client)(nil)

// NewClient returns a Client over sqsClient, reading and deleting objects through s3Client.
// It makes no call and starts no goroutine; errors wrap ErrInvalidOption.
//
// Deleting is right only when nothing else reads the object: not when another process or
// service reads copies of the same messages (SNS fan-out to its queues), nor when a replay
// from a dead-letter queue may still need them. Only a pointer that SQS delivered as the
// message body is deleted; a pointer inside an SNS notification (raw delivery off) is never
// deleted, since every subscriber of the topic received the same one. Several messages
// received through the Client that point at one object (a rerouted original and its copy)
// share it: it is deleted after the last of them is. A copy not received yet cannot be seen:
// with SNS raw delivery to several queues, even queues of one Group, do not use a Client.
//
// An object is deleted only after its message's handler succeeded and SQS confirmed the
// message's delete, never before (the Java and Python clients delete it first, which loses the
// payload if the message is then received again). A message that fails, is released, is
// rerouted (sqsconsumer.Reroute sends the pointer on, so the copy still needs the object; a
// copy received through the same Client deletes it once done) or moves to the dead-letter
// queue keeps its object. SQS also reports a delete with a receipt handle that was
// superseded (the message's visibility lapsed and it was received again) as successful,
// deleting nothing: when that receive came through the same Client the object is kept; a
// receive by another process cannot be seen, but the consumer does not delete a message
// whose visibility it has let lapse. A crash before the deletion, a failed DELETE or a
// deletion backlog (ErrDeleteBacklog) leaves an orphan: give the bucket a lifecycle rule that
// expires objects some days after the queue's retention period.
func NewClient(sqsClient sqsconsumer.Client, s3Client ClientS3, opts ...ClientOption) (*Client, error) {
	if sqsClient == nil || s3Client == nil {
		return nil, fmt.Errorf("%w: nil SQS or S3 client", ErrInvalidOption)
	}
	c := &Client{sqs: sqsClient, s3: s3Client, timeout: 10 * time.Second, done: map[string]noted{}, latest: map[string]received{}, holders: map[Pointer]int{}, byHandle: map[string]string{}, skipped: map[Pointer]struct{}{}, receiving: map[uint64]chan struct{}{}, idle: make(chan struct{})}
	close(c.idle)
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Fetch returns the package's Fetch middleware over the Client's S3 client, which also notes
// each message whose body was a pointer and whose handler (everything Fetch wraps) returned
// nil, for deletion once SQS has deleted the message.
func (c *Client) Fetch(opts ...FetchOption) sqsconsumer.Middleware {
	fetch := Fetch(c.s3, opts...)
	return func(next sqsconsumer.Handler) sqsconsumer.Handler {
		inner := fetch(next)
		return func(ctx context.Context, m *sqsconsumer.Message) error {
			err := inner(ctx, m)
			if err != nil || m.ReceiptHandle == nil || errors.Is(context.Cause(ctx), sqsconsumer.ErrHandlerTimeout) {
				return err // failed: the consumer fails a handler that outlived WithHandlerTimeout too
			}
			// Only a pointer SQS delivered as the body: not one inside an SNS notification.
			if p, ok, _ := pointerIn(m.ReceivedBody(), m.MessageAttributes); ok {
				c.note(*m.ReceiptHandle, aws.ToString(m.MessageId), p)
			}
			return nil
		}
	}
}

// forgetAfter is how long a note is kept when no delete comes for it (the consumer gave the
// message up, or its delete call kept failing): longer than any visibility timeout.
const forgetAfter = 13 * time.Hour

func (c *Client) note(handle, id string, p Pointer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[handle] = noted{p, id, time.Now()}
	c.sweepLocked()
}

// sweepLocked forgets, every 1024 notes or receipts, what is older than forgetAfter.
func (c *Client) sweepLocked() {
	if c.notes++; c.notes < 1024 {
		return
	}
	c.notes = 0
	now := time.Now()
	for h, n := range c.done {
		if now.Sub(n.at) > forgetAfter {
			delete(c.done, h)
		}
	}
	for id, r := range c.latest {
		if now.Sub(r.at) > forgetAfter {
			c.forgetLocked(id)
		}
	}
	for p := range c.skipped {
		if c.holders[p] == 0 { // its last holder was given up, not deleted: an orphan
			delete(c.skipped, p)
		}
	}
}

// forgetLocked drops message id's receipt.
func (c *Client) forgetLocked(id string) {
	r, ok := c.latest[id]
	if !ok {
		return
	}
	delete(c.latest, id)
	delete(c.byHandle, r.handle)
	if c.holders[r.p]--; c.holders[r.p] <= 0 {
		delete(c.holders, r.p)
	}
}

// ReceiveMessage calls the wrapped client, and notes the receipt handle of each message whose
// body is a pointer: a delete with an older handle of the same message (SQS reports it
// successful without deleting anything once the message was received again) then keeps the
// object.
func (c *Client) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.mu.Lock()
	id := c.nextReceive
	c.nextReceive++
	finished := make(chan struct{})
	c.receiving[id] = finished
	c.mu.Unlock()
	out, err := c.sqs.ReceiveMessage(ctx, in, optFns...)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { delete(c.receiving, id); close(finished) }()
	if err != nil || out == nil {
		return out, err
	}
	for _, m := range out.Messages {
		if m.Body == nil || m.MessageId == nil || m.ReceiptHandle == nil {
			continue
		}
		if p, ok, _ := pointerIn(*m.Body, m.MessageAttributes); ok {
			if r, seen := c.latest[*m.MessageId]; seen {
				// Received again: a success noted under the old handle is not this receipt's.
				delete(c.done, r.handle)
			}
			c.forgetLocked(*m.MessageId)
			c.latest[*m.MessageId] = received{*m.ReceiptHandle, p, now}
			c.byHandle[*m.ReceiptHandle] = *m.MessageId
			c.holders[p]++
			c.sweepLocked()
		}
	}
	return out, nil
}

// SendMessage calls the wrapped client's SendMessage, so that sqsconsumer.Reroute works
// through the Client as through the client it wraps; a wrapped client that cannot send gets
// an error (give the consumer sqsconsumer.WithSender then). The copy a Reroute sends carries
// the same pointer: its object stays until the copy too is done (see NewClient).
func (c *Client) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	sender, ok := c.sqs.(sqsconsumer.Sender)
	if !ok {
		return nil, errors.New("sqsextended: the wrapped SQS client cannot send; give the consumer sqsconsumer.WithSender")
	}
	return sender.SendMessage(ctx, in, optFns...)
}

// ChangeMessageVisibilityBatch calls the wrapped client.
func (c *Client) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	return c.sqs.ChangeMessageVisibilityBatch(ctx, in, optFns...)
}

// candidate is an object whose message SQS reported deleted with handle.
type candidate struct {
	handle string
	noted
}

// DeleteMessageBatch calls the wrapped client and returns its answer. For each entry SQS
// reports deleted whose message the Client's Fetch noted, it has the object deleted in the
// background; it never waits for S3, nor for WithDeleteErrors's function.
func (c *Client) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	out, err := c.sqs.DeleteMessageBatch(ctx, in, optFns...)
	if err != nil || out == nil {
		return out, err // the caller retries with the same handles: keep the notes
	}
	handles := make(map[string]string, len(in.Entries))
	for _, e := range in.Entries {
		handles[aws.ToString(e.Id)] = aws.ToString(e.ReceiptHandle)
	}
	var cands []candidate
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ok := range out.Successful {
		h := handles[aws.ToString(ok.Id)]
		n, isNoted := c.done[h]
		delete(c.done, h)
		if isNoted {
			cands = append(cands, candidate{h, n})
		}
		id, found := c.byHandle[h]
		if !found {
			continue
		}
		// Gone from the queue (a rerouted original, a failure given up): it no longer holds
		// its object for the other messages that point at it.
		p := c.latest[id].p
		c.forgetLocked(id)
		if _, waiting := c.skipped[p]; waiting && c.holders[p] == 0 {
			// A message done earlier left the object to this one, the last holder (whose own
			// candidate, if it has one, deletes it).
			delete(c.skipped, p)
			if !isNoted {
				cands = append(cands, candidate{noted: noted{p: p}})
			}
		}
	}
	for _, f := range out.Failed {
		if f.SenderFault {
			// Not to be retried (an invalid handle): the message comes back under a new
			// handle and a new note. SQS's own faults are retried with this handle.
			delete(c.done, handles[aws.ToString(f.Id)])
		}
	}
	if len(cands) == 0 {
		return out, nil
	}
	var backlog []Pointer
	if free := max(MaxPendingDeletes-c.pending, 0); len(cands) > free {
		for _, cand := range cands[free:] {
			backlog = append(backlog, cand.p)
		}
		cands = cands[:free]
	}
	// A receive in flight now may have taken the message again (then this handle was stale):
	// the deletion waits for it to record what it got.
	waits := make([]chan struct{}, 0, len(c.receiving))
	for _, ch := range c.receiving {
		waits = append(waits, ch)
	}
	if c.workers == 0 {
		c.idle = make(chan struct{})
	}
	c.workers++
	c.pending += len(cands)
	go c.deleteObjects(cands, waits, backlog)
	return out, nil
}

// deleteObjects reports the backlog, waits for the receives in waits, and deletes the
// objects of cands whose messages were not received again since, up to 10 at a time.
func (c *Client) deleteObjects(cands []candidate, waits []chan struct{}, backlog []Pointer) {
	defer func() {
		c.mu.Lock()
		c.pending -= len(cands)
		if c.workers--; c.workers == 0 {
			close(c.idle)
		}
		c.mu.Unlock()
	}()
	for _, p := range backlog {
		c.reportError(p, ErrDeleteBacklog)
	}
	for _, ch := range waits {
		<-ch
	}
	var objects []Pointer
	c.mu.Lock()
	for _, cand := range cands {
		if cand.id != "" {
			if r, seen := c.latest[cand.id]; seen && r.handle != cand.handle {
				continue // received again: this handle was stale, the message may still be there
			}
			c.forgetLocked(cand.id)
		}
		if c.holders[cand.p] > 0 {
			// Another message received through this Client points at the same object (a
			// rerouted original, a copy of a fan-out): the last of them to be deleted
			// deletes it.
			c.skipped[cand.p] = struct{}{}
			continue
		}
		objects = append(objects, cand.p)
	}
	c.mu.Unlock()
	var g errgroup.Group
	g.SetLimit(10)
	for _, p := range objects {
		g.Go(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			if _, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(p.Key)}); err != nil {
				c.reportError(p, err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// reportError tells WithDeleteErrors's function; a panic in it is recovered and dropped.
func (c *Client) reportError(p Pointer, err error) {
	if c.onError == nil {
		return
	}
	defer func() { _ = recover() }()
	c.onError(p, err)
}

// Close waits until the object deletions the Client has started are finished, or ctx ends,
// and returns ctx's error then. A deletion first waits for the receives through the Client
// that were in flight when its message's delete was confirmed (one may have taken the
// message again), then each DELETE is bounded by WithDeleteTimeout; so call Close once the
// consumers using the Client have stopped receiving. It does not stop the Client, which may
// be used again; deletions started after Close began are not waited for.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
