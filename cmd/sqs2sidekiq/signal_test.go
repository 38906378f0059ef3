package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

// End to end: the built daemon, the fauxqs emulator and a real redis-server. SIGTERM in the
// middle of the stream: it exits 0 and every message is either a Sidekiq job or back in the
// queue.
func TestSignalShutdownOnTheEmulatorLosesNothing(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	client := d.emu.Client()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("bridge-events")})
	if err != nil {
		t.Fatal(err)
	}
	url := *out.QueueUrl
	const n = 300
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < i+10; j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)),
				MessageBody: aws.String(snsBody("arn:aws:sns:us-east-1:000000000000:orders", fmt.Sprintf(`{"n":%d}`, j)))})
		}
		if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}

	// A short visibility: what SQS hands the long poll that shutdown cancels comes back soon.
	const visibility = 3 * time.Second
	cmd := d.start(t, url, fmt.Sprintf("redis: {url: \"redis://%s/0\", namespace: app}\nconcurrency: 4\nvisibility_timeout: %v\n", d.redis.addr(), visibility))
	rdb := redis.NewClient(&redis.Options{Addr: d.redis.addr()})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, _ := rdb.LLen(ctx, "app:queue:default").Result(); got >= 50 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the daemon enqueued fewer than 50 jobs in 30 s")
		}
		<-time.After(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(40 * time.Second):
		cmd.Process.Kill()
		t.Fatal("daemon did not exit within 40 s of SIGTERM")
	}

	// Every message is a job or back in the queue (at least once: a message may be both only
	// if its delete failed, which this run must not show). What a cancelled receive may have
	// taken comes back once its visibility lapses: receive until all are counted, or for the
	// visibility and a margin.
	jobs, _ := rdb.LRange(ctx, "app:queue:default", 0, -1).Result()
	seen := map[int]int{}
	for _, raw := range jobs {
		var job struct{ Args []map[string]int }
		json.Unmarshal([]byte(raw), &job)
		seen[job.Args[0]["n"]]++
	}
	left := 0
	for until := time.Now().Add(visibility + 5*time.Second); len(jobs)+left < n && time.Now().Before(until); {
		res, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 60, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		left += len(res.Messages)
	}
	if len(jobs)+left != n {
		t.Fatalf("%d jobs + %d left in the queue, want %d", len(jobs), left, n)
	}
	for k, v := range seen {
		if v > 1 {
			t.Fatalf("message %d enqueued %d times", k, v)
		}
	}
	t.Logf("SIGTERM after %d jobs: %d enqueued in all, %d released back to the queue", 50, len(jobs), left)
}

// A second signal exits at once, even while the graceful shutdown waits for a long poll
// (finish_receives: by default an idle daemon exits at the first signal, without waiting).
func TestSecondSignalExitsAtOnce(t *testing.T) {
	d := newDaemon(t)
	out, err := d.emu.Client().CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("bridge-idle")})
	if err != nil {
		t.Fatal(err)
	}
	cmd := d.start(t, *out.QueueUrl, fmt.Sprintf("redis: {url: \"redis://%s/0\"}\nfinish_receives: true\n", d.redis.addr()))
	listen := d.listen
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("health endpoint never came up")
		}
		<-time.After(20 * time.Millisecond)
	}
	<-time.After(200 * time.Millisecond) // let the first long poll (20 s) start
	cmd.Process.Signal(syscall.SIGTERM)
	<-time.After(100 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err == nil {
			t.Fatal("exit 0 after a second signal: want the immediate, non-zero exit")
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("exited %v after the second signal", took)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("a second signal did not exit at once")
	}
}

// daemon is the built binary next to a running emulator and redis-server.
type daemon struct {
	redis  *redisServer
	emu    *emulator.Emulator
	bin    string
	dir    string
	listen string
	out    lockedBuffer // the daemon's output
}

// output is what the daemon printed so far.
func (d *daemon) output() string { return d.out.String() }

// lockedBuffer is a bytes.Buffer safe for a writer and readers at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newDaemon starts redis-server and the emulator and builds the daemon. Outside CI a missing
// emulator skips the test; under CI=true it fails it.
func newDaemon(t *testing.T) *daemon {
	t.Helper()
	d := &daemon{redis: startRedis(t), dir: t.TempDir()}
	emu, err := emulator.Start(context.Background())
	if err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available: %v", err)
	}
	d.emu = emu
	t.Cleanup(emu.Stop)
	d.bin = filepath.Join(d.dir, "sqs2sidekiq")
	if b, err := exec.Command("go", "build", "-o", d.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	d.listen = l.Addr().String()
	l.Close()
	return d
}

// start runs the daemon on queueURL with the extra config lines.
func (d *daemon) start(t *testing.T, queueURL, extra string) *exec.Cmd {
	t.Helper()
	cfgPath := filepath.Join(d.dir, "config.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`queues: [%q]
region: us-east-1
endpoint: %s
credentials: {access_key_id: test, secret_access_key: test}
routes: {orders: {class: OrderWorker}}
timestamps: seconds
listen: %s
%s`, queueURL, d.emu.URL, d.listen, extra)), 0o600)
	cmd := exec.Command(d.bin, "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// The daemon as an operator meets it: a health address already taken, or a Redis that does
// not answer, exits 1 at once with a line that says so, before anything is received; an idle
// daemon exits 0 within a second of SIGTERM, and its last line says what it did.
func TestDaemonStartFailuresAndIdleExit(t *testing.T) {
	d := newDaemon(t)
	out, err := d.emu.Client().CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("bridge-ops")})
	if err != nil {
		t.Fatal(err)
	}
	url := *out.QueueUrl
	redisLine := fmt.Sprintf("redis: {url: \"redis://%s/0\"}\n", d.redis.addr())
	wait := func(cmd *exec.Cmd, within time.Duration) error {
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			return err
		case <-time.After(within):
			cmd.Process.Kill()
			t.Fatalf("the daemon did not exit within %v\n%s", within, d.output())
		}
		return nil
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	listen := d.listen
	d.listen = taken.Addr().String()
	if err := wait(d.start(t, url, redisLine), 10*time.Second); err == nil || !strings.Contains(d.output(), "listen (health and metrics)") {
		t.Fatalf("health address taken: exit %v; want 1 and a line saying so\n%s", err, d.output())
	}
	d.listen = listen

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	d.out = lockedBuffer{}
	if err := wait(d.start(t, url, fmt.Sprintf("redis: {url: \"redis://%s/0\", timeout: 1s}\n", closed)), 10*time.Second); err == nil ||
		!strings.Contains(d.output(), "redis unreachable: redis://"+closed) {
		t.Fatalf("Redis unreachable: exit %v; want 1 and a line naming it\n%s", err, d.output())
	}

	d.out = lockedBuffer{}
	cmd := d.start(t, url, redisLine)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.output(), "sqsconsumer: started") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the daemon did not start\n%s", d.output())
		}
		<-time.After(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	start := time.Now()
	if err := wait(cmd, 10*time.Second); err != nil {
		t.Fatalf("idle SIGTERM: exit %v\n%s", err, d.output())
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an idle daemon took %v to exit after SIGTERM", took)
	}
	lines := strings.Split(strings.TrimSpace(d.output()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "sqs2sidekiq: stopped enqueued=0 deleted=0") {
		t.Fatalf("last line %q; want the stopped line with what was done", last)
	}
}
