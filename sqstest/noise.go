package sqstest

import (
	"container/list"
	"math/rand/v2"
	"sync"
)

// WithNondeterminism makes standard queues deliver as SQS may, so code under test meets what a
// deterministic fake never shows it: a short poll (no wait) samples a random subset of the
// visible messages, perhaps none; a long poll that finds messages may return fewer than asked
// for (at least one); and messages come in a random order. FIFO queues are unaffected. The
// choices come from a generator seeded with seed, so a failing run can be replayed. Duplicate
// deliveries of a deleted message are not injected.
func WithNondeterminism(seed uint64) Option {
	return func(s *Server) { s.noise = &noise{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))} }
}

// noise is WithNondeterminism's random source; a nil *noise injects nothing.
type noise struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// limit returns how many of max messages a receive may return: a short poll (waiting false)
// 0..max, a long poll 1..max.
func (n *noise) limit(max int, waiting bool) int {
	if n == nil {
		return max
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if waiting {
		return 1 + n.rng.IntN(max)
	}
	return n.rng.IntN(max + 1)
}

// shuffled returns the messages of l in a random order.
func (n *noise) shuffled(l *list.List) []*message {
	out := make([]*message, 0, l.Len())
	for e := l.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*message))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
