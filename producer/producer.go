// Package producer sends messages to an SQS queue in batches: concurrent Send calls share
// SendMessageBatch requests of up to 10 entries and the queue's size limit, partial failures
// are retried per message, and Flush and Close lose nothing.
package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
)

// Client is the subset of *sqs.Client a Producer calls; sqstest.Server satisfies it too.
type Client interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Errors; test with errors.Is.
var (
	ErrInvalidOption = errors.New("producer: invalid option")
	ErrInvalid       = errors.New("producer: invalid message") // refused before any request
	ErrTooLarge      = errors.New("producer: message larger than the queue's MaximumMessageSize")
	ErrClosed        = errors.New("producer: closed")
)

// Message is one message to send.
type Message struct {
	Body       string
	Delay      time.Duration // 0..15 min, whole seconds; not on FIFO queues
	Attributes map[string]types.MessageAttributeValue
	// GroupID is required on a FIFO queue; on a standard queue it is passed on (fair queues).
	GroupID string
	// DeduplicationID is for FIFO queues without content-based deduplication.
	DeduplicationID string
}

// SendError is why SQS refused a message after the retries.
type SendError struct {
	Code        string
	SenderFault bool
	Err         error
}

func (e *SendError) Error() string { return "producer: send failed: " + e.Code + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *SendError) Unwrap() error { return e.Err }

// Option configures a Producer.
type Option func(*Producer) error

// WithBatchWindow sets how long a partial batch waits for more messages before it is sent
// (default 5 ms). 0 sends at once what has gathered. d must be >= 0.
func WithBatchWindow(d time.Duration) Option {
	return func(p *Producer) error {
		if d < 0 {
			return fmt.Errorf("%w: WithBatchWindow %v, want >= 0", ErrInvalidOption, d)
		}
		p.window = d
		return nil
	}
}

// WithMaxMessageSize sets the size limit instead of reading the queue's MaximumMessageSize
// attribute (which needs sqs:GetQueueAttributes). n must be 1 KiB..1 MiB.
func WithMaxMessageSize(n int) Option {
	return func(p *Producer) error {
		if n < 1024 || n > 1<<20 {
			return fmt.Errorf("%w: WithMaxMessageSize %d, want 1024..1048576", ErrInvalidOption, n)
		}
		p.maxBytes = n
		return nil
	}
}

// Offloader moves a message's body elsewhere before it is sent; adapters/sqsextended stores
// large bodies in S3 and sends a pointer, the way the AWS extended clients do. See
// WithOffload.
type Offloader interface {
	// Offload returns the message to send in m's place: m itself when it stays as it is. It
	// is called once per message, after the producer has checked everything but the size,
	// and may block (an upload). An error refuses the message: Send returns it unchanged.
	Offload(ctx context.Context, m Message) (Message, error)
	// Unsent is told about a message Offload changed that was certainly not sent (too large
	// after all, the producer closed, an entry SQS failed, a call SQS refused as invalid), so
	// that what Offload stored can be removed. A send whose outcome is unknown (a timeout, a
	// reset connection) is not reported: the message may be in the queue. For a message
	// refused before any request Unsent runs in Send before it returns; for one SQS refused,
	// once the whole batch is settled, off the path of other messages (Flush and Close wait
	// for it). It may block, within a ctx bounded by 30 s.
	Unsent(ctx context.Context, m Message)
}

// WithOffload passes every message through o before it is checked against the size limit
// and batched (adapters/sqsextended.Offloader puts bodies over a threshold in S3). The message
// is otherwise checked first, but an empty body is allowed through (an Offloader may store an
// empty payload); what o returns is checked in full. SendBatch offloads up to 8 messages at a
// time. On a FIFO queue, a message o changed that has no DeduplicationID gets the hex SHA-256
// of its original body, the ID content-based deduplication would have made of it (the pointer
// sent instead differs with every upload). o must not be nil.
func WithOffload(o Offloader) Option {
	return func(p *Producer) error {
		if o == nil {
			return fmt.Errorf("%w: WithOffload(nil)", ErrInvalidOption)
		}
		p.offload = o
		return nil
	}
}

const (
	attempts    = 4 // tries of an entry SQS says may succeed later
	callTimeout = 30 * time.Second
)

var retry = backoff.Exponential{Base: 50 * time.Millisecond, Max: time.Second}

// Producer batches messages to one queue. It is safe for concurrent use. Create it with New.
type Producer struct {
	client   Client
	queueURL string
	fifo     bool
	window   time.Duration

	sizeMu   sync.Mutex
	maxBytes int // the queue's MaximumMessageSize, once known
	offload  Offloader
	// Places taken by reserve for messages being offloaded, given up once each is queued or
	// refused; prepared is closed when none is taken.
	preparing int
	prepared  chan struct{}

	mu      sync.Mutex
	pending []*send
	bytes   int
	timer   *time.Timer
	gen     int
	closed  bool
	sending map[chan struct{}]struct{} // batches being sent, each closed when settled
	calls   int64                      // SendMessageBatch requests made
}

type send struct {
	m         Message
	size      int
	offloaded bool // m is what the Offloader returned: tell it when m is not sent
	uncertain bool // an attempt may have sent m (deliver's goroutine only)
	id        string
	err       error
	done      chan struct{}
}

// New returns a producer for the queue at queueURL (a FIFO queue when it ends in ".fifo").
// It validates its arguments (errors wrap ErrInvalidOption), makes no call and starts no
// goroutine.
func New(client Client, queueURL string, opts ...Option) (*Producer, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrInvalidOption)
	}
	if strings.TrimSpace(queueURL) == "" {
		return nil, fmt.Errorf("%w: empty queue URL", ErrInvalidOption)
	}
	p := &Producer{client: client, queueURL: queueURL, fifo: strings.HasSuffix(queueURL, ".fifo"), window: 5 * time.Millisecond}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Requests reports how many SendMessageBatch requests the producer has made.
func (p *Producer) Requests() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// limit returns the queue's size limit, reading MaximumMessageSize on first use (and again
// after a failed read).
func (p *Producer) limit(ctx context.Context) (int, error) {
	p.sizeMu.Lock()
	defer p.sizeMu.Unlock()
	if p.maxBytes > 0 {
		return p.maxBytes, nil
	}
	out, err := p.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &p.queueURL,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameMaximumMessageSize}})
	if err != nil {
		return 0, fmt.Errorf("producer: read MaximumMessageSize: %w", err)
	}
	v := out.Attributes[string(types.QueueAttributeNameMaximumMessageSize)]
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("producer: queue MaximumMessageSize %q", v)
	}
	p.maxBytes = n
	return n, nil
}

// Size is what SQS counts of m against the queue's MaximumMessageSize: the body's bytes and
// every attribute's name, type and value.
func Size(m Message) int {
	n := len(m.Body)
	for k, v := range m.Attributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

// validate refuses what SQS would refuse but the size (and an empty body, unless
// beforeOffload: an Offloader may store an empty payload and send a pointer).
func (p *Producer) validate(m Message, beforeOffload bool) error {
	switch {
	case m.Body == "" && !beforeOffload:
		return fmt.Errorf("%w: empty body", ErrInvalid)
	case m.Delay < 0 || m.Delay > 15*time.Minute:
		return fmt.Errorf("%w: delay %v, want 0..15m", ErrInvalid, m.Delay)
	case p.fifo && m.Delay > 0:
		return fmt.Errorf("%w: FIFO queues take no per-message delay", ErrInvalid)
	case p.fifo && m.GroupID == "":
		return fmt.Errorf("%w: a FIFO queue needs a GroupID", ErrInvalid)
	case len(m.Attributes) > 10:
		return fmt.Errorf("%w: %d attributes, at most 10", ErrInvalid, len(m.Attributes))
	}
	return nil
}

// check validates m and returns its size, refusing one over limit.
func (p *Producer) check(m Message, limit int) (int, error) {
	if err := p.validate(m, false); err != nil {
		return 0, err
	}
	n := Size(m)
	if n > limit {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	return n, nil
}

// Send queues m for the next batch and blocks until SQS accepted it (returning its MessageId)
// or refused it (a *SendError after the retries SQS allows), or ctx ends. A message refused
// before any request (ErrInvalid, ErrTooLarge) costs nothing. When ctx ends first, Send
// returns ctx's error but the message may still be sent with its batch.
func (p *Producer) Send(ctx context.Context, m Message) (string, error) {
	if p.offload != nil {
		if err := p.validate(m, true); err != nil {
			return "", err
		}
		if err := p.reserve(1); err != nil {
			return "", err
		}
	}
	m, offloaded, err := p.prepare(ctx, m)
	if err != nil {
		return "", err
	}
	s, err := p.enqueue(ctx, m, offloaded)
	if err != nil {
		return "", err
	}
	select {
	case <-s.done:
		return s.id, s.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Result is one message's outcome in SendBatch.
type Result struct {
	MessageID string
	Err       error
}

// SendBatch sends msgs, batched with each other and with concurrent Sends, and returns each
// one's outcome in order. It blocks until all are settled or ctx ends (then the outcomes not
// yet known are ctx's error).
func (p *Producer) SendBatch(ctx context.Context, msgs []Message) []Result {
	out := make([]Result, len(msgs))
	sends := make([]*send, len(msgs))
	ready := msgs
	offloaded := make([]bool, len(msgs))
	if p.offload != nil {
		// Every valid message takes its place at once, so that a Close during the uploads
		// waits for all of them, not only those whose upload has begun.
		valid := 0
		for i, m := range msgs {
			if out[i].Err = p.validate(m, true); out[i].Err == nil {
				valid++
			}
		}
		if err := p.reserve(valid); err != nil {
			for i := range out {
				if out[i].Err == nil {
					out[i].Err = err
				}
			}
			return out
		}
		ready = make([]Message, len(msgs))
		var g errgroup.Group
		g.SetLimit(8)
		for i, m := range msgs {
			if out[i].Err != nil {
				continue
			}
			g.Go(func() error {
				ready[i], offloaded[i], out[i].Err = p.prepare(ctx, m)
				return nil
			})
		}
		_ = g.Wait()
	}
	for i, m := range ready {
		if out[i].Err != nil {
			continue
		}
		s, err := p.enqueue(ctx, m, offloaded[i])
		if err != nil {
			out[i].Err = err
			continue
		}
		sends[i] = s
	}
	for i, s := range sends {
		if s == nil {
			continue
		}
		select {
		case <-s.done:
			out[i] = Result{MessageID: s.id, Err: s.err}
		case <-ctx.Done():
			out[i].Err = ctx.Err()
		}
	}
	return out
}

// reserve takes n places Close waits for (messages about to be offloaded), or refuses them
// when the producer is closed. Each is given up by prepare's failure or by enqueue.
func (p *Producer) reserve(n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if n == 0 {
		return nil
	}
	if p.preparing == 0 {
		p.prepared = make(chan struct{})
	}
	p.preparing += n
	return nil
}

// prepare passes m, already validated and holding a place (reserve), through the Offloader,
// if there is one; offloaded reports that the result is the Offloader's (to be told when it
// is not sent). On failure, or a panic in the Offloader, the place is given up; on success
// enqueue gives it up.
func (p *Producer) prepare(ctx context.Context, m Message) (_ Message, offloaded bool, _ error) {
	if p.offload == nil {
		return m, false, nil
	}
	handed := false
	defer func() {
		if !handed {
			p.leave()
		}
	}()
	out, err := p.offload.Offload(ctx, m)
	if err != nil {
		return m, false, err
	}
	handed = true
	// A message the Offloader left as it was (small, or a pointer passed on) is not its to
	// clean up.
	offloaded = out.Body != m.Body
	if offloaded && p.fifo && out.DeduplicationID == "" {
		// Content-based deduplication would hash the pointer, new for every upload: give the
		// message the ID SQS would have made of the body it carries (a SHA-256 of it).
		sum := sha256.Sum256([]byte(m.Body))
		out.DeduplicationID = hex.EncodeToString(sum[:])
	}
	return out, offloaded, nil
}

// leave gives up a place taken by reserve.
func (p *Producer) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaveLocked()
}

// leaveLocked is leave with p.mu held.
func (p *Producer) leaveLocked() {
	if p.preparing--; p.preparing == 0 {
		close(p.prepared)
	}
}

// unsent tells the Offloader that m, which it returned, was not sent; ctx's cancellation is
// ignored (the caller may have given up) but the call is bounded.
func (p *Producer) unsent(ctx context.Context, m Message) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	p.offload.Unsent(ctx, m)
}

// enqueue adds m to the pending batch; offloaded: m came from the Offloader.
func (p *Producer) enqueue(ctx context.Context, m Message, offloaded bool) (*send, error) {
	s, err := p.add(ctx, m, offloaded)
	if err != nil {
		if offloaded {
			p.unsent(ctx, m)
		}
		if p.offload != nil { // the place is given up only now: Close waits for the cleanup
			p.leave()
		}
	}
	return s, err
}

// add queues m for a batch. With an Offloader, m holds a place (reserve): it is queued even
// after Close began (Close waits for it), and the place is given up once it is queued, or by
// enqueue when it is refused.
func (p *Producer) add(ctx context.Context, m Message, offloaded bool) (*send, error) {
	limit, err := p.limit(ctx)
	if err != nil {
		return nil, err
	}
	n, err := p.check(m, limit)
	if err != nil {
		return nil, err
	}
	s := &send{m: m, size: n, offloaded: offloaded, done: make(chan struct{})}
	p.mu.Lock()
	if p.offload != nil {
		p.leaveLocked() // queued: Close's flush sends it
	} else if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if len(p.pending) > 0 && p.bytes+n > limit {
		p.flushLocked() // this message would make the batch too large: send what is there
	}
	p.pending = append(p.pending, s)
	p.bytes += n
	switch {
	case len(p.pending) >= 10 || p.window == 0:
		p.flushLocked()
	case len(p.pending) == 1:
		gen := p.gen
		p.timer = time.AfterFunc(p.window, func() {
			p.mu.Lock()
			if gen == p.gen {
				p.flushLocked()
			}
			p.mu.Unlock()
		})
	}
	p.mu.Unlock()
	return s, nil
}

// flushLocked starts sending the pending batch; p.mu is held.
func (p *Producer) flushLocked() {
	if len(p.pending) == 0 {
		return
	}
	batch := p.pending
	p.pending, p.bytes = nil, 0
	p.gen++
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	settled := make(chan struct{})
	if p.sending == nil {
		p.sending = map[chan struct{}]struct{}{}
	}
	p.sending[settled] = struct{}{}
	go func() {
		defer func() {
			p.mu.Lock()
			delete(p.sending, settled)
			p.mu.Unlock()
			close(settled)
		}()
		p.deliver(batch)
	}()
}

// policy is how hard deliver tries: an entry SQS says may succeed later, or does not mention,
// and a failed call are retried up to attempts times.
var policy = sqsbatch.Policy{Attempts: attempts, Backoff: retry, Timeout: callTimeout}

// deliver sends one batch, retrying the entries and calls that may succeed later, and settles
// each send.
func (p *Producer) deliver(batch []*send) {
	var unsent []Message // offloaded messages SQS refused
	sqsbatch.Do(len(batch), policy, func(ctx context.Context, idx []int) (sqsbatch.Response, error) {
		entries := make([]types.SendMessageBatchRequestEntry, len(idx))
		for j, i := range idx {
			m := batch[i].m
			e := types.SendMessageBatchRequestEntry{Id: batchid.For(j), MessageBody: aws.String(m.Body),
				MessageAttributes: m.Attributes, DelaySeconds: int32((m.Delay + time.Second - 1) / time.Second)}
			if m.GroupID != "" {
				e.MessageGroupId = aws.String(m.GroupID)
			}
			if m.DeduplicationID != "" {
				e.MessageDeduplicationId = aws.String(m.DeduplicationID)
			}
			entries[j] = e
		}
		p.mu.Lock()
		p.calls++
		p.mu.Unlock()
		out, err := p.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &p.queueURL, Entries: entries})
		if err != nil {
			if !clientFault(err) {
				for _, i := range idx {
					batch[i].uncertain = true // SQS may have carried the call out
				}
			}
			return sqsbatch.Response{}, err
		}
		resp := sqsbatch.Response{Failed: out.Failed, Successful: make([]sqsbatch.Success, len(out.Successful))}
		mentioned := make(map[string]bool, len(idx))
		for j, ok := range out.Successful {
			resp.Successful[j] = sqsbatch.Success{ID: ok.Id, MessageID: aws.ToString(ok.MessageId)}
			mentioned[aws.ToString(ok.Id)] = true
		}
		for _, f := range out.Failed {
			mentioned[aws.ToString(f.Id)] = true
		}
		for j, i := range idx {
			if !mentioned[*entries[j].Id] {
				batch[i].uncertain = true // an entry the answer left out may have been sent
			}
		}
		return resp, nil
	}, func(i int, r sqsbatch.Result) {
		s := batch[i]
		switch {
		case r.OK:
			s.id = r.MessageID
		case r.Err != nil:
			s.err = &SendError{Code: "RequestFailed", Err: r.Err}
		default:
			s.err = &SendError{Code: r.Code, SenderFault: r.SenderFault, Err: r.Error()}
		}
		if s.offloaded && !s.uncertain && refused(r) {
			unsent = append(unsent, s.m)
		}
		close(s.done)
	})
	// After every send of the batch is settled, so that no caller waits for the cleanup.
	var g errgroup.Group
	g.SetLimit(8)
	for _, m := range unsent {
		g.Go(func() error { p.unsent(context.Background(), m); return nil })
	}
	_ = g.Wait()
}

// refused reports that the last attempt at a message certainly did not send it: SQS failed
// the entry, or answered the call with an error of the request's own (a 4xx). A call that
// failed otherwise (a timeout, a reset connection, a 5xx) may have been carried out; so may
// any earlier attempt that ended so (send.uncertain): the message may be in the queue, and
// what the Offloader stored for it must stay.
func refused(r sqsbatch.Result) bool {
	switch {
	case r.OK, r.Code == sqsbatch.CodeNoResult:
		return false
	case r.Err == nil:
		return true // an entry SQS reported failed
	}
	return clientFault(r.Err)
}

// clientFault reports an error SQS answered as the request's own fault: nothing was done.
func clientFault(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorFault() == smithy.FaultClient
}

// Flush sends what waits for its batch to fill and blocks until every batch started so far
// is settled, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushLocked()
	batches := make([]chan struct{}, 0, len(p.sending))
	for settled := range p.sending {
		batches = append(batches, settled)
	}
	p.mu.Unlock()
	for _, settled := range batches {
		select {
		case <-settled:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close refuses further messages (ErrClosed), waits for the messages Send or SendBatch was
// given before it that are still being offloaded, then flushes as Flush does. Calling it again
// is harmless.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	waiting, prepared := p.preparing, p.prepared
	p.mu.Unlock()
	if waiting > 0 {
		select {
		case <-prepared: // the messages Send was given before Close, still being offloaded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p.Flush(ctx)
}
