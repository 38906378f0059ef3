package sqsconsumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/queues"
)

// The run on the emulator, default options as a user would run them: a queue that
// dead-letters after 4 receives, 200 messages, handlers (5 ms each) whose database is down for
// 20 s from the first call and then back. Without a breaker, the consumer walks nearly every
// message into the dead-letter queue; with the default breaker at most 5% go there and every
// other message is handled within 30 s of the database's return. Both run at once.
func TestEmulatorBreakerOutageKeepsMessagesOutOfTheDLQ(t *testing.T) {
	client := emulatorClient(t)
	const (
		n    = 200
		down = 20 * time.Second
	)
	for _, tc := range []struct {
		name string
		opts []sqsconsumer.Option
	}{
		{"without a breaker", nil},
		{"with the default breaker", []sqsconsumer.Option{sqsconsumer.WithBreaker(sqsconsumer.Breaker{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url, dlq, err := queues.CreateWithDLQ(ctx, client, queues.Spec{Name: fmt.Sprintf("outage-%d", queueSeq.Add(1)), MaxReceiveCount: 4})
			if err != nil {
				t.Fatal(err)
			}
			sendN(t, client, url, n)
			var (
				mu       sync.Mutex
				ok       = map[string]bool{}
				lastOK   time.Time
				firstAt  atomic.Pointer[time.Time]
				failures atomic.Int64
			)
			c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
				now := time.Now()
				firstAt.CompareAndSwap(nil, &now)
				<-time.After(5 * time.Millisecond) // the handler's work
				if time.Since(*firstAt.Load()) < down {
					failures.Add(1)
					return errors.New("database down")
				}
				mu.Lock()
				defer mu.Unlock()
				ok[*m.Body] = true
				lastOK = time.Now()
				return nil
			}, append([]sqsconsumer.Option{quiet}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			stop := running(t, c)
			dead := func() int { v, f := counts(t, client, dlq); return v + f }
			handled := func() int { mu.Lock(); defer mu.Unlock(); return len(ok) }
			eventually(t, 120*time.Second, "messages neither handled nor dead-lettered", func() bool { return handled()+dead() >= n })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			r := checkReportAddsUp(t, c)
			mu.Lock()
			defer mu.Unlock()
			var after time.Duration
			last := "none"
			if !lastOK.IsZero() {
				after = lastOK.Sub(firstAt.Load().Add(down))
				last = after.Round(time.Millisecond).String()
			}
			t.Logf("%s: %d of %d dead-lettered, %d handled (the last %s after the database came back), %d handler failures, %d receives; breaker opened %d times, %d probes",
				tc.name, dead(), n, len(ok), last, failures.Load(), r.Receives, r.BreakerOpened, r.Probed)
			if tc.opts == nil {
				if dead() < n*3/4 {
					t.Errorf("without a breaker only %d of %d were dead-lettered: the run no longer shows the problem", dead(), n)
				}
				return
			}
			if d := dead(); d > n/20 {
				t.Errorf("%d of %d dead-lettered; want at most 5%%", d, n)
			}
			if len(ok)+dead() != n {
				t.Errorf("%d handled + %d dead-lettered of %d", len(ok), dead(), n)
			}
			if after > 30*time.Second {
				t.Errorf("the last message was handled %v after the database came back; want within 30 s", after)
			}
		})
	}
}
