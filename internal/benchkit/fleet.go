package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// consumerEnv carries a ConsumerSpec, as JSON, to a child process started by StartFleet.
const consumerEnv = "SQSCONSUMER_BENCHKIT_CONSUMER"

// ConsumerSpec is what one consumer process of a Fleet consumes, and how it reaches the queue.
type ConsumerSpec struct {
	Endpoint    string // the SDK's BaseEndpoint (a Proxy's URL)
	CertPEM     []byte // the proxy's certificate when it speaks TLS
	QueueURL    string
	Workload    string // a name in ScaleWorkloads
	Concurrency int
}

// ConsumeFunc is a consumer run in a child process: it consumes spec.QueueURL with client,
// calling work with each message's body from its handler, until ctx is cancelled, and
// returns once it has stopped.
type ConsumeFunc func(ctx context.Context, client *sqs.Client, spec ConsumerSpec, work func(body string)) error

// ScaleWorkloads are the per-process workloads of the scale-out benchmark, by name: W1's
// no-op handler and W2's handlers of 10-50 ms (LatencyWorkloads); Messages is the total the
// fleet consumes, Concurrency is each process's.
var ScaleWorkloads = []Workload{
	{"W1-noop-c64", 5000, 64, nil},
	{"W2-10-50ms-c16", 2000, 16, func(body string) { time.Sleep(LatencyOf(body)) }},
}

func scaleWorkload(name string) (Workload, bool) {
	for _, w := range ScaleWorkloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// childReport is the last line a consumer child writes, after its consumer stopped.
type childReport struct {
	Err      string `json:"err,omitempty"`
	Requests int64  `json:"requests"`
	First    int64  `json:"first"` // first handler start, Unix ns
	Last     int64  `json:"last"`  // last handler end, Unix ns
	Busy     int64  `json:"busy"`  // handler time, ns
}

// ServeConsumerIfChild makes this process one consumer of a Fleet, running consume, and never
// returns, when it was started by StartFleet; otherwise it returns at once. Call it first
// thing in a test package's TestMain or init function.
//
// The child writes "ready", waits for a "go" line on stdin, then writes "h BODY" for every
// message its handler finished; a "stop" line (or the end of stdin) cancels its consumer,
// and once that returned it writes a JSON childReport and exits.
func ServeConsumerIfChild(consume ConsumeFunc) {
	spec, ok := os.LookupEnv(consumerEnv)
	if !ok {
		return
	}
	if err := serveConsumer(spec, consume, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench consumer:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serveConsumer(specJSON string, consume ConsumeFunc, in io.Reader, out io.Writer) error {
	var spec ConsumerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	w, ok := scaleWorkload(spec.Workload)
	if !ok {
		return fmt.Errorf("unknown workload %q", spec.Workload)
	}
	counter := &CountingTransport{Base: sdkTransport(spec.CertPEM)}
	client := sqs.New(sqs.Options{
		BaseEndpoint: aws.String(spec.Endpoint),
		Region:       "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test", Source: "bench"}, nil
		}),
		HTTPClient: &http.Client{Transport: counter},
	})

	// Handled bodies go out through one writer goroutine, flushed whenever it catches up, so
	// that handlers never wait on the pipe for long and the parent sees progress promptly.
	lines := make(chan string, 1024)
	bw := bufio.NewWriter(out)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for l := range lines {
			bw.WriteString(l)
			if len(lines) == 0 {
				bw.Flush()
			}
		}
		bw.Flush()
	}()
	lines <- "ready\n"

	sc := bufio.NewScanner(in)
	if !sc.Scan() || sc.Text() != "go" {
		close(lines)
		<-writerDone
		return nil // the parent gave up before the start
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for sc.Scan() && sc.Text() != "stop" {
		}
		cancel()
	}()
	m := &Meter{Concurrency: spec.Concurrency}
	work := m.Wrap(w.Work)
	err := consume(ctx, client, spec, func(body string) {
		work(body)
		lines <- "h " + body + "\n"
	})
	r := childReport{Requests: counter.Requests()}
	if err != nil {
		r.Err = err.Error()
	}
	m.mu.Lock()
	if !m.first.IsZero() {
		r.First, r.Last, r.Busy = m.first.UnixNano(), m.last.UnixNano(), int64(m.busy)
	}
	m.mu.Unlock()
	b, _ := json.Marshal(r)
	lines <- "r " + string(b) + "\n"
	close(lines)
	<-writerDone
	return nil
}

// Fleet is several consumer processes (children re-executing this test binary, which must
// call ServeConsumerIfChild) consuming one queue together.
type Fleet struct {
	children []*fleetChild
	events   chan fleetEvent
	handled  map[string]int // deliveries by body
	reports  []childReport
}

type fleetChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

type fleetEvent struct {
	child  int
	line   string
	err    error // the child's output ended; err is why, nil at its end
	closed bool
}

// startChild starts this test binary again as a child process with env=payload set (the child
// sees it and serves instead of testing), its stderr shared, and returns it with its stdin and
// stdout. what names the child in a failure.
func startChild(tb testing.TB, what, env string, payload []byte) (*exec.Cmd, io.WriteCloser, io.ReadCloser) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env+"="+string(payload))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return cmd, stdin, stdout
}

// StartFleet starts n consumer processes of spec and returns once each is ready to start.
// They are stopped at the end of tb at the latest.
func StartFleet(tb testing.TB, n int, spec ConsumerSpec) *Fleet {
	tb.Helper()
	js, _ := json.Marshal(spec)
	f := &Fleet{events: make(chan fleetEvent, 1024), handled: map[string]int{}}
	for i := range n {
		cmd, stdin, stdout := startChild(tb, "consumer process", consumerEnv, js)
		c := &fleetChild{cmd: cmd, stdin: stdin}
		f.children = append(f.children, c)
		tb.Cleanup(func() {
			c.stdin.Close()
			c.cmd.Wait()
		})
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f.events <- fleetEvent{child: i, line: sc.Text()}
			}
			f.events <- fleetEvent{child: i, closed: true, err: sc.Err()}
		}()
	}
	for ready := 0; ready < n; {
		ev := <-f.events
		switch {
		case ev.closed:
			tb.Fatalf("consumer process %d exited before it was ready (does the test package call benchkit.ServeConsumerIfChild?)", ev.child)
		case ev.line == "ready":
			ready++
		}
	}
	return f
}

// Go starts every consumer.
func (f *Fleet) Go(tb testing.TB) {
	tb.Helper()
	for _, c := range f.children {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			tb.Fatal(err)
		}
	}
}

// WaitDistinct returns once the fleet has handled want distinct messages, or fails tb after
// timeout.
func (f *Fleet) WaitDistinct(tb testing.TB, want int, timeout time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(f.handled) < want {
		select {
		case ev := <-f.events:
			if ev.closed {
				tb.Fatalf("consumer process %d exited early: %v", ev.child, ev.err)
			}
			f.note(tb, ev)
		case <-deadline.C:
			tb.Fatalf("fleet handled %d distinct messages of %d in %v", len(f.handled), want, timeout)
		}
	}
}

func (f *Fleet) note(tb testing.TB, ev fleetEvent) {
	switch {
	case strings.HasPrefix(ev.line, "h "):
		f.handled[ev.line[2:]]++
	case strings.HasPrefix(ev.line, "r "):
		var r childReport
		if err := json.Unmarshal([]byte(ev.line[2:]), &r); err != nil {
			tb.Fatalf("consumer process %d: %v", ev.child, err)
		}
		if r.Err != "" {
			tb.Fatalf("consumer process %d: Run: %s", ev.child, r.Err)
		}
		f.reports = append(f.reports, r)
	}
}

// Stop stops every consumer and waits for them to exit, still counting what they handle.
func (f *Fleet) Stop(tb testing.TB) {
	tb.Helper()
	for _, c := range f.children {
		io.WriteString(c.stdin, "stop\n")
	}
	for open := len(f.children); open > 0; {
		ev := <-f.events
		if ev.closed {
			open--
			continue
		}
		f.note(tb, ev)
	}
	for i, c := range f.children {
		if err := c.cmd.Wait(); err != nil {
			tb.Fatalf("consumer process %d: %v", i, err)
		}
	}
	if len(f.reports) != len(f.children) {
		tb.Fatalf("%d of %d consumer processes reported", len(f.reports), len(f.children))
	}
}

// FleetResult is what a stopped Fleet did.
type FleetResult struct {
	Distinct   int           // distinct messages handled
	Duplicates int           // handler calls beyond the first for a message, across processes
	Requests   int64         // HTTP requests, all processes
	Window     time.Duration // first handler start to last handler end, across processes
	Busy       time.Duration // handler time, all processes
}

// Result returns the account of a Fleet after Stop.
func (f *Fleet) Result() FleetResult {
	var r FleetResult
	var first, last int64
	for _, c := range f.reports {
		r.Requests += c.Requests
		r.Busy += time.Duration(c.Busy)
		if c.First != 0 && (first == 0 || c.First < first) {
			first = c.First
		}
		last = max(last, c.Last)
	}
	r.Window = time.Duration(last - first)
	for _, n := range f.handled {
		r.Distinct++
		r.Duplicates += n - 1
	}
	return r
}
