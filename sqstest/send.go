package sqstest

import (
	"container/list"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

type queue struct {
	name, url, arn string
	fifo           bool
	contentDedup   bool
	groupDedup     bool // DeduplicationScope messageGroup
	visibility     time.Duration
	delay          time.Duration
	wait           time.Duration
	maxBytes       int
	dlqArn         string
	maxReceives    int
	attrs          map[string]string // the settable attributes' current values
	created        time.Time
	modified       time.Time
	purgedAt       time.Time

	msgs     *list.List // of *message, in send order
	byID     map[int64]*message
	dedup    map[string]dedupEntry // FIFO deduplication key -> first send
	attempts map[string]*attempt   // FIFO ReceiveRequestAttemptId -> what that receive returned
	seq      int64
	changed  chan struct{} // closed and replaced when a message may have become receivable

	sent, deleted, staleDeletes, movedToDLQ int64
}

type dedupEntry struct {
	at      time.Time
	id, seq string
}

type message struct {
	key          int64
	id           string
	body         string
	attrs        map[string]types.MessageAttributeValue
	traceHeader  string
	group, dedup string
	seq          string
	sourceArn    string // the queue it was moved from to this dead-letter queue
	sentAt       time.Time
	visibleAt    time.Time
	receivedAt   time.Time // of the current receipt
	firstReceive time.Time
	receiveCount int
	handle       string // the current receipt handle; "" before the first receive
	elem         *list.Element
}

// sendEntry is what SendMessage and SendMessageBatch have in common.
type sendEntry struct {
	body         *string
	delay        int32
	attrs        map[string]types.MessageAttributeValue
	sysAttrs     map[string]types.MessageSystemAttributeValue
	group, dedup *string
}

type sendResult struct {
	id, seq, bodyMD5, attrsMD5, sysMD5 string
}

// validBody reports whether body holds only the characters SQS allows: #x9 | #xA | #xD |
// #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
func validBody(body string) bool {
	if !utf8.ValidString(body) {
		return false
	}
	for _, r := range body {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

var (
	attrNameChars = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	idChars       = regexp.MustCompile("^[A-Za-z0-9!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]{1,128}$")
	number        = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)
)

// checkAttrs validates message attributes as SQS does and returns the bytes they count toward
// the message size (name, data type and value of each).
func checkAttrs(attrs map[string]types.MessageAttributeValue) (int, error) {
	if len(attrs) > 10 {
		return 0, invalidParam("Number of message attributes [%d] exceeds the allowed maximum [10].", len(attrs))
	}
	size := 0
	for name, v := range attrs {
		lower := strings.ToLower(name)
		switch {
		case name == "" || len(name) > 256 || !attrNameChars.MatchString(name):
			return 0, invalidParam("Message (user) attribute name %q is invalid: alphanumeric characters, '_', '-' and '.', at most 256.", name)
		case strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon."):
			return 0, invalidParam("Message (user) attribute name %q is invalid. Reason: the prefixes AWS. and Amazon. are reserved.", name)
		case strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, ".."):
			return 0, invalidParam("Message (user) attribute name %q is invalid. Reason: it must not start or end with a period or hold two in a row.", name)
		}
		typ := deref(v.DataType)
		base, custom, _ := strings.Cut(typ, ".")
		if len(typ) > 256 || (strings.Contains(typ, ".") && custom == "") {
			return 0, invalidParam("The type of message (user) attribute %q is invalid: %q.", name, typ)
		}
		switch base {
		case "String", "Number":
			val := deref(v.StringValue)
			if val == "" {
				return 0, invalidParam("Message (user) attribute %q must contain a non-empty value of type %q.", name, base)
			}
			if !validBody(val) {
				return 0, invalidParam("Message (user) attribute %q holds characters SQS does not allow.", name)
			}
			if base == "Number" && !validNumber(val) {
				return 0, invalidParam("Could not cast message (user) attribute %q value to number.", name)
			}
			size += len(val)
		case "Binary":
			if len(v.BinaryValue) == 0 {
				return 0, invalidParam("Message (user) attribute %q must contain a non-empty value of type \"Binary\".", name)
			}
			size += len(v.BinaryValue)
		default:
			return 0, invalidParam("The type of message (user) attribute %q is invalid. You must use only the following supported type prefixes: Binary, Number, String.", name)
		}
		size += len(name) + len(typ)
	}
	return size, nil
}

// validNumber reports whether v is a number SQS's Number type holds: up to 38 significant
// digits, from -10^128 to 10^126.
func validNumber(v string) bool {
	if !number.MatchString(v) {
		return false
	}
	f, ok := new(big.Float).SetString(v)
	if !ok {
		return false
	}
	digits := strings.TrimLeft(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.SplitN(strings.ToLower(v), "e", 2)[0]), "0")
	if len(strings.TrimRight(digits, "0")) > 38 {
		return false
	}
	lo, _ := new(big.Float).SetString("-1e128")
	hi, _ := new(big.Float).SetString("1e126")
	return f.Cmp(lo) >= 0 && f.Cmp(hi) <= 0
}

// attributesMD5 is the digest SQS returns as MD5OfMessageAttributes: over the attributes sorted
// by name, each as its name, data type, a transport byte (1 string, 2 binary) and its value,
// each length-prefixed (4 bytes, big-endian) except the transport byte. "" when there are none.
func attributesMD5(names []string, typeOf func(string) string, str func(string) (string, []byte)) string {
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	h := md5.New()
	put := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, name := range names {
		typ := typeOf(name)
		put([]byte(name))
		put([]byte(typ))
		s, b := str(name)
		if strings.HasPrefix(typ, "Binary") {
			h.Write([]byte{2})
			put(b)
		} else {
			h.Write([]byte{1})
			put([]byte(s))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func messageAttributesMD5(attrs map[string]types.MessageAttributeValue) string {
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	return attributesMD5(names, func(k string) string { return deref(attrs[k].DataType) },
		func(k string) (string, []byte) { return deref(attrs[k].StringValue), attrs[k].BinaryValue })
}

func systemAttributesMD5(attrs map[string]types.MessageSystemAttributeValue) string {
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	return attributesMD5(names, func(k string) string { return deref(attrs[k].DataType) },
		func(k string) (string, []byte) { return deref(attrs[k].StringValue), attrs[k].BinaryValue })
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// entrySize is what a message counts toward the size limits: its body and attributes.
func entrySize(e sendEntry) int {
	n := len(deref(e.body))
	for k, v := range e.attrs {
		n += len(k) + len(deref(v.DataType)) + len(deref(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

func (s *Server) send(q *queue, e sendEntry, now time.Time) (sendResult, error) {
	body := deref(e.body)
	if body == "" {
		return sendResult{}, missingParam("The request must contain the parameter MessageBody.")
	}
	if !validBody(body) {
		return sendResult{}, errContents()
	}
	attrSize, err := checkAttrs(e.attrs)
	if err != nil {
		return sendResult{}, err
	}
	if size := len(body) + attrSize; size > q.maxBytes {
		return sendResult{}, invalidParam("One or more parameters are invalid. Reason: Message must be shorter than %d bytes (this one is %d, body and attributes).", q.maxBytes, size)
	}
	trace := ""
	for k, v := range e.sysAttrs {
		if k != string(types.MessageSystemAttributeNameForSendsAWSTraceHeader) || deref(v.DataType) != "String" || deref(v.StringValue) == "" {
			return sendResult{}, invalidParam("Message system attribute %q is invalid: only AWSTraceHeader, a non-empty String, is supported.", k)
		}
		trace = *v.StringValue
	}
	if e.delay < 0 || e.delay > 900 {
		return sendResult{}, invalidParam("Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided.", e.delay)
	}
	for _, id := range []struct {
		name string
		v    *string
	}{{"MessageGroupId", e.group}, {"MessageDeduplicationId", e.dedup}} {
		if id.v != nil && !idChars.MatchString(*id.v) {
			return sendResult{}, invalidParam("Value %q for parameter %s is invalid. Reason: 1 to 128 alphanumeric or punctuation characters.", *id.v, id.name)
		}
	}
	delay := q.delay
	if e.delay > 0 {
		delay = time.Duration(e.delay) * time.Second
	}
	m := &message{body: body, attrs: e.attrs, traceHeader: trace, sentAt: now, visibleAt: now.Add(delay)}
	dedupKey := ""
	if q.fifo {
		if e.delay > 0 {
			return sendResult{}, invalidParam("Value %d for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.", e.delay)
		}
		m.group, m.dedup = deref(e.group), deref(e.dedup)
		if m.group == "" {
			return sendResult{}, missingParam("The request must contain the parameter MessageGroupId.")
		}
		if m.dedup == "" {
			if !q.contentDedup {
				return sendResult{}, invalidParam("The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
			}
			sum := sha256.Sum256([]byte(body))
			m.dedup = hex.EncodeToString(sum[:])
		}
		dedupKey = m.dedup
		if q.groupDedup {
			dedupKey = m.group + "\x00" + m.dedup
		}
	} else {
		if e.dedup != nil {
			return sendResult{}, invalidParam("Value %s for parameter MessageDeduplicationId is invalid. Reason: The request include parameter that is not valid for this queue type.", *e.dedup)
		}
		m.group = deref(e.group) // standard queues carry group ids too (fair queues)
	}
	r := sendResult{bodyMD5: md5Hex(body), attrsMD5: messageAttributesMD5(e.attrs), sysMD5: systemAttributesMD5(e.sysAttrs)}
	if q.fifo {
		if first, ok := q.dedup[dedupKey]; ok && now.Sub(first.at) < dedupWindow {
			r.id, r.seq = first.id, first.seq
			return r, nil // accepted, not enqueued again
		}
	}
	s.nextID++
	m.key = s.nextID
	m.id = fmt.Sprintf("00000000-0000-4000-8000-%012x", m.key)
	if q.fifo {
		q.seq++
		m.seq = fmt.Sprintf("%020d", q.seq)
		q.dedup[dedupKey] = dedupEntry{at: now, id: m.id, seq: m.seq}
	}
	m.elem = q.msgs.PushBack(m)
	q.byID[m.key] = m
	q.sent++
	q.notify()
	r.id, r.seq = m.id, m.seq
	return r, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// SendMessage implements the SQS call.
func (s *Server) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if err := s.begin(ctx, "SendMessage", in); err != nil {
		return nil, wrapErr("SendMessage", err)
	}
	var out *sqs.SendMessageOutput
	err := s.locked(deref(in.QueueUrl), func(q *queue) error {
		r, err := s.send(q, sendEntry{in.MessageBody, in.DelaySeconds, in.MessageAttributes, in.MessageSystemAttributes, in.MessageGroupId, in.MessageDeduplicationId}, time.Now())
		if err != nil {
			return err
		}
		out = &sqs.SendMessageOutput{MessageId: ptr(r.id), MD5OfMessageBody: ptr(r.bodyMD5), SequenceNumber: nonEmpty(r.seq),
			MD5OfMessageAttributes: nonEmpty(r.attrsMD5), MD5OfMessageSystemAttributes: nonEmpty(r.sysMD5)}
		return nil
	})
	if err != nil {
		return nil, wrapErr("SendMessage", err)
	}
	return out, nil
}

// SendMessageBatch implements the SQS call, including its limits: 1..10 entries with distinct,
// valid ids, and at most 1 MiB in all (bodies and attributes).
func (s *Server) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if err := s.begin(ctx, "SendMessageBatch", in); err != nil {
		return nil, wrapErr("SendMessageBatch", err)
	}
	ids := make([]*string, len(in.Entries))
	entries := make([]sendEntry, len(in.Entries))
	total := 0
	for i, e := range in.Entries {
		ids[i] = e.Id
		entries[i] = sendEntry{e.MessageBody, e.DelaySeconds, e.MessageAttributes, e.MessageSystemAttributes, e.MessageGroupId, e.MessageDeduplicationId}
		total += entrySize(entries[i])
	}
	if err := checkBatch(ids); err != nil {
		return nil, wrapErr("SendMessageBatch", err)
	}
	if total > maxPayload {
		return nil, wrapErr("SendMessageBatch", errBatchTooLong(total))
	}
	out := &sqs.SendMessageBatchOutput{}
	failed, err := s.batch("SendMessageBatch", deref(in.QueueUrl), ids, nil, func(q *queue, i int, now time.Time) *entryError {
		r, err := s.send(q, entries[i], now)
		if err != nil {
			return &entryError{errorCode(err), err.Error()}
		}
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: ids[i], MessageId: ptr(r.id),
			MD5OfMessageBody: ptr(r.bodyMD5), SequenceNumber: nonEmpty(r.seq),
			MD5OfMessageAttributes: nonEmpty(r.attrsMD5), MD5OfMessageSystemAttributes: nonEmpty(r.sysMD5)})
		return nil
	})
	if err != nil {
		return nil, wrapErr("SendMessageBatch", err)
	}
	out.Failed = failed
	return out, nil
}

var batchID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func checkBatch(ids []*string) error {
	if len(ids) == 0 {
		return errEmptyBatch()
	}
	if len(ids) > 10 {
		return errTooManyEntries(len(ids))
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !batchID.MatchString(deref(id)) {
			return errBadEntryID(deref(id))
		}
		if seen[*id] {
			return errIdsNotDistinct(*id)
		}
		seen[*id] = true
	}
	return nil
}
