package sqsconsumer

import "sync/atomic"

// Stats counts what a consumer has done. Read it with Consumer.Stats while Run runs or with
// Consumer.Report after. Once Run has returned, every received message is in exactly one of
// Succeeded, Failed, Released, Cancelled and LeaseLost.
type Stats struct {
	Receives      int64 // ReceiveMessage calls that returned
	EmptyReceives int64 // of those, how many brought no message
	ReceiveErrors int64 // ReceiveMessage calls that failed
	Received      int64 // messages received

	Succeeded int64 // handler returned nil (the message was queued for deletion)
	Failed    int64 // handler returned an error or panicked, or the message could not be run
	Panics    int64 // of Failed, how many panicked
	TimedOut  int64 // of Failed, how many ran past WithHandlerTimeout
	Released  int64 // made visible again unhandled, at shutdown
	Cancelled int64 // handler cut short by the shutdown timeout and released
	LeaseLost int64 // handler finished after its lease was lost or expired: left to SQS

	Acked            int64 // deletes SQS confirmed
	AckFailed        int64 // deletes that failed for good (each reported as *AckError)
	VisibilityFailed int64 // backoff or release visibility changes that failed for good
	LeaseExtended    int64 // visibility extensions SQS confirmed

	InFlight int64 // received and not yet finished (waiting or running)
}

type counters struct {
	receives, emptyReceives, receiveErrors, received                    atomic.Int64
	succeeded, failed, panics, timedOut, released, cancelled, leaseLost atomic.Int64
	acked, ackFailed, visibilityFailed, leaseExtended, inFlight         atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Receives: c.receives.Load(), EmptyReceives: c.emptyReceives.Load(), ReceiveErrors: c.receiveErrors.Load(),
		Received: c.received.Load(), Succeeded: c.succeeded.Load(), Failed: c.failed.Load(), Panics: c.panics.Load(), TimedOut: c.timedOut.Load(),
		Released: c.released.Load(), Cancelled: c.cancelled.Load(), LeaseLost: c.leaseLost.Load(),
		Acked: c.acked.Load(), AckFailed: c.ackFailed.Load(), VisibilityFailed: c.visibilityFailed.Load(),
		LeaseExtended: c.leaseExtended.Load(), InFlight: c.inFlight.Load(),
	}
}
