package sqsconsumer

import (
	"context"
	"math"
	"sync"

	"golang.org/x/time/rate"
)

// rateGate is WithRateLimit: a token per message, taken before the receive that may bring it.
// Tokens a receive did not use (it brought fewer messages than it asked for) are kept as
// credit, up to the burst, and spent before the limiter's, so the handlers' starts stay within
// the limit without messages waiting for tokens while they are held.
type rateGate struct {
	lim   *rate.Limiter
	burst int

	mu     sync.Mutex
	credit int
}

func newRateGate(perSecond float64, burst int) *rateGate {
	return &rateGate{lim: rate.NewLimiter(rate.Limit(perSecond), burst), burst: burst}
}

// take blocks until it holds tokens for min(n, burst) messages, and returns how many. It
// returns ctx's error, holding none, when ctx ends first.
func (g *rateGate) take(ctx context.Context, n int) (int, error) {
	n = max(min(n, g.burst), 1)
	g.mu.Lock()
	c := min(g.credit, n)
	g.credit -= c
	g.mu.Unlock()
	if c == n {
		return n, nil
	}
	if err := g.lim.WaitN(ctx, n-c); err != nil {
		g.giveBack(c)
		return 0, err
	}
	return n, nil
}

// giveBack keeps n unused tokens as credit, as far as the credit and the limiter's own tokens
// stay within the burst: no window of time then sees more starts than the rate allows plus
// one burst.
func (g *rateGate) giveBack(n int) {
	if n <= 0 {
		return
	}
	g.mu.Lock()
	room := g.burst - int(math.Ceil(g.lim.Tokens()))
	g.credit = max(min(g.credit+n, room), 0)
	g.mu.Unlock()
}
