package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestBatchHandlerRetriesOnlyTheFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 100)
		var mu sync.Mutex
		var sizes []int
		attempts := map[string]int{}
		var okCount atomic.Int64
		h, err := sqsconsumer.Batch(func(ctx context.Context, msgs []*sqsconsumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(msgs))
			failures := sqsconsumer.BatchFailures{}
			for _, m := range msgs {
				attempts[*m.Body]++
				n, _ := strconv.Atoi(*m.Body)
				if n%7 == 0 && attempts[*m.Body] == 1 {
					failures[*m.MessageId] = errors.New("multiple of seven, first try")
					continue
				}
				okCount.Add(1)
			}
			if len(failures) == 0 {
				return nil
			}
			return failures
		}, 10, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := sqsconsumer.New(s, url, h, sqsconsumer.WithConcurrency(20), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Second }))
		stop := running(t, c)
		for okCount.Load() < 100 {
			advance(100 * time.Millisecond)
		}
		stop()
		r := checkReportAddsUp(t, c)
		if r.Succeeded != 100 || r.Failed != 15 { // 0, 7, ..., 98: fifteen multiples of seven
			t.Fatalf("report %+v", r.Stats)
		}
		for body, n := range attempts {
			v, _ := strconv.Atoi(body)
			if want := 1 + map[bool]int{true: 1}[v%7 == 0]; n != want {
				t.Fatalf("message %s handled %d times, want %d: only failed ones are retried", body, n, want)
			}
		}
		full := 0
		for _, n := range sizes {
			if n > 10 {
				t.Fatalf("batch of %d", n)
			}
			if n == 10 {
				full++
			}
		}
		if full < 5 {
			t.Fatalf("batch sizes %v: the batches should mostly fill", sizes)
		}
		if st, _ := s.Stats(url); st.Deleted != 100 {
			t.Fatalf("queue %+v", st)
		}
	})
}

func TestBatchWindowFlushesAPartialBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 3)
		got := make(chan int, 10)
		h, _ := sqsconsumer.Batch(func(ctx context.Context, msgs []*sqsconsumer.Message) error {
			got <- len(msgs)
			return nil
		}, 10, time.Second)
		c, _ := sqsconsumer.New(s, url, h, sqsconsumer.WithConcurrency(10))
		stop := running(t, c)
		start := time.Now()
		if n := <-got; n != 3 {
			t.Fatalf("batch of %d, want the 3 there are", n)
		}
		if waited := time.Since(start); waited < time.Second || waited > 1100*time.Millisecond {
			t.Fatalf("partial batch ran after %v, want the 1s window", waited)
		}
		stop()
	})
}

func TestBatchErrorsAndPanicsFailTheWholeBatch(t *testing.T) {
	for name, h := range map[string]sqsconsumer.BatchHandler{
		"error": func(context.Context, []*sqsconsumer.Message) error { return errors.New("downstream down") },
		"panic": func(context.Context, []*sqsconsumer.Message) error { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := sqstest.New()
				url := s.MustCreateQueue("q", nil)
				sendN(t, s, url, 4)
				handler, _ := sqsconsumer.Batch(h, 4, time.Second)
				c, _ := sqsconsumer.New(s, url, handler, sqsconsumer.WithConcurrency(4), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
				stop := running(t, c)
				for c.Stats().Failed < 4 {
					advance(100 * time.Millisecond)
				}
				stop()
				if r := checkReportAddsUp(t, c); r.Failed != 4 || r.Succeeded != 0 {
					t.Fatalf("report %+v", r.Stats)
				}
			})
		})
	}
}

func TestBatchValidates(t *testing.T) {
	ok := func(context.Context, []*sqsconsumer.Message) error { return nil }
	for _, tc := range []struct {
		h      sqsconsumer.BatchHandler
		size   int
		window time.Duration
	}{{nil, 5, time.Second}, {ok, 0, time.Second}, {ok, 11, time.Second}, {ok, 5, 0}} {
		if _, err := sqsconsumer.Batch(tc.h, tc.size, tc.window); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
			t.Errorf("Batch(%v, %d, %v) = %v", tc.h != nil, tc.size, tc.window, err)
		}
	}
	if fmt.Sprint(sqsconsumer.BatchFailures{"b": nil, "a": nil}) != "sqsconsumer: 2 messages of the batch failed: a, b" {
		t.Fatal(sqsconsumer.BatchFailures{"b": nil, "a": nil}.Error())
	}
}
