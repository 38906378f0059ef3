package sqsbatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/internal/backoff"
	"github.com/sqsconsumer/sqsconsumer/internal/batchid"
)

var quick = Policy{Attempts: 3, Backoff: backoff.Exponential{Base: time.Microsecond, Max: time.Microsecond}}

// run calls Do and checks that every entry's outcome is reported exactly once.
func run(t *testing.T, n int, p Policy, send Send) []Result {
	t.Helper()
	results := make([]Result, n)
	seen := make([]int, n)
	Do(n, p, send, func(i int, r Result) {
		if i < 0 || i >= n {
			t.Fatalf("outcome for position %d of %d", i, n)
		}
		seen[i]++
		results[i] = r
	})
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("entry %d reported %d times", i, c)
		}
	}
	return results
}

func TestOnlyListedEntriesSucceedAndTheRestAreRetried(t *testing.T) {
	calls := 0
	res := run(t, 4, quick, func(_ context.Context, idx []int) (Response, error) {
		calls++
		var r Response
		for j, i := range idx {
			switch {
			case i == 0: // succeeds at once
				r.Successful = append(r.Successful, Success{ID: batchid.For(j)})
			case i == 1: // the sender's fault: never retried
				r.Failed = append(r.Failed, types.BatchResultErrorEntry{Id: batchid.For(j), Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true})
			case i == 2 && calls < 3: // SQS's fault twice, then fine
				r.Failed = append(r.Failed, types.BatchResultErrorEntry{Id: batchid.For(j), Code: aws.String("InternalError")})
			case i == 2:
				r.Successful = append(r.Successful, Success{ID: batchid.For(j), MessageID: "m2"})
			} // 3: never mentioned
		}
		return r, nil
	})
	if !res[0].OK || res[0].Attempts != 1 {
		t.Errorf("entry 0: %+v", res[0])
	}
	if res[1].OK || !res[1].SenderFault || res[1].Attempts != 1 {
		t.Errorf("entry 1: %+v", res[1])
	}
	if !res[2].OK || res[2].MessageID != "m2" || res[2].Attempts != 3 {
		t.Errorf("entry 2: %+v", res[2])
	}
	if res[3].OK || res[3].Code != CodeNoResult || res[3].Attempts != 3 {
		t.Errorf("entry 3 (never mentioned) must be retried, then fail: %+v", res[3])
	}
}

func TestFailedCallsAreRetriedButNotPermanentOnes(t *testing.T) {
	transient, permanent := errors.New("timeout"), errors.New("access denied")
	p := quick
	p.Permanent = func(err error) bool { return errors.Is(err, permanent) }
	for _, tc := range []struct {
		err   error
		calls int
	}{{transient, 3}, {permanent, 1}} {
		calls := 0
		res := run(t, 2, p, func(context.Context, []int) (Response, error) { calls++; return Response{}, tc.err })
		if calls != tc.calls || !errors.Is(res[0].Error(), tc.err) || res[1].OK {
			t.Errorf("%v: %d calls, results %+v", tc.err, calls, res)
		}
	}
}

// FuzzEntryMapping: whatever ids a response names (unknown, repeated, malformed, both
// successful and failed), each entry is reported exactly once, at a real position.
func FuzzEntryMapping(f *testing.F) {
	f.Add(3, "0", "2", "9", "0")
	f.Add(10, "-1", "10", "x", "01")
	f.Add(1, "0", "0", "00", "")
	f.Fuzz(func(t *testing.T, n int, a, b, c, ok string) {
		n = 1 + (n%10+10)%10
		run(t, n, quick, func(_ context.Context, idx []int) (Response, error) {
			r := Response{Successful: []Success{{ID: aws.String(ok)}}}
			for _, id := range []string{a, b, c} {
				r.Failed = append(r.Failed, types.BatchResultErrorEntry{Id: aws.String(id), Code: aws.String("X")})
			}
			return r, nil
		})
	})
}

// With no attempt limit an entry is retried until it succeeds or Keep says to stop; Keep's
// reason is the result's GaveUp.
func TestKeepDecidesWithoutALimit(t *testing.T) {
	notOurs := errors.New("not ours any more")
	p := quick
	p.Attempts = 0
	calls := map[int]int{}
	p.Keep = func(i int) error {
		if i == 1 && calls[1] >= 5 {
			return notOurs
		}
		return nil
	}
	res := run(t, 2, p, func(_ context.Context, idx []int) (Response, error) {
		var r Response
		for j, i := range idx {
			calls[i]++
			if i == 0 && calls[0] == 12 { // succeeds on its 12th try: no fixed limit
				r.Successful = append(r.Successful, Success{ID: batchid.For(j)})
				continue
			}
			r.Failed = append(r.Failed, types.BatchResultErrorEntry{Id: batchid.For(j), Code: aws.String("InternalError")})
		}
		return r, nil
	})
	if !res[0].OK || res[0].Attempts != 12 {
		t.Errorf("entry 0: %+v", res[0])
	}
	if res[1].OK || !errors.Is(res[1].GaveUp, notOurs) || res[1].Attempts != 5 || res[1].Code != "InternalError" || !errors.Is(res[1].Error(), notOurs) {
		t.Errorf("entry 1: %+v", res[1])
	}
}

// Ending Ctx ends the pauses: what is due a retry is given up at once with ErrStopped.
func TestCtxEndsTheRetries(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	p := Policy{Backoff: backoff.Exponential{Base: time.Hour, Max: time.Hour}, Ctx: ctx}
	calls := 0
	res := run(t, 1, p, func(context.Context, []int) (Response, error) {
		if calls++; calls == 2 {
			t.Error("retried after Ctx ended")
		}
		stop()
		return Response{}, errors.New("unavailable")
	})
	if res[0].OK || !errors.Is(res[0].GaveUp, ErrStopped) || res[0].Err == nil {
		t.Errorf("%+v", res[0])
	}
}

// Ending Ctx cuts a call in flight short.
func TestCtxEndsACallInFlight(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	p := Policy{Attempts: 3, Ctx: ctx}
	res := run(t, 1, p, func(callCtx context.Context, _ []int) (Response, error) {
		stop()
		<-callCtx.Done() // a call that hangs until its ctx ends
		return Response{}, callCtx.Err()
	})
	if res[0].OK || !errors.Is(res[0].Error(), context.Canceled) {
		t.Errorf("%+v", res[0])
	}
}
