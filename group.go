package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"

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

// Group consumes many queues in one process over one shared set of handler slots: one
// long-poll fetcher per queue, admission that is strictly by priority between levels and by
// weight within one, one Run, one shutdown, one report. A fetcher whose last receive came
// back empty asks for one message at a time, so an idle queue's long poll does not hold slots
// that busy queues could use.
type Group struct {
	opts    []Option
	s       settings
	members []*Consumer
	adm     *admission
	started bool
	mu      sync.Mutex
}

// NewGroup returns an empty group. opts apply to every queue's consumer; WithConcurrency
// bounds the handlers running at once across all queues, and WithStrategy picks how they run.
// Invalid options are an error wrapping ErrInvalidOption. NewGroup starts no goroutine.
func NewGroup(opts ...Option) (*Group, error) {
	s, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	probe, err := s.strategy(s.concurrency)
	if err != nil {
		return nil, fmt.Errorf("%w: WithStrategy: %w", ErrInvalidOption, err)
	}
	units := probe.Free()
	probe.Close()
	return &Group{opts: opts, s: s, adm: newAdmission(units, s.concurrency)}, nil
}

// Add adds the queue at queueURL, handled by h, with its share of the slots. opts apply to
// this queue only, after the group's (WithConcurrency, WithStrategy and the pollers are the
// group's and cannot be set here). Add must be called before Run; its errors are New's.
func (g *Group) Add(client Client, queueURL string, h Handler, share Share, opts ...Option) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("sqsconsumer: Group.Add after Run")
	}
	if share.Weight < 0 {
		return invalid("Share", "weight %d, want >= 0", share.Weight)
	}
	m := g.adm.member(max(share.Weight, 1), share.Priority)
	inner := g.s.strategy
	view := func(concurrency int) (worker.Strategy, error) {
		s, err := inner(concurrency)
		if err != nil {
			return nil, err
		}
		return &admitted{inner: s, adm: g.adm, m: m}, nil
	}
	all := append(append(append([]Option{}, g.opts...), opts...),
		WithConcurrency(g.s.concurrency), WithStrategy(view), WithPollers(1), WithMaxPollers(1))
	c, err := New(client, queueURL, h, all...)
	if err != nil {
		return err
	}
	g.members = append(g.members, c)
	return nil
}

// Run runs every queue's consumer until ctx is cancelled or one of them fails for good, in
// which case the others are stopped too. It blocks, shuts all of them down as Consumer.Run
// does, and returns nil after a shutdown by ctx, or the failures joined. A second call
// returns ErrAlreadyRun.
func (g *Group) Run(ctx context.Context) error {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return ErrAlreadyRun
	}
	g.started = true
	members := g.members
	g.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, c := range members {
		wg.Go(func() {
			if errs[i] = c.Run(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// GroupReport is the account of a finished Group.Run.
type GroupReport struct {
	Total  Stats              // the queues' counters added up
	Queues map[string]*Report // by queue URL
}

// Report returns the account of the finished Run, or nil while it has not returned.
func (g *Group) Report() *GroupReport {
	r := &GroupReport{Queues: map[string]*Report{}}
	for _, c := range g.members {
		cr := c.Report()
		if cr == nil {
			return nil
		}
		r.Queues[c.queueURL] = cr
		r.Total = r.Total.add(cr.Stats)
	}
	return r
}

// Stats returns each queue's counters so far, by queue URL. It is safe to call at any time.
func (g *Group) Stats() map[string]Stats {
	out := map[string]Stats{}
	for _, c := range g.members {
		out[c.queueURL] = c.Stats()
	}
	return out
}

// admission shares a group's units between its queues, and bounds the handlers running at
// once across them.
type admission struct {
	mu      sync.Mutex
	total   int
	used    int
	members []*admMember
	changed chan struct{} // closed and replaced whenever units are released

	running *semaphore.Weighted // the group's concurrency, across every queue's strategy
	size    int64
}

type admMember struct {
	weight, priority int
	used             int     // units held
	vtime            float64 // units granted so far / weight: who is owed the next grant
	waiting          int     // Reserve calls waiting
	lastEmpty        bool
	lastReserved     int
}

func newAdmission(total, concurrency int) *admission {
	return &admission{total: total, changed: make(chan struct{}), running: semaphore.NewWeighted(int64(concurrency)), size: int64(concurrency)}
}

func (a *admission) member(weight, priority int) *admMember {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := &admMember{weight: weight, priority: priority}
	a.members = append(a.members, m)
	return m
}

// first reports whether m is the one to serve now: no member of a higher priority waits,
// and none of its priority waits with an earlier virtual time (units granted per weight, so
// that over time grants follow the weights). a.mu is held.
func (a *admission) first(m *admMember) bool {
	for _, o := range a.members {
		if o == m || o.waiting == 0 {
			continue
		}
		if o.priority > m.priority || (o.priority == m.priority && o.vtime < m.vtime) {
			return false
		}
	}
	return true
}

// wake brings an idle member's virtual time up to the earliest of those waiting at its
// priority, so that time spent idle is not credit to spend in a burst. a.mu is held.
func (a *admission) wake(m *admMember) {
	low, found := 0.0, false
	for _, o := range a.members {
		if o != m && o.waiting > 0 && o.priority == m.priority && (!found || o.vtime < low) {
			low, found = o.vtime, true
		}
	}
	if found && m.vtime < low {
		m.vtime = low
	}
}

// acquire blocks until m may take units: at least min(most, 10) are free (1 after an empty
// receive) and m is first in line. It takes up to most.
func (a *admission) acquire(ctx context.Context, m *admMember, most int) (int, error) {
	a.mu.Lock()
	if m.lastEmpty {
		most = 1
	}
	need := min(most, maxBatch, a.total)
	if m.lastEmpty {
		a.wake(m) // it was idle: no credit for the time it had nothing to do
	}
	m.waiting++
	for a.total-a.used < need || !a.first(m) {
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			a.mu.Lock()
			m.waiting--
			a.mu.Unlock()
			a.notify() // m no longer blocks others' turn
			return 0, ctx.Err()
		}
		a.mu.Lock()
	}
	m.waiting--
	n := min(most, a.total-a.used)
	a.used += n
	m.used += n
	m.vtime += float64(n) / float64(m.weight)
	m.lastReserved = n
	a.mu.Unlock()
	a.notify() // the next in line may be served from what is left
	return n, nil
}

func (a *admission) release(m *admMember, n int) {
	if n <= 0 {
		return
	}
	a.mu.Lock()
	a.used -= n
	m.used -= n
	a.mu.Unlock()
	a.notify()
}

func (a *admission) notify() {
	a.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// admitted is one queue's view of a group: its own strategy, which could hold the group's
// whole capacity, with every unit first admitted by the group.
type admitted struct {
	inner worker.Strategy
	adm   *admission
	m     *admMember
}

func (v *admitted) Reserve(ctx context.Context, most int) (int, error) {
	n, err := v.adm.acquire(ctx, v.m, most)
	if err != nil {
		return 0, err
	}
	got, err := v.inner.Reserve(ctx, n)
	if err != nil {
		v.adm.release(v.m, n)
		return 0, err
	}
	v.adm.release(v.m, n-got)
	return got, nil
}

func (v *admitted) Unreserve(n int) {
	v.adm.mu.Lock()
	v.m.lastEmpty = n > 0 && n == v.m.lastReserved // the whole reservation came back: an empty receive
	v.adm.mu.Unlock()
	v.inner.Unreserve(n)
	v.adm.release(v.m, n)
}

func (v *admitted) Submit(ctx context.Context, t worker.Task) error {
	v.adm.mu.Lock()
	v.m.lastEmpty = false
	v.adm.mu.Unlock()
	run := t.Run
	w := min(max(t.Weight, 1), v.adm.size) // the inner strategy refuses what is too heavy
	t.Run = func() {
		defer v.adm.release(v.m, 1)
		// Every queue's strategy may run the group's whole concurrency; this bounds them together.
		_ = v.adm.running.Acquire(context.Background(), w)
		defer v.adm.running.Release(w)
		run()
	}
	return v.inner.Submit(ctx, t)
}

func (v *admitted) Free() int {
	v.adm.mu.Lock()
	free := v.adm.total - v.adm.used
	v.adm.mu.Unlock()
	return min(free, v.inner.Free())
}

func (v *admitted) Close() []worker.Task {
	parked := v.inner.Close()
	v.adm.release(v.m, len(parked))
	return parked
}

func (v *admitted) Wait(ctx context.Context) error { return v.inner.Wait(ctx) }
