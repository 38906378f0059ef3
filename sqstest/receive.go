package sqstest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// attempt is what a FIFO receive with a ReceiveRequestAttemptId returned, for its retries.
type attempt struct {
	at      time.Time
	keys    []int64
	handles []string
	until   []time.Time // each message's visibleAt as the receive left it
}

// ReceiveMessage implements the SQS call. It waits up to WaitTimeSeconds (or the queue's
// ReceiveMessageWaitTimeSeconds) for a message and returns as soon as one becomes receivable;
// a ctx that ends while it waits returns ctx's error and takes nothing. It returns the system
// attributes named in MessageSystemAttributeNames (or the deprecated AttributeNames) and the
// message attributes named in MessageAttributeNames, as SQS does. On a FIFO queue a retry with
// the ReceiveRequestAttemptId of a receive in the last 5 minutes returns that receive's
// messages and receipt handles again, resetting their visibility, unless one of them was
// deleted, changed or received since.
func (s *Server) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out, err := s.receive(ctx, in)
	return out, wrapErr("ReceiveMessage", err)
}

func (s *Server) receive(ctx context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
	if err := s.begin(ctx, "ReceiveMessage", in); err != nil {
		return nil, err
	}
	max := int(in.MaxNumberOfMessages)
	if max == 0 {
		max = 1
	}
	if max < 1 || max > 10 {
		return nil, invalidParam("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", max)
	}
	if in.WaitTimeSeconds < 0 || in.WaitTimeSeconds > 20 {
		return nil, invalidParam("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", in.WaitTimeSeconds)
	}
	if in.VisibilityTimeout < 0 || in.VisibilityTimeout > 43200 {
		return nil, invalidParam("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.", in.VisibilityTimeout)
	}
	sel := newSelection(in)
	attemptID := deref(in.ReceiveRequestAttemptId)
	url := deref(in.QueueUrl)
	s.mu.Lock()
	q := s.byURL(url)
	if q == nil {
		s.mu.Unlock()
		return nil, errNoQueue()
	}
	wait := q.wait
	if in.WaitTimeSeconds > 0 {
		wait = time.Duration(in.WaitTimeSeconds) * time.Second
	}
	vis := q.visibility
	if in.VisibilityTimeout > 0 {
		vis = time.Duration(in.VisibilityTimeout) * time.Second
	}
	now := time.Now()
	if q.fifo && attemptID != "" {
		if out, ok := q.retry(attemptID, vis, now, sel); ok {
			s.mu.Unlock()
			return &sqs.ReceiveMessageOutput{Messages: out}, nil
		}
	}
	deadline := now.Add(wait)
	for {
		n := max
		if !q.fifo {
			n = s.noise.limit(max, wait > 0)
		}
		taken := s.take(q, n, vis, now)
		if len(taken) > 0 || !now.Before(deadline) {
			out := make([]types.Message, len(taken))
			for i, m := range taken {
				out[i] = m.toSDK(q.fifo, sel)
			}
			if q.fifo && attemptID != "" && len(taken) > 0 {
				a := &attempt{at: now}
				for _, m := range taken {
					a.keys, a.handles, a.until = append(a.keys, m.key), append(a.handles, m.handle), append(a.until, m.visibleAt)
				}
				q.pruneAttempts(now)
				q.attempts[attemptID] = a
			}
			s.mu.Unlock()
			return &sqs.ReceiveMessageOutput{Messages: out}, nil
		}
		wake := deadline
		if next, ok := q.nextVisible(now); ok && next.Before(wake) {
			wake = next
		}
		changed := q.changed
		s.mu.Unlock()
		t := time.NewTimer(wake.Sub(now))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
		s.mu.Lock()
		if q = s.byURL(url); q == nil {
			s.mu.Unlock()
			return nil, errNoQueue()
		}
		now = time.Now()
	}
}

// retry answers a FIFO receive retried with the attempt id of an earlier one: the same
// messages and handles, their visibility reset, when none was deleted, changed or received
// since and the earlier receive was less than 5 minutes ago.
func (q *queue) retry(id string, vis time.Duration, now time.Time, sel selection) ([]types.Message, bool) {
	a := q.attempts[id]
	if a == nil {
		return nil, false
	}
	delete(q.attempts, id)
	if now.Sub(a.at) >= attemptWindow {
		return nil, false
	}
	msgs := make([]*message, len(a.keys))
	for i, k := range a.keys {
		m := q.byID[k]
		if m == nil || m.handle != a.handles[i] || !m.visibleAt.Equal(a.until[i]) {
			return nil, false
		}
		msgs[i] = m
	}
	out := make([]types.Message, len(msgs))
	for i, m := range msgs {
		m.visibleAt = now.Add(vis)
		m.receivedAt = now
		a.until[i] = m.visibleAt
		out[i] = m.toSDK(q.fifo, sel)
	}
	q.attempts[id] = a
	q.notify()
	return out, true
}

func (q *queue) pruneAttempts(now time.Time) {
	for id, a := range q.attempts {
		if now.Sub(a.at) >= attemptWindow {
			delete(q.attempts, id)
		}
	}
}

// selection is which attributes a receive asked for.
type selection struct {
	allSys   bool
	sys      map[string]bool
	allAttrs bool
	attrs    map[string]bool
	prefixes []string
}

func newSelection(in *sqs.ReceiveMessageInput) selection {
	sel := selection{sys: map[string]bool{}, attrs: map[string]bool{}}
	for _, n := range in.AttributeNames {
		sel.sys[string(n)] = true
	}
	for _, n := range in.MessageSystemAttributeNames {
		sel.sys[string(n)] = true
	}
	sel.allSys = sel.sys["All"]
	for _, n := range in.MessageAttributeNames {
		switch {
		case n == "All" || n == ".*":
			sel.allAttrs = true
		case strings.HasSuffix(n, ".*"):
			sel.prefixes = append(sel.prefixes, strings.TrimSuffix(n, "*"))
		default:
			sel.attrs[n] = true
		}
	}
	return sel
}

func (sel selection) wantAttr(name string) bool {
	if sel.allAttrs || sel.attrs[name] {
		return true
	}
	for _, p := range sel.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// nextVisible returns the earliest time a message of q that is invisible now becomes visible.
func (q *queue) nextVisible(now time.Time) (time.Time, bool) {
	var next time.Time
	found := false
	for e := q.msgs.Front(); e != nil; e = e.Next() {
		m := e.Value.(*message)
		if m.visibleAt.After(now) && (!found || m.visibleAt.Before(next)) {
			next, found = m.visibleAt, true
		}
	}
	return next, found
}

// take receives up to max visible messages in send order (in a random order on a standard
// queue under WithNondeterminism). On a FIFO queue a group is skipped from its first message
// that cannot be received (in flight or delayed), so a group's messages come in order and
// never while an earlier one is in flight.
func (s *Server) take(q *queue, max int, vis time.Duration, now time.Time) []*message {
	var out []*message
	var blocked map[string]bool
	if q.fifo {
		blocked = map[string]bool{}
	}
	consider := func(m *message) {
		switch {
		case q.fifo && blocked[m.group]:
		case m.visibleAt.After(now):
			if q.fifo {
				blocked[m.group] = true
			}
		case q.maxReceives > 0 && m.receiveCount >= q.maxReceives && s.redrive(q, m, now):
		default:
			m.receiveCount++
			if m.firstReceive.IsZero() {
				m.firstReceive = now
			}
			m.handle = "rh-" + strconv.FormatInt(m.key, 10) + "-" + strconv.Itoa(m.receiveCount)
			m.receivedAt = now
			m.visibleAt = now.Add(vis)
			out = append(out, m)
		}
	}
	if !q.fifo && s.noise != nil {
		for _, m := range s.noise.shuffled(q.msgs) {
			if len(out) == max {
				break
			}
			consider(m)
		}
		return out
	}
	for e := q.msgs.Front(); e != nil && len(out) < max; {
		next := e.Next() // consider may move the message to a dead-letter queue
		consider(e.Value.(*message))
		e = next
	}
	return out
}

// redrive moves m to q's dead-letter queue and reports whether it did. The message keeps its
// id, attributes and receive count: SQS's ApproximateReceiveCount counts receives across all
// queues.
func (s *Server) redrive(q *queue, m *message, now time.Time) bool {
	dlq := s.byArn(q.dlqArn)
	if dlq == nil {
		return false
	}
	q.remove(m)
	q.movedToDLQ++
	moved := &message{key: m.key, id: m.id, body: m.body, attrs: m.attrs, traceHeader: m.traceHeader, group: m.group, dedup: m.dedup,
		seq: m.seq, sourceArn: q.arn, sentAt: m.sentAt, visibleAt: now, firstReceive: m.firstReceive, receiveCount: m.receiveCount}
	moved.elem = dlq.msgs.PushBack(moved)
	dlq.byID[moved.key] = moved
	dlq.sent++
	dlq.notify()
	return true
}

func (q *queue) remove(m *message) {
	q.msgs.Remove(m.elem)
	delete(q.byID, m.key)
	if q.fifo {
		q.notify() // its group may have unlocked
	}
}

func (m *message) toSDK(fifo bool, sel selection) types.Message {
	sys := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receiveCount),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
		"SentTimestamp":                    strconv.FormatInt(m.sentAt.UnixMilli(), 10),
		"SenderId":                         "AIDAEXAMPLESQSTEST000",
	}
	if m.traceHeader != "" {
		sys["AWSTraceHeader"] = m.traceHeader
	}
	if m.group != "" {
		sys["MessageGroupId"] = m.group
	}
	if m.sourceArn != "" {
		sys["DeadLetterQueueSourceArn"] = m.sourceArn
	}
	if fifo {
		sys["MessageDeduplicationId"] = m.dedup
		sys["SequenceNumber"] = m.seq
	}
	out := types.Message{MessageId: ptr(m.id), ReceiptHandle: ptr(m.handle), Body: ptr(m.body), MD5OfBody: ptr(md5Hex(m.body))}
	for k, v := range sys {
		if sel.allSys || sel.sys[k] {
			if out.Attributes == nil {
				out.Attributes = map[string]string{}
			}
			out.Attributes[k] = v
		}
	}
	for k, v := range m.attrs {
		if sel.wantAttr(k) {
			if out.MessageAttributes == nil {
				out.MessageAttributes = map[string]types.MessageAttributeValue{}
			}
			out.MessageAttributes[k] = v
		}
	}
	out.MD5OfMessageAttributes = nonEmpty(messageAttributesMD5(out.MessageAttributes))
	return out
}

type handleState int

const (
	handleCurrent    handleState = iota
	handleSuperseded             // the message was received again since
	handleGone                   // no such message in the queue (deleted, moved, or never)
	handleMalformed
)

func (q *queue) lookup(h string) (*message, handleState) {
	rest, ok := strings.CutPrefix(h, "rh-")
	if !ok {
		return nil, handleMalformed
	}
	keyText, _, ok := strings.Cut(rest, "-")
	key, err := strconv.ParseInt(keyText, 10, 64)
	if !ok || err != nil {
		return nil, handleMalformed
	}
	m := q.byID[key]
	switch {
	case m == nil:
		return nil, handleGone
	case m.handle != h:
		return m, handleSuperseded
	}
	return m, handleCurrent
}

type entryError struct{ code, msg string }

func (e *entryError) Error() string { return e.code + ": " + e.msg }

func (e *entryError) api() error {
	switch e.code {
	case "ReceiptHandleIsInvalid":
		return errHandleInvalid(e.msg)
	case "AWS.SimpleQueueService.MessageNotInflight":
		return errNotInflight(e.msg)
	}
	return invalidParam("%s", e.msg)
}

func expired(h string) *entryError {
	return &entryError{"InvalidParameterValue", "Value " + h + " for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."}
}

func (s *Server) deleteOne(q *queue, h string, now time.Time) *entryError {
	m, st := q.lookup(h)
	switch {
	case st == handleMalformed:
		return &entryError{"ReceiptHandleIsInvalid", "The input receipt handle \"" + h + "\" is not a valid receipt handle."}
	case q.fifo && st == handleSuperseded, q.fifo && st == handleCurrent && !m.visibleAt.After(now):
		return expired(h) // a FIFO handle dies with its visibility timeout
	case st == handleCurrent:
		q.remove(m)
		q.deleted++
		return nil
	}
	q.staleDeletes++
	if s.strict {
		return &entryError{"ReceiptHandleIsInvalid", "the receipt handle " + h + " has been superseded or its message deleted (strict mode)"}
	}
	return nil // SQS accepts a stale handle's delete without deleting
}

func (s *Server) changeOne(q *queue, h string, secs int32, now time.Time) *entryError {
	if secs < 0 || secs > 43200 {
		return &entryError{"InvalidParameterValue", fmt.Sprintf("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.", secs)}
	}
	m, st := q.lookup(h)
	switch st {
	case handleMalformed:
		return &entryError{"ReceiptHandleIsInvalid", "The input receipt handle \"" + h + "\" is not a valid receipt handle."}
	case handleGone, handleSuperseded:
		return &entryError{"ReceiptHandleIsInvalid", "the receipt handle " + h + " has expired"}
	}
	if !m.visibleAt.After(now) {
		return &entryError{"AWS.SimpleQueueService.MessageNotInflight", "Message " + m.id + " is not in flight."}
	}
	// SQS counts the 12-hour maximum from the receive in whole seconds.
	elapsed := now.Sub(m.receivedAt).Truncate(time.Second)
	if elapsed+time.Duration(secs)*time.Second > maxVisibility {
		return &entryError{"InvalidParameterValue", fmt.Sprintf("Value %d for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]", secs)}
	}
	m.visibleAt = now.Add(time.Duration(secs) * time.Second)
	q.notify() // long polls recompute when the next message becomes visible
	return nil
}

// DeleteMessage implements the SQS call. A standard queue accepts a superseded handle without
// deleting (WithStrict fails it); a FIFO queue refuses a handle whose visibility lapsed as
// expired.
func (s *Server) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if err := s.begin(ctx, "DeleteMessage", in); err != nil {
		return nil, wrapErr("DeleteMessage", err)
	}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		if e := s.deleteOne(q, deref(in.ReceiptHandle), time.Now()); e != nil {
			return e.api()
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("DeleteMessage", err)
	}
	return &sqs.DeleteMessageOutput{}, nil
}

// DeleteMessageBatch implements the SQS call.
func (s *Server) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if err := s.begin(ctx, "DeleteMessageBatch", in); err != nil {
		return nil, wrapErr("DeleteMessageBatch", err)
	}
	ids := make([]*string, len(in.Entries))
	handles := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i], handles[i] = e.Id, deref(e.ReceiptHandle)
	}
	if err := checkBatch(ids); err != nil {
		return nil, wrapErr("DeleteMessageBatch", err)
	}
	out := &sqs.DeleteMessageBatchOutput{}
	failed, err := s.batch("DeleteMessageBatch", deref(in.QueueUrl), ids, handles, func(q *queue, i int, now time.Time) *entryError {
		if e := s.deleteOne(q, handles[i], now); e != nil {
			return e
		}
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: ids[i]})
		return nil
	})
	if err != nil {
		return nil, wrapErr("DeleteMessageBatch", err)
	}
	out.Failed = failed
	return out, nil
}

// ChangeMessageVisibility implements the SQS call.
func (s *Server) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if err := s.begin(ctx, "ChangeMessageVisibility", in); err != nil {
		return nil, wrapErr("ChangeMessageVisibility", err)
	}
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		if e := s.changeOne(q, deref(in.ReceiptHandle), in.VisibilityTimeout, time.Now()); e != nil {
			return e.api()
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("ChangeMessageVisibility", err)
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// ChangeMessageVisibilityBatch implements the SQS call.
func (s *Server) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	if err := s.begin(ctx, "ChangeMessageVisibilityBatch", in); err != nil {
		return nil, wrapErr("ChangeMessageVisibilityBatch", err)
	}
	ids := make([]*string, len(in.Entries))
	handles := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i], handles[i] = e.Id, deref(e.ReceiptHandle)
	}
	if err := checkBatch(ids); err != nil {
		return nil, wrapErr("ChangeMessageVisibilityBatch", err)
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	failed, err := s.batch("ChangeMessageVisibilityBatch", deref(in.QueueUrl), ids, handles, func(q *queue, i int, now time.Time) *entryError {
		if e := s.changeOne(q, handles[i], in.Entries[i].VisibilityTimeout, now); e != nil {
			return e
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: ids[i]})
		return nil
	})
	if err != nil {
		return nil, wrapErr("ChangeMessageVisibilityBatch", err)
	}
	out.Failed = failed
	return out, nil
}

// batch runs a batch call whose ids were checked: for each entry, an injected entry fault or
// apply, which records a success itself. It returns the failed entries.
func (s *Server) batch(op, url string, ids []*string, handles []string, apply func(q *queue, i int, now time.Time) *entryError) (failed []types.BatchResultErrorEntry, err error) {
	faults := make([]*types.BatchResultErrorEntry, len(ids))
	for i := range ids {
		handle := ""
		if handles != nil {
			handle = handles[i]
		}
		faults[i] = s.entryFault(op, handle)
	}
	err = s.locked(url, func(q *queue) error {
		now := time.Now()
		for i, id := range ids {
			if f := faults[i]; f != nil {
				f.Id = id
				failed = append(failed, *f)
				continue
			}
			if e := apply(q, i, now); e != nil {
				failed = append(failed, types.BatchResultErrorEntry{Id: id, Code: ptr(e.code), Message: ptr(e.msg), SenderFault: true})
			}
		}
		return nil
	})
	return failed, err
}
