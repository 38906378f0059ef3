package sqsconsumer_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// genuineSNS reads a message SNS signed from envelope/testdata (see its README).
func genuineSNS(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("envelope/testdata/sns/messages/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testdataVerifier verifies against the certificates in envelope/testdata, offline.
func testdataVerifier() *envelope.Verifier {
	return &envelope.Verifier{Fetch: func(_ context.Context, u string) ([]byte, error) {
		p, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		return os.ReadFile("envelope/testdata/sns/certs/" + path.Base(p.Path))
	}}
}

// SNS confirmations are refused by Unwrap unless OnConfirmation takes them, and then they go
// to it (verified first with VerifySignatures), never to the handler.
func TestUnwrapSNSConfirmations(t *testing.T) {
	const topic = "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic"
	sub := genuineSNS(t, "java-subscription-confirmation-v1")
	unsub := genuineSNS(t, "java-unsubscribe-confirmation-v2")
	forged := strings.Replace(sub, `"Token" : "2`, `"Token" : "3`, 1)
	var confirmed []string
	onConfirmation := sqsconsumer.OnConfirmation(func(ctx context.Context, m *sqsconsumer.Message, env *envelope.Envelope) error {
		if env.Kind != envelope.SNSConfirmation || env.TopicArn != topic || env.Token == "" {
			t.Errorf("OnConfirmation got %+v", env)
		}
		confirmed = append(confirmed, env.Type)
		return nil
	})
	handler := func(ctx context.Context, m *sqsconsumer.Message) error {
		t.Errorf("the handler got a confirmation: %s", *m.Body)
		return nil
	}
	for _, tc := range []struct {
		name    string
		opts    []sqsconsumer.UnwrapOption
		body    string
		wantErr error  // nil: OnConfirmation ran
		want    string // the Type OnConfirmation saw
	}{
		{"no options", nil, sub, sqsconsumer.ErrSNSConfirmation, ""},
		{"AllowRaw", []sqsconsumer.UnwrapOption{sqsconsumer.AllowRaw()}, sub, sqsconsumer.ErrSNSConfirmation, ""},
		{"allowlist and AllowRaw", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics(topic), sqsconsumer.AllowRaw()}, unsub, sqsconsumer.ErrSNSConfirmation, ""},
		{"signatures", []sqsconsumer.UnwrapOption{sqsconsumer.VerifySignatures(testdataVerifier())}, sub, sqsconsumer.ErrSNSConfirmation, ""},
		{"OnConfirmation, other topic", []sqsconsumer.UnwrapOption{onConfirmation, sqsconsumer.AllowTopics("arn:aws:sns:us-west-2:1:other")}, sub, sqsconsumer.ErrTopicNotAllowed, ""},
		{"OnConfirmation and signatures, forged", []sqsconsumer.UnwrapOption{onConfirmation, sqsconsumer.VerifySignatures(testdataVerifier())}, forged, envelope.ErrBadSignature, ""},
		{"OnConfirmation and signatures", []sqsconsumer.UnwrapOption{onConfirmation, sqsconsumer.VerifySignatures(testdataVerifier())}, sub, nil, envelope.TypeSubscriptionConfirmation},
		{"OnConfirmation, signatures, allowlist, unsubscribe", []sqsconsumer.UnwrapOption{onConfirmation, sqsconsumer.VerifySignatures(testdataVerifier()), sqsconsumer.AllowTopics(topic)}, unsub, nil, envelope.TypeUnsubscribeConfirmation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			confirmed = nil
			m := &sqsconsumer.Message{}
			m.MessageId = aws.String("m-1")
			m.Body = aws.String(tc.body)
			err := sqsconsumer.Unwrap(tc.opts...)(handler)(context.Background(), m)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := strings.Join(confirmed, ","); got != tc.want {
				t.Fatalf("OnConfirmation saw %q, want %q", got, tc.want)
			}
		})
	}

	// A genuine notification still reaches the handler through the same options.
	got := ""
	h := sqsconsumer.Unwrap(onConfirmation, sqsconsumer.VerifySignatures(testdataVerifier()), sqsconsumer.AllowTopics(topic))(
		func(ctx context.Context, m *sqsconsumer.Message) error { got = *m.Body; return nil })
	m := &sqsconsumer.Message{}
	m.Body = aws.String(genuineSNS(t, "java-notification-v2"))
	if err := h(context.Background(), m); err != nil || got != "This message uses signature version 2." {
		t.Fatalf("genuine notification: %v, body %q", err, got)
	}

	// Without Unwrap, a topic router does not route a confirmation by its topic.
	r := sqsconsumer.NewTopicRouter().Route(topic, handler)
	m = &sqsconsumer.Message{}
	m.Body = aws.String(sub)
	if err := r.Handle(context.Background(), m); !errors.Is(err, sqsconsumer.ErrNoRoute) {
		t.Fatalf("router: %v, want ErrNoRoute", err)
	}
}
