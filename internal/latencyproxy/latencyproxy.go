// Package latencyproxy puts a simulated network between an SQS client and a local endpoint
// (the fauxqs emulator), so that benchmarks can measure a consumer as it runs against SQS:
// a region's round trip away, over TLS, paying for each new connection.
//
// A Proxy listens on loopback and forwards every HTTP request to its target. Each request is
// delayed by the configured round trip, half before it is forwarded and half before its
// response goes back, as a real round trip splits between the two directions; so a long poll
// reaches the target half a round trip after the client sent it. Each new client connection
// is delayed once more, by the configured handshake cost, before its first byte is read (for
// TLS that is before the handshake can finish). The proxy speaks HTTP/1.1 only, as SQS does;
// with TLS it serves a self-signed ECDSA certificate generated at start, and TLSConfig and
// Transport give a client that trusts it.
//
// It counts the connections it accepted and the requests it forwarded.
package latencyproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Config says where a Proxy forwards to and what network it simulates.
type Config struct {
	// Target is the URL requests are forwarded to, e.g. the emulator's "http://127.0.0.1:4566".
	Target string
	// RoundTrip is added to every request: half before it is forwarded, half before its
	// response is written back. Zero adds nothing.
	RoundTrip time.Duration
	// Handshake is added once to every new client connection, before its first byte is read.
	// Zero adds nothing.
	Handshake time.Duration
	// TLS makes the proxy serve HTTPS (HTTP/1.1) with a self-signed certificate.
	TLS bool
}

// Stats are a proxy's counters since it started.
type Stats struct {
	Conns    int64 // client connections accepted
	Requests int64 // requests received from clients
}

// Proxy is a running latency proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg      Config
	url      string
	certPEM  []byte
	srv      *http.Server
	upstream *http.Transport
	served   chan struct{} // closed when Serve returned
	closed   chan struct{} // closed by Close: pending delays end at once
	close    sync.Once
	mu       sync.Mutex
	closing  bool           // set by Close under mu: no request enters handlers after it
	handlers sync.WaitGroup // requests being served
	conns    atomic.Int64
	requests atomic.Int64
}

// Start starts a proxy on a free loopback port and returns once it accepts connections. It
// fails if the target is not an absolute URL or no port or certificate can be had. Stop it
// with Close.
func Start(cfg Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return nil, fmt.Errorf("latencyproxy: target %q is not an absolute URL", cfg.Target)
	}
	if cfg.RoundTrip < 0 || cfg.Handshake < 0 {
		return nil, errors.New("latencyproxy: negative delay")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latencyproxy: %w", err)
	}
	p := &Proxy{
		cfg:    cfg,
		served: make(chan struct{}),
		closed: make(chan struct{}),
		// The proxy's own leg to the target keeps its connections, so it adds no cost of its
		// own to what the client's connections are charged.
		upstream: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute},
	}
	var l net.Listener = &listener{Listener: ln, p: p}
	scheme := "http"
	if cfg.TLS {
		cert, certPEM, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("latencyproxy: certificate: %w", err)
		}
		p.certPEM = certPEM
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		scheme = "https"
	}
	p.url = scheme + "://" + ln.Addr().String()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the client signed its own Host header
		},
		Transport: delayed{p: p},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			if p.closing {
				p.mu.Unlock()
				http.Error(w, "latencyproxy: closed", http.StatusServiceUnavailable)
				return
			}
			p.handlers.Add(1)
			p.mu.Unlock()
			defer p.handlers.Done()
			p.requests.Add(1)
			rp.ServeHTTP(w, r)
		}),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(p.served)
		p.srv.Serve(l)
	}()
	return p, nil
}

// URL returns the proxy's endpoint, e.g. "https://127.0.0.1:40123"; give it to the SDK as
// BaseEndpoint.
func (p *Proxy) URL() string { return p.url }

// CertificatePEM returns the proxy's self-signed certificate in PEM, or nil without TLS.
func (p *Proxy) CertificatePEM() []byte { return p.certPEM }

// TLSConfig returns a client TLS configuration that trusts the proxy's certificate, or nil
// without TLS.
func (p *Proxy) TLSConfig() *tls.Config { return ClientTLSConfig(p.certPEM) }

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{Conns: p.conns.Load(), Requests: p.requests.Load()}
}

// Close stops the proxy: it closes the listener and every connection, cuts short any delay
// in progress, and returns when the goroutines serving them have finished. A second Close
// does nothing.
func (p *Proxy) Close() error {
	var err error
	p.close.Do(func() {
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		close(p.closed)
		err = p.srv.Close() // closes every connection, which cancels the requests on them
		<-p.served
		p.handlers.Wait()
		p.upstream.CloseIdleConnections()
	})
	return err
}

// ClientTLSConfig returns a client TLS configuration whose only root is the PEM certificate,
// or nil when certPEM is empty (plain HTTP).
func ClientTLSConfig(certPEM []byte) *tls.Config {
	if len(certPEM) == 0 {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// wait sleeps d unless the proxy closes first; it reports whether the full delay passed.
func (p *Proxy) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.closed:
		return false
	}
}

var errClosed = errors.New("latencyproxy: closed")

// delayed forwards to the target with half the round trip before and half after.
type delayed struct{ p *Proxy }

func (d delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	half := d.p.cfg.RoundTrip / 2
	if !d.p.wait(half) {
		return nil, errClosed
	}
	resp, err := d.p.upstream.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if !d.p.wait(d.p.cfg.RoundTrip - half) {
		resp.Body.Close()
		return nil, errClosed
	}
	return resp, nil
}

// listener counts accepted connections and gives each the handshake delay.
type listener struct {
	net.Listener
	p *Proxy
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.p.conns.Add(1)
	return &conn{Conn: c, p: l.p, ready: time.Now().Add(l.p.cfg.Handshake)}, nil
}

// conn delays its first Read until ready, in the goroutine serving it, so that a slow new
// connection never holds up the accept loop.
type conn struct {
	net.Conn
	p     *Proxy
	ready time.Time
	once  sync.Once
}

func (c *conn) Read(b []byte) (int, error) {
	ok := true
	c.once.Do(func() { ok = c.p.wait(time.Until(c.ready)) })
	if !ok {
		return 0, errClosed
	}
	return c.Conn.Read(b)
}

// selfSigned returns a fresh ECDSA P-256 certificate for 127.0.0.1 and localhost, valid for
// a day, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "latencyproxy"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}
