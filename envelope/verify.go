package envelope

import (
	"bytes"
	"context"
	"crypto"
	"crypto/fips140"
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

// Errors of Verify and Confirm; test with errors.Is.
var (
	// ErrNotSigned: the envelope is not an SNS notification or confirmation (its Kind and Type
	// disagree, or it is raw or EventBridge), or it carries no signature.
	ErrNotSigned = errors.New("envelope: not a signed SNS message")
	// ErrCertURL: SigningCertURL is not an https URL of a .pem file on the SNS host of the
	// topic's region (sns.<region>.amazonaws.com, .com.cn in China), or TopicArn names no
	// such region. Nothing was fetched.
	ErrCertURL = errors.New("envelope: signing certificate URL is not SNS's")
	// ErrCertFetch: the signing certificate could not be fetched (network, timeout, HTTP
	// status, a redirect to another host, the context). Nothing is known about the message;
	// trying again later may succeed.
	ErrCertFetch = errors.New("envelope: signing certificate could not be fetched")
	// ErrCertificate: what was fetched is not an SNS signing certificate: not a PEM X.509
	// certificate with an RSA key, not issued to an SNS signing name, or not valid at the
	// message's Timestamp.
	ErrCertificate = errors.New("envelope: not an SNS signing certificate")
	// ErrBadSignature: the signature does not match the message (or the SignatureVersion is
	// not 1 or 2, or the Timestamp is not a time).
	ErrBadSignature = errors.New("envelope: SNS signature does not verify")
	// ErrUnsupported: the signature cannot be checked in this process: SignatureVersion 1
	// needs SHA-1, which GODEBUG=fips140=only forbids.
	ErrUnsupported = errors.New("envelope: SNS signature cannot be checked here")
	// ErrConfirm: Confirm did not confirm: the message is not a SubscriptionConfirmation, its
	// SubscribeURL is not SNS's ConfirmSubscription for its topic and token, or the request
	// failed.
	ErrConfirm = errors.New("envelope: subscription not confirmed")
)

// certCacheSize bounds the certificates a Verifier keeps. SNS signs with one certificate at a
// time per region, so a handful covers a rotation across the regions a consumer hears from.
const certCacheSize = 16

// Verifier checks the signatures SNS puts on notifications and confirmations
// (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA), and confirms subscriptions.
//
// A message verifies when all of these hold: SigningCertURL is an https URL of a .pem file
// on the SNS host of the region in TopicArn; the certificate there is an X.509 certificate
// with an RSA key issued to an SNS signing name (sns.amazonaws.com, or the regional
// sns-signing.<region> and sns-<region> names AWS uses in newer, Chinese and GovCloud
// regions); the message's Timestamp lies within the certificate's validity; and the
// signature over StringToSign verifies with its key. The certificate's own chain is not
// checked (SNS serves the leaf alone): it is trusted because it came over TLS, verified
// against the system's public roots, from that SNS host and no other. Not checked: how old
// the message is, and whether it was seen before: a genuine message sent to the queue again
// verifies again.
//
// The zero value is ready to use. It keeps the 16 certificates it used most recently, keyed by
// scheme, host and path; a failed fetch is not kept. It is safe for concurrent use.
type Verifier struct {
	// Fetch returns the PEM certificate at u, which Verify has checked is an https URL of a
	// .pem file on an SNS host (scheme, host and path only). What it returns is trusted as
	// that host's, subject to the checks above: a custom Fetch must get it over TLS verified
	// against public roots from u's host, following no redirect to another host, or from a
	// store it trusts. Its error is wrapped with ErrCertFetch. Nil means an HTTPS GET with
	// Go's default TLS verification and a 10 s timeout that follows redirects on the same
	// host only.
	Fetch func(ctx context.Context, u string) ([]byte, error)

	mu    sync.Mutex
	certs []cachedCert // most recently used first, at most certCacheSize
}

type cachedCert struct {
	url  string
	cert *x509.Certificate
}

// StringToSign returns the text SNS signs, each name and value followed by a newline: for a
// notification Message, MessageId, Subject (only when present), Timestamp, TopicArn and Type;
// for a SubscriptionConfirmation or UnsubscribeConfirmation Message, MessageId, SubscribeURL,
// Timestamp, Token, TopicArn and Type. It chooses by e.Type.
func StringToSign(e *Envelope) string {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", e.Payload)
	add("MessageId", e.MessageID)
	if e.Type == TypeSubscriptionConfirmation || e.Type == TypeUnsubscribeConfirmation {
		add("SubscribeURL", e.SubscribeURL)
		add("Timestamp", e.Timestamp)
		add("Token", e.Token)
	} else {
		if e.hasSubject {
			add("Subject", e.Subject)
		}
		add("Timestamp", e.Timestamp)
	}
	add("TopicArn", e.TopicArn)
	add("Type", e.Type)
	return b.String()
}

// Verify checks e's signature: see Verifier for what that covers. It blocks while it fetches
// a certificate it does not hold. It returns nil for a genuine SNS notification or
// confirmation, and otherwise an error wrapping ErrNotSigned, ErrCertURL, ErrCertFetch,
// ErrCertificate, ErrBadSignature or ErrUnsupported. Only ErrCertFetch says nothing about
// the message itself.
func (v *Verifier) Verify(ctx context.Context, e *Envelope) error {
	if e == nil || e.Signature == "" || !signedKind(e) {
		return ErrNotSigned
	}
	var hash crypto.Hash
	switch e.SignatureVersion {
	case "1":
		if fips140.Enforced() {
			return fmt.Errorf("%w: SignatureVersion 1 uses SHA-1, which FIPS 140-only mode forbids", ErrUnsupported)
		}
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return fmt.Errorf("%w: SignatureVersion %q", ErrBadSignature, e.SignatureVersion)
	}
	region, host, err := topicHost(e.TopicArn)
	if err != nil {
		return err
	}
	certURL, err := signingCertURL(e.SigningCertURL, host)
	if err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return fmt.Errorf("%w: Timestamp %q is not a time", ErrBadSignature, e.Timestamp)
	}
	cert, err := v.cert(ctx, certURL, region)
	if err != nil {
		return err
	}
	if at.Before(cert.NotBefore) || at.After(cert.NotAfter) {
		return fmt.Errorf("%w: %s is valid from %s to %s, not at the message's Timestamp %s", ErrCertificate,
			certURL, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), e.Timestamp)
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
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), hash, digest, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// Confirm confirms the subscription e asks for. It verifies e as Verify does, checks that e
// is a SubscriptionConfirmation whose SubscribeURL is SNS's ConfirmSubscription request for
// e's topic and token on the SNS host of the topic's region, and only then GETs SubscribeURL
// with client (nil means a client with a 10 s timeout); it follows redirects on that host
// only, whatever client's policy. It blocks for the requests. It returns nil once SNS
// answered 200 OK, and otherwise an error from Verify or one wrapping ErrConfirm. An
// UnsubscribeConfirmation is refused: its SubscribeURL would undo the unsubscription.
func (v *Verifier) Confirm(ctx context.Context, e *Envelope, client *http.Client) error {
	if e == nil || e.Kind != SNSConfirmation || e.Type != TypeSubscriptionConfirmation {
		return fmt.Errorf("%w: not a SubscriptionConfirmation", ErrConfirm)
	}
	if err := v.Verify(ctx, e); err != nil {
		return err
	}
	_, host, err := topicHost(e.TopicArn)
	if err != nil {
		return err
	}
	if err := checkSubscribeURL(e, host); err != nil {
		return err
	}
	c := http.Client{Timeout: 10 * time.Second}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = sameHostRedirect
	if _, err := get(ctx, &c, e.SubscribeURL, 64<<10); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfirm, e.TopicArn, err)
	}
	return nil
}

func signedKind(e *Envelope) bool {
	switch e.Kind {
	case SNS:
		return e.Type == TypeNotification
	case SNSConfirmation:
		return e.Type == TypeSubscriptionConfirmation || e.Type == TypeUnsubscribeConfirmation
	}
	return false
}

// regionName is the shape of an AWS region name (us-east-1, us-gov-west-1, cn-north-1): a
// word of letters, dash-separated words, a number. "s3", which shares sns.<label>.amazonaws.com
// with SNS's hosts (a bucket named sns), does not have it.
var regionName = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]+$`)

// topicHost returns the region in an SNS topic ARN and the SNS host of that region: the only
// host whose certificates sign the topic's messages. Partitions other than aws, aws-cn and
// aws-us-gov are not supported.
func topicHost(arn string) (region, host string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "sns" && regionName.MatchString(parts[3]) {
		region = parts[3]
		partition, suffix := "aws", ".amazonaws.com"
		switch {
		case strings.HasPrefix(region, "cn-"):
			partition, suffix = "aws-cn", ".amazonaws.com.cn"
		case strings.HasPrefix(region, "us-gov-"):
			partition = "aws-us-gov"
		}
		if parts[1] == partition {
			return region, "sns." + region + suffix, nil
		}
	}
	return "", "", fmt.Errorf("%w: TopicArn %q names no SNS region this package knows the host of", ErrCertURL, arn)
}

// certPath is a path of plain segments, none starting with a dot: no traversal, no escapes.
var certPath = regexp.MustCompile(`^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$`)

// signingCertURL checks raw against host and returns it as the certificate's cache key and
// fetch URL: scheme, host and path, without query or fragment.
func signingCertURL(raw, host string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host != host ||
		u.RawPath != "" || !certPath.MatchString(u.Path) || !strings.HasSuffix(u.Path, ".pem") {
		return "", fmt.Errorf("%w: %q is not a .pem file on %s, the SNS host of the topic's region", ErrCertURL, raw, host)
	}
	return "https://" + host + u.Path, nil
}

// signingNames returns the names an SNS signing certificate for region may be issued to.
func signingNames(region string) []string {
	suffix := ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = ".amazonaws.com.cn"
	}
	names := []string{"sns-signing." + region + suffix, "sns-" + region + suffix}
	if suffix == ".amazonaws.com" {
		names = append(names, "sns.amazonaws.com")
	}
	if strings.HasPrefix(region, "us-gov-") {
		names = append(names, "sns-us-gov-west-1.amazonaws.com") // GovCloud's regions share one
	}
	return names
}

func (v *Verifier) cert(ctx context.Context, u, region string) (*x509.Certificate, error) {
	if c := v.cached(u); c != nil {
		return c, nil
	}
	fetch := v.Fetch
	if fetch == nil {
		fetch = defaultFetch
	}
	body, err := fetch(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCertFetch, u, err)
	}
	c, err := parseSigningCert(body, region)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCertificate, u, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.certs = append([]cachedCert{{u, c}}, v.certs...)
	for i := 1; i < len(v.certs); i++ {
		if v.certs[i].url == u { // fetched concurrently: keep one
			v.certs = append(v.certs[:i], v.certs[i+1:]...)
			break
		}
	}
	if len(v.certs) > certCacheSize {
		v.certs = v.certs[:certCacheSize]
	}
	return c, nil
}

// cached returns the certificate for u and marks it most recently used, or nil.
func (v *Verifier) cached(u string) *x509.Certificate {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, c := range v.certs {
		if c.url == u {
			copy(v.certs[1:i+1], v.certs[:i])
			v.certs[0] = c
			return c.cert
		}
	}
	return nil
}

// parseSigningCert accepts a body of PEM certificates and nothing else, and returns the first
// if it has an RSA key and is issued to one of region's SNS signing names.
func parseSigningCert(body []byte, region string) (*x509.Certificate, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, errors.New("not a PEM certificate")
	}
	block, rest := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	for len(bytes.TrimSpace(rest)) > 0 { // a chain may follow; nothing else may
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil || b.Type != "CERTIFICATE" {
			return nil, errors.New("more than PEM certificates")
		}
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("the key is not RSA")
	}
	names := c.DNSNames
	if len(names) == 0 {
		names = []string{c.Subject.CommonName}
	}
	for _, want := range signingNames(region) {
		for _, n := range names {
			if strings.EqualFold(n, want) {
				return c, nil
			}
		}
	}
	return nil, fmt.Errorf("issued to %q, not to one of %q", names, signingNames(region))
}

// checkSubscribeURL checks that e's SubscribeURL is the ConfirmSubscription request SNS
// sends: https on host, path /, and exactly Action, TopicArn (e's) and Token (e's).
func checkSubscribeURL(e *Envelope, host string) error {
	u, err := url.Parse(e.SubscribeURL)
	if err == nil && u.Scheme == "https" && u.Opaque == "" && u.User == nil && u.Host == host && u.Path == "/" && u.Fragment == "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err == nil && len(q) == 3 && q.Get("Action") == "ConfirmSubscription" &&
			q.Get("TopicArn") == e.TopicArn && q.Get("Token") == e.Token && len(q["TopicArn"]) == 1 && len(q["Token"]) == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: SubscribeURL %q is not a ConfirmSubscription on %s for the message's topic and token", ErrConfirm, e.SubscribeURL, host)
}

// sameHostRedirect follows at most 3 redirects, and only to https on the first request's host.
func sameHostRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("more than 3 redirects")
	}
	if req.URL.Scheme != "https" || req.URL.Host != via[0].URL.Host {
		return fmt.Errorf("redirect to %s refused: not https on %s", req.URL.Redacted(), via[0].URL.Host)
	}
	return nil
}

// httpsFetcher returns a Fetch that GETs over rt with a 10 s timeout and sameHostRedirect.
func httpsFetcher(rt http.RoundTripper) func(ctx context.Context, u string) ([]byte, error) {
	client := &http.Client{Transport: rt, Timeout: 10 * time.Second, CheckRedirect: sameHostRedirect}
	return func(ctx context.Context, u string) ([]byte, error) {
		return get(ctx, client, u, 64<<10)
	}
}

var defaultFetch = httpsFetcher(http.DefaultTransport)

// get GETs u and returns its body, of at most limit bytes, when the status is 200.
func get(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response larger than %d bytes", limit)
	}
	return body, nil
}
