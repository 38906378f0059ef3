package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/internal/lease"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a queue with n received messages, each under a lease entry, and a running manager.
type fixture struct {
	s       *sqstest.Server
	url     string
	m       *lease.Manager
	entries []*lease.Entry
	mu      sync.Mutex
	lost    map[int]error
	lostAt  map[int]time.Time
	errs    []error
	stop    chan struct{}
	done    chan struct{}
}

func newFixture(t *testing.T, n int, visibility, maxTotal time.Duration) *fixture {
	t.Helper()
	f := &fixture{s: sqstest.New(), lost: map[int]error{}, lostAt: map[int]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	f.url = f.s.MustCreateQueue("q", nil)
	for i := 0; i < n; i++ {
		f.s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &f.url, MessageBody: aws.String(fmt.Sprint(i))})
	}
	f.m = lease.New(lease.Config{Client: f.s, QueueURL: f.url, Visibility: visibility, MaxTotal: maxTotal,
		OnError: func(err error) { f.mu.Lock(); f.errs = append(f.errs, err); f.mu.Unlock() }})
	now := time.Now()
	for len(f.entries) < n {
		out, err := f.s.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &f.url, MaxNumberOfMessages: 10, VisibilityTimeout: int32(visibility / time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range out.Messages {
			i := len(f.entries)
			e := &lease.Entry{ReceiptHandle: *msg.ReceiptHandle, MessageID: *msg.MessageId, Lost: func(cause error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				if _, twice := f.lost[i]; twice {
					t.Errorf("entry %d lost twice", i)
				}
				f.lost[i], f.lostAt[i] = cause, time.Now()
			}}
			f.m.Add(e, now)
			f.entries = append(f.entries, e)
		}
	}
	go func() { defer close(f.done); f.m.Run(f.stop) }()
	return f
}

func (f *fixture) close() {
	close(f.stop)
	<-f.done
}

func (f *fixture) inFlight() int {
	st, _ := f.s.Stats(f.url)
	return st.InFlight
}

func TestExtendsBeforeLapseInBatchesOfTen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 25, 4*time.Second, time.Hour)
		<-time.After(time.Minute) // fifteen visibilities
		f.close()
		if got := f.inFlight(); got != 25 {
			t.Fatalf("%d of 25 still in flight after a minute of 4s visibilities", got)
		}
		if len(f.lost) != 0 || len(f.errs) != 0 {
			t.Fatalf("lost %v, errors %v", f.lost, f.errs)
		}
		calls := f.s.Calls("ChangeMessageVisibilityBatch")
		// Each round extends all 25 in 3 calls; a round comes when half the 4s visibility is
		// left, so every 2s: 30 rounds in the minute.
		if calls%3 != 0 || calls < 3*15 || calls > 3*31 {
			t.Fatalf("%d batch calls for a minute of 25 leases", calls)
		}
		for _, e := range f.entries {
			if f.m.Remove(e) != nil {
				t.Fatal("Remove reported a kept lease as lost")
			}
		}
		if f.m.Len() != 0 {
			t.Fatalf("%d entries left", f.m.Len())
		}
	})
}

func TestCapExpiresBeforeVisibilityLapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFixture(t, 1, 4*time.Second, 10*time.Second)
		defer f.close()
		<-time.After(30 * time.Second)
		f.mu.Lock()
		cause, at := f.lost[0], f.lostAt[0]
		f.mu.Unlock()
		if !errors.Is(cause, lease.ErrExpired) {
			t.Fatalf("cause %v, want ErrExpired", cause)
		}
		if f.m.Remove(f.entries[0]) == nil {
			t.Fatal("Remove did not report the expired lease")
		}
		// Given up while still invisible: at most the cap, and before the last extension lapsed.
		if held := at.Sub(start); held > 10*time.Second || held < 6*time.Second {
			t.Fatalf("given up after %v, want shortly before the 10s cap", held)
		}
		if f.inFlight() != 0 {
			t.Fatal("the message stayed invisible past the cap")
		}
	})
}

func TestRefusedExtensionIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 2, 4*time.Second, time.Hour)
		refuse := true
		var mu sync.Mutex
		f.s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			mu.Lock()
			defer mu.Unlock()
			if refuse { // the first entry of the first call only
				refuse = false
				return sqstest.EntryError("MessageNotInflight", true)
			}
			return nil
		}})
		<-time.After(10 * time.Second)
		f.close()
		if len(f.lost) != 1 {
			t.Fatalf("lost %v, want exactly the refused entry", f.lost)
		}
		for i, cause := range f.lost {
			var refused *lease.RefusedError
			if !errors.As(cause, &refused) || refused.Code != "MessageNotInflight" || !errors.Is(cause, lease.ErrLost) {
				t.Fatalf("cause %v, want ErrLost with SQS's reason", cause)
			}
			if f.m.Remove(f.entries[i]) == nil || f.m.Remove(f.entries[1-i]) != nil {
				t.Fatal("Remove does not tell the lost entry from the kept one")
			}
		}
	})
}

func TestRetryableEntryFailureIsRetriedNextTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 1, 4*time.Second, time.Hour)
		defer f.close()
		failures := 0
		f.s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			if failures < 1 {
				failures++
				return sqstest.EntryError("InternalError", false)
			}
			return nil
		}})
		<-time.After(20 * time.Second)
		if len(f.lost) != 0 || f.inFlight() != 1 {
			t.Fatalf("a retryable failure lost the lease: %v", f.lost)
		}
	})
}

func TestFailingCallsLoseTheLeaseOnceItLapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		f := newFixture(t, 1, 4*time.Second, time.Hour)
		defer f.close()
		f.s.SetFaults(sqstest.Faults{Call: func(op string, _ any) error { return sqstest.Throttled() }})
		<-time.After(10 * time.Second)
		if !errors.Is(f.lost[0], lease.ErrLost) || f.lostAt[0].Sub(start) < 4*time.Second {
			t.Fatalf("lost %v at %v; want ErrLost once the 4s visibility lapsed", f.lost, f.lostAt[0].Sub(start))
		}
		if len(f.errs) == 0 {
			t.Fatal("failed extension calls were not reported")
		}
	})
}

// fakeChanger accepts every extension and records when each handle's visibility lapses.
type fakeChanger struct {
	mu      sync.Mutex
	calls   int
	lapses  map[string]time.Time // receipt handle -> when its visibility lapses
	entries int
}

func (c *fakeChanger) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		c.entries++
		c.lapses[aws.ToString(e.ReceiptHandle)] = time.Now().Add(time.Duration(e.VisibilityTimeout) * time.Second)
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// capFixture runs a manager over a fakeChanger and records each entry's Lost call.
type capFixture struct {
	c      *fakeChanger
	m      *lease.Manager
	mu     sync.Mutex
	called int
	cause  map[string]error
	at     map[string]time.Time
	stop   chan struct{}
	done   chan struct{}
}

func newCapFixture(visibility, maxTotal time.Duration) *capFixture {
	f := &capFixture{c: &fakeChanger{lapses: map[string]time.Time{}}, cause: map[string]error{}, at: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	f.m = lease.New(lease.Config{Client: f.c, QueueURL: "q", Visibility: visibility, MaxTotal: maxTotal,
		Called: func() { f.mu.Lock(); f.called++; f.mu.Unlock() }})
	return f
}

func (f *capFixture) run()   { go func() { defer close(f.done); f.m.Run(f.stop) }() }
func (f *capFixture) close() { close(f.stop); <-f.done }

// add puts a message received now, with the given visibility, under the lease.
func (f *capFixture) add(t *testing.T, handle string, visibility time.Duration) *lease.Entry {
	f.c.mu.Lock()
	f.c.lapses[handle] = time.Now().Add(visibility)
	f.c.mu.Unlock()
	e := &lease.Entry{ReceiptHandle: handle, MessageID: handle, Lost: func(cause error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, twice := f.cause[handle]; twice {
			t.Errorf("%s lost twice", handle)
		}
		f.cause[handle], f.at[handle] = cause, time.Now()
	}}
	f.m.Add(e, time.Now())
	return e
}

func (f *capFixture) lost(handle string) (error, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cause[handle], f.at[handle]
}

// A cap shorter than the visibility is enforced at the cap, not when the entry would next be
// due for extension (issue 12): with 10 min visibility and a 1 min cap, the lease gives the
// message up at 1 min, also for an entry added while Run is already waiting.
func TestCapBelowVisibilityExpiresAtTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const visibility, maxTotal = 10 * time.Minute, time.Minute
		f := newCapFixture(visibility, maxTotal)
		defer f.close()
		start := time.Now()
		a := f.add(t, "a", visibility)
		f.run()
		time.Sleep(30 * time.Second)
		b := f.add(t, "b", visibility) // Run is waiting for a's cap or its next tick
		bAdded := time.Now()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		for _, c := range []struct {
			name     string
			e        *lease.Entry
			received time.Time
		}{{"a", a, start}, {"b", b, bAdded}} {
			cause, at := f.lost(c.name)
			if !errors.Is(cause, lease.ErrExpired) {
				t.Fatalf("%s: cause %v, want ErrExpired", c.name, cause)
			}
			if held := at.Sub(c.received); held < maxTotal || held > maxTotal+time.Second {
				t.Errorf("%s given up after %v, want at the %v cap", c.name, held, maxTotal)
			}
			if f.m.Remove(c.e) == nil {
				t.Errorf("%s: Remove did not report the expired lease", c.name)
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		if f.c.calls != 0 || f.called != 0 {
			t.Fatalf("%d extension calls (%d reported) for leases capped below the visibility", f.c.calls, f.called)
		}
	})
}

// A cap longer than the visibility is reached by extensions, never passed, and the message is
// given up before its last extension lapses.
func TestCapAboveVisibilityExtendsThenExpiresBeforeLapse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const visibility, maxTotal = 10 * time.Minute, 23*time.Minute + 500*time.Millisecond
		f := newCapFixture(visibility, maxTotal)
		defer f.close()
		start := time.Now()
		e := f.add(t, "a", visibility)
		f.run()
		time.Sleep(time.Hour)
		synctest.Wait()
		cause, at := f.lost("a")
		if !errors.Is(cause, lease.ErrExpired) {
			t.Fatalf("cause %v, want ErrExpired", cause)
		}
		if f.m.Remove(e) == nil {
			t.Fatal("Remove did not report the expired lease")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		if f.c.entries < 2 {
			t.Fatalf("%d extensions, want the lease extended up to its cap", f.c.entries)
		}
		if f.called != f.c.calls {
			t.Fatalf("Called reported %d of %d ChangeMessageVisibilityBatch calls", f.called, f.c.calls)
		}
		lapse := f.c.lapses["a"]
		if capAt := start.Add(maxTotal); lapse.Before(capAt) || lapse.After(capAt.Add(time.Second)) {
			t.Fatalf("last extension lapses at %v, want at the cap %v (whole seconds)", lapse.Sub(start), maxTotal)
		}
		if !at.Before(lapse) {
			t.Fatalf("given up at %v, not before the visibility lapsed at %v", at.Sub(start), lapse.Sub(start))
		}
	})
}

// An entry added while Run is between its scan and its wait (here from a Lost callback, which
// runs on Run's goroutine) is still given up at its cap.
func TestAddDuringAPassIsSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const visibility, maxTotal = 10 * time.Minute, time.Minute
		f := newCapFixture(visibility, maxTotal)
		defer f.close()
		var bAdded time.Time
		a := &lease.Entry{ReceiptHandle: "a", Lost: func(error) {
			bAdded = time.Now()
			f.add(t, "b", visibility)
		}}
		f.m.Add(a, time.Now())
		f.run()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		cause, at := f.lost("b")
		if !errors.Is(cause, lease.ErrExpired) {
			t.Fatalf("cause %v, want ErrExpired", cause)
		}
		if held := at.Sub(bAdded); held < maxTotal || held > maxTotal+time.Second {
			t.Fatalf("b given up after %v, want at the %v cap", held, maxTotal)
		}
	})
}
