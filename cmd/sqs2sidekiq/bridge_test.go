package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// redisServer is a real redis-server on a free loopback port, stopped with the test.
type redisServer struct {
	port int
	cmd  *exec.Cmd
	dir  string // with persist: the append-only file's directory, kept across restarts
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and redis-server is missing (scripts/test installs it)")
		}
		t.Skip("redis-server not installed (CI=true makes this a failure)")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &redisServer{port: port}
	r.start(t, bin)
	return r
}

func (r *redisServer) start(t *testing.T, bin string) {
	t.Helper()
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", ""}
	if r.dir != "" {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir)
	} else {
		args = append(args, "--appendonly", "no")
	}
	r.cmd = exec.Command(bin, args...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer")
		}
		<-time.After(20 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// persist restarts the server with every write in an append-only file (fsynced), so that a
// stop and restart keeps the data, as a production Redis does.
func (r *redisServer) persist(t *testing.T) {
	t.Helper()
	r.stop()
	r.dir = t.TempDir()
	r.restart(t)
}

// restart starts a stopped server again on its port (and its data, with persist).
func (r *redisServer) restart(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, bin)
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func snsBody(topicArn, payload string) string {
	b, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "n-" + payload, "TopicArn": topicArn,
		"Message": payload, "Timestamp": "2026-11-23T10:00:00.000Z"})
	return string(b)
}

func testConfig(t *testing.T, queue, redisAddr, extra string) *Config {
	t.Helper()
	if !strings.Contains(extra, "timestamps:") {
		extra += "\ntimestamps: milliseconds"
	}
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
queues: [%q]
redis:
  url: redis://%s/0
  namespace: myapp
routes:
  orders:
    class: OrderWorker
    queue: critical
  arn:aws:sns:eu-west-1:123456789012:users:
    class: UserWorker
%s`, queue, redisAddr, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestWireFormatReadBackFromRedis(t *testing.T) {
	rs := startRedis(t)
	s := sqstest.New()
	url := s.MustCreateQueue("events", nil)
	for _, body := range []string{
		snsBody("arn:aws:sns:eu-west-1:123456789012:orders", `{"id":42}`),
		snsBody("arn:aws:sns:eu-west-1:123456789012:users", "plain text"),
		snsBody("arn:aws:sns:eu-west-1:123456789012:unmapped", `{}`),
		`{"class":"AdminWorker","args":["sent straight to the queue, no SNS envelope"]}`,
	} {
		s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})
	}
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer rdb.Close()
	b, err := NewBridge(testConfig(t, url, rs.addr(), ""), s, rdb, quietLogger, sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	before := time.Now()
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for b.enqueued.Load() < 2 && time.Now().Before(deadline) {
		<-time.After(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	queues, _ := rdb.SMembers(bg, "myapp:queues").Result()
	if strings.Join(sortedCopy(queues), ",") != "critical,default" {
		t.Fatalf("queues set %v", queues)
	}
	raw, err := rdb.LRange(bg, "myapp:queue:critical", 0, -1).Result()
	if err != nil || len(raw) != 1 {
		t.Fatalf("critical queue %v %v", raw, err)
	}
	var job map[string]any
	json.Unmarshal([]byte(raw[0]), &job)
	if _, ok := job["retry"]; ok {
		t.Fatalf("job %s has a retry key; the route sets none, so the worker's own option must apply", raw[0])
	}
	if job["class"] != "OrderWorker" || job["queue"] != "critical" || len(job["jid"].(string)) != 24 ||
		job["sns_message_id"] != "n-{\"id\":42}" || job["sqs_message_id"] == nil {
		t.Fatalf("job %s", raw[0])
	}
	if args := job["args"].([]any); len(args) != 1 || args[0].(map[string]any)["id"] != 42.0 {
		t.Fatalf("args %v", job["args"])
	}
	created := int64(job["created_at"].(float64))
	if created < before.UnixMilli() || created > time.Now().UnixMilli() || job["enqueued_at"] != job["created_at"] {
		t.Fatalf("timestamps %v %v: want integer milliseconds (Sidekiq 8)", job["created_at"], job["enqueued_at"])
	}
	users, _ := rdb.LRange(bg, "myapp:queue:default", 0, -1).Result()
	if len(users) != 1 || !strings.Contains(users[0], `"class":"UserWorker"`) || !strings.Contains(users[0], `"args":["plain text"]`) {
		t.Fatalf("default queue %v", users)
	}
	st, _ := s.Stats(url)
	if st.Deleted != 2 || st.InFlight != 2 {
		t.Fatalf("queue %+v: the two enqueued deleted; the unmapped one, and the raw body that no topic sent, left for retry", st)
	}
	if b.nonSNSKept.Load() != 1 || b.unknownKept.Load() != 1 {
		t.Fatalf("non-SNS kept %d, unknown topic kept %d; want 1 and 1", b.nonSNSKept.Load(), b.unknownKept.Load())
	}
}

func TestRedisOutageDeletesNothingAndRecovers(t *testing.T) {
	rs := startRedis(t)
	bin, _ := exec.LookPath("redis-server")
	s := sqstest.New()
	s.MustCreateQueue("dlq", nil)
	// A redrive policy of 3 receives: the outage must not spend them.
	url := s.MustCreateQueue("events", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}`})
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	cfg := testConfig(t, url, rs.addr(), "timestamps: seconds")
	changes := make(chan sqsconsumer.BreakerChange, 100)
	logs := &logCapture{}
	b, _ := NewBridge(cfg, s, rdb, slog.New(logs), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }), sqsconsumer.WithHooks(breakerHook(changes)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	// Redis answered the start check; it goes down once the bridge receives, and the messages
	// arrive during the outage.
	for s.Calls("ReceiveMessage") == 0 && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	rs.stop()
	for i := 0; i < 5; i++ {
		s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(snsBody("arn:aws:sns:eu-west-1:1:orders", strconv.Itoa(i)))})
	}
	next := func() sqsconsumer.BreakerChange {
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("the breaker did not change state within 10 s")
		}
		return sqsconsumer.BreakerChange{}
	}
	if c := next(); c.To != sqsconsumer.BreakerOpen {
		t.Fatalf("first change %+v; want open", c)
	}
	if st, _ := s.Stats(url); st.Deleted != 0 {
		t.Fatalf("deleted %d messages while Redis was down", st.Deleted)
	}
	// Open: the breaker pings Redis, and receives nothing while it does not answer.
	receives := s.Calls("ReceiveMessage")
	if c1, c2 := next(), next(); c1.To != sqsconsumer.BreakerHalfOpen || c2.To != sqsconsumer.BreakerOpen || !strings.Contains(c2.Reason, "refused") {
		t.Fatalf("changes %+v, %+v; want a probe that failed to reach Redis", c1, c2)
	}
	if n := s.Calls("ReceiveMessage"); n != receives {
		t.Fatalf("%d receives while Redis was down and the breaker open", n-receives)
	}
	rs.start(t, bin) // Redis is back
	for b.enqueued.Load() < 5 && time.Now().Before(deadline.Add(10*time.Second)) {
		<-time.After(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n, _ := rdb.LLen(context.Background(), "myapp:queue:critical").Result()
	if n != 5 {
		t.Fatalf("%d jobs after Redis came back, want 5", n)
	}
	raw, _ := rdb.LIndex(context.Background(), "myapp:queue:critical", 0).Result()
	if !strings.Contains(raw, `"created_at":17`) || !strings.Contains(raw, ".") {
		t.Fatalf("timestamps as float seconds: %s", raw)
	}
	if st, _ := s.Stats(url); st.Deleted != 5 || st.MovedToDLQ != 0 {
		t.Fatalf("queue %+v: want all 5 deleted, none dead-lettered", st)
	}
	// The outage is logged once when it starts and once when it ends, not per message.
	if n, m := logs.count("pushes to Redis fail"), logs.count("Redis takes pushes again"); n != 1 || m != 1 {
		t.Fatalf("outage lines: %d at its start and %d at its end, want 1 and 1\n%s", n, m, logs)
	}
	if n := logs.count("sqs2sidekiq: stopped enqueued=5 deleted=5"); n != 1 {
		t.Fatalf("the last line says what the bridge did: %d such lines\n%s", n, logs)
	}

	// Health: ready while Redis answers, not after it stops.
	srv := httptest.NewServer(b.Health())
	defer srv.Close()
	get := func(path string) int {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 || get("/readyz") != 200 || get("/metrics") != 200 {
		t.Fatal("health endpoints")
	}
	rs.stop()
	if get("/readyz") != 503 {
		t.Fatal("ready with Redis down")
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for yaml, want := range map[string]string{
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W}}\nbogus: 1":                                                    "bogus",
		"redis: {url: redis://x}\nroutes: {t: {class: W}}":                                                                           "queues is required",
		"queues: [q]\nroutes: {t: {class: W}}":                                                                                       "redis.url is required",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {queue: q}}":                                                              "routes.t.class is required",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W}}\ntimestamps: days":                                            "timestamps",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W}}":                                                              `timestamps is required: "seconds" for Sidekiq 7`,
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W, retry: -1}}\ntimestamps: seconds":                              "retry \"-1\": want true, false or a number",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W, retry: often}}\ntimestamps: seconds":                           "retry \"often\"",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W, payload: xml}}\ntimestamps: seconds":                           "routes.t.payload",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {'arn:aws:sns:eu-west-1:1:t': {class: W, account: '2'}}\ntimestamps: seconds": "account and region limit a route keyed by topic name",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {'arn:aws:sqs:eu-west-1:1:t': {class: W}}\ntimestamps: seconds":               "not an SNS topic ARN",
		"queues: [q]\nredis: {url: redis://x}\nroutes: {t: {class: W}}\ntimestamps: seconds\nnon_sns: drop":                          "non_sns \"drop\": want keep or delete",
		"queues: [q]\nredis: {url: redis://x, timeout: 1h}\nroutes: {t: {class: W}}\ntimestamps: seconds":                            "redis.timeout",
	} {
		if _, err := ParseConfig([]byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", yaml, err, want)
		}
	}
	cfg, err := ParseConfig([]byte("queues: [q]\nredis: {url: 'redis://user:hunter2@host:6379/0'}\nroutes: {t: {class: W}}\ntimestamps: seconds\ncredentials: {access_key_id: AKIA, secret_access_key: s3cret}"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.String(); strings.Contains(s, "hunter2") || strings.Contains(s, "s3cret") || strings.Contains(s, "AKIA") {
		t.Fatalf("secrets in %s", s)
	}
	// Errors from a file name it.
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	os.WriteFile(path, []byte("queues: [q]\nredis: {url: 'redis://u:hunter2@h'}\nroutes: {t: {class: W}}\n"), 0o600)
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "config "+path+": timestamps is required") {
		t.Fatalf("LoadConfig: %v; want the file named with the field", err)
	}
	if _, err := LoadConfig(path + ".missing"); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Fatalf("LoadConfig of a missing file: %v", err)
	}
}

var quietLogger = slog.New(slog.DiscardHandler)

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// breakerHook passes a breaker's changes to a channel.
type breakerHook chan sqsconsumer.BreakerChange

func (h breakerHook) OnBreaker(c sqsconsumer.BreakerChange) { h <- c }

// logCapture is a slog handler that keeps every line, as text.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logCapture) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// The README's example config parses, with every field it shows.
func TestReadmeConfigParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## Bridge daemon")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no yaml block in its bridge section")
	}
	cfg, err := ParseConfig([]byte(block))
	if err != nil {
		t.Fatalf("README's config: %v", err)
	}
	if r := cfg.Routes["orders"]; r.Retry == nil || r.Retry.value() != 5 || cfg.Routes["audit"].Account != "123456789012" || cfg.Timestamps != "seconds" || cfg.NonSNS != "keep" {
		t.Fatalf("README's config read as %+v", cfg)
	}
}
