package sqsconsumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// roundTrip is an sqstest server a round trip away: every call the consumer makes waits rtt
// before it reaches the server. It isolates the consumer's answer to latency (prefetch,
// pollers, ack batching) from the emulator's own costs; the emulator benchmarks measure the
// rest.
type roundTrip struct {
	*sqstest.Server
	rtt time.Duration
}

func (r roundTrip) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	time.Sleep(r.rtt)
	return r.Server.ReceiveMessage(ctx, in, o...)
}

func (r roundTrip) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, o ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	time.Sleep(r.rtt)
	return r.Server.DeleteMessageBatch(ctx, in, o...)
}

func (r roundTrip) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	time.Sleep(r.rtt)
	return r.Server.ChangeMessageVisibilityBatch(ctx, in, o...)
}

// BenchmarkRoundTrip runs the two workloads on sqstest with a round trip added to
// every call: W1, 5,000 no-op messages at concurrency 64 (msgs/s), and W2, 2,000 messages of
// 10-50 ms at concurrency 32 (utilisation), at 0, 5, 15 and 50 ms.
func BenchmarkRoundTrip(b *testing.B) {
	workloads := []benchkit.Workload{
		{Name: "W1-noop-c64", Messages: 5000, Concurrency: 64},
		{Name: "W2-10-50ms-c32", Messages: 2000, Concurrency: 32, Work: benchkit.Workloads[1].Work},
	}
	for _, rtt := range []time.Duration{0, 5 * time.Millisecond, 15 * time.Millisecond, 50 * time.Millisecond} {
		for _, w := range workloads {
			b.Run(fmt.Sprintf("rtt=%v/%s", rtt, w.Name), func(b *testing.B) {
				for b.Loop() {
					s := sqstest.New()
					url := s.MustCreateQueue("bench", nil)
					sendN(b, s, url, w.Messages)
					before := s.Calls("")
					m := &benchkit.Meter{Concurrency: w.Concurrency}
					libraryConsumer(pool.Factory(), quiet)(b, roundTrip{s, rtt}, url, w, m)
					m.Report(b, s.Calls("")-before, w.Messages)
				}
			})
		}
	}
}

// BenchmarkFIFOManyGroups measures what FIFO acks cost: a FIFO queue on sqstest a 15 ms round
// trip away, 2,000 messages over 100 message groups, handlers of 10 ms at concurrency 32. A
// group stays locked until its message's delete lands, so FIFO deletes are sent without
// waiting for a batch to fill; deletes that arrive while a call is out share the next one.
// It reports requests per message, entries per DeleteMessageBatch call and delete calls per
// second (FIFO queues allow 300 calls a second per action without high-throughput mode).
func BenchmarkFIFOManyGroups(b *testing.B) {
	const (
		n      = 2000
		groups = 100
		rtt    = 15 * time.Millisecond
	)
	for b.Loop() {
		s := sqstest.New()
		url := s.MustCreateQueue("bench.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		for i := range n {
			g := fmt.Sprintf("g%03d", i%groups)
			if _, err := s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("%s-%05d", g, i)), MessageGroupId: aws.String(g)}); err != nil {
				b.Fatal(err)
			}
		}
		before, beforeDeletes := s.Calls(""), s.Calls("DeleteMessageBatch")
		var handled atomic.Int64
		done := make(chan struct{})
		c, err := sqsconsumer.New(roundTrip{s, rtt}, url, func(context.Context, *sqsconsumer.Message) error {
			time.Sleep(10 * time.Millisecond)
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}, sqsconsumer.WithConcurrency(32), sqsconsumer.WithWaitTime(time.Second), quiet)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- c.Run(ctx) }()
		<-done
		elapsed := time.Since(start)
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		r := c.Report()
		if r.Acked != n {
			b.Fatalf("acked %d of %d", r.Acked, n)
		}
		deletes := s.Calls("DeleteMessageBatch") - beforeDeletes
		b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(s.Calls("")-before)/n, "requests/msg")
		b.ReportMetric(float64(n)/float64(deletes), "entries/delete")
		b.ReportMetric(float64(deletes)/elapsed.Seconds(), "deletes/s")
	}
}
