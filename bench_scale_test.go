package sqsconsumer_test

// The measurement side of issue 19 beyond BenchmarkUnderLatency. Each runs a short variant by
// default, as CI runs it, and its full one under BENCH_HEAVY=1 (the report command sets it),
// once per network of benchkit.Networks (BENCH_LATENCY; the report uses 15 ms):
//
//   - BenchmarkScaleOut: 1, 2 and 4 consumer processes on one queue.
//   - BenchmarkGroup50: a Group of 50 queues, idle and with a backlog on each.
//   - BenchmarkSendLatency: send to handler start, at a steady rate below capacity.
//   - BenchmarkShutdown: cancel to Run's return, idle and busy.
//
// Go CDK runs BenchmarkSendLatency and BenchmarkShutdown in bench/gocdk.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/pool"
)

// BenchmarkScaleOut re-executes this test binary as its consumer processes.
func init() { benchkit.ServeConsumerIfChild(scaleChild) }

// scaleChild is one consumer process of BenchmarkScaleOut: this library with default options
// but the concurrency.
func scaleChild(ctx context.Context, client *sqs.Client, spec benchkit.ConsumerSpec, work func(string)) error {
	c, err := sqsconsumer.New(client, spec.QueueURL, func(_ context.Context, m *sqsconsumer.Message) error {
		work(*m.Body)
		return nil
	}, sqsconsumer.WithConcurrency(spec.Concurrency), quiet)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// warmEmulator returns a direct client of the emulator, warmed up once per process
// (benchkit.WarmUp).
func warmEmulator(b *testing.B) *sqs.Client {
	direct := emulatorClient(b)
	latencyWarmUp.Do(func() {
		if err := benchkit.WarmUp(context.Background(), direct, "latency-warm-up", 5000); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	})
	return direct
}

// proxied returns a client of the emulator through proxy, with a fresh HTTP client of the
// SDK's default settings whose requests are counted, and whose ReceiveMessage requests signal.
func proxied(b *testing.B, proxy *benchkit.Proxy) (*sqs.Client, *benchkit.CountingTransport, *benchkit.ReceiveSignal, *http.Client) {
	opts := emulatorOptions(b)
	opts.BaseEndpoint = &proxy.URL
	httpClient, counter := proxy.HTTPClient()
	signal := &benchkit.ReceiveSignal{Base: counter}
	opts.HTTPClient = &http.Client{Transport: signal}
	return sqs.New(opts), counter, signal, httpClient
}

// BenchmarkScaleOut runs 1, 2 and 4 consumer processes (this test binary re-executed, one
// consumer each, default options but the concurrency) on one queue through a latency proxy:
// W1's no-op handler at concurrency 64 per process over 5,000 messages, and handlers of
// 10-50 ms at concurrency 16 per process over 2,000 (a tenth of each by default). The parent
// fills the queue directly and counts each message's handler calls across the processes:
// msgs/s (first handler start to last handler end, all processes), requests/msg (every
// process's HTTP requests), duplicates (handler calls beyond the first for a message) and
// left (messages still on the queue, visible or not, once every process has stopped).
func BenchmarkScaleOut(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	direct := warmEmulator(b)
	for _, n := range networks {
		for _, w := range benchkit.ScaleWorkloads {
			if !benchkit.Heavy() {
				w.Messages /= 10
			}
			for _, procs := range []int{1, 2, 4} {
				b.Run(fmt.Sprintf("%s/%s/processes=%d", n, w.Name, procs), func(b *testing.B) {
					proxy := benchkit.StartProxy(b, emu.e.URL, n)
					for b.Loop() {
						url := latencyQueue(b, direct)
						sendN(b, direct, url, w.Messages)
						fleet := benchkit.StartFleet(b, procs, benchkit.ConsumerSpec{
							Endpoint: proxy.URL, CertPEM: proxy.CertPEM(), QueueURL: url, Workload: w.Name, Concurrency: w.Concurrency,
						})
						fleet.Go(b)
						fleet.WaitDistinct(b, w.Messages, 5*time.Minute)
						fleet.Stop(b)
						r := fleet.Result()
						b.ReportMetric(float64(r.Distinct)/r.Window.Seconds(), "msgs/s")
						b.ReportMetric(float64(r.Requests)/float64(r.Distinct), "requests/msg")
						b.ReportMetric(float64(r.Duplicates), "duplicates")
						b.ReportMetric(float64(r.Busy)/(float64(procs*w.Concurrency)*float64(r.Window)), "utilisation")
						b.ReportMetric(float64(queueDepth(b, direct, url)), "left")
					}
				})
			}
		}
	}
}

// queueDepth returns the messages on a queue, visible or in flight.
func queueDepth(b *testing.B, client *sqs.Client, url string) int {
	out, err := client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		b.Fatalf("queue attributes: %v", err)
	}
	total := 0
	for _, k := range []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		v, err := strconv.Atoi(out.Attributes[string(k)])
		if err != nil {
			b.Fatalf("queue attribute %s: %q", k, out.Attributes[string(k)])
		}
		total += v
	}
	return total
}

// group50 is how many queues BenchmarkGroup50 puts in its Group.
const group50 = 50

// BenchmarkGroup50 runs a Group of 50 queues on the emulator, equal weights, default options
// but those named:
//
//   - idle: all 50 empty for benchkit.IdleWindow, long polls capped at the window, on the
//     emulator directly, at the default concurrency (10 for the whole group) and at 50:
//     receives per queue per 20 s, and the share of the queues polled at all in the window.
//   - backlog: 100 messages on each queue (20 by default), handlers of 10-50 ms, concurrency
//     50 across the group, through a latency proxy; stopped when half of all the messages were
//     handled, so that every queue still had a backlog the whole time. The spread of handled
//     counts per queue: min/max (smallest over largest) and cv (coefficient of variation); and
//     msgs/s and requests/msg of the group.
func BenchmarkGroup50(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	direct := warmEmulator(b)
	for _, concurrency := range []int{0, group50} {
		name := "idle/default-concurrency"
		if concurrency > 0 {
			name = fmt.Sprintf("idle/concurrency=%d", concurrency)
		}
		b.Run(name, func(b *testing.B) { benchGroupIdle(b, direct, concurrency) })
	}
	perQueue := 20
	if benchkit.Heavy() {
		perQueue = 100
	}
	work := benchkit.LatencyWorkloads[1].Work
	for _, n := range networks {
		b.Run(fmt.Sprintf("%s/backlog", n), func(b *testing.B) {
			proxy := benchkit.StartProxy(b, emu.e.URL, n)
			for b.Loop() {
				client, counter, _, httpClient := proxied(b, proxy)
				g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(group50), quiet)
				if err != nil {
					b.Fatal(err)
				}
				target := int64(group50 * perQueue / 2)
				counts := make([]atomic.Int64, group50)
				var total atomic.Int64
				done := make(chan struct{})
				var once sync.Once
				m := &benchkit.Meter{Concurrency: group50}
				measured := m.Wrap(work)
				for i := range group50 {
					url := latencyQueue(b, direct)
					sendN(b, direct, url, perQueue)
					if err := g.Add(client, url, func(_ context.Context, msg *sqsconsumer.Message) error {
						measured(*msg.Body)
						counts[i].Add(1)
						if total.Add(1) == target {
							once.Do(func() { close(done) })
						}
						return nil
					}, sqsconsumer.Share{}); err != nil {
						b.Fatal(err)
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				before := counter.Requests()
				go func() { errc <- g.Run(ctx) }()
				<-done
				snapshot := make([]int, group50)
				for i := range counts {
					snapshot[i] = int(counts[i].Load())
				}
				cancel()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				ratio, cv := benchkit.Spread(snapshot)
				m.Report(b, counter.Requests()-before, int(total.Load()))
				b.ReportMetric(ratio, "min/max")
				b.ReportMetric(cv, "cv")
				httpClient.CloseIdleConnections()
			}
		})
	}
}

// benchGroupIdle watches a Group of 50 empty queues (concurrency 0: the default) for
// benchkit.IdleWindow: receives/queue/20s, and polled (the share of the queues that sent a
// receive in the window: a queue not polled would not see a message arrive).
func benchGroupIdle(b *testing.B, direct *sqs.Client, concurrency int) {
	window := benchkit.IdleWindow()
	wait := min(window, 20*time.Second).Truncate(time.Second)
	client := emulatorClient(b)
	for b.Loop() {
		opts := []sqsconsumer.Option{sqsconsumer.WithWaitTime(wait), quiet}
		if concurrency > 0 {
			opts = append(opts, sqsconsumer.WithConcurrency(concurrency))
		}
		g, err := sqsconsumer.NewGroup(opts...)
		if err != nil {
			b.Fatal(err)
		}
		receives := make([]atomic.Int64, group50)
		for i := range group50 {
			counted := receiveCounter{client, &receives[i]}
			if err := g.Add(counted, latencyQueue(b, direct), func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.Share{}); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- g.Run(ctx) }()
		<-time.After(window) // the measurement window, not a wait for a condition
		var total, polled int64
		for i := range receives {
			n := receives[i].Load()
			total += n
			if n > 0 {
				polled++
			}
		}
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(total)*float64(20*time.Second)/float64(window)/group50, "receives/queue/20s")
		b.ReportMetric(float64(polled)/group50, "polled")
	}
}

// receiveCounter counts the ReceiveMessage calls made through it, as they start.
type receiveCounter struct {
	sqsconsumer.Client
	n *atomic.Int64
}

func (r receiveCounter) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	r.n.Add(1)
	return r.Client.ReceiveMessage(ctx, in, o...)
}

// sendLoad is BenchmarkSendLatency's steady load, a rate per second and a number of messages:
// 200 a second for 5 s (100 a second for 1 s by default).
func sendLoad() (rate, n int) {
	if benchkit.Heavy() {
		return 200, 1000
	}
	return 100, 100
}

// BenchmarkSendLatency measures the delay from a send to its handler's start at a steady rate
// below capacity: a producer sends 200 messages a second for 5 s (100 for 1 s by default),
// one SendMessage call each, through the same latency proxy as the consumer, stamping each
// body as its call starts; handlers take 10-50 ms at concurrency 32. This library runs with
// default options but the concurrency (a 20 s long poll); the naive baseline long-polls for
// 1 s. The producer starts once the consumer's first receive is on its way: p50, p90, p99 and
// max in ms. Go CDK runs the same in bench/gocdk.
func BenchmarkSendLatency(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	consumers := []struct {
		name    string
		consume consumeFunc
	}{
		{"sqsconsumer-pool", libraryConsumer(pool.Factory(), quiet, sqsconsumer.WithWaitTime(20*time.Second))},
		{"naive-baseline", naiveConsumer},
	}
	direct := warmEmulator(b)
	rate, total := sendLoad()
	for _, n := range networks {
		for _, c := range consumers {
			b.Run(fmt.Sprintf("%s/%s", n, c.name), func(b *testing.B) {
				proxy := benchkit.StartProxy(b, emu.e.URL, n)
				for b.Loop() {
					url := latencyQueue(b, direct)
					client, _, signal, httpClient := proxied(b, proxy)
					producer, _, _, producerHTTP := proxied(b, proxy)
					started := signal.Arm()
					d := &benchkit.Delays{Want: total}
					w := benchkit.Workload{Name: "steady", Messages: total, Concurrency: 32, Work: func(body string) {
						d.Start(body)
						time.Sleep(benchkit.LatencyOf(body))
					}}
					errc := make(chan error, 1)
					go func() {
						<-started
						errc <- benchkit.Produce(context.Background(), producer, url, total, rate)
					}()
					c.consume(b, client, url, w, &benchkit.Meter{Concurrency: w.Concurrency})
					if err := <-errc; err != nil {
						b.Fatalf("produce: %v", err)
					}
					d.Report(b)
					httpClient.CloseIdleConnections()
					producerHTTP.CloseIdleConnections()
				}
			})
		}
	}
}

// BenchmarkShutdown measures the time from cancelling Run's ctx to Run's return, through a
// latency proxy, this library with default options but the concurrency (32, with a 20 s long
// poll):
//
//   - idle: an empty queue, cancelled as the consumer's first long poll starts;
//   - busy: 1,000 messages with handlers of 10-50 ms, cancelled once 64 handlers have started.
//
// Each is measured benchkit.Repeats times, on a fresh queue each: shutdown-ms is the median,
// shutdown-max-ms the longest. Go CDK runs the same in bench/gocdk.
func BenchmarkShutdown(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	direct := warmEmulator(b)
	for _, n := range networks {
		for _, busy := range []bool{false, true} {
			state := map[bool]string{false: "idle", true: "busy"}[busy]
			b.Run(fmt.Sprintf("%s/%s/sqsconsumer-pool", n, state), func(b *testing.B) {
				proxy := benchkit.StartProxy(b, emu.e.URL, n)
				for b.Loop() {
					var samples benchkit.Durations
					for range benchkit.Repeats() {
						samples = append(samples, shutdownOnce(b, direct, proxy, busy))
					}
					samples.Report(b, "shutdown")
				}
			})
		}
	}
}

// shutdownBacklog and shutdownStarted are BenchmarkShutdown's busy queue: messages on it, and
// handler starts before the cancel.
const (
	shutdownBacklog = 1000
	shutdownStarted = 64
)

func shutdownOnce(b *testing.B, direct *sqs.Client, proxy *benchkit.Proxy, busy bool) time.Duration {
	url := latencyQueue(b, direct)
	client, _, signal, httpClient := proxied(b, proxy)
	defer httpClient.CloseIdleConnections()
	ready := signal.Arm()
	handler := func(context.Context, *sqsconsumer.Message) error { return nil }
	if busy {
		sendN(b, direct, url, shutdownBacklog)
		running := make(chan struct{})
		ready = running
		var started atomic.Int64
		handler = func(_ context.Context, m *sqsconsumer.Message) error {
			if started.Add(1) == shutdownStarted {
				close(running)
			}
			time.Sleep(benchkit.LatencyOf(*m.Body))
			return nil
		}
	}
	c, err := sqsconsumer.New(client, url, handler, sqsconsumer.WithConcurrency(32), quiet)
	if err != nil {
		b.Fatal(err)
	}
	return timeShutdown(b, c, ready)
}

// timeShutdown runs c, cancels it once ready is closed, and returns how long Run took to
// return after the cancel.
func timeShutdown(b *testing.B, c *sqsconsumer.Consumer, ready <-chan struct{}) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-ready:
	case err := <-errc:
		b.Fatalf("Run returned before the cancel: %v", err)
	}
	start := time.Now()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
