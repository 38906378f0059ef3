// Package envelope recognises the wrappers SQS message bodies arrive in: an SNS notification
// (when the subscription does not use raw delivery), an SNS subscription or unsubscribe
// confirmation, and an EventBridge event, and gives the payload inside along with the
// wrapper's fields. A Verifier checks the signature SNS puts on its notifications and
// confirmations, and confirms a subscription on request.
package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kind says what wrapped a body.
type Kind int

// Kinds of body.
const (
	Raw         Kind = iota // not wrapped: the body is the payload
	SNS                     // an SNS notification (non-raw delivery)
	EventBridge             // an EventBridge event
	// SNSConfirmation is an SNS SubscriptionConfirmation or UnsubscribeConfirmation (Type
	// says which): SNS's own message about a subscription, not something published to the
	// topic. It is never a payload for a handler; see Verifier.Confirm.
	SNSConfirmation
)

// Values of Envelope.Type for the SNS kinds.
const (
	TypeNotification             = "Notification"             // Kind SNS
	TypeSubscriptionConfirmation = "SubscriptionConfirmation" // Kind SNSConfirmation
	TypeUnsubscribeConfirmation  = "UnsubscribeConfirmation"  // Kind SNSConfirmation
)

// String returns the kind's name: "raw", "SNS", "EventBridge" or "SNSConfirmation".
func (k Kind) String() string {
	switch k {
	case SNS:
		return "SNS"
	case EventBridge:
		return "EventBridge"
	case SNSConfirmation:
		return "SNSConfirmation"
	}
	return "raw"
}

// Attribute is an SNS message attribute as the notification carries it.
type Attribute struct {
	Type  string `json:"Type"`
	Value string `json:"Value"`
}

// Envelope is a parsed body.
type Envelope struct {
	Kind Kind
	// Payload is what was wrapped: the SNS Message, the EventBridge detail (as JSON), or for a
	// raw body the body itself. For an SNSConfirmation it is SNS's human-readable Message.
	Payload string

	// SNS fields (Kind SNS and SNSConfirmation). None of them is authentic until a Verifier
	// has checked the signature: anyone allowed to send to the queue can write any of them.
	Type             string // TypeNotification, TypeSubscriptionConfirmation or TypeUnsubscribeConfirmation
	MessageID        string
	TopicArn         string
	Subject          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
	UnsubscribeURL   string
	Attributes       map[string]Attribute
	hasSubject       bool // Subject was present (even empty): it is then part of the signed string

	// SNSConfirmation fields. SubscribeURL confirms the subscription (for an
	// UnsubscribeConfirmation, restores it); Token is what the ConfirmSubscription API takes
	// instead. Use Verifier.Confirm rather than fetching SubscribeURL yourself.
	SubscribeURL string
	Token        string

	// EventBridge fields.
	Source     string
	DetailType string
	Account    string
	Region     string
	Time       string
	ID         string
	Resources  []string
}

// Topic returns the last segment of TopicArn (the topic's name), or "" when there is none.
func (e *Envelope) Topic() string {
	if i := strings.LastIndexByte(e.TopicArn, ':'); i >= 0 {
		return e.TopicArn[i+1:]
	}
	return e.TopicArn
}

// ErrMalformed is returned by Parse for a body that claims to be an envelope (a JSON object
// with a TopicArn and an SNS Type of Notification, SubscriptionConfirmation or
// UnsubscribeConfirmation, or EventBridge's detail-type and source) but lacks a field every
// such envelope has.
var ErrMalformed = errors.New("envelope: malformed")

type snsWire struct {
	Type              string               `json:"Type"`
	MessageID         string               `json:"MessageId"`
	TopicArn          string               `json:"TopicArn"`
	Subject           *string              `json:"Subject"`
	Message           *string              `json:"Message"`
	Timestamp         string               `json:"Timestamp"`
	SignatureVersion  string               `json:"SignatureVersion"`
	Signature         string               `json:"Signature"`
	SigningCertURL    string               `json:"SigningCertURL"`
	UnsubscribeURL    string               `json:"UnsubscribeURL"`
	SubscribeURL      string               `json:"SubscribeURL"`
	Token             string               `json:"Token"`
	MessageAttributes map[string]Attribute `json:"MessageAttributes"`
	// EventBridge
	DetailType *string         `json:"detail-type"`
	Source     string          `json:"source"`
	Detail     json.RawMessage `json:"detail"`
	Account    string          `json:"account"`
	Region     string          `json:"region"`
	Time       string          `json:"time"`
	ID         string          `json:"id"`
	Resources  []string        `json:"resources"`
}

// wireKeys are the keys that identify an envelope, by their lower case, as SNS and
// EventBridge spell them. Other keys may vary in case (SNS's Lambda deliveries spell
// SigningCertUrl and UnsubscribeUrl so).
var wireKeys = map[string]string{"type": "Type", "topicarn": "TopicArn", "message": "Message", "messageid": "MessageId",
	"detail-type": "detail-type", "source": "source", "detail": "detail"}

// exactKeys reports whether every top-level key of obj that names an identifying envelope
// field spells it exactly as the wire format does.
func exactKeys(obj string) bool {
	var keys map[string]json.RawMessage
	if json.Unmarshal([]byte(obj), &keys) != nil {
		return false
	}
	for k := range keys {
		if want, ok := wireKeys[strings.ToLower(k)]; ok && k != want {
			return false
		}
	}
	return true
}

// Parse recognises body. A body that is not a JSON object, or a JSON object that is neither
// an SNS notification, an SNS confirmation nor an EventBridge event, is Raw, with the body as
// Payload. The identifying keys (Type, TopicArn, Message, MessageId; detail-type, source,
// detail) must be spelled as SNS and EventBridge spell them: {"type":..., "topicArn":...} is
// Raw. It returns an error wrapping ErrMalformed for an envelope missing a required field.
// Parse checks no signature: see Verifier.
func Parse(body string) (*Envelope, error) {
	raw := &Envelope{Kind: Raw, Payload: body}
	trimmed := strings.TrimSpace(body)
	if !strings.HasPrefix(trimmed, "{") {
		return raw, nil
	}
	var w snsWire
	if err := json.Unmarshal([]byte(trimmed), &w); err != nil {
		return raw, nil // not JSON: a raw payload that happens to start with a brace
	}
	recognised := ((w.Type == TypeNotification || w.Type == TypeSubscriptionConfirmation || w.Type == TypeUnsubscribeConfirmation) && w.TopicArn != "") ||
		(w.DetailType != nil && w.Source != "")
	if recognised && !exactKeys(trimmed) {
		// encoding/json matches keys case-insensitively; SNS and EventBridge spell theirs
		// exactly, so {"type":..., "topicArn":...} is somebody's own JSON, not an envelope.
		return raw, nil
	}
	switch {
	case (w.Type == TypeSubscriptionConfirmation || w.Type == TypeUnsubscribeConfirmation) && w.TopicArn != "":
		if w.Message == nil || w.MessageID == "" || w.SubscribeURL == "" || w.Token == "" {
			return nil, errors.Join(ErrMalformed, fmt.Errorf("SNS %s without Message, MessageId, SubscribeURL or Token", w.Type))
		}
		return &Envelope{Kind: SNSConfirmation, Payload: *w.Message, Type: w.Type, MessageID: w.MessageID, TopicArn: w.TopicArn,
			Timestamp: w.Timestamp, SignatureVersion: w.SignatureVersion, Signature: w.Signature,
			SigningCertURL: w.SigningCertURL, SubscribeURL: w.SubscribeURL, Token: w.Token}, nil
	case w.Type == TypeNotification && w.TopicArn != "":
		if w.Message == nil || w.MessageID == "" {
			return nil, errors.Join(ErrMalformed, errors.New("SNS notification without Message or MessageId"))
		}
		e := &Envelope{Kind: SNS, Payload: *w.Message, Type: w.Type, MessageID: w.MessageID, TopicArn: w.TopicArn,
			Timestamp: w.Timestamp, SignatureVersion: w.SignatureVersion, Signature: w.Signature,
			SigningCertURL: w.SigningCertURL, UnsubscribeURL: w.UnsubscribeURL, Attributes: w.MessageAttributes}
		if w.Subject != nil {
			e.Subject, e.hasSubject = *w.Subject, true
		}
		return e, nil
	case w.DetailType != nil && w.Source != "":
		if len(w.Detail) == 0 {
			return nil, errors.Join(ErrMalformed, errors.New("EventBridge event without detail"))
		}
		return &Envelope{Kind: EventBridge, Payload: string(w.Detail), Source: w.Source, DetailType: *w.DetailType,
			Account: w.Account, Region: w.Region, Time: w.Time, ID: w.ID, Resources: w.Resources}, nil
	}
	return raw, nil
}
