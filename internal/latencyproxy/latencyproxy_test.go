package latencyproxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start returns a proxy in front of a target that answers every request with its Host header
// and the time it arrived, and a client of the proxy; both are closed at the end of the test.
func start(t *testing.T, cfg Config) (*Proxy, *http.Client, chan time.Time) {
	t.Helper()
	arrived := make(chan time.Time, 100)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
		io.WriteString(w, r.Host)
	}))
	t.Cleanup(target.Close)
	cfg.Target = target.URL
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tr := &http.Transport{TLSClientConfig: p.TLSConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return p, &http.Client{Transport: tr}, arrived
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q, err %v", resp.StatusCode, body, err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	if string(body) != host {
		t.Fatalf("target saw Host %q, want the proxy's %q", body, host)
	}
	return resp
}

// Delays are checked against lower bounds only: a loaded machine makes everything slower,
// never faster.

func TestRoundTripDelay(t *testing.T) {
	const rtt = 200 * time.Millisecond
	p, c, arrived := start(t, Config{RoundTrip: rtt})
	sent := time.Now()
	get(t, c, p.URL())
	took := time.Since(sent)
	if reached := (<-arrived).Sub(sent); reached < rtt/2 {
		t.Errorf("request reached the target after %v, want at least half the round trip (%v)", reached, rtt/2)
	}
	if took < rtt {
		t.Errorf("request took %v, want at least the round trip %v", took, rtt)
	}
}

func TestHandshakeDelayAndCounts(t *testing.T) {
	const handshake = 150 * time.Millisecond
	p, c, _ := start(t, Config{Handshake: handshake})
	start := time.Now()
	get(t, c, p.URL())
	if took := time.Since(start); took < handshake {
		t.Errorf("first request on a new connection took %v, want at least %v", took, handshake)
	}
	get(t, c, p.URL()+"/a")
	get(t, c, p.URL()+"/b")
	if s := p.Stats(); s != (Stats{Conns: 1, Requests: 3}) {
		t.Errorf("after 3 requests on one kept-alive connection: %+v", s)
	}
	other := &http.Transport{}
	defer other.CloseIdleConnections()
	get(t, &http.Client{Transport: other}, p.URL())
	if s := p.Stats(); s != (Stats{Conns: 2, Requests: 4}) {
		t.Errorf("after a second client: %+v", s)
	}
}

func TestTLS(t *testing.T) {
	const handshake = 100 * time.Millisecond
	p, c, _ := start(t, Config{TLS: true, Handshake: handshake})
	if !strings.HasPrefix(p.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %q", p.URL())
	}
	start := time.Now()
	resp := get(t, c, p.URL())
	if took := time.Since(start); took < handshake {
		t.Errorf("first request took %v, want at least the handshake delay %v", took, handshake)
	}
	if resp.TLS == nil || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		t.Errorf("got %s, TLS %v; want HTTP/1.1 over TLS although the client offered h2", resp.Proto, resp.TLS != nil)
	}
	get(t, c, p.URL())
	if s := p.Stats(); s != (Stats{Conns: 1, Requests: 2}) {
		t.Errorf("stats %+v", s)
	}

	untrusting := &http.Transport{TLSClientConfig: &tls.Config{}}
	defer untrusting.CloseIdleConnections()
	if _, err := (&http.Client{Transport: untrusting}).Get(p.URL()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the proxy got err %v, want a certificate error", err)
	}
}

func TestPlainHasNoTLSConfig(t *testing.T) {
	p, _, _ := start(t, Config{})
	if p.TLSConfig() != nil || p.CertificatePEM() != nil || !strings.HasPrefix(p.URL(), "http://") {
		t.Errorf("plain proxy: URL %q, TLS config %v", p.URL(), p.TLSConfig())
	}
}

func TestCloseEndsRequestsInFlight(t *testing.T) {
	arrived := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // a long poll that only the proxy's Close ends
	}))
	defer target.Close()
	p, err := Start(Config{Target: target.URL})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get(p.URL())
		if err == nil {
			resp.Body.Close()
			err = errors.New(resp.Status)
		}
		errc <- err
	}()
	<-arrived
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("request through a closed proxy succeeded")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseCutsDelaysShort(t *testing.T) {
	p, _, _ := start(t, Config{RoundTrip: time.Hour})
	done := make(chan bool)
	go func() { done <- p.wait(time.Hour) }()
	p.Close()
	if <-done {
		t.Fatal("wait reported the full delay after Close")
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Target: "127.0.0.1:4566"}, {Target: "http://127.0.0.1:1", RoundTrip: -time.Second}} {
		if p, err := Start(cfg); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}
