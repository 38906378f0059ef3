package sqsconsumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

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
