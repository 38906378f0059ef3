package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/redis/go-redis/v9"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// bridgeRun is a bridge on sqstest and a real redis-server, running until stop.
type bridgeRun struct {
	t    *testing.T
	s    *sqstest.Server
	url  string
	rdb  *redis.Client
	b    *Bridge
	logs *logCapture
	stop func() error
}

// newBridgeRun builds a bridge from yaml (queues and redis.url filled in) on a fresh sqstest
// queue; messages are sent with send before or after run.
func newBridgeRun(t *testing.T, redisAddr, yaml string, opts ...sqsconsumer.Option) *bridgeRun {
	t.Helper()
	s := sqstest.New()
	s.MustCreateQueue("dlq", nil)
	url := s.MustCreateQueue("events", map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}`})
	cfg, err := ParseConfig([]byte(fmt.Sprintf("queues: [%q]\nredis: {url: \"redis://%s/0\", namespace: myapp, timeout: 300ms}\n%s", url, redisAddr, yaml)))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	logs := &logCapture{}
	base := []sqsconsumer.Option{sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithErrorHandler(func(error) {}),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour })}
	b, err := NewBridge(cfg, s, rdb, slog.New(logs), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &bridgeRun{t: t, s: s, url: url, rdb: rdb, b: b, logs: logs}
}

func (r *bridgeRun) send(bodies ...string) {
	for _, body := range bodies {
		if _, err := r.s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &r.url, MessageBody: aws.String(body)}); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *bridgeRun) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() { err = r.b.Run(ctx); close(done) }()
	r.stop = func() error { cancel(); <-done; return err }
	r.t.Cleanup(func() { r.stop() })
}

// until waits for cond, polling, for up to 10 s.
func (r *bridgeRun) until(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s\n%s", what, r.logs)
		}
		<-time.After(5 * time.Millisecond)
	}
}

// jobs returns the raw jobs on a Sidekiq queue, oldest first.
func (r *bridgeRun) jobs(queue string) []string {
	raw, err := r.rdb.LRange(context.Background(), "myapp:queue:"+queue, 0, -1).Result()
	if err != nil {
		r.t.Fatal(err)
	}
	for i, j := 0, len(raw)-1; i < j; i, j = i+1, j-1 {
		raw[i], raw[j] = raw[j], raw[i]
	}
	return raw
}

// fields splits a raw job into its top-level values, as written.
func fields(t *testing.T, raw string) map[string]json.RawMessage {
	t.Helper()
	var f map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("job %s: %v", raw, err)
	}
	return f
}

// The SNS Message reaches the job's args exactly as published: numbers beyond float64,
// key order, exponents Go could not represent, strings; only insignificant whitespace goes.
func TestPayloadsReachArgsExactly(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), `
timestamps: seconds
routes:
  orders: {class: OrderWorker}
  texts: {class: TextWorker, payload: string}
`)
	const arn = "arn:aws:sns:eu-west-1:123456789012:"
	cases := []struct{ topic, payload, args string }{
		{"orders", `{"big":9007199254740993,"id":123456789012345678,"z":1,"a":[1,2,{"y":0,"b":1}],"f":1e400,"neg":-0.0,"u":"\u00e9\ud83d\ude00"}`,
			`[{"big":9007199254740993,"id":123456789012345678,"z":1,"a":[1,2,{"y":0,"b":1}],"f":1e400,"neg":-0.0,"u":"\u00e9\ud83d\ude00"}]`},
		{"orders", " {\n \"k\" : 1 }\n", `[{"k":1}]`},
		{"orders", `"a JSON string"`, `["a JSON string"]`},
		{"orders", `{"html":"<b>&amp;</b>","sep":" "}`, `[{"html":"<b>&amp;</b>","sep":" "}]`},
		{"orders", `123456789012345678901234567890`, `[123456789012345678901234567890]`},
		{"orders", `plain text with "quotes" and é`, `["plain text with \"quotes\" and é"]`},
		{"orders", `{"unterminated":`, `["{\"unterminated\":"]`},
		{"texts", `{"id":1}`, `["{\"id\":1}"]`},
	}
	for _, c := range cases {
		r.send(snsBody(arn+c.topic, c.payload))
	}
	r.run()
	r.until("every payload enqueued", func() bool { return r.b.enqueued.Load() == int64(len(cases)) })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, raw := range r.jobs("default") {
		got[string(fields(t, raw)["args"])] = true
	}
	for _, c := range cases {
		if !got[c.args] {
			t.Errorf("payload %q: no job has args %s; jobs: %v", c.payload, c.args, r.jobs("default"))
		}
	}
}

// A job has a retry key only when its route sets one: true, false or a count.
func TestRetryOnlyWhenTheRouteSetsIt(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), `
timestamps: milliseconds
routes:
  plain: {class: PlainWorker, queue: plain}
  never: {class: NeverWorker, queue: never, retry: false}
  five: {class: FiveWorker, queue: five, retry: 5}
  always: {class: AlwaysWorker, queue: always, retry: true}
`)
	for _, topic := range []string{"plain", "never", "five", "always"} {
		r.send(snsBody("arn:aws:sns:eu-west-1:1:"+topic, `{}`))
	}
	r.run()
	r.until("four jobs", func() bool { return r.b.enqueued.Load() == 4 })
	r.stop()
	for queue, want := range map[string]string{"plain": "", "never": "false", "five": "5", "always": "true"} {
		jobs := r.jobs(queue)
		if len(jobs) != 1 {
			t.Fatalf("queue %s: %d jobs", queue, len(jobs))
		}
		if got := string(fields(t, jobs[0])["retry"]); got != want {
			t.Errorf("queue %s: retry %q, want %q (job %s)", queue, got, want, jobs[0])
		}
	}
}

// non_sns: delete deletes bodies that are not SNS notifications, and says so at Warn, a line
// per minute; keep (the default) leaves them to the redrive policy.
func TestNonSNSBodies(t *testing.T) {
	rs := startRedis(t)
	raw := []string{`{"class":"X","args":[]}`, "plain", `{"version":"0","id":"e","detail-type":"T","source":"s","detail":{}}`,
		`{"Type":"Notification","TopicArn":"arn:aws:sns:eu-west-1:1:orders"}`} // the last: an SNS notification missing its Message
	for _, mode := range []string{"delete", "keep"} {
		t.Run(mode, func(t *testing.T) {
			r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W}}\nnon_sns: "+mode)
			r.send(raw...)
			r.send(snsBody("arn:aws:sns:eu-west-1:1:orders", "1"))
			r.run()
			r.until("the notification enqueued and every other body seen", func() bool {
				return r.b.enqueued.Load() == 1 && r.b.nonSNSDeleted.Load()+r.b.nonSNSKept.Load() == int64(len(raw))
			})
			r.stop()
			st, _ := r.s.Stats(r.url)
			lines := r.logs.count("WARN sqs2sidekiq: " + map[string]string{"delete": "deleted", "keep": "kept"}[mode] + " a message that is not an SNS notification")
			if lines != 1 {
				t.Fatalf("%d Warn lines for %d bodies, want 1 (a line a minute)\n%s", lines, len(raw), r.logs)
			}
			switch mode {
			case "delete":
				if st.Deleted != int64(len(raw))+1 || r.b.nonSNSDeleted.Load() != int64(len(raw)) {
					t.Fatalf("queue %+v, non-SNS deleted %d", st, r.b.nonSNSDeleted.Load())
				}
			case "keep":
				if st.Deleted != 1 || st.InFlight != len(raw) || r.b.nonSNSKept.Load() != int64(len(raw)) {
					t.Fatalf("queue %+v, non-SNS kept %d: want them all left in the queue", st, r.b.nonSNSKept.Load())
				}
			}
		})
	}
}

// A route by topic name can be limited to an account and a region; other accounts' topics of
// that name are unknown topics.
func TestRouteLimitedToAccountAndRegion(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W, account: '111111111111', region: eu-west-1}}")
	r.send(snsBody("arn:aws:sns:eu-west-1:111111111111:orders", "ours"),
		snsBody("arn:aws:sns:eu-west-1:222222222222:orders", "another account's"),
		snsBody("arn:aws:sns:us-east-1:111111111111:orders", "another region's"))
	r.run()
	r.until("one enqueued and two unknown", func() bool { return r.b.enqueued.Load() == 1 && r.b.unknownKept.Load() == 2 })
	r.stop()
	if jobs := r.jobs("default"); len(jobs) != 1 || string(fields(t, jobs[0])["args"]) != `["ours"]` {
		t.Fatalf("jobs %v", jobs)
	}
}

// At start: a Redis that does not answer, or a Sidekiq that reads another timestamp format,
// stops Run before anything is received, with an error that says what to do.
func TestStartChecks(t *testing.T) {
	rs := startRedis(t)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer admin.Close()
	register := func(identity, info string) {
		admin.SAdd(ctx, "myapp:processes", identity)
		if info != "" {
			admin.HSet(ctx, "myapp:"+identity, "info", info)
		}
	}
	reset := func() { admin.FlushAll(ctx) }
	for _, c := range []struct {
		name, timestamps string
		setup            func()
		want             error
		says             string
	}{
		{"sidekiq 8 reads ms, configured seconds", "seconds", func() { register("h:1:a", `{"hostname":"h","pid":1,"version":"8.0.2"}`) },
			ErrTimestampsMismatch, `Sidekiq 8.0.2 (process h:1:a) reads this Redis and expects integer milliseconds: set "timestamps: milliseconds"`},
		{"sidekiq 6 reads seconds, configured ms", "milliseconds", func() { register("h:2:b", `{"hostname":"h","pid":2}`) },
			ErrTimestampsMismatch, `Sidekiq before 7.0.2 (process h:2:b) reads this Redis and expects float seconds: set "timestamps: seconds"`},
		{"sidekiq 7 reads seconds, configured ms", "milliseconds", func() { register("h:3:c", `{"version":"7.3.9"}`) },
			ErrTimestampsMismatch, `set "timestamps: seconds"`},
		{"sidekiq 7 matches seconds", "seconds", func() { register("h:4:d", `{"version":"7.3.9"}`) }, nil, ""},
		{"a stale process is ignored", "milliseconds", func() { register("h:5:e", "") }, nil, "no Sidekiq process is registered"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reset()
			c.setup()
			r := newBridgeRun(t, rs.addr(), "timestamps: "+c.timestamps+"\nroutes: {orders: {class: W}}")
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.b.Run(ctx) }()
			if c.want != nil {
				err := <-done
				cancel()
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
					t.Fatalf("Run: %v; want %v saying %q", err, c.want, c.says)
				}
				if n := r.s.Calls("ReceiveMessage"); n != 0 {
					t.Fatalf("%d receives before the check failed", n)
				}
				return
			}
			r.until("a receive", func() bool { return r.s.Calls("ReceiveMessage") > 0 })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if c.says != "" && r.logs.count(c.says) != 1 {
				t.Fatalf("want a line saying %q\n%s", c.says, r.logs)
			}
		})
	}

	// Nothing listens: refused at once. A listener that never answers: refused at redis.timeout.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	hung := blackHole(t)
	for addr, says := range map[string]string{closed: "refused", hung: "no answer within 300ms"} {
		r := newBridgeRun(t, addr, "timestamps: seconds\nroutes: {orders: {class: W}}")
		start := time.Now()
		err := r.b.Run(context.Background())
		if !errors.Is(err, ErrRedisUnreachable) || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "redis://"+addr) {
			t.Fatalf("Run with Redis at %s: %v; want ErrRedisUnreachable naming the address and saying %q", addr, err, says)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the start check took %v", took)
		}
		if n := r.s.Calls("ReceiveMessage"); n != 0 {
			t.Fatalf("%d receives with Redis unreachable", n)
		}
	}
}

// blackHole is a TCP listener that accepts connections and never answers; closed with t.
func blackHole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// Redis hangs mid-stream (the process is stopped, so connections stay open and nothing
// answers): pushes fail at redis.timeout, the breaker opens, readiness says so within its
// bound, redis_up is 0; when Redis resumes every message goes through and none is dead-lettered.
func TestHungRedisMidStream(t *testing.T) {
	rs := startRedis(t)
	changes := make(chan sqsconsumer.BreakerChange, 100)
	r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W}}",
		sqsconsumer.WithBackoff(func(int) time.Duration { return 500 * time.Millisecond }), sqsconsumer.WithHooks(breakerHook(changes)))
	r.run()
	r.until("a receive", func() bool { return r.s.Calls("ReceiveMessage") > 0 })
	rs.cmd.Process.Signal(syscall.SIGSTOP)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			rs.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	for i := 0; i < 20; i++ {
		r.send(snsBody("arn:aws:sns:eu-west-1:1:orders", strconv.Itoa(i)))
	}
	select {
	case c := <-changes:
		if c.To != sqsconsumer.BreakerOpen {
			t.Fatalf("first change %+v, want open", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the breaker did not open within 10 s of Redis hanging")
	}
	srv := httptest.NewServer(r.b.Health())
	defer srv.Close()
	start := time.Now()
	resp, err := srv.Client().Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != 503 || took > 2500*time.Millisecond {
		t.Fatalf("readyz with Redis hung: %d after %v; want 503 within 2.5 s", resp.StatusCode, took)
	}
	if m := scrape(t, srv.URL); m["sqs2sidekiq_redis_up"] != "0" {
		t.Fatalf("redis_up %q with Redis hung", m["sqs2sidekiq_redis_up"])
	}
	resume()
	r.until("all 20 enqueued after Redis resumed", func() bool { return r.b.enqueued.Load() >= 20 })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	st, _ := r.s.Stats(r.url)
	n, _ := r.rdb.LLen(context.Background(), "myapp:queue:default").Result()
	// A push that timed out may still have reached Redis: at least once, never fewer.
	if st.MovedToDLQ != 0 || st.Deleted != 20 || n < 20 {
		t.Fatalf("queue %+v, %d jobs: want 20 deleted, >= 20 jobs, none dead-lettered", st, n)
	}
	if m := scrape(t, srv.URL); m["sqs2sidekiq_redis_up"] != "1" {
		t.Fatalf("redis_up %q after Redis resumed", m["sqs2sidekiq_redis_up"])
	}
}

// scrape reads /metrics and checks its format: every sample's family has HELP and TYPE
// lines before its first sample, and no family appears twice. It returns samples by name
// with labels.
func scrape(t *testing.T, base string) map[string]string {
	t.Helper()
	c := &httptestClient{}
	body := c.get(t, base+"/metrics")
	out := map[string]string{}
	help, typ, seen := map[string]bool{}, map[string]bool{}, map[string]bool{}
	current := ""
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name := strings.Fields(line)[2]
			if help[name] {
				t.Fatalf("family %s twice:\n%s", name, body)
			}
			help[name] = true
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || (f[3] != "counter" && f[3] != "gauge") {
				t.Fatalf("bad TYPE line %q", line)
			}
			typ[f[2]], current = true, f[2]
		case line == "":
		default:
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("bad sample %q", line)
			}
			name, _, _ := strings.Cut(f[0], "{")
			if name != current || !help[name] || !typ[name] {
				t.Fatalf("sample %q outside its family (HELP and TYPE first):\n%s", line, body)
			}
			if strings.HasSuffix(name, "_total") && seen[f[0]] {
				t.Fatalf("sample %s twice", f[0])
			}
			seen[f[0]] = true
			if _, err := strconv.ParseFloat(f[1], 64); err != nil {
				t.Fatalf("sample %q: value does not parse", line)
			}
			out[f[0]] = f[1]
		}
	}
	return out
}

type httptestClient struct{}

func (httptestClient) get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
