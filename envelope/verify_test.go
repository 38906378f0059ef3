package envelope

import (
	"context"
	"crypto/fips140"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// forged returns a notification on topicArn signed by s, naming certURL as its certificate.
func (s *signer) forged(t *testing.T, topicArn, certURL string) *Envelope {
	t.Helper()
	e := &Envelope{Kind: SNS, Type: TypeNotification, MessageID: "forged-1", TopicArn: topicArn,
		Payload: `{"refund":1000000}`, Timestamp: signedAt}
	e, err := Parse(s.sign(t, e, "2", certURL))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestVerifyRefusesS3Forgery: a bucket named "sns" is served at sns.s3.amazonaws.com, which
// the old host pattern took for a region. A forger's own certificate served there must not
// be fetched, let alone trusted.
func TestVerifyRefusesS3Forgery(t *testing.T) {
	forger := newSigner(t) // its own key; the certificate names sns.amazonaws.com, as anyone's can
	for _, c := range []struct{ topic, url string }{
		{"arn:aws:sns:us-east-1:123456789012:payments", "https://sns.s3.amazonaws.com/SimpleNotificationService-forged.pem"},
		{"arn:aws:sns:s3:123456789012:payments", "https://sns.s3.amazonaws.com/SimpleNotificationService-forged.pem"},
		{"arn:aws:sns:us-east-1:123456789012:payments", "https://sns.s3-external-1.amazonaws.com/SimpleNotificationService-forged.pem"},
	} {
		v := forger.verifier()
		err := v.Verify(context.Background(), forger.forged(t, c.topic, c.url))
		if !errors.Is(err, ErrCertURL) || forger.fetches.Load() != 0 {
			t.Errorf("%s on %s: %v after %d fetches, want ErrCertURL and none", c.url, c.topic, err, forger.fetches.Load())
		}
	}
	// The forgery is otherwise sound: only the host stops it (a Fetch is trusted).
	e := forger.forged(t, "arn:aws:sns:us-east-1:123456789012:payments", "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-forged.pem")
	if err := forger.verifier().Verify(context.Background(), e); err != nil {
		t.Fatalf("the forgery's signature itself: %v", err)
	}
}

func TestVerifyRefusesHostileCertificateURLs(t *testing.T) {
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil)) // topic in eu-west-1
	for _, u := range []string{
		"",
		"::not a url",
		"http://sns.eu-west-1.amazonaws.com/x.pem",
		"//sns.eu-west-1.amazonaws.com/x.pem",
		"https:sns.eu-west-1.amazonaws.com/x.pem",
		"https://sns.us-east-1.amazonaws.com/x.pem", // another region than the topic's
		"https://sns.eu-west-1.amazonaws.com.cn/x.pem",
		"https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
		"https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
		"https://sns.eu-west-1.amazonaws.com@evil.example/x.pem",
		"https://user@sns.eu-west-1.amazonaws.com/x.pem",
		"https://sns.eu-west-1.amazonaws.com:443/x.pem",
		"https://sns.eu-west-1.amazonaws.com:8443/x.pem",
		"https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem",
		"https://sns.eu-west-1.amazonaws.com",
		"https://sns.eu-west-1.amazonaws.com/x.txt",
		"https://sns.eu-west-1.amazonaws.com/x.pem/",
		"https://sns.eu-west-1.amazonaws.com/../x.pem",
		"https://sns.eu-west-1.amazonaws.com/a/%2e%2e/x.pem",
		"https://sns.eu-west-1.amazonaws.com/%78.pem",
		"https://sqs.eu-west-1.amazonaws.com/x.pem",
		"https://52.94.236.248/x.pem",
		"https://[::1]/x.pem",
	} {
		bad := *e
		bad.SigningCertURL = u
		v := s.verifier()
		if err := v.Verify(context.Background(), &bad); !errors.Is(err, ErrCertURL) {
			t.Errorf("%q: %v, want ErrCertURL", u, err)
		}
	}
	for _, arn := range []string{
		"arn:aws-cn:sns:eu-west-1:123456789012:orders", // partition and region disagree
		"arn:aws:sns:cn-north-1:123456789012:orders",
		"arn:aws:sqs:eu-west-1:123456789012:orders",
		"orders",
	} {
		bad := *e
		bad.TopicArn = arn
		if err := s.verifier().Verify(context.Background(), &bad); !errors.Is(err, ErrCertURL) {
			t.Errorf("TopicArn %q: %v, want ErrCertURL", arn, err)
		}
	}
	if s.fetches.Load() != 0 {
		t.Fatalf("%d fetches for refused URLs", s.fetches.Load())
	}
	// A query or fragment is not part of what is fetched.
	ok := *e
	ok.SigningCertURL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem?x=1#y"
	var got string
	v := &Verifier{Fetch: func(_ context.Context, u string) ([]byte, error) { got = u; return s.certPEM, nil }}
	if err := v.Verify(context.Background(), &ok); err != nil || got != "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem" {
		t.Fatalf("with a query: %v, fetched %q", err, got)
	}
}

func TestVerifyOtherPartitionsAndRegionalNames(t *testing.T) {
	for _, c := range []struct {
		topic, url string
		name       string
		ok         bool
	}{
		{"arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem", "sns-signing.eu-west-1.amazonaws.com", true},
		{"arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem", "sns-signing.us-east-1.amazonaws.com", false},
		{"arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem", "sns.amazonaws.com.evil.example", false},
		{"arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem", "evil.example", false},
		{"arn:aws-cn:sns:cn-north-1:1:t", "https://sns.cn-north-1.amazonaws.com.cn/a.pem", "sns-cn-north-1.amazonaws.com.cn", true},
		{"arn:aws-cn:sns:cn-north-1:1:t", "https://sns.cn-north-1.amazonaws.com.cn/a.pem", "sns.amazonaws.com", false},
		{"arn:aws-us-gov:sns:us-gov-east-1:1:t", "https://sns.us-gov-east-1.amazonaws.com/a.pem", "sns-us-gov-west-1.amazonaws.com", true},
	} {
		s := newSigner(t, func(c0 *x509.Certificate) { c0.DNSNames = []string{c.name} })
		err := s.verifier().Verify(context.Background(), s.forged(t, c.topic, c.url))
		if c.ok && err != nil || !c.ok && !errors.Is(err, ErrCertificate) {
			t.Errorf("%s issued to %s: %v (want ok=%v)", c.topic, c.name, err, c.ok)
		}
	}
	// Without SANs the common name is the certificate's name.
	s := newSigner(t, func(c *x509.Certificate) { c.Subject.CommonName = "evil.example" })
	if err := s.verifier().Verify(context.Background(), s.forged(t, "arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem")); !errors.Is(err, ErrCertificate) {
		t.Errorf("common name evil.example: %v", err)
	}
	// With SANs the common name does not count.
	s = newSigner(t, func(c *x509.Certificate) { c.DNSNames = []string{"evil.example"} })
	if err := s.verifier().Verify(context.Background(), s.forged(t, "arn:aws:sns:eu-west-1:1:t", "https://sns.eu-west-1.amazonaws.com/a.pem")); !errors.Is(err, ErrCertificate) {
		t.Errorf("SAN evil.example with common name sns.amazonaws.com: %v", err)
	}
}

// TestVerifyCertificateValidityAtTimestamp: the certificate must be valid when SNS signed
// (the Timestamp), not now: every genuine fixture's certificate has expired since, and SQS
// keeps messages for days (a dead-letter queue redriven later, longer).
func TestVerifyCertificateValidityAtTimestamp(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, signedAt)
	for _, c := range []struct {
		from, to time.Time
		ok       bool
	}{
		{at.Add(-time.Hour), at.Add(time.Hour), true},
		{at.Add(-48 * time.Hour), at.Add(-24 * time.Hour), false}, // expired when signed
		{at.Add(time.Hour), at.Add(48 * time.Hour), false},        // not yet valid when signed
		{at.Add(-365 * 24 * time.Hour), at.Add(-300 * 24 * time.Hour), false},
	} {
		s := newSigner(t, func(x *x509.Certificate) { x.NotBefore, x.NotAfter = c.from, c.to })
		e, _ := Parse(s.notification(t, "2", nil))
		err := s.verifier().Verify(context.Background(), e)
		if c.ok && err != nil || !c.ok && !errors.Is(err, ErrCertificate) {
			t.Errorf("valid %s to %s, signed %s: %v", c.from, c.to, signedAt, err)
		}
	}
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil))
	e.Timestamp = "yesterday"
	if err := s.verifier().Verify(context.Background(), e); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Timestamp yesterday: %v", err)
	}
}

func TestVerifyCertificateBody(t *testing.T) {
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil))
	for name, body := range map[string]string{
		"empty":          "",
		"not PEM":        "hello",
		"wrapped in XML": "<xml><value>\n" + string(s.certPEM) + "\n</value></xml>",
		"trailing junk":  string(s.certPEM) + "junk",
		"a key":          "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"bad DER":        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		v := &Verifier{Fetch: func(context.Context, string) ([]byte, error) { return []byte(body), nil }}
		if err := v.Verify(context.Background(), e); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: %v, want ErrCertificate", name, err)
		}
	}
	chain := string(s.certPEM) + "\n" + string(newSigner(t).certPEM)
	v := &Verifier{Fetch: func(context.Context, string) ([]byte, error) { return []byte(chain), nil }}
	if err := v.Verify(context.Background(), e); err != nil {
		t.Errorf("leaf followed by a chain: %v", err)
	}
}

func TestVerifyFetchErrorsWrapErrCertFetch(t *testing.T) {
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil))
	boom := errors.New("boom")
	v := &Verifier{Fetch: func(context.Context, string) ([]byte, error) { return nil, boom }}
	if err := v.Verify(context.Background(), e); !errors.Is(err, ErrCertFetch) || !errors.Is(err, boom) {
		t.Errorf("fetch error: %v, want ErrCertFetch wrapping the cause", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v = &Verifier{Fetch: func(ctx context.Context, _ string) ([]byte, error) { return nil, ctx.Err() }}
	if err := v.Verify(ctx, e); !errors.Is(err, ErrCertFetch) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// A failed fetch is not cached: the next call fetches again.
	var n atomic.Int32
	v = &Verifier{Fetch: func(context.Context, string) ([]byte, error) {
		if n.Add(1) == 1 {
			return nil, boom
		}
		return s.certPEM, nil
	}}
	_ = v.Verify(context.Background(), e)
	if err := v.Verify(context.Background(), e); err != nil || n.Load() != 2 {
		t.Errorf("after a failed fetch: %v, %d fetches", err, n.Load())
	}
}

func TestVerifyCertificateCacheIsBounded(t *testing.T) {
	s := newSigner(t)
	e, _ := Parse(s.notification(t, "2", nil))
	v := s.verifier()
	verify := func(path string) {
		t.Helper()
		c := *e
		c.SigningCertURL = "https://sns.eu-west-1.amazonaws.com/" + path
		if err := v.Verify(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
	}
	verify("c0.pem?a=1")
	verify("c0.pem?a=2")
	verify("c0.pem#frag")
	if s.fetches.Load() != 1 {
		t.Fatalf("one path with three queries fetched %d times, want 1", s.fetches.Load())
	}
	for i := 1; i < certCacheSize; i++ {
		verify(fmt.Sprintf("c%d.pem", i))
	}
	verify("c0.pem")                              // most recently used again
	verify(fmt.Sprintf("c%d.pem", certCacheSize)) // evicts c1, the least recently used
	if got := s.fetches.Load(); got != certCacheSize+1 {
		t.Fatalf("%d fetches, want %d", got, certCacheSize+1)
	}
	verify("c0.pem")
	verify("c1.pem")
	if got := s.fetches.Load(); got != certCacheSize+2 {
		t.Fatalf("%d fetches after c0 (kept) and c1 (evicted), want %d", got, certCacheSize+2)
	}
	if len(v.certs) > certCacheSize {
		t.Fatalf("cache holds %d", len(v.certs))
	}
}

// fakeSNS starts a TLS server standing in for every sns.*.amazonaws.com host, and returns a
// transport that reaches it (and nothing else) and the addresses it was asked to dial.
func fakeSNS(t *testing.T, h http.Handler) (*http.Transport, func() []string) {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	var mu sync.Mutex
	var dialled []string
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialled = append(dialled, addr)
			mu.Unlock()
			if !strings.HasPrefix(addr, "sns.") || !strings.HasSuffix(addr, ".amazonaws.com:443") {
				return nil, fmt.Errorf("test transport: no route to %s", addr)
			}
			return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
		},
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}, // the test certificate's name
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), dialled...) }
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/sns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genuineEnvelope(t *testing.T, name string) *Envelope {
	t.Helper()
	e, err := Parse(string(readTestdata(t, "messages/"+name+".json")))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDefaultFetcherRedirects: the default fetcher, over TLS, follows a redirect on the SNS
// host and refuses one to any other host without connecting to it.
func TestDefaultFetcherRedirects(t *testing.T) {
	const certFile = "SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
	pemBytes := readTestdata(t, "certs/"+certFile)
	tr, dialled := fakeSNS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/" + certFile:
			w.Write(pemBytes)
		case "/moved/" + certFile:
			http.Redirect(w, r, "/"+certFile, http.StatusFound)
		case "/away/" + certFile:
			http.Redirect(w, r, "https://sns.s3.amazonaws.com/"+certFile, http.StatusFound)
		case "/plain/" + certFile:
			http.Redirect(w, r, "http://"+r.Host+"/"+certFile, http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	e := genuineEnvelope(t, "java-notification-v2")
	for _, c := range []struct {
		dir     string
		wantErr error
	}{
		{"", nil},
		{"moved/", nil},
		{"away/", ErrCertFetch},
		{"plain/", ErrCertFetch},
		{"missing/", ErrCertFetch},
	} {
		v := &Verifier{Fetch: httpsFetcher(tr)}
		m := *e
		m.SigningCertURL = "https://sns.us-west-2.amazonaws.com/" + c.dir + certFile
		if err := v.Verify(context.Background(), &m); !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", m.SigningCertURL, err, c.wantErr)
		}
	}
	for _, a := range dialled() {
		if a != "sns.us-west-2.amazonaws.com:443" {
			t.Errorf("dialled %s", a)
		}
	}

	// Two real TLS servers on different ports: one redirects to the other, which is never asked.
	var otherHits atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.Write(pemBytes)
	}))
	defer other.Close()
	first := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/"+certFile, http.StatusFound)
	}))
	defer first.Close()
	fetch := httpsFetcher(first.Client().Transport) // trusts both servers' certificate
	if _, err := fetch(context.Background(), first.URL+"/"+certFile); err == nil || otherHits.Load() != 0 {
		t.Fatalf("redirect to another host: %v, %d requests there", err, otherHits.Load())
	}
}

// TestVerifyFIPS140Only runs itself under GODEBUG=fips140=only, where SHA-1 panics: a
// SignatureVersion 1 message is an ErrUnsupported error, version 2 still verifies.
func TestVerifyFIPS140Only(t *testing.T) {
	if os.Getenv("ENVELOPE_TEST_FIPS140_CHILD") == "1" {
		if !fips140.Enforced() {
			t.Fatal("GODEBUG=fips140=only is not in force")
		}
		v := &Verifier{Fetch: (&testdataFetcher{}).fetch}
		if err := v.Verify(context.Background(), genuineEnvelope(t, "java-notification-v1")); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("version 1: %v, want ErrUnsupported", err)
		}
		if err := v.Verify(context.Background(), genuineEnvelope(t, "java-notification-v2")); err != nil {
			t.Fatalf("version 2: %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVerifyFIPS140Only$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=only", "ENVELOPE_TEST_FIPS140_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestVerifyFIPS140Only") {
		t.Fatalf("under fips140=only: %v\n%s", err, out)
	}
}

func TestConfirm(t *testing.T) {
	var hits atomic.Int32
	var fail atomic.Bool
	var redirect atomic.Bool
	var gotToken atomic.Value
	tr, dialled := fakeSNS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch {
		case redirect.Load():
			http.Redirect(w, r, "https://evil.example/", http.StatusFound)
		case fail.Load():
			http.Error(w, "no", http.StatusInternalServerError)
		case r.Host == "sns.us-west-2.amazonaws.com" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			gotToken.Store(r.URL.Query().Get("Token"))
			w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		default:
			http.NotFound(w, r)
		}
	}))
	client := &http.Client{Transport: tr}
	v := &Verifier{Fetch: (&testdataFetcher{}).fetch}
	ctx := context.Background()

	sub := genuineEnvelope(t, "java-subscription-confirmation-v1")
	if err := v.Confirm(ctx, sub, client); err != nil {
		t.Fatalf("genuine SubscriptionConfirmation: %v", err)
	}
	if hits.Load() != 1 || gotToken.Load() != sub.Token {
		t.Fatalf("%d requests, token %v", hits.Load(), gotToken.Load())
	}

	refused := func(name string, e *Envelope, want error) {
		t.Helper()
		before := hits.Load()
		if err := v.Confirm(ctx, e, client); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		if hits.Load() != before {
			t.Errorf("%s: SubscribeURL was requested", name)
		}
	}
	refused("UnsubscribeConfirmation", genuineEnvelope(t, "java-unsubscribe-confirmation-v2"), ErrConfirm)
	refused("Notification", genuineEnvelope(t, "java-notification-v1"), ErrConfirm)
	refused("nil", nil, ErrConfirm)
	tampered := *sub
	tampered.Token = "0" + tampered.Token[1:]
	refused("tampered token", &tampered, ErrBadSignature)
	tampered = *sub
	tampered.SubscribeURL = strings.Replace(sub.SubscribeURL, "sns.us-west-2", "sns.us-east-1", 1)
	refused("tampered SubscribeURL", &tampered, ErrBadSignature)

	// Signed, but by a forger whose certificate a (trusting) Fetch hands over: the
	// SubscribeURL must still be SNS's ConfirmSubscription for the topic and token.
	forger := newSigner(t)
	fv := forger.verifier()
	for _, subscribeURL := range []string{
		"https://evil.example/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok",
		"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok",
		"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok",
		"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:other&Token=tok",
		"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=other",
		"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok&Endpoint=x",
		"https://sns.us-west-2.amazonaws.com/x?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok",
		"http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:1:t&Token=tok",
	} {
		e := &Envelope{Kind: SNSConfirmation, Type: TypeSubscriptionConfirmation, MessageID: "m", TopicArn: "arn:aws:sns:us-west-2:1:t",
			Payload: "confirm", Timestamp: signedAt, SubscribeURL: subscribeURL, Token: "tok"}
		e, err := Parse(forger.sign(t, e, "2", "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-x.pem"))
		if err != nil {
			t.Fatal(err)
		}
		before := hits.Load()
		if err := fv.Confirm(ctx, e, client); !errors.Is(err, ErrConfirm) || hits.Load() != before {
			t.Errorf("SubscribeURL %s: %v, %d requests", subscribeURL, err, hits.Load()-before)
		}
	}

	fail.Store(true)
	if err := v.Confirm(ctx, sub, client); !errors.Is(err, ErrConfirm) {
		t.Errorf("SNS answering 500: %v", err)
	}
	fail.Store(false)
	redirect.Store(true)
	lax := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
	if err := v.Confirm(ctx, sub, lax); !errors.Is(err, ErrConfirm) {
		t.Errorf("redirected elsewhere: %v", err)
	}
	for _, a := range dialled() {
		if a != "sns.us-west-2.amazonaws.com:443" {
			t.Errorf("dialled %s", a)
		}
	}
}
