package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

// startEmulator starts the emulator for t and points the environment at it as
// scripts/emulator's export lines do, so sqsc connects the way it does from a shell (the SDK's
// default configuration, no -endpoint). Without the emulator the test fails under CI=true and
// is skipped otherwise. It returns a client of the emulator for the test's own checks.
func startEmulator(t *testing.T) *sqs.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	emu, err := emulator.Start(ctx)
	if err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available (CI=true makes this a failure): %v", err)
	}
	t.Cleanup(emu.Stop)
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": emu.URL, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "", "AWS_ENDPOINT_URL_SQS": "", "SQS_QUEUE_URL": "",
	} {
		t.Setenv(k, v)
	}
	return emu.Client()
}

// shell runs sqsc as main does, with the process's environment; w receives its stdout.
func shell(ctx context.Context, w *lines, stdin string, args ...string) (errOut string, err error) {
	var e bytes.Buffer
	err = run(ctx, args, stdio{strings.NewReader(stdin), w, &e}, os.Getenv, connectAWS(ctx))
	return e.String(), err
}

// sh runs sqsc and fails t on an error; it returns stdout and stderr.
func sh(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out lines
	errOut, err := shell(context.Background(), &out, "", args...)
	if err != nil {
		t.Fatalf("sqsc %q: %v\nstderr: %s", args, err, errOut)
	}
	return out.String(), errOut
}

// lines is a concurrency-safe stdout that reports the number of lines written so far.
type lines struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan int // if set, receives the line count after each write (buffered by the reader)
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.notify != nil {
		l.notify <- bytes.Count(l.buf.Bytes(), []byte("\n"))
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func counts(t *testing.T, c *sqs.Client, url string) (visible, inFlight string) {
	t.Helper()
	res, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: countAttributes})
	if err != nil {
		t.Fatal(err)
	}
	return res.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)], res.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
}

// TestEmulatorQueues: create makes standard and FIFO queues, with a DLQ and redrive policy when
// asked, and prints their URLs; list shows them with their counts; send, stats, purge work.
func TestEmulatorQueues(t *testing.T) {
	c := startEmulator(t)
	out, _ := sh(t, "create", "-visibility", "45s", "jobs")
	url := strings.TrimSpace(out)
	if !strings.HasSuffix(url, "/jobs") {
		t.Fatalf("create printed %q", out)
	}
	if again, _ := sh(t, "create", "-visibility", "45s", "jobs"); strings.TrimSpace(again) != url {
		t.Fatalf("creating it again printed %q, want %q", again, url)
	}
	out, errOut := sh(t, "create", "-dlq", "-max-receives", "3", "orders")
	dlq, _ := sh(t, "create", "orders-dlq")
	urls := []string{strings.TrimSpace(out), strings.TrimSpace(dlq)}
	if !strings.HasSuffix(urls[0], "/orders") || !strings.HasSuffix(urls[1], "/orders-dlq") || errOut != "dead-letter queue: "+dlq {
		t.Fatalf("create -dlq printed %q, stderr %q; the DLQ is %q", out, errOut, dlq)
	}
	out, _ = sh(t, "create", "-fifo", "events")
	fifo := strings.TrimSpace(out)
	if !strings.HasSuffix(fifo, "/events.fifo") {
		t.Fatalf("create -fifo printed %q", out)
	}

	attrs, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &urls[0], AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if p := attrs.Attributes["RedrivePolicy"]; !strings.Contains(p, "orders-dlq") || !strings.Contains(p, `3`) {
		t.Fatalf("orders' redrive policy: %q", p)
	}
	if out, _ := sh(t, "stats", "-queue", url); !strings.Contains(out, "VisibilityTimeout") || !strings.Contains(out, " 45\n") {
		t.Fatalf("stats of jobs: %q", out)
	}

	sh(t, "send", "-queue", url, "one", "two", "three")
	sh(t, "send", "-queue", fifo, "-group", "g1", "a", "b") // content-based deduplication: no id needed
	out, _ = sh(t, "list")
	want := map[string]string{url: "3", fifo: "2", urls[0]: "0", urls[1]: "0"}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 4 || want[f[3]] != f[0] || f[1] != "0" || f[2] != "0" {
			t.Errorf("list line %q", line)
		}
		delete(want, f[3])
	}
	if len(want) > 0 || !strings.HasPrefix(out, "visible  in flight  delayed") {
		t.Fatalf("list: %q; missing %v", out, want)
	}
	if out, _ := sh(t, "list", "-prefix", "ord"); strings.Count(out, "\n") != 3 {
		t.Fatalf("list -prefix ord: %q", out)
	}

	sh(t, "purge", "-queue", url, "-yes")
	if v, _ := counts(t, c, url); v != "0" {
		t.Fatalf("after purge: %s visible", v)
	}
}

// TestEmulatorPeekAndRedrive: peek prints and releases at once (raising the receive count,
// and saying so); redrive moves a DLQ's messages back.
func TestEmulatorPeekAndRedrive(t *testing.T) {
	c := startEmulator(t)
	out, errOut := sh(t, "create", "-dlq", "jobs")
	urls := strings.Fields(out + strings.TrimPrefix(errOut, "dead-letter queue:"))
	sh(t, "send", "-queue", urls[0], "hello")
	for i := 1; i <= 2; i++ {
		out, errOut := sh(t, "peek", "-queue", urls[0])
		if !strings.Contains(out, "(received "+string(rune('0'+i))+" times): hello") || !strings.Contains(errOut, "raises each message's receive count") {
			t.Fatalf("peek %d: %q %q", i, out, errOut)
		}
		if v, f := counts(t, c, urls[0]); v != "1" || f != "0" {
			t.Fatalf("after peek %d: visible %s, in flight %s", i, v, f)
		}
	}
	if _, errOut := sh(t, "peek", "-queue", urls[1]); !strings.Contains(errOut, "no message visible") {
		t.Fatalf("peek of an empty queue: %q", errOut)
	}

	sh(t, "send", "-queue", urls[1], "d1", "d2")
	if out, _ := sh(t, "redrive", "-dlq", urls[1], "-to", urls[0], "-dry-run"); !strings.Contains(out, "2 messages waiting") {
		t.Fatalf("redrive -dry-run: %q", out)
	}
	if out, _ := sh(t, "redrive", "-dlq", urls[1], "-to", urls[0]); !strings.Contains(out, "moved 2 of 2") {
		t.Fatalf("redrive: %q", out)
	}
	if v, _ := counts(t, c, urls[0]); v != "3" {
		t.Fatalf("after redrive: %s visible, want 3", v)
	}
}

// TestEmulatorTail: tail -n N -delete consumes N messages; tail without -delete prints each
// message once, holds it while it runs and releases it when it stops, at -n or at Ctrl-C (its
// ctx cancelled) during a long poll, and then returns nil.
func TestEmulatorTail(t *testing.T) {
	c := startEmulator(t)
	out, _ := sh(t, "create", "jobs")
	url := strings.TrimSpace(out)

	sh(t, "send", "-queue", url, "m1", "m2", "m3")
	out, _ = sh(t, "tail", "-queue", url, "-n", "2", "-delete")
	if strings.Count(out, "(received 1 times)") != 2 {
		t.Fatalf("tail -n 2 -delete: %q", out)
	}
	if v, f := counts(t, c, url); v != "1" || f != "0" {
		t.Fatalf("after tail -delete: visible %s in flight %s, want 1 and 0", v, f)
	}

	out, errOut := sh(t, "tail", "-queue", url, "-n", "1")
	if !strings.Contains(out, "(received 1 times): m3") || !strings.Contains(errOut, "released 1 messages") || !strings.Contains(errOut, "holds every message") {
		t.Fatalf("tail -n 1: %q %q", out, errOut)
	}
	if v, _ := counts(t, c, url); v != "1" {
		t.Fatalf("tail -n 1 did not release: %s visible", v)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lines{notify: make(chan int, 100)}
	done := make(chan error, 1)
	var tailErr string
	go func() {
		e, err := shell(ctx, w, "", "tail", "-queue", url, "-wait", "20s")
		tailErr = e
		done <- err
	}()
	sh(t, "send", "-queue", url, "m4", "m5")
	for n := 0; n < 3; n = <-w.notify { // m3 (back), m4, m5
	}
	if v, f := counts(t, c, url); v != "0" || f != "3" {
		t.Fatalf("while tailing: visible %s in flight %s, want 0 and 3", v, f)
	}
	cancel() // Ctrl-C, during the next long poll
	if err := <-done; err != nil {
		t.Fatalf("tail after Ctrl-C: %v", err)
	}
	if !strings.Contains(tailErr, "released 3 messages") {
		t.Fatalf("tail's stderr: %q", tailErr)
	}
	if out := w.String(); strings.Count(out, "\n") != 3 || !strings.Contains(out, ": m3") || !strings.Contains(out, ": m5") {
		t.Fatalf("tail printed %q", out)
	}
	// They were released; the long poll Ctrl-C cancelled may have taken them again on the
	// emulator, for tailReceiveHold at most. Either way each comes back to a receive.
	back := map[string]bool{}
	for len(back) < 3 {
		res, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20, VisibilityTimeout: 60})
		if err != nil || len(res.Messages) == 0 {
			t.Fatalf("after Ctrl-C, %d of 3 messages back: %v", len(back), err)
		}
		for _, m := range res.Messages {
			back[*m.Body] = true
		}
	}
	if !back["m3"] || !back["m4"] || !back["m5"] {
		t.Fatalf("back after Ctrl-C: %v", back)
	}
}

// TestEmulatorEndpointFlag: the -endpoint and -region flags reach the SDK, after the command as
// before it, overriding the environment.
func TestEmulatorEndpointFlag(t *testing.T) {
	startEmulator(t)
	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // nothing listens there
	t.Setenv("AWS_REGION", "")
	out, _ := sh(t, "create", "-endpoint", endpoint, "-region", "eu-west-1", "jobs")
	url := strings.TrimSpace(out)
	if out, _ := sh(t, "-endpoint", endpoint, "stats", "-queue", url); !strings.Contains(out, "QueueArn") {
		t.Fatalf("stats: %q", out)
	}
	// With an endpoint and no region anywhere, the region defaults so an emulator works.
	if out, _ := sh(t, "-endpoint", endpoint, "list"); !strings.Contains(out, url) {
		t.Fatalf("list: %q", out)
	}
}
