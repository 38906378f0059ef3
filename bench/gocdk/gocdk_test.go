// Package gocdk benchmarks Go CDK's gocloud.dev/pubsub/awssnssqs on the workloads the library's
// own benchmarks use, on the same fauxqs emulator, measured the same way (internal/benchkit),
// so BENCHMARKS.md can state every gain as a ratio. It is its own module so that Go CDK never
// becomes a dependency of the library.
package gocdk

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/awssnssqs"

	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

var emu *emulator.Emulator

func TestMain(m *testing.M) {
	benchkit.ServeProxyIfChild() // BenchmarkUnderLatency re-executes this binary as its proxy
	code := m.Run()
	emu.Stop()
	os.Exit(code)
}

var queues atomic.Int64

// warmUp warms the emulator up once per process, before the latency benchmarks.
var warmUp sync.Once

// setup returns a counted emulator client and a fresh queue.
func setup(b *testing.B) (*sqs.Client, *benchkit.CountingTransport, string) {
	startEmulator(b)
	opts := emu.Options()
	counter := &benchkit.CountingTransport{Base: http.DefaultTransport}
	opts.HTTPClient = &http.Client{Transport: counter}
	client := sqs.New(opts)
	return client, counter, newQueue(b, client)
}

// startEmulator starts the emulator the first time it is called.
func startEmulator(b *testing.B) {
	if emu == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var err error
		if emu, err = emulator.Start(ctx); err != nil {
			if emulator.Required() {
				b.Fatalf("CI=true and the emulator is required: %v", err)
			}
			b.Skipf("emulator not available: %v", err)
		}
	}
}

// newQueue creates a fresh queue.
func newQueue(b *testing.B, client *sqs.Client) string {
	name := fmt.Sprintf("gocdk-%d", queues.Add(1))
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		b.Fatal(err)
	}
	return *out.QueueUrl
}

// consume runs the receive loop Go CDK's documentation recommends (Receive, then handle on a
// goroutine bounded by a semaphore channel, Ack when done) until want messages were handled.
func consume(b *testing.B, sub *pubsub.Subscription, concurrency int, want int64, m *benchkit.Meter, work func(body string)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sem := make(chan struct{}, concurrency)
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break // every message handled
			}
			b.Fatal(err)
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			defer msg.Ack()
			work(string(msg.Body))
			if m.Handled() >= want {
				cancel()
			}
		}()
	}
	for range concurrency { // wait for the last handlers
		sem <- struct{}{}
	}
}

// BenchmarkWorkload runs the standard workloads through Go CDK, one op each.
func BenchmarkWorkload(b *testing.B) {
	for _, w := range benchkit.Workloads {
		b.Run(fmt.Sprintf("emulator/%s/gocdk-awssnssqs", w.Name), func(b *testing.B) {
			for b.Loop() {
				client, counter, url := setup(b)
				if err := benchkit.SendN(context.Background(), client, url, w.Messages); err != nil {
					b.Fatal(err)
				}
				before := counter.Requests()
				m := &benchkit.Meter{Concurrency: w.Concurrency}
				sub := awssnssqs.OpenSubscriptionV2(context.Background(), client, url, &awssnssqs.SubscriptionOptions{Raw: true})
				consume(b, sub, w.Concurrency, int64(w.Messages), m, m.Wrap(w.Work))
				if err := sub.Shutdown(context.Background()); err != nil {
					b.Fatal(err)
				}
				m.Report(b, counter.Requests()-before, w.Messages)
			}
		})
	}
}

// BenchmarkIdle measures what an idle queue costs Go CDK with its default options.
func BenchmarkIdle(b *testing.B) {
	window := benchkit.IdleWindow()
	b.Run("emulator/gocdk-awssnssqs", func(b *testing.B) {
		for b.Loop() {
			client, counter, url := setup(b)
			sub := awssnssqs.OpenSubscriptionV2(context.Background(), client, url, &awssnssqs.SubscriptionOptions{Raw: true})
			before := counter.Requests()
			ctx, cancel := context.WithTimeout(context.Background(), window)
			_, err := sub.Receive(ctx) // nothing arrives; it polls until the window ends
			cancel()
			if err == nil {
				b.Fatal("received from an empty queue")
			}
			requests := counter.Requests() - before
			sub.Shutdown(context.Background())
			benchkit.ReportIdle(b, requests, window)
		}
	})
}

// BenchmarkUnderLatency runs issue 19's workloads (benchkit.LatencyWorkloads) through Go CDK
// and a latency proxy in front of the emulator, once per network of benchkit.Networks, as the
// root module's BenchmarkUnderLatency does for this library: the queue is filled directly and
// only the consumption goes through the proxy, with a fresh HTTP client that has the SDK's
// default transport settings. The emulator is warmed up first (benchkit.WarmUp).
func BenchmarkUnderLatency(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	startEmulator(b)
	direct := emu.Client()
	warmUp.Do(func() {
		if err := benchkit.WarmUp(context.Background(), direct, "gocdk-warm-up", 5000); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	})
	for _, n := range networks {
		for _, w := range benchkit.LatencyWorkloads {
			b.Run(fmt.Sprintf("%s/%s/gocdk-awssnssqs", n, w.Name), func(b *testing.B) {
				proxy := benchkit.StartProxy(b, emu.URL, n)
				for b.Loop() {
					url := newQueue(b, direct)
					if err := benchkit.SendN(context.Background(), direct, url, w.Messages); err != nil {
						b.Fatal(err)
					}
					opts := emu.Options()
					opts.BaseEndpoint = &proxy.URL
					httpClient, counter := proxy.HTTPClient()
					opts.HTTPClient = httpClient
					m := &benchkit.Meter{Concurrency: w.Concurrency}
					run := benchkit.Begin(b, proxy, counter)
					sub := awssnssqs.OpenSubscriptionV2(context.Background(), sqs.New(opts), url, &awssnssqs.SubscriptionOptions{Raw: true})
					consume(b, sub, w.Concurrency, int64(w.Messages), m, m.Wrap(w.Work))
					if err := sub.Shutdown(context.Background()); err != nil {
						b.Fatal(err)
					}
					run.End(b, m, w.Messages)
					httpClient.CloseIdleConnections()
				}
			})
		}
	}
}

// proxied returns a client of the emulator through proxy, with a fresh HTTP client of the
// SDK's default settings whose ReceiveMessage requests signal; close its idle connections when
// done.
func proxied(proxy *benchkit.Proxy) (*sqs.Client, *benchkit.ReceiveSignal, *http.Client) {
	opts := emu.Options()
	opts.BaseEndpoint = &proxy.URL
	httpClient, counter := proxy.HTTPClient()
	signal := &benchkit.ReceiveSignal{Base: counter}
	opts.HTTPClient = &http.Client{Transport: signal}
	return sqs.New(opts), signal, httpClient
}

// warmDirect starts and warms up the emulator once per process and returns a direct client.
func warmDirect(b *testing.B) *sqs.Client {
	startEmulator(b)
	direct := emu.Client()
	warmUp.Do(func() {
		if err := benchkit.WarmUp(context.Background(), direct, "gocdk-warm-up", 5000); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	})
	return direct
}

// BenchmarkSendLatency measures the delay from a send to its handler's start through Go CDK,
// as the root module's BenchmarkSendLatency does for this library: a producer sends 200
// messages a second for 5 s (100 a second for 1 s unless BENCH_HEAVY=1), one SendMessage call
// each, through the same latency proxy as the subscription, once Go CDK's first receive is on
// its way; handlers of 10-50 ms at concurrency 32; Go CDK's default options (Raw: true).
func BenchmarkSendLatency(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	direct := warmDirect(b)
	rate, total := 100, 100
	if benchkit.Heavy() {
		rate, total = 200, 1000
	}
	for _, n := range networks {
		b.Run(fmt.Sprintf("%s/gocdk-awssnssqs", n), func(b *testing.B) {
			proxy := benchkit.StartProxy(b, emu.URL, n)
			for b.Loop() {
				url := newQueue(b, direct)
				client, signal, httpClient := proxied(proxy)
				producer, _, producerHTTP := proxied(proxy)
				started := signal.Arm()
				d := &benchkit.Delays{Want: total}
				errc := make(chan error, 1)
				go func() {
					<-started
					errc <- benchkit.Produce(context.Background(), producer, url, total, rate)
				}()
				m := &benchkit.Meter{Concurrency: 32}
				sub := awssnssqs.OpenSubscriptionV2(context.Background(), client, url, &awssnssqs.SubscriptionOptions{Raw: true})
				consume(b, sub, 32, int64(total), m, m.Wrap(func(body string) {
					d.Start(body)
					time.Sleep(benchkit.LatencyOf(body))
				}))
				if err := sub.Shutdown(context.Background()); err != nil {
					b.Fatal(err)
				}
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

// BenchmarkShutdown measures, through Go CDK and a latency proxy, the time from cancelling the
// receive loop's ctx to Subscription.Shutdown's return, the loop having waited for its
// running handlers first (the equivalent of this library's Run returning), as the root
// module's BenchmarkShutdown does: idle (an empty queue, cancelled as the first receive
// starts) and busy (1,000 messages, handlers of 10-50 ms at concurrency 32, cancelled once 64
// handlers have started), benchkit.Repeats times each: shutdown-ms is the median,
// shutdown-max-ms the longest. Go CDK's defaults: short polls; messages it received but had
// not handed out are left to their visibility timeout.
func BenchmarkShutdown(b *testing.B) {
	networks, err := benchkit.Networks()
	if err != nil {
		b.Fatal(err)
	}
	direct := warmDirect(b)
	for _, n := range networks {
		for _, busy := range []bool{false, true} {
			state := map[bool]string{false: "idle", true: "busy"}[busy]
			b.Run(fmt.Sprintf("%s/%s/gocdk-awssnssqs", n, state), func(b *testing.B) {
				proxy := benchkit.StartProxy(b, emu.URL, n)
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

func shutdownOnce(b *testing.B, direct *sqs.Client, proxy *benchkit.Proxy, busy bool) time.Duration {
	url := newQueue(b, direct)
	client, signal, httpClient := proxied(proxy)
	defer httpClient.CloseIdleConnections()
	ready := signal.Arm()
	handle := func(*pubsub.Message) {}
	if busy {
		if err := benchkit.SendN(context.Background(), direct, url, 1000); err != nil {
			b.Fatal(err)
		}
		running := make(chan struct{})
		ready = running
		var started atomic.Int64
		handle = func(m *pubsub.Message) {
			if started.Add(1) == 64 {
				close(running)
			}
			time.Sleep(benchkit.LatencyOf(string(m.Body)))
		}
	}
	sub := awssnssqs.OpenSubscriptionV2(context.Background(), client, url, &awssnssqs.SubscriptionOptions{Raw: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- receiveLoop(ctx, sub, 32, handle) }()
	select {
	case <-ready:
	case err := <-errc:
		b.Fatalf("receive loop returned before the cancel: %v", err)
	}
	start := time.Now()
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// receiveLoop runs Go CDK's documented receive loop until ctx is cancelled, handles each
// message on a goroutine bounded by a semaphore channel and acks it, waits for the running
// handlers, and shuts the subscription down.
func receiveLoop(ctx context.Context, sub *pubsub.Subscription, concurrency int, handle func(*pubsub.Message)) error {
	sem := make(chan struct{}, concurrency)
	var err error
	for {
		msg, rerr := sub.Receive(ctx)
		if rerr != nil {
			if ctx.Err() == nil {
				err = rerr
			}
			break
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			handle(msg)
			msg.Ack()
		}()
	}
	for range concurrency {
		sem <- struct{}{}
	}
	if serr := sub.Shutdown(context.Background()); err == nil {
		err = serr
	}
	return err
}
