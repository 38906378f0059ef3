package benchkit

import (
	"context"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/sync/errgroup"
)

// Heavy reports whether the benchmarks run their full variants (BENCH_HEAVY=1, as the report
// command sets it) instead of the short ones CI runs so that they cannot rot.
func Heavy() bool {
	v := os.Getenv("BENCH_HEAVY")
	return v == "1" || v == "true"
}

// MessageSender is what *sqs.Client has for sending one message.
type MessageSender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Produce sends n messages at rate messages per second, paced by a ticker, one SendMessage
// call each on its own goroutine so that a round trip does not slow the rate. Each body is
// "SEQ UNIXNANO", stamped as its call starts (see SentAt). It returns once every send has
// returned.
func Produce(ctx context.Context, s MessageSender, url string, n, rate int) error {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	var g errgroup.Group
	for i := range n {
		if i > 0 {
			<-t.C
		}
		body := strconv.Itoa(i) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
		g.Go(func() error {
			_, err := s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: &body})
			return err
		})
	}
	return g.Wait()
}

// SentAt returns the time a Produce body was stamped with.
func SentAt(body string) (time.Time, bool) {
	_, ns, ok := strings.Cut(body, " ")
	if !ok {
		return time.Time{}, false
	}
	v, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, v), true
}

// Delays records, for each message a handler starts, the delay since it was sent (SentAt),
// and closes Done once Want messages have started.
type Delays struct {
	Want int

	mu      sync.Mutex
	samples []time.Duration
	bad     int
	once    sync.Once
	done    chan struct{}
}

// Start records a handler start for body. Call it first thing in the handler.
func (d *Delays) Start(body string) {
	now := time.Now()
	sent, ok := SentAt(body)
	d.mu.Lock()
	if ok {
		d.samples = append(d.samples, now.Sub(sent))
	} else {
		d.bad++
	}
	n := len(d.samples) + d.bad
	d.mu.Unlock()
	if n >= d.Want {
		d.once.Do(func() { close(d.Done()) })
	}
}

// Done is closed once Want handlers have started.
func (d *Delays) Done() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil {
		d.done = make(chan struct{})
	}
	return d.done
}

// Report adds p50-ms, p90-ms, p99-ms and max-ms of the recorded delays to b, and fails it
// when a body carried no send time.
func (d *Delays) Report(b *testing.B) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bad > 0 {
		b.Fatalf("%d handled bodies carried no send time", d.bad)
	}
	s := slices.Clone(d.samples)
	slices.Sort(s)
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	b.ReportMetric(ms(Percentile(s, 0.50)), "p50-ms")
	b.ReportMetric(ms(Percentile(s, 0.90)), "p90-ms")
	b.ReportMetric(ms(Percentile(s, 0.99)), "p99-ms")
	b.ReportMetric(ms(Percentile(s, 1)), "max-ms")
}

// Percentile returns the q-quantile (0..1) of sorted by the nearest-rank method; 0 when it is
// empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Spread describes how evenly counts are shared: the smallest over the largest, and the
// coefficient of variation (standard deviation over mean, population).
func Spread(counts []int) (minOverMax, cv float64) {
	if len(counts) == 0 {
		return 0, 0
	}
	lo, hi, sum := counts[0], counts[0], 0
	for _, c := range counts {
		lo, hi, sum = min(lo, c), max(hi, c), sum+c
	}
	mean := float64(sum) / float64(len(counts))
	var ss float64
	for _, c := range counts {
		ss += (float64(c) - mean) * (float64(c) - mean)
	}
	if hi > 0 {
		minOverMax = float64(lo) / float64(hi)
	}
	if mean > 0 {
		cv = math.Sqrt(ss/float64(len(counts))) / mean
	}
	return minOverMax, cv
}

// ReceiveSignal is a transport that closes a channel when a ReceiveMessage request starts
// after Arm, so that a shutdown benchmark can cancel a consumer while its long poll is in
// flight.
type ReceiveSignal struct {
	Base http.RoundTripper

	armed atomic.Pointer[chan struct{}]
}

// Arm returns a channel closed when the next ReceiveMessage request starts.
func (r *ReceiveSignal) Arm() <-chan struct{} {
	ch := make(chan struct{})
	r.armed.Store(&ch)
	return ch
}

// RoundTrip signals a ReceiveMessage request as it starts and sends r with Base.
func (r *ReceiveSignal) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" {
		if ch := r.armed.Swap(nil); ch != nil {
			close(*ch)
		}
	}
	return r.Base.RoundTrip(req)
}

// Durations collects samples of one measurement (a shutdown's duration) over repetitions.
type Durations []time.Duration

// Report adds the median and the largest sample to b as NAME-ms and NAME-max-ms.
func (d Durations) Report(b *testing.B, name string) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	b.ReportMetric(ms(s[(len(s)-1)/2]), name+"-ms")
	b.ReportMetric(ms(s[len(s)-1]), name+"-max-ms")
}

// Repeats is how many times the shutdown benchmarks repeat each measurement: 5 when Heavy,
// else 1.
func Repeats() int {
	if Heavy() {
		return 5
	}
	return 1
}
