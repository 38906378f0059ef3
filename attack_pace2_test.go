package sqsconsumer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// hangFirstDelete is an sqstest server whose first DeleteMessageBatch call hangs until its ctx
// ends (a connection that stopped answering); every other call answers at once.
type hangFirstDelete struct {
	*sqstest.Server
	hung atomic.Bool
}

func (h *hangFirstDelete) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, o ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if h.hung.CompareAndSwap(false, true) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Server.DeleteMessageBatch(ctx, in, o...)
}

// On a FIFO queue a group stays locked until its delete lands, and the harvester holds a
// partial batch while a call of its kind is on its first attempt. One call that hangs (a
// connection that stopped answering, up to the 30 s per-attempt timeout) must not hold every
// other group's delete, and so every other group, for that long: group B has nothing to do with
// group A's stuck call, yet its next message waits for it.
func TestAttackFIFOHungDeleteDoesNotStallOtherGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := fifoQueue(s, "q")
		sendGroup(t, s, url, "A", "a0")
		sendGroup(t, s, url, "B", "b0")
		sendGroup(t, s, url, "B", "b1")
		client := &hangFirstDelete{Server: s}
		var mu sync.Mutex
		startedAt := map[string]time.Time{}
		doneAt := map[string]time.Time{}
		b1 := make(chan struct{})
		c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			mu.Lock()
			startedAt[*m.Body] = time.Now()
			mu.Unlock()
			switch *m.Body {
			case "a0":
				advance(10 * time.Millisecond)
			case "b0":
				advance(100 * time.Millisecond) // its delete comes while a0's call hangs
			case "b1":
				close(b1)
			}
			mu.Lock()
			doneAt[*m.Body] = time.Now()
			mu.Unlock()
			return nil
		}, sqsconsumer.WithConcurrency(4), sqsconsumer.WithWaitTime(time.Second), quiet)
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		<-b1
		mu.Lock()
		wait := startedAt["b1"].Sub(doneAt["b0"])
		mu.Unlock()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		if wait > 2*time.Second {
			t.Errorf("b1 started %v after b0 succeeded: b0's delete waited behind group A's hung call (want about a round trip, here 0)", wait)
		}
	})
}

// A backlog, an idle spell (the extra pollers shrink away), then a backlog again a long round
// trip away: the second backlog is served as fast as the first, with receives overlapping again
// (pollers grow back), and the pollers never drop below WithPollers.
func TestAttackPrefetchRecoversAfterAnIdleSpell(t *testing.T) {
	for _, minPollers := range []int{1, 2} {
		t.Run(fmt.Sprint(minPollers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				const n, conc, work = 1000, 8, 20 * time.Millisecond
				var done atomic.Int64
				c, err := sqsconsumer.New(roundTrip{s, 50 * time.Millisecond}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
					advance(work)
					done.Add(1)
					return nil
				}, sqsconsumer.WithConcurrency(conc), sqsconsumer.WithPollers(minPollers), quiet)
				if err != nil {
					t.Fatal(err)
				}
				stop := running(t, c)
				var fewest int64 = 1 << 30
				phase := func(want int64) time.Duration {
					sendN(t, s, url, n)
					began := time.Now()
					for done.Load() < want {
						advance(10 * time.Millisecond)
						fewest = min(fewest, c.Stats().Pollers)
					}
					return time.Since(began)
				}
				first := phase(n)
				for range 120 { // two minutes idle: long polls come back empty
					advance(time.Second)
					fewest = min(fewest, c.Stats().Pollers)
				}
				second := phase(2 * n)
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				checkReportAddsUp(t, c)
				ideal := n * work / conc
				t.Logf("first backlog %v, second %v (workers' own %v)", first, second, ideal)
				if second > ideal*13/10 || second > first*12/10 {
					t.Errorf("second backlog took %v, the first %v; the workers alone need %v", second, first, ideal)
				}
				if fewest < int64(minPollers) {
					t.Errorf("pollers fell to %d, below WithPollers(%d)", fewest, minPollers)
				}
			})
		})
	}
}

// The pacer takes the round trip from delete and visibility calls, but what it paces is
// receives. Where a receive takes longer than a delete (SQS gathers messages; here 20 ms
// against 0), want stays at one batch, one receive is in flight at a time, and fast handlers
// are fed 10 messages per receive: 500 messages/s for 64 slots that could do 64,000. (The
// repository's own TestPollersAdaptToBacklogAndIdle, same setup, fails on main for the same
// reason: the pollers never reach the maximum.)
func TestAttackPrefetchCoversASlowReceive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		const n = 5000
		sendN(t, s, url, n)
		s.SetFaults(sqstest.Faults{Latency: func(op string, _ any) time.Duration {
			if op == "ReceiveMessage" {
				return 20 * time.Millisecond
			}
			return 0
		}})
		var done atomic.Int64
		all := make(chan struct{})
		c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error {
			advance(time.Millisecond)
			if done.Add(1) == n {
				close(all)
			}
			return nil
		}, sqsconsumer.WithConcurrency(64), sqsconsumer.WithMaxPollers(4), quiet)
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		stop := running(t, c)
		<-all
		took := time.Since(began)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		checkReportAddsUp(t, c)
		// Four pollers a 20 ms receive apart bring 40 messages per 20 ms: 2.5 s for 5,000.
		if limit := 4 * time.Second; took > limit {
			t.Errorf("took %v for %d messages of 1 ms at concurrency 64 with 4 pollers and 20 ms receives; want under %v (one receive at a time needs %v)",
				took, n, limit, n/10*20*time.Millisecond)
		}
	})
}
