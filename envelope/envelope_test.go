package envelope

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseKinds(t *testing.T) {
	sns := `{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders","Subject":"hi","Message":"{\"id\":7}","Timestamp":"2026-11-23T10:00:00.000Z","SignatureVersion":"2","Signature":"c2ln","SigningCertURL":"https://sns.eu-west-1.amazonaws.com/x.pem","MessageAttributes":{"type":{"Type":"String","Value":"order.created"}}}`
	eb := `{"version":"0","id":"e-1","detail-type":"Order Created","source":"shop.orders","account":"123456789012","time":"2026-11-23T10:00:00Z","region":"eu-west-1","resources":["r"],"detail":{"id":7}}`
	cases := []struct {
		body    string
		kind    Kind
		payload string
	}{
		{"plain text", Raw, "plain text"},
		{`{"id":7}`, Raw, `{"id":7}`},
		{`{not json`, Raw, `{not json`},
		{sns, SNS, `{"id":7}`},
		{eb, EventBridge, `{"id":7}`},
	}
	for _, c := range cases {
		e, err := Parse(c.body)
		if err != nil || e.Kind != c.kind || e.Payload != c.payload {
			t.Fatalf("Parse(%.40q) = %+v, %v; want %v with payload %q", c.body, e, err, c.kind, c.payload)
		}
	}
	e, _ := Parse(sns)
	if e.Topic() != "orders" || e.Subject != "hi" || e.Attributes["type"].Value != "order.created" || e.MessageID != "m-1" {
		t.Fatalf("SNS fields %+v", e)
	}
	e, _ = Parse(eb)
	if e.Source != "shop.orders" || e.DetailType != "Order Created" || e.ID != "e-1" || e.Region != "eu-west-1" {
		t.Fatalf("EventBridge fields %+v", e)
	}
	for _, bad := range []string{
		`{"Type":"Notification","TopicArn":"arn:aws:sns:x:1:t","MessageId":"m"}`,
		`{"detail-type":"X","source":"s"}`,
		`{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:x:1:t","MessageId":"m","Message":"x","SubscribeURL":"https://x"}`,
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("Parse(%s) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestStringToSignFieldByField(t *testing.T) {
	e := &Envelope{Kind: SNS, Type: "Notification", MessageID: "id-1", TopicArn: "arn:aws:sns:us-east-1:1:t",
		Payload: "line1\nline2", Timestamp: "2026-11-23T10:00:00.000Z"}
	want := "Message\nline1\nline2\nMessageId\nid-1\nTimestamp\n2026-11-23T10:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
	if got := StringToSign(e); got != want {
		t.Fatalf("without Subject:\n%q\nwant\n%q", got, want)
	}
	e.Subject, e.hasSubject = "", true // present but empty is still signed
	want = "Message\nline1\nline2\nMessageId\nid-1\nSubject\n\nTimestamp\n2026-11-23T10:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
	if got := StringToSign(e); got != want {
		t.Fatalf("with Subject:\n%q\nwant\n%q", got, want)
	}
}

// signer is a key of its own and a self-signed certificate for it, standing in for SNS (or for
// a forger). The certificate names sns.amazonaws.com and is valid around signedAt.
type signer struct {
	key     *rsa.PrivateKey
	certPEM []byte
	fetches atomic.Int32
}

// signedAt is the Timestamp of the messages a signer signs.
const signedAt = "2026-11-23T10:00:00.000Z"

// newSigner returns a signer; each edit changes the certificate's template first.
func newSigner(t *testing.T, edits ...func(*x509.Certificate)) *signer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, signedAt)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: at.Add(-30 * 24 * time.Hour), NotAfter: at.Add(30 * 24 * time.Hour)}
	for _, edit := range edits {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// notification returns a signed SNS notification body.
func (s *signer) notification(t *testing.T, version string, subject *string) string {
	e := &Envelope{Kind: SNS, Type: TypeNotification, MessageID: "9f1c", TopicArn: "arn:aws:sns:eu-west-1:123456789012:orders",
		Payload: `{"order":42}`, Timestamp: signedAt}
	if subject != nil {
		e.Subject, e.hasSubject = *subject, true
	}
	return s.sign(t, e, version, "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem")
}

// sign returns e as a body signed with version and naming certURL as its certificate.
func (s *signer) sign(t *testing.T, e *Envelope, version, certURL string) string {
	msg := []byte(StringToSign(e))
	var sig []byte
	var err error
	if version == "1" {
		d := sha1.Sum(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]any{"Type": e.Type, "MessageId": e.MessageID, "TopicArn": e.TopicArn, "Message": e.Payload,
		"Timestamp": e.Timestamp, "SignatureVersion": version, "Signature": base64.StdEncoding.EncodeToString(sig),
		"SigningCertURL": certURL}
	if e.hasSubject {
		w["Subject"] = e.Subject
	}
	if e.Kind == SNSConfirmation {
		w["SubscribeURL"], w["Token"] = e.SubscribeURL, e.Token
	}
	b, _ := json.Marshal(w)
	return string(b)
}

func (s *signer) verifier() *Verifier {
	return &Verifier{Fetch: func(_ context.Context, u string) ([]byte, error) {
		s.fetches.Add(1)
		return s.certPEM, nil
	}}
}

func TestVerifySignatureVersions(t *testing.T) {
	s := newSigner(t)
	v := s.verifier()
	subject := "greetings"
	for _, version := range []string{"1", "2"} {
		for _, subj := range []*string{nil, &subject} {
			e, err := Parse(s.notification(t, version, subj))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(context.Background(), e); err != nil {
				t.Fatalf("version %s, subject %v: %v", version, subj != nil, err)
			}
			// Any change to a signed field breaks it.
			tampered := *e
			tampered.Payload = `{"order":43}`
			if err := v.Verify(context.Background(), &tampered); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered message verified: %v", err)
			}
			tampered = *e
			tampered.TopicArn = "arn:aws:sns:eu-west-1:999999999999:orders"
			if err := v.Verify(context.Background(), &tampered); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered topic verified: %v", err)
			}
		}
	}
	if s.fetches.Load() != 1 {
		t.Fatalf("certificate fetched %d times, want once (cached)", s.fetches.Load())
	}
}

func TestVerifyRejectsForeignCertificateURLs(t *testing.T) {
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil))
	for _, u := range []string{
		"http://sns.eu-west-1.amazonaws.com/x.pem",
		"https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
		"https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
		"https://sns.eu-west-1.amazonaws.com:8443/x.pem",
		"https://sns.eu-west-1.amazonaws.com/x.txt",
		"https://sqs.eu-west-1.amazonaws.com/x.pem",
		"::not a url",
	} {
		bad := *e
		bad.SigningCertURL = u
		if err := s.verifier().Verify(context.Background(), &bad); !errors.Is(err, ErrCertURL) {
			t.Errorf("%s: %v, want ErrCertURL", u, err)
		}
	}
	bad := *e
	bad.SignatureVersion = "3"
	if err := s.verifier().Verify(context.Background(), &bad); !errors.Is(err, ErrBadSignature) {
		t.Errorf("version 3: %v", err)
	}
	raw, _ := Parse("hello")
	if err := s.verifier().Verify(context.Background(), raw); !errors.Is(err, ErrNotSigned) {
		t.Errorf("raw body: %v", err)
	}
	other := newSigner(t) // a key SNS did not sign with
	if err := other.verifier().Verify(context.Background(), e); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	if !strings.Contains(StringToSign(e), "Type\nNotification\n") {
		t.Error("string to sign lacks the type")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"Type":"Notification","TopicArn":"a","MessageId":"m","Message":"x"}`)
	f.Add(`{"detail-type":"d","source":"s","detail":{}}`)
	f.Add(`{"Type":"SubscriptionConfirmation","TopicArn":"a","MessageId":"m","Message":"x","SubscribeURL":"u","Token":"t"}`)
	f.Add("plain")
	f.Fuzz(func(t *testing.T, body string) {
		e, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if e.Kind == Raw && e.Payload != body {
			t.Fatal("a raw body's payload is not the body")
		}
	})
}
