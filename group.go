package sqsconsumer

import (
	"context"
	"errors"
	"sync"

	"github.com/sqsconsumer/sqsconsumer/worker"
)

// Share is a queue's claim on a Group's handler slots.
type Share struct {
	// Priority orders queues strictly: while a queue of a higher priority waits for slots, no
	// queue of a lower one gets any. The default is 0.
	Priority int
	// Weight shares the slots between queues of one priority: under load each holds slots in
	// proportion to its weight. 0 means 1.
	Weight int
}

// Group consumes many queues in one process over one shared set of handler slots: a runner
// (long-poll fetcher) per queue, all feeding one strategy through an admission that is
// strictly by priority between levels and by weight within one; one Run, one shutdown, one
// report. A runner whose last receive came back empty asks for one message at a time, so an
// idle queue's long poll does not hold slots that busy queues could use.
type Group struct {
	opts []Option
	eng  *engine
	mu   sync.Mutex
}

// NewGroup returns an empty group. opts apply to every queue; WithConcurrency bounds the
// handlers running at once across all queues, WithStrategy picks how they run, and
// WithShutdownTimeout, WithStopPolicy and WithFinishReceives apply to the group as a whole (a stop policy judges
// the queues' progress together). Invalid options are an error wrapping ErrInvalidOption.
// NewGroup starts no goroutine.
func NewGroup(opts ...Option) (*Group, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(s)
	if err != nil {
		return nil, err
	}
	eng.adm = &admission{changed: make(chan struct{})}
	return &Group{opts: opts, eng: eng}, nil
}

// Add adds the queue at queueURL, handled by h, with its share of the slots. opts apply to
// this queue only, after the group's; the options of what the queues share (WithConcurrency,
// WithStrategy, WithShutdownTimeout, WithStopPolicy, WithFinishReceives) belong to NewGroup and
// are an error here.
// A queue polls with one poller unless WithPollers or WithMaxPollers say otherwise. Add must be
// called before Run; adding a queue URL twice is an error. Its other errors are New's.
func (g *Group) Add(client Client, queueURL string, h Handler, share Share, opts ...Option) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.eng.started.Load() {
		return errors.New("sqsconsumer: Group.Add after Run")
	}
	if share.Weight < 0 {
		return invalid("Share", "weight %d, want >= 0", share.Weight)
	}
	for _, q := range g.eng.queues {
		if q.url == queueURL {
			return invalid("queueURL", "%s was already added to the group", queueURL)
		}
	}
	own, err := applyOptions(opts)
	if err != nil {
		return err
	}
	if len(own.shared) > 0 {
		return invalid(own.shared[0], "applies to the whole group: pass it to NewGroup")
	}
	s, err := applyOptions(append(append([]Option{}, g.opts...), opts...))
	if err != nil {
		return err
	}
	q, err := newQueue(g.eng, client, queueURL, h, s, true)
	if err != nil {
		return err
	}
	q.member = g.eng.adm.member(max(share.Weight, 1), share.Priority)
	g.eng.queues = append(g.eng.queues, q)
	return nil
}

// Run runs every queue until ctx is cancelled, the stop policy says so, or a queue's receiving
// fails for good, in which case the others are stopped too. It blocks, shuts down as
// Consumer.Run does (one shutdown for all the queues), and returns nil after a shutdown by ctx,
// or the queues' failures joined. A second call returns ErrAlreadyRun.
func (g *Group) Run(ctx context.Context) error {
	g.mu.Lock() // no Add while Run starts
	if g.eng.started.Load() {
		g.mu.Unlock()
		return ErrAlreadyRun
	}
	if len(g.eng.queues) == 0 {
		g.mu.Unlock()
		return errors.New("sqsconsumer: Group.Run with no queue added")
	}
	g.mu.Unlock()
	return g.eng.run(ctx)
}

// GroupReport is the account of a finished Group.Run.
type GroupReport struct {
	// Total is the queues' counters added up; its Utilisation is the share of the Group's
	// shared handler slots kept busy from the first handler start to the last handler end.
	Total  Stats
	Queues map[string]*Report // by queue URL
}

// Report returns the account of the finished Run, or nil while it has not returned.
func (g *Group) Report() *GroupReport {
	r := &GroupReport{Queues: map[string]*Report{}}
	for _, q := range g.queues() {
		qr := q.finalReport()
		if qr == nil {
			return nil
		}
		r.Queues[q.url] = qr
		r.Total = r.Total.add(qr.Stats)
	}
	var first, last int64
	for _, q := range g.queues() {
		if f := q.stats.firstStart.Load(); f > 0 && (first == 0 || f < first) {
			first = f
		}
		last = max(last, q.stats.lastEnd.Load())
	}
	if window := last - first; first > 0 && window > 0 {
		r.Total.Utilisation = float64(r.Total.HandlerTime) / (float64(g.eng.concurrency) * float64(window))
	}
	return r
}

// Stats returns each queue's counters so far, by queue URL. It is safe to call at any time.
func (g *Group) Stats() map[string]Stats {
	out := map[string]Stats{}
	for _, q := range g.queues() {
		out[q.url] = q.stats.snapshot()
	}
	return out
}

func (g *Group) queues() []*queue {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.eng.queues
}

// errPreempted ends a reservation in progress when a queue of a higher priority starts waiting.
var errPreempted = errors.New("sqsconsumer: preempted by a higher priority")

// admission decides which of a group's queues reserves capacity next: one at a time, the
// waiting queue of the highest priority, and within a priority the one that has been granted
// the fewest units for its weight (virtual time). A queue of a higher priority that starts
// waiting preempts a lower one's reservation in progress.
type admission struct {
	mu         sync.Mutex
	members    []*admMember
	busy       *admMember              // reserving now; nil when none
	cancelBusy context.CancelCauseFunc // preempts busy
	changed    chan struct{}           // closed and replaced whenever the turn may pass
}

type admMember struct {
	weight, priority int
	vtime            float64 // units granted so far / weight: who is owed the next grant
	waiting          bool
}

func (a *admission) member(weight, priority int) *admMember {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := &admMember{weight: weight, priority: priority}
	a.members = append(a.members, m)
	return m
}

// first reports whether m is the one to serve now: no member of a higher priority waits, and
// none of its priority waits with an earlier virtual time. a.mu is held.
func (a *admission) first(m *admMember) bool {
	for _, o := range a.members {
		if o == m || !o.waiting {
			continue
		}
		if o.priority > m.priority || (o.priority == m.priority && o.vtime < m.vtime) {
			return false
		}
	}
	return true
}

// catchUp brings m's virtual time, as it starts waiting after it was idle, up to the earliest of those waiting at
// its priority, so that time spent idle is not credit to spend in a burst. a.mu is held.
func (a *admission) catchUp(m *admMember) {
	low, found := 0.0, false
	for _, o := range a.members {
		if o != m && o.waiting && o.priority == m.priority && (!found || o.vtime < low) {
			low, found = o.vtime, true
		}
	}
	if found && m.vtime < low {
		m.vtime = low
	}
}

// reserve waits for m's turn, then reserves up to most units of s for it. idle says m's last
// receive came back empty. It returns ctx's error when ctx ends first, and the strategy's
// error when it is closed.
func (a *admission) reserve(ctx context.Context, m *admMember, s worker.Strategy, most int, idle bool) (*reservation, error) {
	for {
		a.mu.Lock()
		if idle {
			a.catchUp(m)
		}
		m.waiting = true
		for a.busy != nil || !a.first(m) {
			if a.busy != nil && a.busy.priority < m.priority {
				a.cancelBusy(errPreempted)
			}
			ch := a.changed
			a.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				a.mu.Lock()
				m.waiting = false
				a.notify() // m no longer blocks others' turn
				a.mu.Unlock()
				return nil, ctx.Err()
			}
			a.mu.Lock()
		}
		m.waiting = false
		rctx, cancel := context.WithCancelCause(ctx)
		a.busy, a.cancelBusy = m, cancel
		a.mu.Unlock()

		n, err := s.Reserve(rctx, most)
		preempted := err != nil && ctx.Err() == nil && errors.Is(context.Cause(rctx), errPreempted)
		cancel(nil)
		a.mu.Lock()
		a.busy, a.cancelBusy = nil, nil
		if err == nil {
			m.vtime += float64(n) / float64(m.weight)
		}
		a.notify()
		a.mu.Unlock()
		switch {
		case preempted:
			continue // wait for the turn again, behind the higher priority
		case err != nil:
			return nil, err
		}
		return &reservation{s: s, n: n}, nil
	}
}

// notify wakes every waiting member to look at the turn again. a.mu is held.
func (a *admission) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
}
