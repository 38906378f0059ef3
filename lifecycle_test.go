package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/pool"
	"github.com/sqsconsumer/sqsconsumer/semaphore"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// lifecycleCase is one consumer shape the lifecycle tests run: a strategy, and whether the
// queue is FIFO or a standard one with a group limit of 1.
type lifecycleCase struct {
	name     string
	fifo     bool
	strategy func() sqsconsumer.Option
	weight   bool // random weights 1..2 (semaphore)
}

var lifecycleCases = []lifecycleCase{
	{name: "fifo/pool", fifo: true, strategy: func() sqsconsumer.Option { return sqsconsumer.WithStrategy(pool.Factory()) }},
	{name: "fifo/pool-no-room", fifo: true, strategy: func() sqsconsumer.Option {
		return sqsconsumer.WithStrategy(pool.Factory(pool.WithWaitingRoom(0)))
	}},
	{name: "fifo/semaphore", fifo: true, strategy: func() sqsconsumer.Option { return sqsconsumer.WithStrategy(semaphore.Factory()) }, weight: true},
	{name: "limit/pool", strategy: func() sqsconsumer.Option { return sqsconsumer.WithStrategy(pool.Factory()) }},
	{name: "limit/semaphore", strategy: func() sqsconsumer.Option { return sqsconsumer.WithStrategy(semaphore.Factory()) }, weight: true},
}

const (
	lifecycleGroups   = 5
	lifecyclePerGroup = 6
)

// lifecycleRun runs one consumer of the case over lifecycleGroups x lifecyclePerGroup messages,
// sent interleaved so that receives bring several messages of a group, with handlers that fail
// some first deliveries and take 0-3 ms. It cancels Run after cancelAfter handler starts (never,
// when negative: it then waits until every message succeeded) and checks what must hold
// whatever the moment:
//   - FIFO: a message never starts while an earlier one of its group has not succeeded;
//     with a group limit of 1, never two of a group at once;
//   - no handler starts after Run returned, and Run returns nil;
//   - the report adds up; deletes SQS saw equal Acked; nothing stays invisible longer than the
//     backoff (1 s) once Run has returned.
func lifecycleRun(t *testing.T, tc lifecycleCase, seed uint64, cancelAfter int) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, uint64(cancelAfter)+7))
		s := sqstest.New(sqstest.WithStrict())
		var url string
		if tc.fifo {
			url = s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		} else {
			url = s.MustCreateQueue("q", nil)
		}
		for i := range lifecyclePerGroup {
			for g := range lifecycleGroups {
				body := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.SendMessage(context.Background(), &sqs.SendMessageInput{
					QueueUrl: &url, MessageBody: aws.String(body), MessageGroupId: aws.String(fmt.Sprintf("g%d", g)),
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		failFirst := make(map[string]bool)
		latency := make(map[string]time.Duration)
		for g := range lifecycleGroups {
			for i := range lifecyclePerGroup {
				body := fmt.Sprintf("g%d-%d", g, i)
				failFirst[body] = rng.IntN(4) == 0
				latency[body] = time.Duration(rng.IntN(4)) * time.Millisecond
			}
		}

		var (
			mu        sync.Mutex
			succeeded = make(map[string]int) // group -> how many of its messages succeeded, in order
			running   = make(map[string]int)
			starts    int
			total     int
			returned  atomic.Bool
			all       = make(chan struct{})
			cancelNow = make(chan struct{})
		)
		h := func(ctx context.Context, m *sqsconsumer.Message) error {
			if returned.Load() {
				t.Errorf("%s started after Run returned", *m.Body)
			}
			group, idx, _ := strings.Cut(*m.Body, "-")
			i, _ := strconv.Atoi(idx)
			mu.Lock()
			if tc.fifo && succeeded[group] != i {
				t.Errorf("%s started while %d of its group had succeeded", *m.Body, succeeded[group])
			}
			if running[group]++; running[group] > 1 {
				t.Errorf("%s runs beside another of its group", *m.Body)
			}
			if starts++; starts == cancelAfter {
				close(cancelNow)
			}
			mu.Unlock()
			advance(latency[*m.Body])
			mu.Lock()
			defer mu.Unlock()
			running[group]--
			if failFirst[*m.Body] && m.ReceiveCount() == 1 {
				return errors.New("first delivery fails")
			}
			if tc.fifo {
				succeeded[group] = i + 1
			}
			if total++; total == lifecycleGroups*lifecyclePerGroup {
				close(all)
			}
			return nil
		}
		opts := []sqsconsumer.Option{
			sqsconsumer.WithConcurrency(3), tc.strategy(), quiet,
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }),
			sqsconsumer.WithErrorHandler(func(err error) { t.Errorf("reported: %v", err) }),
		}
		if !tc.fifo {
			opts = append(opts, sqsconsumer.WithGroupLimit(1))
		}
		if tc.weight {
			opts = append(opts, sqsconsumer.WithWeight(func(m *sqsconsumer.Message) int64 { return int64(1 + len(*m.Body)%2) }))
		}
		c, err := sqsconsumer.New(s, url, h, opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			err := c.Run(ctx)
			returned.Store(true)
			done <- err
		}()
		if cancelAfter < 0 {
			select {
			case <-all:
			case <-time.After(10 * time.Minute):
				t.Error("not every message succeeded within 10 minutes")
			}
		} else {
			select {
			case <-cancelNow:
			case <-all:
			case <-time.After(10 * time.Minute):
				t.Error("never reached the cancel point")
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		r := checkReportAddsUp(t, c)
		advance(2 * time.Second) // the longest policy: a 1 s backoff
		st, _ := s.Stats(url)
		if st.InFlight != 0 || st.Delayed != 0 {
			t.Fatalf("after Run and the backoff: %+v still invisible; report %+v", st, r.Stats)
		}
		if st.Deleted != r.Acked || r.Acked != r.Succeeded || st.Visible+int(st.Deleted) != lifecycleGroups*lifecyclePerGroup {
			t.Fatalf("queue %+v, report %+v", st, r.Stats)
		}
		if cancelAfter < 0 && st.Deleted != lifecycleGroups*lifecyclePerGroup {
			t.Fatalf("ran to the end but deleted %d", st.Deleted)
		}
	})
}

// Message groups keep their order (FIFO) or limit (WithGroupLimit) while heads fail, are
// heavy, and several messages of a group arrive in one receive: run to the end many times.
func TestLifecycleGroupsKeepOrderUnderFailures(t *testing.T) {
	runs := 200
	if testing.Short() {
		runs = 20
	}
	for _, tc := range lifecycleCases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(runs) {
				lifecycleRun(t, tc, seed, -1)
				if t.Failed() {
					t.Fatalf("seed %d", seed)
				}
			}
		})
	}
}

// Shutdown at every moment: cancel after k handler starts, for every k, several seeds each.
func TestLifecycleShutdownAtEveryMoment(t *testing.T) {
	seeds := uint64(8)
	if testing.Short() {
		seeds = 1
	}
	for _, tc := range lifecycleCases {
		t.Run(tc.name, func(t *testing.T) {
			for k := range lifecycleGroups * lifecyclePerGroup {
				for seed := range seeds {
					lifecycleRun(t, tc, seed, k)
					if t.Failed() {
						t.Fatalf("cancel after %d starts, seed %d", k, seed)
					}
				}
			}
		})
	}
}
