package sqsconsumer

import (
	"sync/atomic"
	"time"
)

// Stats counts what a consumer has done. Read it with Consumer.Stats while Run runs or with
// Consumer.Report after. Once Run has returned, every received message is in exactly one of
// Succeeded, Failed, Released, Cancelled and LeaseLost.
type Stats struct {
	Receives      int64 // ReceiveMessage calls that returned
	EmptyReceives int64 // of those, how many brought no message
	ReceiveErrors int64 // ReceiveMessage calls that failed
	// BrokenReceives counts, of ReceiveErrors, receives from a standard queue through an
	// *sqs.Client that failed after the request was sent and before SQS's answer was read
	// whole (a connection closed or reset, a response cut short, a deadline): messages SQS may
	// have handed them come back after the visibility timeout. The SDK does not retry these (a
	// retry would receive other messages, not those); the consumer backs off, receives again,
	// and reports each one to the error handler, which by default logs it at Warn.
	BrokenReceives int64
	// AbandonedReceives counts receives still in flight when Run had nothing else left to do,
	// and cancelled: messages SQS may have handed them come back after the visibility timeout.
	AbandonedReceives int64
	// Received counts deliveries: a message received again (after a failure, a release or a
	// lapsed visibility) counts again, as SQS's ApproximateReceiveCount does.
	Received int64

	Succeeded int64 // handler returned nil, or Reroute and the copy was sent (the message was queued for deletion)
	Rerouted  int64 // of Succeeded, how many were moved to another queue (Reroute)
	Failed    int64 // handler returned an error or panicked, or the message could not be run
	Panics    int64 // of Failed, how many panicked (a *PanicError, from a Handler or a BatchHandler)
	TimedOut  int64 // of Failed, how many ran past WithHandlerTimeout or a Timeout middleware
	// Released counts messages made visible again unhandled: at shutdown, beyond a full lane
	// (WithGroupLimit), behind a failed FIFO message, or refused by the strategy.
	Released  int64
	Cancelled int64 // handler cut short by the shutdown timeout, returned an error, and released
	LeaseLost int64 // handler finished after its lease was lost or expired: left to SQS

	Acked     int64 // deletes SQS confirmed
	AckFailed int64 // deletes that failed for good (each reported as *AckError)
	// AckRetries counts retries of deletes and visibility changes: a failed entry is retried
	// for as long as its message is still ours (its lease holds), not a fixed number of times.
	AckRetries       int64
	VisibilityFailed int64 // backoff or release visibility changes that failed for good
	LeaseExtended    int64 // visibility extensions SQS confirmed

	InFlight int64 // received and not yet finished (waiting or running)
	Pollers  int64 // pollers receiving now (they adapt between WithPollers and WithMaxPollers)

	// Cost and use, the numbers the adaptive pollers and the benchmarks are judged by.
	Requests           int64         // API calls made: receives, deletes, visibility changes, failed ones included
	RequestsPerMessage float64       // Requests / Received (0 before the first message)
	HandlerTime        time.Duration // sum of handler durations
	// Utilisation is HandlerTime / (concurrency x (last handler end - first handler start)):
	// the share of handler slots kept busy while there was work.
	Utilisation float64

	// The breaker (WithBreaker): its state now (in a GroupReport's Total, the most open of the
	// queues'), how many times it opened, and the probes it ran (messages run as probes, or
	// calls of Breaker.Probe).
	Breaker       BreakerState
	BreakerOpened int64
	Probed        int64
}

type counters struct {
	receives, emptyReceives, receiveErrors, abandonedReceives, received     atomic.Int64
	brokenReceives                                                          atomic.Int64
	succeeded, failed, panics, timedOut, released, cancelled, leaseLost     atomic.Int64
	acked, ackFailed, ackRetries, visibilityFailed, leaseExtended, inFlight atomic.Int64
	pollers, requests, rerouted, calls                                      atomic.Int64
	busy, firstStart, lastEnd                                               atomic.Int64 // ns; Unix times, 0 before the first
	breakerOpened, probed                                                   atomic.Int64
	breakerState                                                            atomic.Int32
	concurrency                                                             int
}

// handled records one handler call that ran from start to end.
func (c *counters) handled(start, end time.Time) {
	c.busy.Add(int64(end.Sub(start)))
	c.calls.Add(1)
	c.firstStart.CompareAndSwap(0, start.UnixNano())
	e := end.UnixNano()
	for {
		last := c.lastEnd.Load()
		if e <= last || c.lastEnd.CompareAndSwap(last, e) {
			return
		}
	}
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Receives: c.receives.Load(), EmptyReceives: c.emptyReceives.Load(), ReceiveErrors: c.receiveErrors.Load(), BrokenReceives: c.brokenReceives.Load(), AbandonedReceives: c.abandonedReceives.Load(),
		Received: c.received.Load(), Succeeded: c.succeeded.Load(), Rerouted: c.rerouted.Load(), Failed: c.failed.Load(), Panics: c.panics.Load(), TimedOut: c.timedOut.Load(),
		Released: c.released.Load(), Cancelled: c.cancelled.Load(), LeaseLost: c.leaseLost.Load(),
		Acked: c.acked.Load(), AckFailed: c.ackFailed.Load(), AckRetries: c.ackRetries.Load(), VisibilityFailed: c.visibilityFailed.Load(),
		LeaseExtended: c.leaseExtended.Load(), InFlight: c.inFlight.Load(),
		Pollers: c.pollers.Load(), Requests: c.requests.Load(), HandlerTime: time.Duration(c.busy.Load()),
		Breaker: BreakerState(c.breakerState.Load()), BreakerOpened: c.breakerOpened.Load(), Probed: c.probed.Load(),
	}
	if st.Received > 0 {
		st.RequestsPerMessage = float64(st.Requests) / float64(st.Received)
	}
	if window := c.lastEnd.Load() - c.firstStart.Load(); c.firstStart.Load() > 0 && window > 0 && c.concurrency > 0 {
		st.Utilisation = float64(st.HandlerTime) / (float64(c.concurrency) * float64(window))
	}
	return st
}

// add returns s and o added up, with the ratios recomputed (Utilisation is not additive and is
// left 0).
func (s Stats) add(o Stats) Stats {
	r := Stats{
		Receives: s.Receives + o.Receives, EmptyReceives: s.EmptyReceives + o.EmptyReceives,
		ReceiveErrors: s.ReceiveErrors + o.ReceiveErrors, BrokenReceives: s.BrokenReceives + o.BrokenReceives, AbandonedReceives: s.AbandonedReceives + o.AbandonedReceives, Received: s.Received + o.Received,
		Succeeded: s.Succeeded + o.Succeeded, Rerouted: s.Rerouted + o.Rerouted, Failed: s.Failed + o.Failed,
		Panics: s.Panics + o.Panics, TimedOut: s.TimedOut + o.TimedOut, Released: s.Released + o.Released,
		Cancelled: s.Cancelled + o.Cancelled, LeaseLost: s.LeaseLost + o.LeaseLost, Acked: s.Acked + o.Acked,
		AckFailed: s.AckFailed + o.AckFailed, AckRetries: s.AckRetries + o.AckRetries, VisibilityFailed: s.VisibilityFailed + o.VisibilityFailed,
		LeaseExtended: s.LeaseExtended + o.LeaseExtended, InFlight: s.InFlight + o.InFlight,
		Pollers: s.Pollers + o.Pollers, Requests: s.Requests + o.Requests, HandlerTime: s.HandlerTime + o.HandlerTime,
		Breaker: max(s.Breaker, o.Breaker), BreakerOpened: s.BreakerOpened + o.BreakerOpened, Probed: s.Probed + o.Probed,
	}
	if r.Received > 0 {
		r.RequestsPerMessage = float64(r.Requests) / float64(r.Received)
	}
	return r
}
