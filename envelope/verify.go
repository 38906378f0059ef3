package envelope

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Errors of Verify; test with errors.Is.
var (
	// ErrNotSigned: the envelope is not an SNS notification, or carries no signature.
	ErrNotSigned = errors.New("envelope: not a signed SNS notification")
	// ErrCertURL: the signing certificate's URL is not an https URL on an SNS host.
	ErrCertURL = errors.New("envelope: signing certificate URL is not SNS's")
	// ErrBadSignature: the signature does not match the notification.
	ErrBadSignature = errors.New("envelope: SNS signature does not verify")
)

// snsHost matches the hosts SNS serves signing certificates from.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// Verifier checks SNS notification signatures (SignatureVersion 1, SHA1withRSA, and 2,
// SHA256withRSA). The zero value is ready to use and fetches certificates over HTTPS, caching
// them. It is safe for concurrent use.
type Verifier struct {
	// Fetch returns the PEM certificate at u, which Verify has checked is an https URL on an
	// SNS host. Nil means an HTTPS GET with a 10 s timeout.
	Fetch func(ctx context.Context, u string) ([]byte, error)

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// StringToSign returns the text SNS signs for a notification: the names and values of
// Message, MessageId, Subject (only when present), Timestamp, TopicArn and Type, each followed
// by a newline.
func StringToSign(e *Envelope) string {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", e.Payload)
	add("MessageId", e.MessageID)
	if e.hasSubject {
		add("Subject", e.Subject)
	}
	add("Timestamp", e.Timestamp)
	add("TopicArn", e.TopicArn)
	add("Type", e.Type)
	return b.String()
}

// Verify checks e's signature against the certificate at its SigningCertURL. It blocks while
// it fetches a certificate it has not seen. It returns nil for a valid signature, and an
// error wrapping ErrNotSigned, ErrCertURL or ErrBadSignature otherwise.
func (v *Verifier) Verify(ctx context.Context, e *Envelope) error {
	if e == nil || e.Kind != SNS || e.Signature == "" {
		return ErrNotSigned
	}
	var hash crypto.Hash
	switch e.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return fmt.Errorf("%w: SignatureVersion %q", ErrBadSignature, e.SignatureVersion)
	}
	u, err := url.Parse(e.SigningCertURL)
	if err != nil || u.Scheme != "https" || !snsHost.MatchString(u.Hostname()) || u.Port() != "" || !strings.HasSuffix(u.Path, ".pem") {
		return fmt.Errorf("%w: %q", ErrCertURL, e.SigningCertURL)
	}
	cert, err := v.cert(ctx, u.String())
	if err != nil {
		return err
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: the certificate's key is not RSA", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	msg := []byte(StringToSign(e))
	var digest []byte
	if hash == crypto.SHA1 {
		d := sha1.Sum(msg)
		digest = d[:]
	} else {
		d := sha256.Sum256(msg)
		digest = d[:]
	}
	if err := rsa.VerifyPKCS1v15(key, hash, digest, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

func (v *Verifier) cert(ctx context.Context, u string) (*x509.Certificate, error) {
	v.mu.Lock()
	c := v.certs[u]
	v.mu.Unlock()
	if c != nil {
		return c, nil
	}
	fetch := v.Fetch
	if fetch == nil {
		fetch = httpsGet
	}
	body, err := fetch(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("envelope: fetch signing certificate %s: %w", u, err)
	}
	block, _ := pem.Decode(body)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM certificate at %s", ErrBadSignature, u)
	}
	c, err = x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate at %s: %v", ErrBadSignature, u, err)
	}
	v.mu.Lock()
	if v.certs == nil {
		v.certs = map[string]*x509.Certificate{}
	}
	v.certs[u] = c
	v.mu.Unlock()
	return c, nil
}

func httpsGet(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}
