package sqsconsumer

import (
	"sync"
	"time"
)

// laneOverflowDelay is how long a message stays invisible when its lane is full on a standard
// queue (WithGroupLimit): it is received again after that.
const laneOverflowDelay = time.Second

// lanes keeps the messages of each MessageGroupId in line ("lanes", so as not to be confused
// with the multi-queue Group). On a FIFO queue a lane runs one message at a time in received
// order, and when one fails the rest of its lane goes back to SQS behind it, so that nothing
// overtakes it. On a standard queue with WithGroupLimit a lane runs at most limit messages at
// once, and at most limit more wait (a quarter of the capacity, for messages handed back before);
// beyond that a message is handed back to SQS, to be received again after overflowDelay, so
// that one busy tenant cannot fill the capacity with waiting messages. Each hand-back costs one
// of the message's receives (with a redrive policy, one of maxReceiveCount): the growing delay
// and the longer wait for returning messages keep that cost low. Messages without a group id
// are not in any lane.
//
// A message holding one of its lane's running places has m.lane set; it gives the place back
// with leave when it exits.
type lanes struct {
	fifo  bool
	limit int // running places per lane: 1 on FIFO
	// patient is how many messages a lane keeps waiting when they were handed back before:
	// up to a quarter of the capacity, so that a busy tenant neither spends all of its
	// messages' receives nor takes every slot.
	patient int

	mu     sync.Mutex
	closed bool
	byID   map[string]*lane
}

type lane struct {
	running int
	waiting []*Message // in received order
}

func newLanes(fifo bool, limit, capacity int) *lanes {
	if fifo {
		limit = 1
	}
	return &lanes{fifo: fifo, limit: limit, patient: max(limit, capacity/4), byID: make(map[string]*lane)}
}

// overflowDelay is how long a message handed back from a full lane stays invisible: a second on
// its first delivery, four times longer on each one after (at most 15 min), so that a tenant's
// backlog spends few of its messages' receives while it drains.
func overflowDelay(receiveCount int) time.Duration {
	d := laneOverflowDelay
	for i := 1; i < receiveCount && d < 15*time.Minute; i++ {
		d *= 4
	}
	return min(d, 15*time.Minute)
}

// enter puts one receive's messages in their lanes, all at once, in received order. It
// returns those that may start now (without a group id, or with a free running place), those
// to hand back because their lane is full, and those refused because the lanes are closed.
// The others wait in their lane. A probe (the breaker's, half-open) never waits: on a standard
// queue it starts even past the group limit, on a FIFO queue it is handed back when its group
// is busy (it must not overtake, and a waiting probe would hold the probing up).
func (l *lanes) enter(batch []*Message, probe bool) (start, overflow, refused []*Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range batch {
		id := m.GroupID()
		if id == "" {
			start = append(start, m)
			continue
		}
		if l.closed {
			refused = append(refused, m)
			continue
		}
		ln := l.byID[id]
		if ln == nil {
			ln = &lane{}
			l.byID[id] = ln
		}
		switch {
		case ln.running < l.limit || (probe && !l.fifo):
			ln.running++
			m.lane = true
			start = append(start, m)
		case probe:
			overflow = append(overflow, m)
		case l.fifo || len(ln.waiting) < l.limit || (m.ReceiveCount() > 1 && len(ln.waiting) < l.patient):
			// A message that was handed back before may wait longer: every hand-back is a receive.
			ln.waiting = append(ln.waiting, m)
		default:
			overflow = append(overflow, m)
		}
	}
	return start, overflow, refused
}

// leave gives back m's running place. ok says whether m succeeded. It returns the lane's next
// message, which now holds the place and must be started, and the messages to release: on a
// FIFO queue the rest of the lane when m did not succeed, and the rest of any lane once the
// lanes are closed.
func (l *lanes) leave(m *Message, ok bool) (next *Message, rest []*Message) {
	id := m.GroupID()
	l.mu.Lock()
	defer l.mu.Unlock()
	m.lane = false
	ln := l.byID[id]
	if ln == nil {
		return nil, nil
	}
	ln.running--
	switch {
	case l.closed || (l.fifo && !ok):
		rest, ln.waiting = ln.waiting, nil
	case len(ln.waiting) > 0:
		next = ln.waiting[0]
		ln.waiting[0] = nil
		ln.waiting = ln.waiting[1:]
		next.lane = true
		ln.running++
	}
	if ln.running == 0 && len(ln.waiting) == 0 {
		delete(l.byID, id)
	}
	return next, rest
}

// close stops the lanes from taking messages and returns every waiting one, to be released at
// once: at shutdown nothing waits for its group's running message to finish.
func (l *lanes) close() []*Message {
	l.mu.Lock()
	l.closed = true // enter refuses from now on: nothing can wait after the drain
	l.mu.Unlock()
	return l.drain()
}

// drain takes every waiting message out of the lanes, to be released at once (the breaker
// opened), leaving the running ones their places; unlike close, the lanes go on.
func (l *lanes) drain() []*Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []*Message
	for id, ln := range l.byID {
		all = append(all, ln.waiting...)
		ln.waiting = nil
		if ln.running == 0 {
			delete(l.byID, id)
		}
	}
	return all
}
