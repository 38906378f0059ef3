package sqsconsumer_test

// Benchmarks. The report command (go run ./cmd/benchreport) runs them and writes
// BENCHMARKS.md; CI runs each once (-benchtime=1x) so they cannot rot.
//
//   - BenchmarkThroughput: the library's own overhead on sqstest with a no-op handler, one op
//     per message: msgs/s, allocs per message, requests per message.
//   - BenchmarkWorkload: fixed workloads (internal/benchkit), one op each, on sqstest and on
//     the fauxqs emulator, through this library and, on the emulator, a naive baseline. On
//     the emulator every HTTP request counts.
//   - BenchmarkIdle: receives an idle queue costs, per 20 s.
//   - BenchmarkUnderLatency: the workloads of issue 19 (benchkit.LatencyWorkloads) on the
//     emulator through a latency proxy, for each network benchkit.Networks reads from the
//     environment (BENCH_LATENCY, BENCH_CONN_LATENCY, BENCH_TLS; by default only the
//     loopback, 0 ms): msgs/s, utilisation, requests/msg, conns, cpu-s/10k-msgs.
//
// Go CDK's pubsub runs the same workloads in the bench/gocdk module.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// The latency benchmarks re-execute this test binary as their proxy (benchkit.StartProxy).
func init() { benchkit.ServeProxyIfChild() }

var benchStrategies = []struct {
	name    string
	factory worker.Factory
}{{"pool", pool.Factory()}, {"semaphore", semaphore.Factory()}}

// BenchmarkThroughput measures the library's own overhead: end-to-end consumption of an
// in-memory sqstest queue with a no-op handler, one op per message. allocs/op and B/op include
// sqstest's own allocations (it builds SDK output structs as the real client does).
func BenchmarkThroughput(b *testing.B) {
	for _, st := range benchStrategies {
		for _, c := range []int{1, 4, 16, 64, 256} {
			b.Run(fmt.Sprintf("%s/c=%d", st.name, c), func(b *testing.B) { benchThroughput(b, st.factory, c) })
		}
	}
}

func benchThroughput(b *testing.B, strategy worker.Factory, concurrency int) {
	s := sqstest.New()
	url := s.MustCreateQueue("bench", nil)
	n := b.N
	sendN(b, s, url, n)
	var handled atomic.Int64
	done := make(chan struct{})
	c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}, sqsconsumer.WithStrategy(strategy), sqsconsumer.WithConcurrency(concurrency), sqsconsumer.WithWaitTime(time.Second), quiet)
	if err != nil {
		b.Fatal(err)
	}
	before := s.Calls("")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- c.Run(ctx) }()
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(s.Calls("")-before)/float64(n), "requests/msg")
	if r := c.Report(); r.Acked != int64(n) {
		b.Fatalf("acked %d of %d", r.Acked, n)
	}
}

// consumeFunc consumes the queue until m has seen w.Messages handler calls, then stops.
type consumeFunc func(b *testing.B, client sqsconsumer.Client, url string, w benchkit.Workload, m *benchkit.Meter)

func libraryConsumer(strategy worker.Factory, opts ...sqsconsumer.Option) consumeFunc {
	return func(b *testing.B, client sqsconsumer.Client, url string, w benchkit.Workload, m *benchkit.Meter) {
		work := m.Wrap(w.Work)
		done := make(chan struct{})
		var once sync.Once
		c, err := sqsconsumer.New(client, url, func(ctx context.Context, msg *sqsconsumer.Message) error {
			work(*msg.Body)
			if m.Handled() >= int64(w.Messages) {
				once.Do(func() { close(done) })
			}
			return nil
		}, append([]sqsconsumer.Option{sqsconsumer.WithConcurrency(w.Concurrency), sqsconsumer.WithStrategy(strategy),
			sqsconsumer.WithWaitTime(time.Second), quiet}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- c.Run(ctx) }()
		<-done
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// naiveConsumer is the consumer people write first: receive 10, handle them all at once, wait
// for the slowest, delete the batch, repeat.
func naiveConsumer(b *testing.B, client sqsconsumer.Client, url string, w benchkit.Workload, m *benchkit.Meter) {
	work := m.Wrap(w.Work)
	ctx := context.Background()
	for m.Handled() < int64(w.Messages) {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Messages) == 0 {
			continue
		}
		var wg sync.WaitGroup
		entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, msg := range out.Messages {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msg.ReceiptHandle}
			wg.Go(func() { work(*msg.Body) })
		}
		wg.Wait()
		if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
}

// countedEmulatorClient returns an emulator client whose HTTP requests are counted.
func countedEmulatorClient(b *testing.B) (*sqs.Client, *benchkit.CountingTransport) {
	opts := emulatorOptions(b)
	counter := &benchkit.CountingTransport{Base: http.DefaultTransport}
	opts.HTTPClient = &http.Client{Transport: counter}
	return sqs.New(opts), counter
}

// BenchmarkWorkload runs each workload, one op each, on sqstest (where the handler
// utilisation is measured at concurrency 256 too) and on the emulator, through this library
// (both strategies) and, on the emulator, the naive baseline.
func BenchmarkWorkload(b *testing.B) {
	consumers := []struct {
		name    string
		consume consumeFunc
	}{
		{"sqsconsumer-pool", libraryConsumer(pool.Factory())},
		{"sqsconsumer-semaphore", libraryConsumer(semaphore.Factory())},
		{"naive-baseline", naiveConsumer},
	}
	sqstestWorkloads := append(benchkit.Workloads[:len(benchkit.Workloads):len(benchkit.Workloads)],
		benchkit.Workload{Name: "latency-10-50ms-c256", Messages: 10000, Concurrency: 256, Work: benchkit.Workloads[1].Work})
	for _, w := range sqstestWorkloads {
		for _, c := range consumers[:2] {
			b.Run(fmt.Sprintf("sqstest/%s/%s", w.Name, c.name), func(b *testing.B) {
				for b.Loop() {
					s := sqstest.New()
					url := s.MustCreateQueue("bench", nil)
					sendN(b, s, url, w.Messages)
					before := s.Calls("")
					m := &benchkit.Meter{Concurrency: w.Concurrency}
					c.consume(b, s, url, w, m)
					m.Report(b, s.Calls("")-before, w.Messages)
				}
			})
		}
	}
	for _, w := range benchkit.Workloads {
		for _, c := range consumers {
			b.Run(fmt.Sprintf("emulator/%s/%s", w.Name, c.name), func(b *testing.B) {
				client, counter := countedEmulatorClient(b)
				for b.Loop() {
					url := emuQueue(b, client, nil)
					sendN(b, client, url, w.Messages)
					before := counter.Requests()
					m := &benchkit.Meter{Concurrency: w.Concurrency}
					c.consume(b, client, url, w, m)
					m.Report(b, counter.Requests()-before, w.Messages)
				}
			})
		}
	}
}

// BenchmarkIdle measures what an idle queue costs: receives per 20 s on the emulator, with
// the default long poll (capped at the window; see benchkit.IdleWindow).
func BenchmarkIdle(b *testing.B) {
	window := benchkit.IdleWindow()
	wait := min(window, 20*time.Second).Truncate(time.Second)
	b.Run("emulator/sqsconsumer", func(b *testing.B) {
		client, counter := countedEmulatorClient(b)
		for b.Loop() {
			url := emuQueue(b, client, nil)
			c, err := sqsconsumer.New(client, url, func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.WithWaitTime(wait), quiet)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			before := counter.Requests()
			go func() { errc <- c.Run(ctx) }()
			<-time.After(window) // the measurement window, not a wait for a condition
			requests := counter.Requests() - before
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			benchkit.ReportIdle(b, requests, window)
		}
	})
	b.Run("emulator/naive-baseline", func(b *testing.B) {
		client, counter := countedEmulatorClient(b)
		for b.Loop() {
			url := emuQueue(b, client, nil)
			before := counter.Requests()
			deadline := time.Now().Add(window)
			for time.Now().Before(deadline) {
				if _, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: int32(wait / time.Second)}); err != nil {
					b.Fatal(err)
				}
			}
			benchkit.ReportIdle(b, counter.Requests()-before, window)
		}
	})
}

// BenchmarkUnderLatency runs issue 19's workloads (W1: 5,000 messages, no-op handler,
// concurrency 64; W2: 2,000 messages, handlers of 10-50 ms, concurrency 32) through a latency
// proxy in front of the emulator, once per network of benchkit.Networks, through this library
// (pool, default options but a 1 s long poll) and the naive baseline. The queue is filled
// directly; only the consumption goes through the proxy, with a fresh HTTP client that has the
// SDK's default transport settings. The emulator is warmed up first (benchkit.WarmUp). Go CDK
// runs the same in bench/gocdk.
func BenchmarkUnderLatency(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	consumers := []struct {
		name    string
		consume consumeFunc
	}{
		{"sqsconsumer-pool", libraryConsumer(pool.Factory())},
		{"naive-baseline", naiveConsumer},
	}
	direct := emulatorClient(b)
	latencyWarmUp.Do(func() {
		if err := benchkit.WarmUp(context.Background(), direct, "latency-warm-up", 5000); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	})
	for _, n := range networks {
		for _, w := range benchkit.LatencyWorkloads {
			for _, c := range consumers {
				b.Run(fmt.Sprintf("%s/%s/%s", n, w.Name, c.name), func(b *testing.B) {
					proxy := benchkit.StartProxy(b, emu.e.URL, n)
					for b.Loop() {
						url := latencyQueue(b, direct)
						sendN(b, direct, url, w.Messages)
						opts := emulatorOptions(b)
						opts.BaseEndpoint = &proxy.URL
						httpClient, counter := proxy.HTTPClient()
						opts.HTTPClient = httpClient
						m := &benchkit.Meter{Concurrency: w.Concurrency}
						run := benchkit.Begin(b, proxy, counter)
						c.consume(b, sqs.New(opts), url, w, m)
						run.End(b, m, w.Messages)
						httpClient.CloseIdleConnections()
					}
				})
			}
		}
	}
}

var (
	latencyQueues atomic.Int64
	latencyWarmUp sync.Once // the emulator's JIT warmed up before the first measurement
)

// latencyQueue creates a fresh queue named after the benchmark (SQS allows letters, digits,
// hyphens and underscores).
func latencyQueue(b *testing.B, client *sqs.Client) string {
	b.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, fmt.Sprintf("%s-%d", b.Name(), latencyQueues.Add(1)))
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		b.Fatalf("create queue: %v", err)
	}
	return *out.QueueUrl
}
