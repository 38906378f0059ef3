// Package benchkit holds what the benchmarks of this repository share, so that every consumer
// in a comparison (this library, a naive baseline, Go CDK's pubsub) runs the same workloads
// and is measured the same way: from outside, by its handler calls and HTTP requests.
package benchkit

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Workload is a fixed amount of work: Messages messages handled by Work (nil: no-op) with
// at most Concurrency handlers at once.
type Workload struct {
	Name        string
	Messages    int
	Concurrency int
	Work        func(body string)
}

// Workloads are the standard ones: a deep backlog with a no-op handler (requests per
// message), and handlers of 10-50 ms at concurrency 32 (utilisation).
var Workloads = []Workload{
	{"backlog-noop", 5000, 32, nil},
	{"latency-10-50ms", 3000, 32, func(body string) { time.Sleep(LatencyOf(body)) }},
}

// LatencyOf is a handler latency of 10..50 ms fixed by the message body.
func LatencyOf(body string) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(body))
	return time.Duration(10+h.Sum32()%41) * time.Millisecond
}

// Sender is what sqstest.Server and *sqs.Client share for sending.
type Sender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// SendN puts n messages with bodies "0".."n-1" on the queue, in batches of 10.
func SendN(ctx context.Context, s Sender, url string, n int) error {
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(strconv.Itoa(j))})
		}
		out, err := s.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil {
			return err
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("send: %d entries failed, first: %s", len(out.Failed), aws.ToString(out.Failed[0].Message))
		}
	}
	return nil
}

// Meter measures handler calls: utilisation as DESIGN.md defines it (sum of handler durations
// / (concurrency x (last end - first start))), peak handlers in flight, and rate.
type Meter struct {
	Concurrency int

	handled  atomic.Int64
	mu       sync.Mutex
	busy     time.Duration
	first    time.Time
	last     time.Time
	inFlight int
	peak     int
}

// Wrap returns work measured.
func (m *Meter) Wrap(work func(body string)) func(body string) {
	return func(body string) {
		start := time.Now()
		m.mu.Lock()
		m.inFlight++
		m.peak = max(m.peak, m.inFlight)
		m.mu.Unlock()
		if work != nil {
			work(body)
		}
		end := time.Now()
		m.mu.Lock()
		m.inFlight--
		m.busy += end.Sub(start)
		if m.first.IsZero() || start.Before(m.first) {
			m.first = start
		}
		if end.After(m.last) {
			m.last = end
		}
		m.mu.Unlock()
		m.handled.Add(1)
	}
}

// Handled reports how many handler calls have returned.
func (m *Meter) Handled() int64 { return m.handled.Load() }

// Report adds the workload's metrics to b: requests/msg, utilisation, peak-handlers, msgs/s.
func (m *Meter) Report(b *testing.B, requests int64, messages int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	window := m.last.Sub(m.first)
	b.ReportMetric(float64(requests)/float64(messages), "requests/msg")
	b.ReportMetric(float64(m.busy)/(float64(m.Concurrency)*float64(window)), "utilisation")
	b.ReportMetric(float64(m.peak), "peak-handlers")
	b.ReportMetric(float64(messages)/window.Seconds(), "msgs/s")
}

// CountingTransport counts the HTTP requests an SDK client makes.
type CountingTransport struct {
	Base http.RoundTripper
	n    atomic.Int64
}

// RoundTrip counts r and sends it with Base.
func (c *CountingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.Base.RoundTrip(r)
}

// Requests reports how many requests went through.
func (c *CountingTransport) Requests() int64 { return c.n.Load() }

// IdleWindow is how long the idle-queue benchmarks watch an empty queue: 20 s, one long poll,
// unless BENCH_IDLE_WINDOW (a Go duration) says otherwise, as CI's quick run does.
func IdleWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_IDLE_WINDOW")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Second
}

// ReportIdle adds receives/20s: the requests made during window, scaled to 20 s.
func ReportIdle(b *testing.B, requests int64, window time.Duration) {
	b.ReportMetric(float64(requests)*float64(20*time.Second)/float64(window), "receives/20s")
}
