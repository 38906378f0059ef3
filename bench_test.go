package sqsconsumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
	"github.com/sqsconsumer/sqsconsumer/worker"
)

// BenchmarkThroughput measures the library's own overhead: end-to-end consumption of an
// in-memory sqstest queue with a no-op handler, one op per message. Reported: msgs/s,
// API requests per message (receives, deletes and visibility calls), and allocs/op (= per
// message, sqstest's own allocations included).
func BenchmarkThroughput(b *testing.B) {
	for _, bc := range []struct {
		name        string
		strategy    worker.Factory
		concurrency int
	}{
		{"pool/c=16", pool.Factory(), 16},
		{"semaphore/c=16", semaphore.Factory(), 16},
		{"pool/c=256", pool.Factory(), 256},
		{"semaphore/c=256", semaphore.Factory(), 256},
	} {
		b.Run(bc.name, func(b *testing.B) { benchThroughput(b, bc.strategy, bc.concurrency) })
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
	}, sqsconsumer.WithStrategy(strategy), sqsconsumer.WithConcurrency(concurrency), sqsconsumer.WithWaitTime(time.Second))
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
