package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/sqsconsumer/sqsconsumer/internal/latencyproxy"
)

// LatencyWorkloads are the workloads of issue 19, run through a latency proxy (see
// Network): W1, a backlog of 5,000 messages with a no-op handler at concurrency 64 (msgs/s);
// and W2, 2,000 messages with handlers of 10-50 ms at concurrency 32 (utilisation).
var LatencyWorkloads = []Workload{
	{"W1-noop-c64", 5000, 64, nil},
	{"W2-10-50ms-c32", 2000, 32, func(body string) { time.Sleep(LatencyOf(body)) }},
}

// Network is what the latency benchmarks put between a consumer and the emulator: a round
// trip added to every request, a cost added to every new connection, and TLS.
type Network struct {
	RoundTrip time.Duration // per request: half before it is forwarded, half before the response
	Handshake time.Duration // per new connection, before its first byte is read
	TLS       bool          // HTTPS (HTTP/1.1) with a self-signed certificate the client trusts
}

// String names the network in benchmark names: "rtt=15ms", or "rtt=15ms,tls,conn=30ms".
func (n Network) String() string {
	ms := func(d time.Duration) string {
		if d == 0 {
			return "0ms"
		}
		return d.String()
	}
	s := "rtt=" + ms(n.RoundTrip)
	if n.TLS {
		s += ",tls"
	}
	if n.Handshake > 0 {
		s += ",conn=" + ms(n.Handshake)
	}
	return s
}

// Networks returns the networks the latency benchmarks run over, from the environment:
//
//	BENCH_LATENCY       round trips, comma-separated Go durations (default "0ms")
//	BENCH_CONN_LATENCY  added to each new connection (default 0)
//	BENCH_TLS=1         HTTPS instead of HTTP
//
// so that by default (as in CI) only the loopback network runs. The report command sets them.
func Networks() ([]Network, error) {
	var handshake time.Duration
	if v := os.Getenv("BENCH_CONN_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("BENCH_CONN_LATENCY=%q: want a Go duration >= 0", v)
		}
		handshake = d
	}
	tls := false
	switch v := os.Getenv("BENCH_TLS"); v {
	case "", "0", "false":
	case "1", "true":
		tls = true
	default:
		return nil, fmt.Errorf("BENCH_TLS=%q: want 1 or 0", v)
	}
	rtts := os.Getenv("BENCH_LATENCY")
	if rtts == "" {
		rtts = "0ms"
	}
	var out []Network
	for _, v := range strings.Split(rtts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("BENCH_LATENCY=%q: want comma-separated Go durations >= 0", rtts)
		}
		out = append(out, Network{RoundTrip: d, Handshake: handshake, TLS: tls})
	}
	return out, nil
}

// childEnv carries a proxy's configuration, as JSON, to the child process that serves it.
const childEnv = "SQSCONSUMER_BENCHKIT_PROXY"

// Proxy is a latency proxy (internal/latencyproxy) in a child process, so that the CPU time
// it spends (TLS on the server side, forwarding) is not charged to the consumer measured in
// this one. The child is the running test binary itself, re-executed; its package must call
// ServeProxyIfChild before its tests run. The child exits when Close is called or this process
// ends (its stdin closes).
type Proxy struct {
	// URL is the proxy's endpoint, for the SDK's BaseEndpoint.
	URL     string
	network Network
	certPEM []byte
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *bufio.Reader
	mu      sync.Mutex // one Stats exchange at a time
}

type hello struct {
	URL     string `json:"url"`
	CertPEM []byte `json:"cert_pem"`
}

// StartProxy starts a proxy to target over network n in a child process and returns once it
// accepts connections. The child is stopped at the end of tb.
func StartProxy(tb testing.TB, target string, n Network) *Proxy {
	tb.Helper()
	cfg, _ := json.Marshal(latencyproxy.Config{Target: target, RoundTrip: n.RoundTrip, Handshake: n.Handshake, TLS: n.TLS})
	cmd, stdin, stdout := startChild(tb, "latency proxy", childEnv, cfg)
	p := &Proxy{network: n, cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	tb.Cleanup(func() { p.Close() })
	var h hello
	if err := p.readJSON(&h); err != nil {
		tb.Fatalf("latency proxy did not start (does the test package call benchkit.ServeProxyIfChild?): %v", err)
	}
	p.URL, p.certPEM = h.URL, h.CertPEM
	return p
}

func (p *Proxy) readJSON(v any) error {
	line, err := p.stdout.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// Stats asks the child for its counters: connections accepted and requests received so far.
func (p *Proxy) Stats(tb testing.TB) latencyproxy.Stats {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var s latencyproxy.Stats
	if _, err := io.WriteString(p.stdin, "stats\n"); err != nil {
		tb.Fatalf("latency proxy: %v", err)
	}
	if err := p.readJSON(&s); err != nil {
		tb.Fatalf("latency proxy: %v", err)
	}
	return s
}

// HTTPClient returns a new HTTP client of the proxy with the AWS SDK's default transport
// settings (up to 10 idle connections kept per host, HTTP/2 offered but HTTP/1.1 spoken by
// the proxy), trusting the proxy's certificate, and counting its requests. Each call has its
// own connections; close them with CloseIdleConnections.
func (p *Proxy) HTTPClient() (*http.Client, *CountingTransport) {
	counter := &CountingTransport{Base: sdkTransport(p.certPEM)}
	return &http.Client{Transport: counter}, counter
}

// sdkTransport is a new transport with the AWS SDK's default settings, trusting certPEM (a
// proxy's certificate) when it is not empty.
func sdkTransport(certPEM []byte) *http.Transport {
	tr := awshttp.NewBuildableClient().GetTransport()
	if cfg := latencyproxy.ClientTLSConfig(certPEM); cfg != nil {
		tr.TLSClientConfig.RootCAs = cfg.RootCAs
	}
	return tr
}

// CertPEM returns the proxy's certificate, PEM-encoded, when it speaks TLS; nil otherwise.
func (p *Proxy) CertPEM() []byte { return p.certPEM }

// Close stops the child and waits for it to exit. A second Close does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin == nil {
		return nil
	}
	p.stdin.Close()
	p.stdin = nil
	return p.cmd.Wait()
}

// ServeProxyIfChild makes this process a latency proxy, and never returns, when it was
// started by StartProxy; otherwise it returns at once. Call it first thing in a test
// package's TestMain or init function.
func ServeProxyIfChild() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	if err := serveProxy(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "latency proxy:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveProxy runs a proxy configured by spec: it writes a hello line, then one line of stats
// for every line it reads, and stops at the end of in.
func serveProxy(spec string, in io.Reader, out io.Writer) error {
	var cfg latencyproxy.Config
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		return err
	}
	p, err := latencyproxy.Start(cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	enc := json.NewEncoder(out)
	if err := enc.Encode(hello{URL: p.URL(), CertPEM: p.CertificatePEM()}); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if err := enc.Encode(p.Stats()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// CPUTime returns the CPU time, user and system, this process has used so far: every
// thread's, from getrusage(RUSAGE_SELF). Child processes (the emulator, the latency proxy)
// are not included.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Run is one measured consumption of a workload through a Proxy: create it with Begin after
// the queue is filled and before the consumer starts, and call End after the consumer
// stopped.
type Run struct {
	proxy    *Proxy
	counter  *CountingTransport
	cpu      time.Duration
	requests int64
	stats    latencyproxy.Stats
}

// Begin notes the counters and CPU time before a consumption.
func Begin(tb testing.TB, p *Proxy, counter *CountingTransport) *Run {
	tb.Helper()
	return &Run{proxy: p, counter: counter, stats: p.Stats(tb), requests: counter.Requests(), cpu: CPUTime()}
}

// End adds to b what happened since Begin: the workload's Meter metrics (msgs/s,
// requests/msg, utilisation, peak-handlers), conns (connections the proxy accepted) and
// cpu-s/10k-msgs (this process's CPU time per 10,000 messages, see CPUTime).
func (r *Run) End(b *testing.B, m *Meter, messages int) {
	b.Helper()
	cpu := CPUTime() - r.cpu
	stats := r.proxy.Stats(b)
	m.Report(b, r.counter.Requests()-r.requests, messages)
	b.ReportMetric(float64(stats.Conns-r.stats.Conns), "conns")
	b.ReportMetric(cpu.Seconds()*10000/float64(messages), "cpu-s/10k-msgs")
}

// WarmUp sends n messages to a fresh queue named name and receives and deletes them all,
// with 8 receivers, so that the emulator's JIT has compiled its hot paths before anything is
// measured: a fresh fauxqs serves the same requests several times slower at first, which
// would penalise whichever consumer a benchmark process runs first.
func WarmUp(ctx context.Context, client *sqs.Client, name string, n int) error {
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		return err
	}
	url := *out.QueueUrl
	if err := SendN(ctx, client, url, n); err != nil {
		return err
	}
	var left atomic.Int64
	left.Store(int64(n))
	var g errgroup.Group
	for range 8 {
		g.Go(func() error {
			for left.Load() > 0 {
				out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					return err
				}
				if len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
					return err
				}
				left.Add(-int64(len(out.Messages)))
			}
			return nil
		})
	}
	return g.Wait()
}
