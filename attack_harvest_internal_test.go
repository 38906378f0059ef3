package sqsconsumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
)

// flakyClient answers batch calls after a random latency, failing some calls and some entries.
type flakyClient struct {
	Client
	maxLatency time.Duration
	failCall   float64
	failEntry  float64
	calls      atomic.Int64
}

func (f *flakyClient) wait(ctx context.Context) error {
	f.calls.Add(1)
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(f.maxLatency) + 1))):
	case <-ctx.Done():
		return ctx.Err()
	}
	if rand.Float64() < f.failCall {
		return fmt.Errorf("injected call failure")
	}
	return nil
}

func (f *flakyClient) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		if rand.Float64() < f.failEntry {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError")})
			continue
		}
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (f *flakyClient) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		if rand.Float64() < f.failEntry {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError")})
			continue
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// With interval 0 (FIFO) a partial batch waits while a call of its kind is on its first
// attempt. Whatever the timing of adds, answers, failures and retries, no request is stranded:
// every one is settled while the harvester runs (before close flushes), within a bound, and
// the open-call counters come back to zero.
func TestAttackHarvesterIntervalZeroStrandsNothing(t *testing.T) {
	for round := range 300 {
		synctest.Test(t, func(t *testing.T) {
			client := &flakyClient{maxLatency: time.Duration(rand.IntN(40)) * time.Millisecond, failCall: 0.1 * rand.Float64(), failEntry: 0.1 * rand.Float64()}
			var settled atomic.Int64
			var mu sync.Mutex
			addedAt := map[string]time.Time{}
			worst := time.Duration(0)
			h := newHarvester(harvesterConfig{
				client: client, queueURL: "q.fifo", size: 1 + rand.IntN(10), interval: 0,
				requested: func(string) {},
				settled: func(r ackReq, res sqsbatch.Result) bool {
					mu.Lock()
					worst = max(worst, time.Since(addedAt[r.id]))
					mu.Unlock()
					settled.Add(1)
					return res.OK && r.kind == ackDelete
				},
				acked:     func(int) {},
				roundTrip: func(time.Duration) {},
			})
			go h.run()
			var adders sync.WaitGroup
			var total atomic.Int64
			for a := range 1 + rand.IntN(6) {
				adders.Go(func() {
					for i := range rand.IntN(60) {
						if rand.IntN(3) > 0 {
							time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
						}
						id := fmt.Sprintf("%d-%d", a, i)
						k := ackDelete
						if rand.IntN(3) == 0 {
							k = ackVisibility
						}
						mu.Lock()
						addedAt[id] = time.Now()
						mu.Unlock()
						total.Add(1)
						h.add(ackReq{kind: k, id: id, handle: aws.String(id)})
					}
				})
			}
			adders.Wait()
			time.Sleep(time.Minute) // retries back off up to 2 s; a minute is plenty
			synctest.Wait()
			if got, want := settled.Load(), total.Load(); got != want {
				t.Errorf("round %d: %d of %d requests settled a minute after the last add (stranded until close)", round, got, want)
			}
			if o0, o1 := h.open[0].Load(), h.open[1].Load(); o0 != 0 || o1 != 0 {
				t.Errorf("round %d: open counters %d, %d with nothing in flight", round, o0, o1)
			}
			h.close()
			if got, want := settled.Load(), total.Load(); got != want {
				t.Errorf("round %d: %d of %d settled after close", round, got, want)
			}
		})
	}
}

// stop (the ack deadline at shutdown) may come before, during or after a call's first attempt,
// and adds may continue after it (exits of handlers still running): the open counters still
// come back to zero and nothing waits forever for a first attempt that will not come back.
func TestAttackHarvesterIntervalZeroStopAtEveryMoment(t *testing.T) {
	for round := range 300 {
		synctest.Test(t, func(t *testing.T) {
			client := &flakyClient{maxLatency: 20 * time.Millisecond, failCall: 0.2, failEntry: 0.2}
			var settled, total atomic.Int64
			h := newHarvester(harvesterConfig{
				client: client, queueURL: "q.fifo", size: 10, interval: 0,
				requested: func(string) {},
				settled:   func(ackReq, sqsbatch.Result) bool { settled.Add(1); return false },
				acked:     func(int) {},
			})
			go h.run()
			stopAt := time.Duration(rand.IntN(200)) * time.Millisecond
			go func() { time.Sleep(stopAt); h.stop() }()
			for i := range 50 {
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
				total.Add(1)
				h.add(ackReq{kind: ackKind(i % 2), id: fmt.Sprint(i), handle: aws.String(fmt.Sprint(i))})
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if got, want := settled.Load(), total.Load(); got != want {
				t.Errorf("round %d (stop at %v): %d of %d settled a minute after the last add", round, stopAt, got, want)
			}
			h.close()
			if o0, o1 := h.open[0].Load(), h.open[1].Load(); o0 != 0 || o1 != 0 {
				t.Errorf("round %d: open counters %d, %d after close", round, o0, o1)
			}
		})
	}
}
