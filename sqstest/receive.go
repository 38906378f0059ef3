package sqstest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ReceiveMessage implements the SQS call. It waits up to WaitTimeSeconds (or the queue's
// ReceiveMessageWaitTimeSeconds) for a message; a ctx that ends while it waits returns ctx's
// error and takes nothing. Every system attribute is returned, and every message attribute.
func (s *Server) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if err := s.begin(ctx, "ReceiveMessage", in); err != nil {
		return nil, err
	}
	max := int(in.MaxNumberOfMessages)
	if max == 0 {
		max = 1
	}
	if max < 1 || max > 10 {
		return nil, invalidParam("MaxNumberOfMessages %d, want 1..10", max)
	}
	if in.WaitTimeSeconds < 0 || in.WaitTimeSeconds > 20 {
		return nil, invalidParam("WaitTimeSeconds %d, want 0..20", in.WaitTimeSeconds)
	}
	if in.VisibilityTimeout < 0 || in.VisibilityTimeout > 43200 {
		return nil, invalidParam("VisibilityTimeout %d, want 0..43200", in.VisibilityTimeout)
	}
	url := deref(in.QueueUrl)
	s.mu.Lock()
	q := s.byURL(url)
	if q == nil {
		s.mu.Unlock()
		return nil, missingQueue()
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
	deadline := now.Add(wait)
	for {
		out := s.take(q, max, vis, now)
		if len(out) > 0 || !now.Before(deadline) {
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
			return nil, missingQueue()
		}
		now = time.Now()
	}
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

// take receives up to max visible messages in send order. On a FIFO queue a group is skipped
// from its first message that cannot be received (in flight or delayed), so a group's messages
// come in order and never while an earlier one is in flight.
func (s *Server) take(q *queue, max int, vis time.Duration, now time.Time) []types.Message {
	var out []types.Message
	var blocked map[string]bool
	if q.fifo {
		blocked = map[string]bool{}
	}
	for e := q.msgs.Front(); e != nil && len(out) < max; {
		m := e.Value.(*message)
		next := e.Next()
		switch {
		case q.fifo && blocked[m.group]:
		case m.visibleAt.After(now):
			if q.fifo {
				blocked[m.group] = true
			}
		case q.maxReceives > 0 && m.receiveCount >= q.maxReceives && s.redrive(q, m, now):
		default:
			m.receiveCount++
			if m.receiveCount == 1 {
				m.firstReceive = now
			}
			m.handle = "rh-" + strconv.FormatInt(m.key, 10) + "-" + strconv.Itoa(m.receiveCount)
			m.receivedAt = now
			m.visibleAt = now.Add(vis)
			out = append(out, m.toSDK(q.fifo))
		}
		e = next
	}
	return out
}

// redrive moves m to q's dead-letter queue and reports whether it did.
func (s *Server) redrive(q *queue, m *message, now time.Time) bool {
	dlq := s.byArn(q.dlqArn)
	if dlq == nil {
		return false
	}
	q.remove(m)
	q.movedToDLQ++
	moved := &message{key: m.key, id: m.id, body: m.body, attrs: m.attrs, group: m.group, dedup: m.dedup,
		seq: m.seq, sentAt: m.sentAt, visibleAt: now}
	moved.elem = dlq.msgs.PushBack(moved)
	dlq.byID[moved.key] = moved
	dlq.sent++
	dlq.notify()
	return true
}

func (q *queue) remove(m *message) {
	q.msgs.Remove(m.elem)
	delete(q.byID, m.key)
}

func (m *message) toSDK(fifo bool) types.Message {
	attrs := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receiveCount),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
		"SentTimestamp":                    strconv.FormatInt(m.sentAt.UnixMilli(), 10),
		"SenderId":                         "000000000000",
	}
	if m.group != "" {
		attrs["MessageGroupId"] = m.group
	}
	if fifo {
		attrs["MessageDeduplicationId"] = m.dedup
		attrs["SequenceNumber"] = m.seq
	}
	return types.Message{
		MessageId: ptr(m.id), ReceiptHandle: ptr(m.handle), Body: ptr(m.body), MD5OfBody: ptr(md5Hex(m.body)),
		Attributes: attrs, MessageAttributes: m.attrs,
	}
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
		return &types.ReceiptHandleIsInvalid{Message: ptr(e.msg)}
	case "MessageNotInflight":
		return &types.MessageNotInflight{Message: ptr(e.msg)}
	}
	return invalidParam("%s", e.msg)
}

func (s *Server) deleteOne(q *queue, h string) *entryError {
	m, st := q.lookup(h)
	switch st {
	case handleMalformed:
		return &entryError{"ReceiptHandleIsInvalid", "the receipt handle " + h + " is not valid"}
	case handleCurrent:
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
		return &entryError{"InvalidParameterValue", fmt.Sprintf("VisibilityTimeout %d, want 0..43200", secs)}
	}
	m, st := q.lookup(h)
	switch st {
	case handleMalformed, handleGone, handleSuperseded:
		return &entryError{"ReceiptHandleIsInvalid", "the receipt handle " + h + " has expired or is not valid"}
	}
	if !m.visibleAt.After(now) {
		return &entryError{"MessageNotInflight", "message " + m.id + " is not in flight"}
	}
	until := now.Add(time.Duration(secs) * time.Second)
	if until.Sub(m.receivedAt) > maxVisibility {
		return &entryError{"InvalidParameterValue", "the total visibility timeout would exceed 12 hours"}
	}
	m.visibleAt = until
	q.notify() // long polls recompute when the next message becomes visible
	return nil
}

// DeleteMessage implements the SQS call.
func (s *Server) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	err := s.locked(ctx, "DeleteMessage", in, deref(in.QueueUrl), func(q *queue) error {
		if e := s.deleteOne(q, deref(in.ReceiptHandle)); e != nil {
			return e.api()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sqs.DeleteMessageOutput{}, nil
}

// DeleteMessageBatch implements the SQS call.
func (s *Server) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	ids := make([]*string, len(in.Entries))
	handles := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i], handles[i] = e.Id, deref(e.ReceiptHandle)
	}
	ok, failed, err := s.batch(ctx, "DeleteMessageBatch", in, deref(in.QueueUrl), ids, handles, nil, func(q *queue, i int, _ time.Time) *entryError {
		return s.deleteOne(q, deref(in.Entries[i].ReceiptHandle))
	})
	if err != nil {
		return nil, err
	}
	out := &sqs.DeleteMessageBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: id})
	}
	return out, nil
}

// ChangeMessageVisibility implements the SQS call.
func (s *Server) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	err := s.locked(ctx, "ChangeMessageVisibility", in, deref(in.QueueUrl), func(q *queue) error {
		if e := s.changeOne(q, deref(in.ReceiptHandle), in.VisibilityTimeout, time.Now()); e != nil {
			return e.api()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// ChangeMessageVisibilityBatch implements the SQS call.
func (s *Server) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	ids := make([]*string, len(in.Entries))
	handles := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i], handles[i] = e.Id, deref(e.ReceiptHandle)
	}
	ok, failed, err := s.batch(ctx, "ChangeMessageVisibilityBatch", in, deref(in.QueueUrl), ids, handles, nil, func(q *queue, i int, now time.Time) *entryError {
		return s.changeOne(q, deref(in.Entries[i].ReceiptHandle), in.Entries[i].VisibilityTimeout, now)
	})
	if err != nil {
		return nil, err
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: id})
	}
	return out, nil
}

// locked counts the call, applies injected faults, and runs f with the server locked and the
// queue at url found.
func (s *Server) locked(ctx context.Context, op string, in any, url string, f func(q *queue) error) error {
	if err := s.begin(ctx, op, in); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.byURL(url)
	if q == nil {
		return missingQueue()
	}
	return f(q)
}

// batch runs a batch call: SQS's checks of the entry ids and check's of the whole request (may
// be nil), then, for each entry, an injected entry fault or apply. It returns the ids of the
// entries that succeeded and the failed ones.
func (s *Server) batch(ctx context.Context, op string, in any, url string, ids []*string, handles []string, check func(q *queue) error, apply func(q *queue, i int, now time.Time) *entryError) (ok []*string, failed []types.BatchResultErrorEntry, err error) {
	if err := checkBatch(ids); err != nil {
		s.begin(ctx, op, in) // counted like any call SQS answers
		return nil, nil, err
	}
	faults := make([]*types.BatchResultErrorEntry, len(ids))
	for i := range ids {
		handle := ""
		if handles != nil {
			handle = handles[i]
		}
		faults[i] = s.entryFault(op, handle)
	}
	err = s.locked(ctx, op, in, url, func(q *queue) error {
		if check != nil {
			if err := check(q); err != nil {
				return err
			}
		}
		now := time.Now()
		for i, id := range ids {
			if f := faults[i]; f != nil {
				f.Id = id
				failed = append(failed, *f)
				continue
			}
			if e := apply(q, i, now); e != nil {
				failed = append(failed, types.BatchResultErrorEntry{Id: id, Code: ptr(e.code), Message: ptr(e.msg), SenderFault: true})
				continue
			}
			ok = append(ok, id)
		}
		return nil
	})
	return ok, failed, err
}
