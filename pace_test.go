package sqsconsumer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// heldPeak tracks the most messages a consumer held at once, sampled at every handler start.
type heldPeak struct {
	mu   sync.Mutex
	peak int64
	c    *sqsconsumer.Consumer
}

func (h *heldPeak) sample() {
	held := h.c.Stats().InFlight
	h.mu.Lock()
	h.peak = max(h.peak, held)
	h.mu.Unlock()
}

// runPaced consumes n messages of a queue a round trip of rtt away with handlers of work, at
// concurrency c; it returns the fake time it took, the peak of held messages and the report.
func runPaced(t *testing.T, n, c int, rtt, work time.Duration) (time.Duration, int64, *sqsconsumer.Report) {
	s := sqstest.New()
	url := s.MustCreateQueue("q", nil)
	sendN(t, s, url, n)
	var done atomic.Int64
	all := make(chan struct{})
	peak := &heldPeak{}
	consumer, err := sqsconsumer.New(roundTrip{s, rtt}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		peak.sample()
		advance(work)
		if done.Add(1) == int64(n) {
			close(all)
		}
		return nil
	}, sqsconsumer.WithConcurrency(c), sqsconsumer.WithWaitTime(time.Second), quiet)
	if err != nil {
		t.Fatal(err)
	}
	peak.c = consumer
	start := time.Now()
	stop := running(t, consumer)
	<-all
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return took, peak.peak, checkReportAddsUp(t, consumer)
}

func TestPrefetchStaysSmallForSlowHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Handlers of 100 ms at concurrency 10, a 10 ms round trip: the workers get through
		// one message per round trip, so a batch waiting is plenty. The waiting room (40) must
		// not be filled just because it is there.
		took, peak, r := runPaced(t, 1000, 10, 10*time.Millisecond, 100*time.Millisecond)
		if peak > 10+20 {
			t.Errorf("held up to %d messages; want at most the concurrency (10) and two batches", peak)
		}
		if u := r.Utilisation; u < 0.95 {
			t.Errorf("utilisation %.3f, want >= 0.95 (%v for 1000 x 100 ms on 10 workers)", u, took)
		}
		if r.RequestsPerMessage > 0.25 {
			t.Errorf("%.3f requests per message", r.RequestsPerMessage)
		}
	})
}

func TestPrefetchCoversALongRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Handlers of 20 ms at concurrency 8, a 50 ms round trip: the workers get through 20
		// messages per round trip, so receives must overlap and two batches wait. One receive
		// at a time could feed them 10 per 50 ms, half of what they can do.
		took, _, r := runPaced(t, 2000, 8, 50*time.Millisecond, 20*time.Millisecond)
		ideal := 2000 * 20 * time.Millisecond / 8
		if took > ideal*13/10 {
			t.Errorf("took %v; want within 30%% of the workers' own %v", took, ideal)
		}
		if r.RequestsPerMessage > 0.25 {
			t.Errorf("%.3f requests per message", r.RequestsPerMessage)
		}
	})
}

func TestPrefetchAtZeroLatencyKeepsBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No round trip at all: receives still bring whole batches (the pacer wants at least
		// one message, the strategy reserves a batch), and the workers stay busy.
		_, _, r := runPaced(t, 1000, 16, 0, 20*time.Millisecond)
		if r.RequestsPerMessage > 0.21 || r.Utilisation < 0.95 {
			t.Errorf("%.3f requests per message, utilisation %.3f", r.RequestsPerMessage, r.Utilisation)
		}
	})
}

func TestShutdownWhilePollersWaitForThePacer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 200)
		started := make(chan struct{}, 200)
		c, err := sqsconsumer.New(roundTrip{s, 5 * time.Millisecond}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			started <- struct{}{}
			<-ctx.Done() // slow: the pacer holds the pollers back
			return ctx.Err()
		}, sqsconsumer.WithConcurrency(4), sqsconsumer.WithShutdownTimeout(time.Second), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for range 4 {
			<-started
		}
		advance(time.Minute)
		begun := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begun); took > 3*time.Second {
			t.Errorf("Run took %v to return", took)
		}
		r := checkReportAddsUp(t, c)
		if r.Received > 4+16 {
			t.Errorf("received %d with 4 stuck handlers; want at most the capacity (4 + a room of 16)", r.Received)
		}
	})
}

func TestFIFODeletesShareCallsUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A FIFO queue with 100 groups, 10 ms handlers at concurrency 32, a 15 ms round trip:
		// deletes are sent at once (a group stays locked until its delete lands), but those
		// that arrive while a call is out share the next one.
		s := sqstest.New()
		url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		const n = 2000
		for i := range n {
			g := fmt.Sprintf("g%02d", i%100)
			if _, err := s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("%s-%04d", g, i)), MessageGroupId: aws.String(g)}); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		last := map[string]string{}
		var done atomic.Int64
		all := make(chan struct{})
		c, err := sqsconsumer.New(roundTrip{s, 15 * time.Millisecond}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			g := m.Attributes["MessageGroupId"]
			mu.Lock()
			if prev := last[g]; prev >= *m.Body {
				t.Errorf("group %s: %s after %s", g, *m.Body, prev)
			}
			last[g] = *m.Body
			mu.Unlock()
			advance(10 * time.Millisecond)
			if done.Add(1) == n {
				close(all)
			}
			return nil
		}, sqsconsumer.WithConcurrency(32), sqsconsumer.WithWaitTime(time.Second), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		<-all
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r := checkReportAddsUp(t, c)
		deletes := s.Calls("DeleteMessageBatch")
		t.Logf("%.3f requests per message, %d delete calls for %d messages", r.RequestsPerMessage, deletes, n)
		if r.RequestsPerMessage > 0.25 {
			t.Errorf("%.3f requests per message (%d delete calls for %d messages); want <= 0.25", r.RequestsPerMessage, deletes, n)
		}
	})
}
