package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// repeatWindow and repeatBurst rate-limit identical failures: the first repeatBurst lines of a
// kind in a window of repeatWindow are logged, the rest counted, and the first line logged for
// it after the window says how many were left out ("repeats_suppressed").
const (
	repeatWindow = 10 * time.Second
	repeatBurst  = 5
)

// maxRepeatKeys bounds the failures the limiter remembers; past it, it starts afresh.
const maxRepeatKeys = 1024

// repeats rate-limits identical log lines: the first repeatBurst of a kind within repeatWindow
// are logged, the others counted instead. Identical means the same message and error text with every
// run of digits taken as equal (message ids, counts and durations differ between repeats of
// one failure).
type repeats struct {
	mu         sync.Mutex
	seen       map[string]*repeat
	suppressed int64 // in all, for the stop line
}

type repeat struct {
	window  time.Time // when the current window began
	logged  int       // lines logged in it
	skipped int64     // left out since the last line logged
}

// allow reports whether a line of this kind may be logged now, and how many of its kind were
// left out since the last one that was.
func (r *repeats) allow(msg string, err error, now time.Time) (ok bool, skipped int64) {
	key := repeatKey(msg, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil || len(r.seen) >= maxRepeatKeys {
		r.seen = map[string]*repeat{}
	}
	e := r.seen[key]
	if e == nil {
		e = &repeat{window: now}
		r.seen[key] = e
	}
	if now.Sub(e.window) >= repeatWindow {
		e.window, e.logged = now, 0
	}
	if e.logged >= repeatBurst {
		e.skipped++
		r.suppressed++
		return false, 0
	}
	e.logged++
	skipped, e.skipped = e.skipped, 0
	return true, skipped
}

// total returns how many lines were left out in all.
func (r *repeats) total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.suppressed
}

// repeatKey is the kind of a log line: its message and error text with digit runs folded, cut
// to 256 bytes.
func repeatKey(msg string, err error) string {
	var b strings.Builder
	s := msg
	if err != nil {
		s += "\x00" + err.Error()
	}
	digits := false
	for _, c := range s {
		if b.Len() >= 256 {
			break
		}
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
	return b.String()
}

// logLimited logs msg at level with attrs unless an identical line was logged within
// repeatWindow; a line logged after left-out repeats says how many.
func logLimited(ctx context.Context, l *slog.Logger, r *repeats, level slog.Level, msg string, err error, attrs ...slog.Attr) {
	if !l.Enabled(ctx, level) {
		return
	}
	ok, skipped := r.allow(msg, err, time.Now())
	if !ok {
		return
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	if skipped > 0 {
		attrs = append(attrs, slog.Int64("repeats_suppressed", skipped))
	}
	l.LogAttrs(ctx, level, msg, attrs...)
}

// logStart logs the queue's effective settings at Info when Run starts.
func (q *queue) logStart() {
	s := q.s
	q.s.logger.LogAttrs(context.Background(), slog.LevelInfo, "sqsconsumer: started",
		slog.String("queue", q.url), slog.Bool("fifo", q.fifo),
		slog.Int("concurrency", q.eng.concurrency), slog.String("strategy", fmt.Sprintf("%T", q.eng.strategy)),
		slog.Int("pollers", s.pollers), slog.Int("max_pollers", s.maxPollers),
		slog.Duration("wait_time", s.waitTime), slog.Duration("visibility_timeout", s.visibility),
		slog.Duration("max_lease", s.maxLease), slog.Int("ack_batch", s.ackBatch),
		slog.Duration("ack_flush_interval", s.ackInterval), slog.Duration("shutdown_timeout", q.eng.shutdownTimeout),
		slog.Duration("handler_timeout", s.handlerTimeout), slog.Int("group_limit", s.groupLimit),
		slog.Bool("backoff", s.backoff != nil), slog.Bool("finish_receives", q.eng.finishReceives),
		slog.Bool("breaker", s.breaker != nil), slog.Float64("rate_limit", s.rateLimit))
}

// breakerChanged tells the log and the hooks that the queue's breaker changed state: at Warn
// when it opens (with the reason and the last failure), at Info otherwise.
func (q *queue) breakerChanged(c BreakerChange) {
	q.contain("logger", func() {
		attrs := []slog.Attr{slog.String("queue", q.url), slog.String("from", c.From.String()), slog.String("to", c.To.String()), slog.String("reason", c.Reason)}
		level := slog.LevelInfo
		if c.To == BreakerOpen {
			level = slog.LevelWarn
			attrs = append(attrs, slog.Duration("probe_in", c.OpenFor))
			if c.Err != nil {
				attrs = append(attrs, slog.String("last_error", c.Err.Error()))
			}
		}
		q.s.logger.LogAttrs(context.Background(), level, "sqsconsumer: breaker "+c.To.String(), attrs...)
	})
	for _, h := range q.hooks.breaker {
		q.contain("OnBreaker hook", func() { h.OnBreaker(c) })
	}
}

// logStop logs the queue's report when Run has returned: at Info, or at Error when Run
// failed.
func (q *queue) logStop(r *Report, took time.Duration) {
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.String("queue", q.url), slog.Duration("took", took),
		slog.Int64("received", r.Received), slog.Int64("succeeded", r.Succeeded), slog.Int64("failed", r.Failed),
		slog.Int64("released", r.Released), slog.Int64("cancelled", r.Cancelled), slog.Int64("lease_lost", r.LeaseLost),
		slog.Int64("acked", r.Acked), slog.Int64("ack_failed", r.AckFailed), slog.Int64("visibility_failed", r.VisibilityFailed),
		slog.Int64("broken_receives", r.BrokenReceives), slog.Int64("abandoned_receives", r.AbandonedReceives), slog.Bool("shutdown_timed_out", r.ShutdownTimedOut)}
	if n := q.repeats.total(); n > 0 {
		attrs = append(attrs, slog.Int64("log_lines_suppressed", n))
	}
	if q.breaker != nil {
		attrs = append(attrs, slog.String("breaker", r.Breaker.String()), slog.Int64("breaker_opened", r.BreakerOpened), slog.Int64("probed", r.Probed))
	}
	if r.Err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", r.Err.Error()))
	}
	q.s.logger.LogAttrs(context.Background(), level, "sqsconsumer: stopped", attrs...)
}

// summarise logs a summary of the queue's counters at Info every q.s.summary until stop is
// closed: what happened since the last summary, and what is in flight.
func (q *queue) summarise(stop <-chan struct{}) {
	t := time.NewTicker(q.s.summary)
	defer t.Stop()
	last, lastAt := Stats{}, time.Now() // Run has just started: everything counted is new
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			st := q.stats.snapshot()
			secs := now.Sub(lastAt).Seconds()
			q.s.logger.LogAttrs(context.Background(), slog.LevelInfo, "sqsconsumer: summary",
				slog.String("queue", q.url), slog.Duration("interval", now.Sub(lastAt)),
				slog.Int64("received", st.Received-last.Received), slog.Int64("succeeded", st.Succeeded-last.Succeeded),
				slog.Int64("failed", st.Failed-last.Failed), slog.Int64("released", st.Released-last.Released),
				slog.Int64("acked", st.Acked-last.Acked), slog.Int64("receive_errors", st.ReceiveErrors-last.ReceiveErrors),
				slog.Float64("msgs_per_sec", float64(st.Succeeded+st.Failed-last.Succeeded-last.Failed)/secs),
				slog.Int64("in_flight", st.InFlight), slog.Int64("pollers", st.Pollers))
			last, lastAt = st, now
		}
	}
}

// String is a one-line account of the report, for a log line or a test failure.
func (r *Report) String() string {
	if r == nil {
		return "no report (Run has not returned)"
	}
	var b strings.Builder
	writeStats(&b, r.Stats)
	if r.ShutdownTimedOut {
		b.WriteString("; shutdown timed out")
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "; error: %v", r.Err)
	}
	return b.String()
}

// String is a multi-line account: the total, then each queue's report in URL order.
func (r *GroupReport) String() string {
	if r == nil {
		return "no report (Run has not returned)"
	}
	var b strings.Builder
	b.WriteString("total: ")
	writeStats(&b, r.Total)
	urls := make([]string, 0, len(r.Queues))
	for u := range r.Queues {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	for _, u := range urls {
		fmt.Fprintf(&b, "\n%s: %s", u, r.Queues[u])
	}
	return b.String()
}

func writeStats(b *strings.Builder, s Stats) {
	fmt.Fprintf(b, "received %d: %d succeeded", s.Received, s.Succeeded)
	if s.Rerouted > 0 {
		fmt.Fprintf(b, " (%d rerouted)", s.Rerouted)
	}
	fmt.Fprintf(b, ", %d failed", s.Failed)
	if s.Panics > 0 || s.TimedOut > 0 {
		fmt.Fprintf(b, " (%d panicked, %d timed out)", s.Panics, s.TimedOut)
	}
	fmt.Fprintf(b, ", %d released, %d cancelled, %d lease lost", s.Released, s.Cancelled, s.LeaseLost)
	if s.InFlight > 0 {
		fmt.Fprintf(b, ", %d in flight", s.InFlight)
	}
	fmt.Fprintf(b, "; acked %d", s.Acked)
	if s.AckFailed > 0 || s.VisibilityFailed > 0 || s.AckRetries > 0 {
		fmt.Fprintf(b, " (%d deletes and %d visibility changes failed, %d retries)", s.AckFailed, s.VisibilityFailed, s.AckRetries)
	}
	fmt.Fprintf(b, "; %d receives (%d empty, %d failed", s.Receives, s.EmptyReceives, s.ReceiveErrors)
	if s.BrokenReceives > 0 {
		fmt.Fprintf(b, " (%d after the request was sent)", s.BrokenReceives)
	}
	fmt.Fprintf(b, ", %d abandoned); %d requests, %.3f per message", s.AbandonedReceives, s.Requests, s.RequestsPerMessage)
	fmt.Fprintf(b, "; handler time %v, utilisation %.2f", s.HandlerTime.Round(time.Millisecond), s.Utilisation)
}

// panicAttrs returns the stack of a panic behind err, as a log attribute, or none.
func panicAttrs(err error) []slog.Attr {
	var pe *PanicError
	if errors.As(err, &pe) && len(pe.Stack) > 0 {
		return []slog.Attr{slog.String("stack", string(pe.Stack))}
	}
	return nil
}
