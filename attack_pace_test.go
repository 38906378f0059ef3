package sqsconsumer_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/mock/gomock"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/internal/mocks"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// goexitReporter is a gomock.TestReporter as a test's own T behaves off the test goroutine:
// it records the failure and ends the calling goroutine (which gomock relies on: after
// Fatalf it would use a nil expected call).
type goexitReporter struct {
	mu   sync.Mutex
	errs []string
}

func (r *goexitReporter) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *goexitReporter) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *goexitReporter) Helper() {}

func (r *goexitReporter) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// A user's generated mock with the expectation written for the call the consumer makes,
// ReceiveMessage(ctx, in), as for DeleteMessageBatch and ChangeMessageVisibilityBatch. The
// design promises that generated mocks serve for interaction checks; a consumer that adds a
// per-call option to every receive makes every such expectation "wrong number of arguments".
func TestAttackGomockReceiveExpectationWithTwoMatchers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rep := &goexitReporter{}
		ctrl := gomock.NewController(rep)
		client := mocks.NewMockClient(ctrl)
		var receives atomic.Int64
		client.EXPECT().ReceiveMessage(gomock.Any(), gomock.Any()).DoAndReturn(
			func(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
				receives.Add(1)
				select {
				case <-time.After(time.Duration(in.WaitTimeSeconds) * time.Second):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return &sqs.ReceiveMessageOutput{}, nil
			}).AnyTimes()
		c, err := sqsconsumer.New(client, "https://sqs.us-east-1.amazonaws.com/1/q",
			func(context.Context, *sqsconsumer.Message) error { return nil }, quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if f := rep.failures(); len(f) > 0 {
			t.Fatalf("the mock's ReceiveMessage(gomock.Any(), gomock.Any()) expectation does not match the consumer's call:\n%s", f[0])
		}
		if receives.Load() == 0 {
			t.Fatal("no receive reached the mock")
		}
	})
}

// A long poll that waits for messages and comes back full (a producer's SendMessageBatch of
// ten lands while it waits) is not a round trip: the pacer's doc says rtt is "a backlog
// answered at once: the round trip, not a long poll's wait". Taken as a round trip sample,
// the wait inflates want (concurrency / handler time x seconds) to the whole waiting room, and
// the consumer then holds 4 x concurrency messages for slow handlers, which
// TestPrefetchStaysSmallForSlowHandlers shows it must not.
func TestAttackLongPollWaitIsNotARoundTrip(t *testing.T) {
	for _, strategy := range []string{"pool", "semaphore"} {
		t.Run(strategy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				peak := &heldPeak{}
				var measuring atomic.Bool
				var handled atomic.Int64
				c, err := sqsconsumer.New(roundTrip{s, 10 * time.Millisecond}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					if measuring.Load() {
						peak.sample()
					}
					advance(100 * time.Millisecond)
					handled.Add(1)
					return nil
				}, sqsconsumer.WithConcurrency(10), sqsconsumer.WithStrategy(strategies[strategy]), quiet)
				if err != nil {
					t.Fatal(err)
				}
				peak.c = c
				stop := running(t, c)
				// An idle queue; a batch of ten lands while the long poll waits, twice (the
				// handler time is measured in between).
				for range 2 {
					advance(15 * time.Second)
					sendN(t, s, url, 10)
					advance(15 * time.Second)
				}
				// Then a backlog: handlers of 100 ms at concurrency 10 with a 10 ms round trip
				// call for about a batch waiting.
				measuring.Store(true)
				sendN(t, s, url, 400)
				for handled.Load() < 420 {
					advance(100 * time.Millisecond)
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				checkReportAddsUp(t, c)
				if peak.peak > 10+20 {
					t.Errorf("held up to %d messages for 100 ms handlers at concurrency 10 a 10 ms round trip away; want at most the concurrency and two batches (the long polls' waits were taken for round trips)", peak.peak)
				}
			})
		})
	}
}

// The pacer tests of pace_test.go, with the semaphore strategy: its Submit blocks the poller
// in admit while the messages wait for their weight, and the pacer counts what that receive
// asked for until admit returns.
func TestAttackPrefetchWithTheSemaphore(t *testing.T) {
	run := func(t *testing.T, n, c int, rtt, work time.Duration) (time.Duration, int64, *sqsconsumer.Report) {
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
		}, sqsconsumer.WithConcurrency(c), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithStrategy(strategies["semaphore"]), quiet)
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
	t.Run("slow handlers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			took, peak, r := run(t, 1000, 10, 10*time.Millisecond, 100*time.Millisecond)
			if peak > 10+20 {
				t.Errorf("held up to %d messages", peak)
			}
			if u := r.Utilisation; u < 0.95 {
				t.Errorf("utilisation %.3f, want >= 0.95 (%v)", u, took)
			}
		})
	})
	t.Run("long round trip", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			took, _, r := run(t, 2000, 8, 50*time.Millisecond, 20*time.Millisecond)
			ideal := 2000 * 20 * time.Millisecond / 8
			if took > ideal*13/10 {
				t.Errorf("took %v; want within 30%% of the workers' own %v (utilisation %.3f)", took, ideal, r.Utilisation)
			}
		})
	})
}
