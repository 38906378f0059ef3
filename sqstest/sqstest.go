// Package sqstest is an in-memory SQS for tests: a Server whose methods have the exact
// signatures of *sqs.Client, so it satisfies sqsconsumer.Client and any other small interface
// cut from the SDK client.
//
// It models SQS, not an emulator: visibility timeouts; a new receipt handle on every receive,
// where a delete with a superseded handle is accepted without deleting, as SQS does (WithStrict
// makes it fail, so a stale delete cannot hide); visibility changes on an expired or superseded
// handle refused; ApproximateReceiveCount; long polls that wait for messages; delay seconds;
// redrive to a dead-letter queue after maxReceiveCount; FIFO queues with in-order groups
// (several messages of one group may come in one receive, none while one of the group is in
// flight) and deduplication in a 5-minute window; and fault injection (SetFaults) for errors,
// throttling, partial batch failures and latency.
//
// Time is the runtime's clock, so tests in a testing/synctest bubble run on fake time.
package sqstest

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

const (
	urlPrefix       = "https://sqstest.invalid/000000000000/"
	arnPrefix       = "arn:aws:sqs:us-east-1:000000000000:"
	maxVisibility   = 12 * time.Hour
	dedupWindow     = 5 * time.Minute
	defaultMaxBytes = 262144
)

// Option configures a Server.
type Option func(*Server)

// WithStrict makes a delete with a superseded receipt handle, or of a message already deleted,
// fail with ReceiptHandleIsInvalid instead of succeeding without effect.
func WithStrict() Option { return func(s *Server) { s.strict = true } }

// Faults injects failures. Each hook may be nil, is called without the server's lock held, and
// must be safe for concurrent use.
type Faults struct {
	// Call is consulted before each call with the operation name (e.g. "ReceiveMessage") and
	// the call's input (e.g. *sqs.ReceiveMessageInput); a non-nil error is returned instead of
	// performing the call.
	Call func(op string, in any) error
	// Entry is consulted for each entry of a DeleteMessageBatch, ChangeMessageVisibilityBatch
	// or SendMessageBatch before it is applied, with the entry's receipt handle ("" for a
	// send); a non-nil result fails that entry (its Id is filled in) and leaves the message as
	// it was.
	Entry func(op, receiptHandle string) *types.BatchResultErrorEntry
	// Latency returns a delay to wait before the call is performed; the wait ends early with
	// ctx's error when ctx ends.
	Latency func(op string, in any) time.Duration
}

// Server is an in-memory SQS. Its methods are safe for concurrent use. The zero value is not
// usable; call New.
type Server struct {
	strict bool
	faults atomic.Pointer[Faults]
	calls  sync.Map // op -> *atomic.Int64

	mu     sync.Mutex
	queues map[string]*queue // by name
	nextID int64
}

// New returns an empty server.
func New(opts ...Option) *Server {
	s := &Server{queues: make(map[string]*queue)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetFaults replaces the fault hooks; the zero Faults turns injection off.
func (s *Server) SetFaults(f Faults) { s.faults.Store(&f) }

// Calls reports how many calls of the operation the server has answered or failed so far
// (injected failures count). An empty op counts every call.
func (s *Server) Calls(op string) int64 {
	if op != "" {
		if v, ok := s.calls.Load(op); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	var n int64
	s.calls.Range(func(_, v any) bool { n += v.(*atomic.Int64).Load(); return true })
	return n
}

// QueueStats is a snapshot of one queue.
type QueueStats struct {
	Visible  int // can be received now
	InFlight int // received, invisible
	Delayed  int // sent with a delay that has not passed
	Sent     int64
	Deleted  int64
	// StaleDeletes counts deletes that named a superseded handle or an already deleted message:
	// accepted without effect, or failed under WithStrict.
	StaleDeletes int64
	// MovedToDLQ counts messages moved to the dead-letter queue by the redrive policy.
	MovedToDLQ int64
}

// Stats returns a snapshot of the queue at url; ok is false when there is no such queue.
func (s *Server) Stats(url string) (st QueueStats, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.byURL(url)
	if q == nil {
		return st, false
	}
	return q.stats(time.Now()), true
}

func (q *queue) stats(now time.Time) QueueStats {
	st := QueueStats{Sent: q.sent, Deleted: q.deleted, StaleDeletes: q.staleDeletes, MovedToDLQ: q.movedToDLQ}
	for e := q.msgs.Front(); e != nil; e = e.Next() {
		m := e.Value.(*message)
		switch {
		case m.visibleAt.After(now) && m.handle != "":
			st.InFlight++
		case m.visibleAt.After(now):
			st.Delayed++
		default:
			st.Visible++
		}
	}
	return st
}

// MustCreateQueue creates a queue with the given attributes (as CreateQueue takes them, e.g.
// "VisibilityTimeout", "RedrivePolicy", "FifoQueue") and returns its URL. It panics on
// error, which only a bad attribute causes; it is meant for test setup.
func (s *Server) MustCreateQueue(name string, attrs map[string]string) string {
	out, err := s.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		panic(err)
	}
	return *out.QueueUrl
}

type queue struct {
	name, url, arn string
	fifo           bool
	contentDedup   bool
	visibility     time.Duration
	delay          time.Duration
	wait           time.Duration
	maxBytes       int
	dlqArn         string
	maxReceives    int
	attrs          map[string]string

	msgs    *list.List // of *message, in send order
	byID    map[int64]*message
	dedup   map[string]time.Time // FIFO deduplication id -> when first seen
	seq     int64
	changed chan struct{} // closed and replaced when a message may have become receivable

	sent, deleted, staleDeletes, movedToDLQ int64
}

type message struct {
	key          int64
	id           string
	body         string
	attrs        map[string]types.MessageAttributeValue
	group, dedup string
	seq          string
	sentAt       time.Time
	visibleAt    time.Time
	receivedAt   time.Time // of the current receipt
	firstReceive time.Time
	receiveCount int
	handle       string // the current receipt handle; "" before the first receive
	elem         *list.Element
}

func (q *queue) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (s *Server) byURL(url string) *queue {
	name := url[strings.LastIndexByte(url, '/')+1:]
	q := s.queues[name]
	if q == nil || q.url != url {
		return nil
	}
	return q
}

func (s *Server) byArn(arn string) *queue {
	if !strings.HasPrefix(arn, arnPrefix) {
		return nil
	}
	return s.queues[strings.TrimPrefix(arn, arnPrefix)]
}

// begin counts the call and applies injected latency and errors.
func (s *Server) begin(ctx context.Context, op string, in any) error {
	v, ok := s.calls.Load(op)
	if !ok {
		v, _ = s.calls.LoadOrStore(op, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
	f := s.faults.Load()
	if f == nil {
		return ctx.Err()
	}
	if f.Latency != nil {
		if d := f.Latency(op, in); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	if f.Call != nil {
		if err := f.Call(op, in); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (s *Server) entryFault(op, handle string) *types.BatchResultErrorEntry {
	f := s.faults.Load()
	if f == nil || f.Entry == nil {
		return nil
	}
	return f.Entry(op, handle)
}

func missingQueue() error {
	return &types.QueueDoesNotExist{Message: ptr("The specified queue does not exist.")}
}

func invalidParam(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func ptr[T any](v T) *T { return &v }

// CreateQueue implements the SQS call. Supported attributes: VisibilityTimeout, DelaySeconds,
// ReceiveMessageWaitTimeSeconds, MaximumMessageSize, RedrivePolicy, FifoQueue,
// ContentBasedDeduplication; others are stored and returned as given. Creating an existing
// queue with the same attributes returns its URL.
func (s *Server) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, _ ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	if err := s.begin(ctx, "CreateQueue", in); err != nil {
		return nil, err
	}
	name := deref(in.QueueName)
	if name == "" || len(name) > 80 {
		return nil, invalidParam("invalid queue name %q", name)
	}
	attrs := map[string]string{}
	for k, v := range in.Attributes {
		attrs[k] = v
	}
	q := &queue{
		name: name, url: urlPrefix + name, arn: arnPrefix + name,
		visibility: 30 * time.Second, maxBytes: defaultMaxBytes, attrs: attrs,
		msgs: list.New(), byID: map[int64]*message{}, dedup: map[string]time.Time{}, changed: make(chan struct{}),
	}
	q.fifo = attrs["FifoQueue"] == "true"
	if q.fifo != strings.HasSuffix(name, ".fifo") {
		return nil, invalidParam("a FIFO queue's name ends in .fifo, and only a FIFO queue's")
	}
	q.contentDedup = attrs["ContentBasedDeduplication"] == "true"
	var err error
	if q.visibility, err = secondsAttr(attrs, "VisibilityTimeout", 30, 0, 43200); err != nil {
		return nil, err
	}
	if q.delay, err = secondsAttr(attrs, "DelaySeconds", 0, 0, 900); err != nil {
		return nil, err
	}
	if q.wait, err = secondsAttr(attrs, "ReceiveMessageWaitTimeSeconds", 0, 0, 20); err != nil {
		return nil, err
	}
	if v, ok := attrs["MaximumMessageSize"]; ok {
		if q.maxBytes, err = strconv.Atoi(v); err != nil || q.maxBytes < 1024 || q.maxBytes > 1048576 {
			return nil, invalidParam("MaximumMessageSize %q", v)
		}
	}
	if v, ok := attrs["RedrivePolicy"]; ok {
		var p struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     any    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return nil, invalidParam("RedrivePolicy: %v", err)
		}
		n, err := strconv.Atoi(fmt.Sprint(p.MaxReceiveCount))
		if err != nil || n < 1 || n > 1000 || p.DeadLetterTargetArn == "" {
			return nil, invalidParam("RedrivePolicy %s", v)
		}
		q.dlqArn, q.maxReceives = p.DeadLetterTargetArn, n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.dlqArn != "" && s.byArn(q.dlqArn) == nil {
		return nil, invalidParam("dead-letter queue %s does not exist", q.dlqArn)
	}
	if old := s.queues[name]; old != nil {
		return &sqs.CreateQueueOutput{QueueUrl: ptr(old.url)}, nil
	}
	s.queues[name] = q
	return &sqs.CreateQueueOutput{QueueUrl: ptr(q.url)}, nil
}

func secondsAttr(attrs map[string]string, name string, def, lo, hi int) (time.Duration, error) {
	v, ok := attrs[name]
	if !ok {
		return time.Duration(def) * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalidParam("%s %q, want %d..%d", name, v, lo, hi)
	}
	return time.Duration(n) * time.Second, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// GetQueueUrl implements the SQS call.
func (s *Server) GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	if err := s.begin(ctx, "GetQueueUrl", in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[deref(in.QueueName)]; q != nil {
		return &sqs.GetQueueUrlOutput{QueueUrl: ptr(q.url)}, nil
	}
	return nil, missingQueue()
}

// GetQueueAttributes implements the SQS call; it returns every attribute it knows whatever
// is asked: QueueArn, the approximate counts, and those the queue was created with.
func (s *Server) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	out := map[string]string{}
	err := s.locked(ctx, "GetQueueAttributes", in, deref(in.QueueUrl), func(q *queue) error {
		for k, v := range q.attrs {
			out[k] = v
		}
		st := q.stats(time.Now())
		out["QueueArn"] = q.arn
		out["VisibilityTimeout"] = strconv.Itoa(int(q.visibility / time.Second))
		out["MaximumMessageSize"] = strconv.Itoa(q.maxBytes)
		out["ApproximateNumberOfMessages"] = strconv.Itoa(st.Visible)
		out["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(st.InFlight)
		out["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(st.Delayed)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sqs.GetQueueAttributesOutput{Attributes: out}, nil
}

// PurgeQueue implements the SQS call: every message, in flight or not, is deleted.
func (s *Server) PurgeQueue(ctx context.Context, in *sqs.PurgeQueueInput, _ ...func(*sqs.Options)) (*sqs.PurgeQueueOutput, error) {
	err := s.locked(ctx, "PurgeQueue", in, deref(in.QueueUrl), func(q *queue) error {
		q.msgs.Init()
		q.byID = map[int64]*message{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sqs.PurgeQueueOutput{}, nil
}

// sendEntry is what SendMessage and SendMessageBatch have in common.
type sendEntry struct {
	body         *string
	delay        int32
	attrs        map[string]types.MessageAttributeValue
	group, dedup *string
}

func (s *Server) send(q *queue, e sendEntry, now time.Time) (id, seq, md5 string, err error) {
	body := deref(e.body)
	if body == "" {
		return "", "", "", invalidParam("the message body must not be empty")
	}
	size := len(body)
	for k, v := range e.attrs {
		size += len(k) + len(deref(v.DataType)) + len(deref(v.StringValue)) + len(v.BinaryValue)
	}
	if size > q.maxBytes {
		return "", "", "", invalidParam("message of %d bytes exceeds the queue's MaximumMessageSize of %d", size, q.maxBytes)
	}
	if len(e.attrs) > 10 {
		return "", "", "", invalidParam("%d message attributes, at most 10", len(e.attrs))
	}
	if e.delay < 0 || e.delay > 900 {
		return "", "", "", invalidParam("DelaySeconds %d, want 0..900", e.delay)
	}
	delay := q.delay
	if e.delay > 0 {
		delay = time.Duration(e.delay) * time.Second
	}
	m := &message{body: body, attrs: e.attrs, sentAt: now, visibleAt: now.Add(delay)}
	if q.fifo {
		if e.delay > 0 {
			return "", "", "", invalidParam("FIFO queues take no per-message DelaySeconds")
		}
		m.group, m.dedup = deref(e.group), deref(e.dedup)
		if m.group == "" {
			return "", "", "", &smithy.GenericAPIError{Code: "MissingParameter", Message: "MessageGroupId is required for a FIFO queue", Fault: smithy.FaultClient}
		}
		if m.dedup == "" {
			if !q.contentDedup {
				return "", "", "", invalidParam("a MessageDeduplicationId is required when ContentBasedDeduplication is off")
			}
			sum := sha256.Sum256([]byte(body))
			m.dedup = hex.EncodeToString(sum[:])
		}
	} else {
		m.group = deref(e.group) // standard queues carry group ids too (fair queues)
	}
	s.nextID++
	m.key = s.nextID
	m.id = fmt.Sprintf("00000000-0000-4000-8000-%012x", m.key)
	if q.fifo {
		if first, ok := q.dedup[m.dedup]; ok && now.Sub(first) < dedupWindow {
			return m.id, "", md5Hex(body), nil // accepted, not enqueued again
		}
		q.dedup[m.dedup] = now
		q.seq++
		m.seq = fmt.Sprintf("%020d", q.seq)
	}
	m.elem = q.msgs.PushBack(m)
	q.byID[m.key] = m
	q.sent++
	q.notify()
	return m.id, m.seq, md5Hex(body), nil
}

// SendMessage implements the SQS call.
func (s *Server) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	var out *sqs.SendMessageOutput
	err := s.locked(ctx, "SendMessage", in, deref(in.QueueUrl), func(q *queue) error {
		id, seq, sum, err := s.send(q, sendEntry{in.MessageBody, in.DelaySeconds, in.MessageAttributes, in.MessageGroupId, in.MessageDeduplicationId}, time.Now())
		if err != nil {
			return err
		}
		out = &sqs.SendMessageOutput{MessageId: ptr(id), MD5OfMessageBody: ptr(sum)}
		if seq != "" {
			out.SequenceNumber = ptr(seq)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SendMessageBatch implements the SQS call, including its limits: 1..10 entries with distinct
// ids, and the request size.
func (s *Server) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	ids := make([]*string, len(in.Entries))
	total := 0
	for i, e := range in.Entries {
		ids[i] = e.Id
		total += len(deref(e.MessageBody))
	}
	out := &sqs.SendMessageBatchOutput{}
	tooLong := func(q *queue) error {
		if total > q.maxBytes {
			return &types.BatchRequestTooLong{Message: ptr(fmt.Sprintf("batch of %d bytes exceeds %d", total, q.maxBytes))}
		}
		return nil
	}
	_, failed, err := s.batch(ctx, "SendMessageBatch", in, deref(in.QueueUrl), ids, nil, tooLong, func(q *queue, i int, now time.Time) *entryError {
		e := in.Entries[i]
		id, seq, sum, err := s.send(q, sendEntry{e.MessageBody, e.DelaySeconds, e.MessageAttributes, e.MessageGroupId, e.MessageDeduplicationId}, now)
		if err != nil {
			return &entryError{errorCode(err), err.Error()}
		}
		r := types.SendMessageBatchResultEntry{Id: e.Id, MessageId: ptr(id), MD5OfMessageBody: ptr(sum)}
		if seq != "" {
			r.SequenceNumber = ptr(seq)
		}
		out.Successful = append(out.Successful, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.Failed = failed
	return out, nil
}

func errorCode(err error) string {
	if api, ok := err.(smithy.APIError); ok {
		return api.ErrorCode()
	}
	return "InternalError"
}

func checkBatch(ids []*string) error {
	if len(ids) == 0 {
		return &types.EmptyBatchRequest{Message: ptr("the batch has no entries")}
	}
	if len(ids) > 10 {
		return &types.TooManyEntriesInBatchRequest{Message: ptr(fmt.Sprintf("%d entries, at most 10", len(ids)))}
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if deref(id) == "" {
			return &types.InvalidBatchEntryId{Message: ptr("empty batch entry id")}
		}
		if seen[*id] {
			return &types.BatchEntryIdsNotDistinct{Message: ptr("duplicate batch entry id " + *id)}
		}
		seen[*id] = true
	}
	return nil
}
