// Package backoff computes retry delays: exponential growth with full jitter, capped.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exponential describes delays of Base x 2^(attempt-1), capped at Max, with full jitter.
type Exponential struct {
	Base time.Duration // delay ceiling of the first attempt; must be > 0
	Max  time.Duration // ceiling of every delay; must be >= Base
}

// Ceiling returns the un-jittered delay of the given attempt (1 is the first): Base x
// 2^(attempt-1), never more than Max. Attempts below 1 count as 1.
func (e Exponential) Ceiling(attempt int) time.Duration {
	d := e.Base
	for i := 1; i < attempt && d < e.Max; i++ {
		d *= 2
	}
	return min(d, e.Max)
}

// Delay returns a delay drawn uniformly from (0, Ceiling(attempt)] ("full jitter"), so that
// many clients failing together spread their retries instead of retrying in step.
func (e Exponential) Delay(attempt int) time.Duration {
	c := e.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(c))) + 1
}

// Sleep waits for d or until done is closed, whichever comes first, and reports whether the
// whole delay elapsed.
func Sleep(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
