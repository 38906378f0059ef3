// Package sqstest is an in-memory SQS for tests: a Server whose methods have the exact
// signatures of *sqs.Client, so it satisfies sqsconsumer.Client and any other small interface
// cut from the SDK client.
//
// It models SQS, not an emulator, and a conformance suite holds it to the SQS API reference
// (conformance_test.go, run against the fauxqs emulator too):
//   - visibility timeouts; a new receipt handle on every receive, where a delete with a
//     superseded handle is accepted without deleting on a standard queue, as SQS does
//     (WithStrict makes it fail, so a stale delete cannot hide); on a FIFO queue a handle whose
//     visibility lapsed is refused as expired; visibility changes on an expired or superseded
//     handle refused;
//   - ReceiveMessage returns only the system attributes (MessageSystemAttributeNames) and
//     message attributes (MessageAttributeNames: names, "All", ".*", "prefix.*") it was asked
//     for, with MD5OfMessageAttributes over what it returns; ApproximateReceiveCount counts
//     receives across queues (a message moved to the dead-letter queue keeps its count);
//   - long polls that return as soon as a message becomes receivable (sent, delay over,
//     visibility lapsed or changed, its FIFO group unlocked);
//   - delay seconds; redrive to a dead-letter queue after maxReceiveCount;
//   - FIFO queues with in-order groups (several messages of one group may come in one receive,
//     none while one of the group is in flight), deduplication in a 5-minute window (a
//     duplicate send answers the original MessageId) and receive retries by
//     ReceiveRequestAttemptId;
//   - SQS's limits and validation: message size (body plus attributes, per message and per
//     batch), body characters, attribute names and types, batch entry ids, queue names and
//     attributes, PurgeQueue once a minute;
//   - errors as the SDK returns them: a *smithy.OperationError around the SDK's typed error
//     (errors.As finds e.g. *types.QueueDoesNotExist) whose ErrorCode is the one SQS sends
//     (AWS.SimpleQueueService.NonExistentQueue); required parameters left nil fail as the
//     SDK's validation fails them;
//   - fault injection (SetFaults) for errors, throttling, partial batch failures and latency.
//
// By default it is deterministic where SQS is not: a short poll on SQS samples a subset of
// servers and may return fewer messages than are visible, and standard queues reorder and may
// deliver a message twice. WithNondeterminism injects the first two; duplicates are not
// injected. Not modelled either: eventual consistency of the approximate counts, message
// retention expiry, permissions, tags, encryption, message move tasks and throughput quotas.
//
// Time is the runtime's clock, so tests in a testing/synctest bubble run on fake time.
package sqstest

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

const (
	urlPrefix      = "https://sqstest.invalid/000000000000/"
	arnPrefix      = "arn:aws:sqs:us-east-1:000000000000:"
	maxVisibility  = 12 * time.Hour
	dedupWindow    = 5 * time.Minute
	attemptWindow  = 5 * time.Minute
	purgeInterval  = 60 * time.Second
	deletedWait    = 60 * time.Second
	maxPayload     = 1048576 // bytes: the largest message and the largest batch
	defaultMaxSize = maxPayload
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
	// performing the call, wrapped in a *smithy.OperationError as the SDK wraps errors.
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
	noise  *noise // nil unless WithNondeterminism
	faults atomic.Pointer[Faults]
	calls  sync.Map // op -> *atomic.Int64

	mu      sync.Mutex
	queues  map[string]*queue    // by name
	deleted map[string]time.Time // queue name -> when it was deleted
	nextID  int64
}

// New returns an empty server.
func New(opts ...Option) *Server {
	s := &Server{queues: make(map[string]*queue), deleted: make(map[string]time.Time)}
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
// error, which only a bad name or attribute causes; it is meant for test setup.
func (s *Server) MustCreateQueue(name string, attrs map[string]string) string {
	out, err := s.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		panic(err)
	}
	return *out.QueueUrl
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

// begin validates in as the SDK would before sending it, counts the call, and applies
// injected latency and errors.
func (s *Server) begin(ctx context.Context, op string, in any) error {
	if err := validate(op, in); err != nil {
		return err // the SDK fails before any request: nothing reaches SQS or is counted
	}
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

func ptr[T any](v T) *T { return &v }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// locked runs f with the server locked and the queue at url found.
func (s *Server) locked(url string, f func(q *queue) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.byURL(url)
	if q == nil {
		return errNoQueue()
	}
	return f(q)
}

var queueName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// CreateQueue implements the SQS call. The attributes SQS documents are validated and modelled
// (VisibilityTimeout, DelaySeconds, ReceiveMessageWaitTimeSeconds, MaximumMessageSize,
// MessageRetentionPeriod, RedrivePolicy, FifoQueue, ContentBasedDeduplication, ...); others
// fail with InvalidAttributeName. Creating an existing queue returns its URL when every
// attribute given matches the queue's, else fails with QueueNameExists.
func (s *Server) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, _ ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	out, err := s.createQueue(ctx, in)
	return out, wrapErr("CreateQueue", err)
}

func (s *Server) createQueue(ctx context.Context, in *sqs.CreateQueueInput) (*sqs.CreateQueueOutput, error) {
	if err := s.begin(ctx, "CreateQueue", in); err != nil {
		return nil, err
	}
	name := deref(in.QueueName)
	fifo := in.Attributes["FifoQueue"] == "true"
	base, hasSuffix := strings.CutSuffix(name, ".fifo")
	if !hasSuffix {
		base = name
	}
	if !queueName.MatchString(base) || len(name) > 80 {
		return nil, invalidParam("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length: %q", name)
	}
	if fifo != hasSuffix {
		return nil, invalidParam("The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix; a standard queue's name must not: %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if old := s.queues[name]; old != nil {
		for k, v := range in.Attributes {
			if cur, ok := old.attributes(now)[k]; !ok || cur != v {
				return nil, errQueueExists(k)
			}
		}
		return &sqs.CreateQueueOutput{QueueUrl: ptr(old.url)}, nil
	}
	if at, ok := s.deleted[name]; ok && now.Sub(at) < deletedWait {
		return nil, &types.QueueDeletedRecently{Message: ptr("You must wait 60 seconds after deleting a queue before you can create another queue with the same name."),
			ErrorCodeOverride: ptr("AWS.SimpleQueueService.QueueDeletedRecently")}
	}
	q := newQueue(name, fifo, now)
	if err := s.setAttributes(q, in.Attributes); err != nil {
		return nil, err
	}
	s.queues[name] = q
	return &sqs.CreateQueueOutput{QueueUrl: ptr(q.url)}, nil
}

// GetQueueUrl implements the SQS call.
func (s *Server) GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, _ ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	if err := s.begin(ctx, "GetQueueUrl", in); err != nil {
		return nil, wrapErr("GetQueueUrl", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[deref(in.QueueName)]; q != nil {
		return &sqs.GetQueueUrlOutput{QueueUrl: ptr(q.url)}, nil
	}
	return nil, wrapErr("GetQueueUrl", errNoQueue())
}

// GetQueueAttributes implements the SQS call: it returns the attributes named ("All" for every
// one; none when none are named).
func (s *Server) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if err := s.begin(ctx, "GetQueueAttributes", in); err != nil {
		return nil, wrapErr("GetQueueAttributes", err)
	}
	out := map[string]string{}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		all := q.attributes(time.Now())
		for _, n := range in.AttributeNames {
			name := string(n)
			if name == "All" {
				for k, v := range all {
					out[k] = v
				}
				continue
			}
			v, ok := all[name]
			if !ok && !knownQueueAttribute(name) {
				return errAttrName(name)
			}
			if ok {
				out[name] = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("GetQueueAttributes", err)
	}
	return &sqs.GetQueueAttributesOutput{Attributes: out}, nil
}

// SetQueueAttributes implements the SQS call, with CreateQueue's validation; FifoQueue cannot
// be changed.
func (s *Server) SetQueueAttributes(ctx context.Context, in *sqs.SetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error) {
	if err := s.begin(ctx, "SetQueueAttributes", in); err != nil {
		return nil, wrapErr("SetQueueAttributes", err)
	}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		if _, ok := in.Attributes["FifoQueue"]; ok {
			return errAttrName("FifoQueue")
		}
		if err := s.setAttributes(q, in.Attributes); err != nil {
			return err
		}
		q.modified = time.Now()
		q.notify() // a shorter delay may make messages receivable
		return nil
	})
	if err != nil {
		return nil, wrapErr("SetQueueAttributes", err)
	}
	return &sqs.SetQueueAttributesOutput{}, nil
}

// DeleteQueue implements the SQS call: the queue and its messages are gone at once (SQS takes
// up to 60 seconds), receives waiting on it fail with QueueDoesNotExist, and its name cannot
// be created again for 60 seconds.
func (s *Server) DeleteQueue(ctx context.Context, in *sqs.DeleteQueueInput, _ ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error) {
	if err := s.begin(ctx, "DeleteQueue", in); err != nil {
		return nil, wrapErr("DeleteQueue", err)
	}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		delete(s.queues, q.name)
		s.deleted[q.name] = time.Now()
		q.notify()
		return nil
	})
	if err != nil {
		return nil, wrapErr("DeleteQueue", err)
	}
	return &sqs.DeleteQueueOutput{}, nil
}

// ListQueues implements the SQS call: queue URLs in name order, filtered by QueueNamePrefix,
// paginated by MaxResults (1..1000) and NextToken; without MaxResults at most 1,000.
func (s *Server) ListQueues(ctx context.Context, in *sqs.ListQueuesInput, _ ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error) {
	if in == nil {
		in = &sqs.ListQueuesInput{}
	}
	if err := s.begin(ctx, "ListQueues", in); err != nil {
		return nil, wrapErr("ListQueues", err)
	}
	limit := 1000
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 1000 {
			return nil, wrapErr("ListQueues", invalidParam("Value %d for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000.", *in.MaxResults))
		}
		limit = int(*in.MaxResults)
	} else if in.NextToken != nil {
		return nil, wrapErr("ListQueues", invalidParam("MaxResults is a mandatory parameter when you provide a value for NextToken."))
	}
	s.mu.Lock()
	var names []string
	for name := range s.queues {
		if strings.HasPrefix(name, deref(in.QueueNamePrefix)) && name > deref(in.NextToken) {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	out := &sqs.ListQueuesOutput{}
	for i, name := range names {
		if i == limit {
			if in.MaxResults != nil {
				out.NextToken = ptr(names[i-1])
			}
			break
		}
		out.QueueUrls = append(out.QueueUrls, urlPrefix+name)
	}
	return out, nil
}

// PurgeQueue implements the SQS call: every message, in flight or not, is deleted at once (SQS
// takes up to 60 seconds). A second purge of the queue within 60 seconds fails with
// PurgeQueueInProgress.
func (s *Server) PurgeQueue(ctx context.Context, in *sqs.PurgeQueueInput, _ ...func(*sqs.Options)) (*sqs.PurgeQueueOutput, error) {
	if err := s.begin(ctx, "PurgeQueue", in); err != nil {
		return nil, wrapErr("PurgeQueue", err)
	}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		now := time.Now()
		if !q.purgedAt.IsZero() && now.Sub(q.purgedAt) < purgeInterval {
			return errPurgeInProgress(q.url)
		}
		q.purgedAt = now
		q.msgs.Init()
		q.byID = map[int64]*message{}
		q.attempts = map[string]*attempt{}
		q.notify()
		return nil
	})
	if err != nil {
		return nil, wrapErr("PurgeQueue", err)
	}
	return &sqs.PurgeQueueOutput{}, nil
}

// settable lists the attributes CreateQueue and SetQueueAttributes take, with their defaults
// ("" for none) and, for numbers, their ranges; fifoOnly ones exist on FIFO queues only.
var settable = map[string]struct {
	def      string
	lo, hi   int // for numbers; lo == hi == 0 for other values
	fifoOnly bool
}{
	"DelaySeconds":                  {"0", 0, 900, false},
	"MaximumMessageSize":            {strconv.Itoa(defaultMaxSize), 1024, maxPayload, false},
	"MessageRetentionPeriod":        {"345600", 60, 1209600, false},
	"ReceiveMessageWaitTimeSeconds": {"0", 0, 20, false},
	"VisibilityTimeout":             {"30", 0, 43200, false},
	"KmsDataKeyReusePeriodSeconds":  {"", 60, 86400, false},
	"Policy":                        {"", 0, 0, false},
	"RedrivePolicy":                 {"", 0, 0, false},
	"RedriveAllowPolicy":            {"", 0, 0, false},
	"KmsMasterKeyId":                {"", 0, 0, false},
	"SqsManagedSseEnabled":          {"true", 0, 0, false},
	"FifoQueue":                     {"true", 0, 0, true},
	"ContentBasedDeduplication":     {"false", 0, 0, true},
	"DeduplicationScope":            {"queue", 0, 0, true},
	"FifoThroughputLimit":           {"perQueue", 0, 0, true},
}

// knownQueueAttribute reports whether name is an attribute GetQueueAttributes may be asked for.
func knownQueueAttribute(name string) bool {
	if _, ok := settable[name]; ok {
		return true
	}
	switch name {
	case "All", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
		"CreatedTimestamp", "LastModifiedTimestamp", "QueueArn":
		return true
	}
	return false
}

func newQueue(name string, fifo bool, now time.Time) *queue {
	q := &queue{
		name: name, url: urlPrefix + name, arn: arnPrefix + name, fifo: fifo,
		attrs: map[string]string{}, created: now, modified: now,
		msgs: list.New(), byID: map[int64]*message{}, dedup: map[string]dedupEntry{},
		attempts: map[string]*attempt{}, changed: make(chan struct{}),
	}
	for k, a := range settable {
		if a.def != "" && (fifo || !a.fifoOnly) {
			q.attrs[k] = a.def
		}
	}
	return q
}

// setAttributes validates attrs and applies them to q, all or none. Out-of-range and malformed
// values fail with InvalidAttributeValue, unknown names with InvalidAttributeName.
func (s *Server) setAttributes(q *queue, attrs map[string]string) error {
	next := make(map[string]string, len(q.attrs)+len(attrs))
	for k, v := range q.attrs {
		next[k] = v
	}
	for k, v := range attrs {
		a, ok := settable[k]
		if !ok || (a.fifoOnly && !q.fifo) {
			return errAttrName(k)
		}
		if a.lo != 0 || a.hi != 0 {
			n, err := strconv.Atoi(v)
			if err != nil || n < a.lo || n > a.hi {
				return errAttrValue("Invalid value for the parameter %s: %q, want %d..%d.", k, v, a.lo, a.hi)
			}
		}
		switch k {
		case "SqsManagedSseEnabled", "ContentBasedDeduplication", "FifoQueue":
			if v != "true" && v != "false" {
				return errAttrValue("Invalid value for the parameter %s: %q.", k, v)
			}
		case "DeduplicationScope":
			if v != "queue" && v != "messageGroup" {
				return errAttrValue("Invalid value for the parameter DeduplicationScope: %q.", v)
			}
		case "FifoThroughputLimit":
			if v != "perQueue" && v != "perMessageGroupId" {
				return errAttrValue("Invalid value for the parameter FifoThroughputLimit: %q.", v)
			}
		}
		if v == "" && k != "RedrivePolicy" {
			delete(next, k)
			continue
		}
		next[k] = v
	}
	dlqArn, maxReceives := "", 0
	if v := next["RedrivePolicy"]; v != "" {
		var p struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     any    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			return errAttrValue("Invalid value for the parameter RedrivePolicy: %v", err)
		}
		n, err := strconv.Atoi(fmt.Sprint(p.MaxReceiveCount))
		if err != nil || n < 1 || n > 1000 || p.DeadLetterTargetArn == "" {
			return errAttrValue("Invalid value for the parameter RedrivePolicy. Reason: maxReceiveCount 1..1000 and a deadLetterTargetArn are required: %s", v)
		}
		dlq := s.byArn(p.DeadLetterTargetArn)
		if dlq == nil {
			return errAttrValue("Value %s for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.", v)
		}
		if dlq.fifo != q.fifo {
			return errAttrValue("Value %s for parameter RedrivePolicy is invalid. Reason: Dead-letter queue must be the same type of queue (FIFO or standard) as the source.", v)
		}
		dlqArn, maxReceives = p.DeadLetterTargetArn, n
	} else {
		delete(next, "RedrivePolicy")
	}
	q.attrs, q.dlqArn, q.maxReceives = next, dlqArn, maxReceives
	seconds := func(k string) time.Duration { n, _ := strconv.Atoi(next[k]); return time.Duration(n) * time.Second }
	q.visibility, q.delay, q.wait = seconds("VisibilityTimeout"), seconds("DelaySeconds"), seconds("ReceiveMessageWaitTimeSeconds")
	q.maxBytes, _ = strconv.Atoi(next["MaximumMessageSize"])
	q.contentDedup = next["ContentBasedDeduplication"] == "true"
	q.groupDedup = next["DeduplicationScope"] == "messageGroup"
	return nil
}

// attributes returns every attribute of q, as GetQueueAttributes with "All" does.
func (q *queue) attributes(now time.Time) map[string]string {
	out := make(map[string]string, len(q.attrs)+7)
	for k, v := range q.attrs {
		out[k] = v
	}
	st := q.stats(now)
	out["QueueArn"] = q.arn
	out["ApproximateNumberOfMessages"] = strconv.Itoa(st.Visible)
	out["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(st.InFlight)
	out["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(st.Delayed)
	out["CreatedTimestamp"] = strconv.FormatInt(q.created.Unix(), 10)
	out["LastModifiedTimestamp"] = strconv.FormatInt(q.modified.Unix(), 10)
	return out
}
