package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A real Sidekiq (Debian's ruby-sidekiq, Sidekiq 6.4.1 on Ruby 3.1, plus ruby-redis-namespace)
// running testdata/sidekiq/app.rb against a test's redis-server. Its workers append one JSON
// line per perform to a results file, and one per failed job to an errors file;
// testdata/sidekiq/inspect.rb reads queues, retries, dead jobs and processes through
// Sidekiq's own API.

// sidekiqRecord is one perform, as app.rb's worker saw it.
type sidekiqRecord struct {
	Class       string                     `json:"class"` // the worker that ran
	JID         string                     `json:"jid"`
	Queue       string                     `json:"queue"`
	Args        json.RawMessage            `json:"args"`        // perform's args, re-serialised by Ruby's JSON.generate
	HasRetry    bool                       `json:"has_retry"`   // the job had a "retry" key
	Retry       json.RawMessage            `json:"retry"`       // job["retry"] as received: true, false, 5, null when absent
	RetryCount  *int                       `json:"retry_count"` // nil on the first attempt
	EnqueuedAt  json.RawMessage            `json:"enqueued_at"` // as Ruby parsed it: 1764000000.123 (Float) or 1764000000123 (Integer)
	CreatedAt   json.RawMessage            `json:"created_at"`
	Latency     *float64                   `json:"latency"`      // perform time minus enqueued_at read as seconds, as Sidekiq reads it
	Extra       map[string]json.RawMessage `json:"extra"`        // top-level keys Sidekiq does not define (e.g. "sqs_message_id")
	PerformedAt float64                    `json:"performed_at"` // Unix seconds
	PID         int                        `json:"pid"`
}

// sidekiqError is one failed job, written by app.rb's error handler after Sidekiq's retry
// logic has dealt with it (retry set written, or the job dropped).
type sidekiqError struct {
	Class        string          `json:"class"`
	JID          string          `json:"jid"`
	HasRetry     bool            `json:"has_retry"`
	Retry        json.RawMessage `json:"retry"` // the job's own "retry", before worker options
	ErrorClass   string          `json:"error_class"`
	ErrorMessage string          `json:"error_message"`
	Context      string          `json:"context"`
}

// sidekiqState is inspect.rb's view through Sidekiq's API.
type sidekiqState struct {
	Now       float64          `json:"now"` // Ruby's Time.now.to_f when inspect.rb ran
	Queues    []sidekiqQueue   `json:"queues"`
	Retries   []sidekiqEntry   `json:"retries"`
	RetrySize int              `json:"retry_size"`
	Scheduled []sidekiqEntry   `json:"scheduled"`
	Dead      []sidekiqEntry   `json:"dead"`
	DeadSize  int              `json:"dead_size"`
	Processes []sidekiqProcess `json:"processes"`
	Stats     struct {
		Processed     int64 `json:"processed"` // flushed by the heartbeat, every 5 s
		Failed        int64 `json:"failed"`
		Enqueued      int64 `json:"enqueued"`
		RetrySize     int64 `json:"retry_size"`
		DeadSize      int64 `json:"dead_size"`
		ScheduledSize int64 `json:"scheduled_size"`
	} `json:"stats"`
}

type sidekiqQueue struct {
	Name    string         `json:"name"`
	Size    int            `json:"size"`
	Latency *float64       `json:"latency"` // Sidekiq::Queue#latency: now - oldest job's enqueued_at
	Paused  bool           `json:"paused"`
	Jobs    []sidekiqEntry `json:"jobs"`
}

// sidekiqEntry is a job in a queue or in the retry, scheduled or dead set.
type sidekiqEntry struct {
	JID           string          `json:"jid"`
	Klass         string          `json:"klass"`
	Queue         string          `json:"queue"`
	Args          json.RawMessage `json:"args"`
	Retry         json.RawMessage `json:"retry"` // in the retry set: the job's, or else the worker's option
	HasRetry      bool            `json:"has_retry"`
	RetryCount    *int            `json:"retry_count"`
	ErrorClass    string          `json:"error_class"`
	ErrorMessage  string          `json:"error_message"`
	EnqueuedAt    *float64        `json:"enqueued_at"` // JobRecord#enqueued_at (Time.at) as float seconds
	CreatedAt     *float64        `json:"created_at"`
	EnqueuedAtRaw json.RawMessage `json:"enqueued_at_raw"`
	CreatedAtRaw  json.RawMessage `json:"created_at_raw"`
	Latency       *float64        `json:"latency"`
	At            *float64        `json:"at"` // sorted sets: when the entry is due
}

// sidekiqProcess is a Sidekiq::ProcessSet entry: the process's heartbeat info.
type sidekiqProcess struct {
	Identity    string   `json:"identity"` // hostname:pid:nonce
	Hostname    string   `json:"hostname"`
	PID         int      `json:"pid"`
	Tag         string   `json:"tag"`
	Concurrency int      `json:"concurrency"`
	Queues      []string `json:"queues"`
	Labels      []string `json:"labels"`
	StartedAt   float64  `json:"started_at"`
	Busy        int      `json:"busy"`
	Beat        float64  `json:"beat"`
	Quiet       string   `json:"quiet"` // "true"/"false": a string in 6.4.1
	RSS         int64    `json:"rss"`   // KB
	RTTus       int64    `json:"rtt_us"`
}

func (s sidekiqState) queue(name string) *sidekiqQueue {
	for i := range s.Queues {
		if s.Queues[i].Name == name {
			return &s.Queues[i]
		}
	}
	return nil
}

func sidekiqFind(entries []sidekiqEntry, jid string) *sidekiqEntry {
	for i := range entries {
		if entries[i].JID == jid {
			return &entries[i]
		}
	}
	return nil
}

// sidekiqProc is a running sidekiq process in its own process group.
type sidekiqProc struct {
	t          testing.TB
	dir        string // testdata/sidekiq, absolute
	env        []string
	namespace  string
	resultPath string
	errorPath  string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{} // closed once cmd.Wait returned
}

// startSidekiq runs sidekiq with testdata/sidekiq/app.rb on the given queues (default
// "default") against redisAddr, under namespace when it is not "", and returns once the
// process has registered in Redis's "processes" set. It is killed with the test.
// SIDEKIQ_CONCURRENCY in the test's environment sets the thread count (default 5).
func startSidekiq(t testing.TB, redisAddr, namespace string, queues ...string) *sidekiqProc {
	t.Helper()
	bin, err := exec.LookPath("sidekiq")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and sidekiq is missing (scripts/test installs ruby-sidekiq and ruby-redis-namespace)")
		}
		t.Skip("sidekiq not installed (apt-get install ruby-sidekiq ruby-redis-namespace; CI=true makes this a failure)")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "sidekiq"))
	if err != nil {
		t.Fatal(err)
	}
	if len(queues) == 0 {
		queues = []string{"default"}
	}
	tmp := t.TempDir()
	p := &sidekiqProc{
		t:          t,
		dir:        dir,
		namespace:  namespace,
		resultPath: filepath.Join(tmp, "results.jsonl"),
		errorPath:  filepath.Join(tmp, "errors.jsonl"),
		logPath:    filepath.Join(tmp, "sidekiq.log"),
		exited:     make(chan struct{}),
	}
	p.env = append(os.Environ(),
		"REDIS_URL=redis://"+redisAddr+"/0",
		"SIDEKIQ_NAMESPACE="+namespace,
		"RESULTS_FILE="+p.resultPath,
		"ERRORS_FILE="+p.errorPath,
	)
	if os.Getenv("SIDEKIQ_CONCURRENCY") == "" {
		p.env = append(p.env, "SIDEKIQ_CONCURRENCY=5")
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	// -t 1: a TERM waits at most 1 s for running jobs.
	args := []string{"-r", filepath.Join(dir, "app.rb"), "-t", "1"}
	for _, q := range queues {
		args = append(args, "-q", q)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = tmp // no config/sidekiq.yml to pick up
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	// Cleanups run last-registered first: kill, then dump the complete log on failure.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidekiq output (%s):\n%s", p.logPath, p.logs())
		}
	})
	t.Cleanup(p.kill)

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	key := p.key("processes")
	mine := ":" + strconv.Itoa(p.cmd.Process.Pid) + ":" // identity is hostname:pid:nonce
	deadline := time.Now().Add(30 * time.Second)
	for {
		members, _ := rdb.SMembers(context.Background(), key).Result()
		for _, m := range members {
			if strings.Contains(m, mine) {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("sidekiq exited before it registered in %q: %v", key, p.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidekiq (pid %d) did not register in %q within 30 s", p.cmd.Process.Pid, key)
		}
	}
}

// key is k under the namespace, as redis-namespace writes it.
func (p *sidekiqProc) key(k string) string {
	if p.namespace == "" {
		return k
	}
	return p.namespace + ":" + k
}

func (p *sidekiqProc) pid() int { return p.cmd.Process.Pid }

// stop sends TERM to sidekiq's process group and waits; after 5 s it sends KILL. A clean
// stop takes about 1 s (-t 1: idle threads sit in a 2 s BRPOP and are cut off at the
// deadline), requeues unfinished jobs and removes the process from "processes". Safe to
// call more than once.
func (p *sidekiqProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

// kill ends sidekiq's process group at once with KILL and waits, as the test's cleanup does;
// jobs it was running are lost (BasicFetch) and its "processes" entry stays in Redis until
// it expires (60 s). Safe to call more than once.
func (p *sidekiqProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// logs is sidekiq's stdout and stderr so far.
func (p *sidekiqProc) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// sidekiqReadLines decodes each complete line of path into a new T.
func sidekiqReadLines[T any](t testing.TB, path string) []T {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil // nothing written yet
	}
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Errorf("%s: %v in %q", path, err, sc.Text())
			continue
		}
		out = append(out, v)
	}
	return out
}

// results is every perform recorded so far, in the order they were written.
func (p *sidekiqProc) results() []sidekiqRecord {
	return sidekiqReadLines[sidekiqRecord](p.t, p.resultPath)
}

// errors is every failed job Sidekiq has finished handling so far.
func (p *sidekiqProc) errors() []sidekiqError {
	return sidekiqReadLines[sidekiqError](p.t, p.errorPath)
}

// waitResults waits until at least n performs were recorded and returns them all.
func (p *sidekiqProc) waitResults(t testing.TB, n int, timeout time.Duration) []sidekiqRecord {
	t.Helper()
	return sidekiqWait(t, p, "performs", n, timeout, p.results)
}

// waitErrors waits until at least n failed jobs were handled and returns them all.
func (p *sidekiqProc) waitErrors(t testing.TB, n int, timeout time.Duration) []sidekiqError {
	t.Helper()
	return sidekiqWait(t, p, "failed jobs", n, timeout, p.errors)
}

func sidekiqWait[T any](t testing.TB, p *sidekiqProc, what string, n int, timeout time.Duration, read func() []T) []T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := read()
		if len(got) >= n {
			return got
		}
		exited := false
		select {
		case <-p.exited:
			exited = true
		default:
		}
		if exited || time.Now().After(deadline) {
			b, _ := json.Marshal(got)
			t.Fatalf("%d %s of %d (sidekiq exited: %v, waited %v): %s", len(got), what, n, exited, timeout, b)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// inspect runs testdata/sidekiq/inspect.rb against the same Redis and namespace.
func (p *sidekiqProc) inspect(t testing.TB) sidekiqState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ruby", filepath.Join(p.dir, "inspect.rb"))
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("inspect.rb: %v\n%s%s", err, stderr.Bytes(), stdout.Bytes())
	}
	var s sidekiqState
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("inspect.rb: %v in %s\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	return s
}

// sidekiqPush does what Sidekiq's client does with a job: SADD its queue to "queues" and
// LPUSH the JSON, exactly as given, onto "queue:<queue>", under namespace when not "".
func sidekiqPush(t testing.TB, rdb *redis.Client, namespace, queue, job string) {
	t.Helper()
	key := func(k string) string {
		if namespace == "" {
			return k
		}
		return namespace + ":" + k
	}
	ctx := context.Background()
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key("queues"), queue)
		p.LPush(ctx, key("queue:"+queue), job)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSidekiqHarness runs real Sidekiq on hand-written jobs (not the daemon's Enqueuer):
// args reach the worker byte for byte, a job without "retry" gets the worker's option, and
// inspect.rb reads a waiting job's float-seconds enqueued_at.
func TestSidekiqHarness(t *testing.T) {
	for _, ns := range []string{"", "myapp"} {
		t.Run("namespace="+ns, func(t *testing.T) {
			t.Parallel()
			testSidekiqHarness(t, ns)
		})
	}
}

func testSidekiqHarness(t *testing.T, ns string) {
	rs := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.addr()})
	defer rdb.Close()

	// Float seconds with a fraction, as Sidekiq 6 writes created_at and enqueued_at.
	now := time.Now()
	ts := fmt.Sprintf("%d.%03d", now.Unix(), now.Nanosecond()/1e6)
	const args = `[{"big":9007199254740993,"z":1,"a":2}]`
	job := func(class, jid, extra string) string {
		return fmt.Sprintf(`{"class":%q,"args":%s,"queue":"default","jid":%q,"created_at":%s,"enqueued_at":%s%s}`,
			class, args, jid, ts, ts, extra)
	}
	const (
		recordJID  = "00000000000000000000000a"
		noRetryJID = "00000000000000000000000b"
		failJID    = "00000000000000000000000c"
		fiveJID    = "00000000000000000000000d"
		forcedJID  = "00000000000000000000000e"
		idleJID    = "00000000000000000000000f"
	)
	// No "retry" key on the first four: Sidekiq falls back to the worker's sidekiq_options.
	sidekiqPush(t, rdb, ns, "default", job("RecordWorker", recordJID, `,"sqs_message_id":"m-1"`))
	sidekiqPush(t, rdb, ns, "default", job("NoRetryWorker", noRetryJID, ""))
	sidekiqPush(t, rdb, ns, "default", job("FailingWorker", failJID, ""))
	sidekiqPush(t, rdb, ns, "default", job("FiveRetryWorker", fiveJID, ""))
	// The job's own "retry" wins over the worker's retry: false.
	sidekiqPush(t, rdb, ns, "default", job("NoRetryWorker", forcedJID, `,"retry":true`))

	sk := startSidekiq(t, rs.addr(), ns, "default")
	// A queue sidekiq does not work: the job waits there for inspect.rb.
	idleAt := time.Now()
	idleTS := strconv.FormatFloat(float64(idleAt.UnixMicro())/1e6, 'f', 6, 64)
	sidekiqPush(t, rdb, ns, "idle", fmt.Sprintf(`{"class":"RecordWorker","args":[1],"queue":"idle","jid":%q,"created_at":%s,"enqueued_at":%s}`,
		idleJID, idleTS, idleTS))

	recs := sk.waitResults(t, 5, 30*time.Second)
	errs := sk.waitErrors(t, 4, 30*time.Second)
	byJID := map[string]sidekiqRecord{}
	for _, r := range recs {
		byJID[r.JID] = r
	}
	if len(recs) != 5 || len(byJID) != 5 {
		t.Fatalf("performs %+v", recs)
	}
	r := byJID[recordJID]
	if r.Class != "RecordWorker" || string(r.Args) != args {
		t.Fatalf("RecordWorker got class %q args %s; want args %s", r.Class, r.Args, args)
	}
	// Ruby prints the Float it parsed in shortest form: 1764000000.120 comes back as 1764000000.12.
	sameFloat := func(raw json.RawMessage) bool {
		f, err := strconv.ParseFloat(string(raw), 64)
		want, _ := strconv.ParseFloat(ts, 64)
		return err == nil && f == want && strings.Contains(string(raw), ".")
	}
	if r.HasRetry || string(r.Retry) != "null" || !sameFloat(r.EnqueuedAt) || !sameFloat(r.CreatedAt) {
		t.Fatalf("RecordWorker: has_retry %v retry %s enqueued_at %s created_at %s; want no retry key and %s",
			r.HasRetry, r.Retry, r.EnqueuedAt, r.CreatedAt, ts)
	}
	if string(r.Extra["sqs_message_id"]) != `"m-1"` || len(r.Extra) != 1 {
		t.Fatalf("RecordWorker extra keys %v", r.Extra)
	}
	if r.Latency == nil || *r.Latency < 0 || *r.Latency > 60 || r.PID != sk.pid() {
		t.Fatalf("RecordWorker latency %v pid %d", r.Latency, r.PID)
	}
	if e := byJID[forcedJID]; !e.HasRetry || string(e.Retry) != "true" {
		t.Fatalf("forced retry record %+v", e)
	}
	for _, e := range errs {
		if e.ErrorClass != "TestFailure" {
			t.Fatalf("error %+v", e)
		}
	}

	st := sk.inspect(t)
	if e := sidekiqFind(st.Retries, failJID); e == nil || e.Klass != "FailingWorker" || string(e.Retry) != "true" ||
		e.ErrorClass != "TestFailure" || e.RetryCount == nil || *e.RetryCount != 0 {
		t.Fatalf("FailingWorker's job not in the retry set as expected: %+v in %+v", e, st.Retries)
	}
	if e := sidekiqFind(st.Retries, fiveJID); e == nil || string(e.Retry) != "5" {
		t.Fatalf("FiveRetryWorker's job: %+v; want in the retry set with retry 5", e)
	}
	if e := sidekiqFind(st.Retries, forcedJID); e == nil || string(e.Retry) != "true" {
		t.Fatalf("NoRetryWorker's job with \"retry\":true: %+v; want in the retry set", e)
	}
	if e := sidekiqFind(st.Retries, noRetryJID); e != nil {
		t.Fatalf("NoRetryWorker's job (no retry key) is in the retry set: %+v", e)
	}
	if st.RetrySize != 3 || st.DeadSize != 0 {
		t.Fatalf("retry set %d, dead set %d; want 3 and 0 (retry: false drops the job, no morgue)", st.RetrySize, st.DeadSize)
	}

	q := st.queue("idle")
	if q == nil || q.Size != 1 || len(q.Jobs) != 1 || q.Jobs[0].JID != idleJID || q.Jobs[0].Klass != "RecordWorker" ||
		string(q.Jobs[0].Args) != "[1]" {
		t.Fatalf("idle queue %+v", q)
	}
	if at := q.Jobs[0].EnqueuedAt; at == nil || *at < float64(idleAt.Add(-time.Minute).Unix()) || *at > float64(time.Now().Add(time.Minute).Unix()) {
		t.Fatalf("idle job enqueued_at %v (raw %s); want within a minute of %v", at, q.Jobs[0].EnqueuedAtRaw, idleAt)
	}
	if q.Latency == nil || *q.Latency < 0 || *q.Latency > 60 {
		t.Fatalf("idle queue latency %v; want small and non-negative", q.Latency)
	}
	if d := st.queue("default"); d != nil && d.Size != 0 {
		t.Fatalf("default queue still holds %d jobs", d.Size)
	}

	if len(st.Processes) != 1 {
		t.Fatalf("processes %+v", st.Processes)
	}
	pr := st.Processes[0]
	concurrency := 5
	if c, err := strconv.Atoi(os.Getenv("SIDEKIQ_CONCURRENCY")); err == nil {
		concurrency = c
	}
	if pr.PID != sk.pid() || strings.Join(pr.Queues, ",") != "default" || pr.Concurrency != concurrency ||
		!strings.Contains(pr.Identity, ":"+strconv.Itoa(sk.pid())+":") || pr.Quiet != "false" {
		t.Fatalf("process %+v", pr)
	}

	sk.stop()
	if n, _ := rdb.SCard(context.Background(), sk.key("processes")).Result(); n != 0 {
		t.Fatalf("%d processes registered after a clean stop", n)
	}
}
