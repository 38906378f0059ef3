// Package sqsextended reads and writes the "extended client" format for payloads too large
// for SQS: the payload lives in S3 and the message body is a pointer to it, as the AWS
// extended clients for Java, Python, .NET and Node and Powertools' large-message utility
// write it:
//
//	["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]
//
// with the payload's size in the message attribute ExtendedPayloadSize (legacy:
// SQSLargePayloadSize, and the pointer class com.amazon.sqs.javamessaging.MessageS3Pointer).
//
// Sending: an Offloader, given to producer.WithOffload, stores bodies above a threshold in S3
// and sends the pointer. Receiving: Fetch is a consumer middleware that replaces a pointer
// body with the payload, so handlers see what the producer sent. Deleting: a Client wraps the
// consumer's SQS client and deletes an object once its message was handled and deleted.
package sqsextended

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The pointer's class names, as the Java libraries write them.
const (
	PointerClass       = "software.amazon.payloadoffloading.PayloadS3Pointer"
	LegacyPointerClass = "com.amazon.sqs.javamessaging.MessageS3Pointer"
)

// The size attribute's names.
const (
	SizeAttribute       = "ExtendedPayloadSize"
	LegacySizeAttribute = "SQSLargePayloadSize"
)

// sizeAttributes are both names, as they are read, refused, looked for and dropped.
var sizeAttributes = [...]string{SizeAttribute, LegacySizeAttribute}

// ErrMalformedPointer is wrapped by ParsePointer's error for a body that names a pointer
// class but does not carry a bucket and a key.
var ErrMalformedPointer = errors.New("sqsextended: malformed S3 pointer")

// Pointer is where an offloaded payload is.
type Pointer struct {
	Bucket string `json:"s3BucketName"`
	Key    string `json:"s3Key"`
}

// String is "s3://bucket/key".
func (p Pointer) String() string { return "s3://" + p.Bucket + "/" + p.Key }

// ParsePointer reads body as an extended-client pointer: a JSON array of the class name
// (current or legacy) and an object with exactly the string fields s3BucketName and s3Key,
// spelled so, as Jackson reads them (text after the array is ignored). Without the message's
// attributes it takes only a body that starts with "[" and names the class literally; Fetch
// and Client, which see the size attribute, also take the escaped forms Java would. ok is
// false for any body that is not one (an ordinary payload); err, wrapping
// ErrMalformedPointer, is for a body that names a pointer class but lacks the bucket or key,
// or has other fields.
func ParsePointer(body string) (p Pointer, ok bool, err error) {
	trimmed := strings.TrimSpace(body)
	if !strings.HasPrefix(trimmed, "[") || !strings.Contains(trimmed, "S3Pointer") {
		return Pointer{}, false, nil // cheap exit for ordinary bodies
	}
	return parsePointer(trimmed)
}

// pointerIn reads the pointer of a message with body and attrs. A message with a size
// attribute is a pointer to the Java client, which then reads its body with Jackson: the
// class name may be escaped, a byte-order mark or trailing text is passed over; such a body
// that is not a pointer is an error (ErrMalformedPointer), never a payload.
func pointerIn(body string, attrs map[string]sqstypes.MessageAttributeValue) (Pointer, bool, error) {
	if !hasSizeAttribute(attrs) {
		return ParsePointer(body)
	}
	p, ok, err := parsePointer(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(body), "\ufeff")))
	if err == nil && !ok {
		err = fmt.Errorf("%w: the message carries %s but its body is not a pointer", ErrMalformedPointer, SizeAttribute)
	}
	return p, ok, err
}

func hasSizeAttribute(attrs map[string]sqstypes.MessageAttributeValue) bool {
	for _, name := range sizeAttributes {
		if _, ok := attrs[name]; ok {
			return true
		}
	}
	return false
}

// parsePointer decodes the first JSON value of body (Jackson ignores what follows) as a
// pointer.
func parsePointer(body string) (p Pointer, ok bool, err error) {
	var parts []json.RawMessage
	if json.NewDecoder(strings.NewReader(body)).Decode(&parts) != nil || len(parts) != 2 {
		return Pointer{}, false, nil
	}
	var class string
	if json.Unmarshal(parts[0], &class) != nil || (class != PointerClass && class != LegacyPointerClass) {
		return Pointer{}, false, nil
	}
	// The field names exactly as Jackson reads them (encoding/json would also take
	// "S3Key" or "s3key"), and no others (Jackson fails on an unknown property).
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(parts[1], &fields); err != nil {
		return Pointer{}, false, fmt.Errorf("%w: %s: %v", ErrMalformedPointer, class, err)
	}
	for name, raw := range fields {
		var dst *string
		switch name {
		case "s3BucketName":
			dst = &p.Bucket
		case "s3Key":
			dst = &p.Key
		default:
			return Pointer{}, false, fmt.Errorf("%w: %s with the field %q", ErrMalformedPointer, class, name)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return Pointer{}, false, fmt.Errorf("%w: %s: %s: %v", ErrMalformedPointer, class, name, err)
		}
	}
	if p.Bucket == "" || p.Key == "" {
		return Pointer{}, false, fmt.Errorf("%w: %s without s3BucketName or s3Key", ErrMalformedPointer, class)
	}
	return p, true, nil
}

// Body is the message body that points at p, in the current format.
func (p Pointer) Body() string {
	b, _ := json.Marshal([]any{PointerClass, p})
	return string(b)
}
