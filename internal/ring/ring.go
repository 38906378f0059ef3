// Package ring is a fixed-capacity FIFO ring buffer. It is not safe for concurrent use; callers
// hold their own lock.
package ring

// Ring is a FIFO queue of at most Cap() values. The zero value has capacity 0.
type Ring[T any] struct {
	buf  []T
	head int // index of the oldest value
	n    int // number of values held
}

// New returns an empty ring that holds up to capacity values. A negative capacity is treated as 0.
func New[T any](capacity int) *Ring[T] {
	return &Ring[T]{buf: make([]T, max(capacity, 0))}
}

// Len reports how many values the ring holds.
func (r *Ring[T]) Len() int { return r.n }

// Cap reports how many values the ring can hold.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Push appends v at the back. It reports false, and stores nothing, when the ring is full.
func (r *Ring[T]) Push(v T) bool {
	if r.n == len(r.buf) {
		return false
	}
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = v
	r.n++
	return true
}

// Pop removes and returns the value at the front. It reports false when the ring is empty.
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero // let the garbage collector have what the value points to
	r.head++
	if r.head == len(r.buf) {
		r.head = 0
	}
	r.n--
	return v, true
}

// Drain removes every value and returns them front first. It returns nil when the ring is empty.
func (r *Ring[T]) Drain() []T {
	if r.n == 0 {
		return nil
	}
	out := make([]T, 0, r.n)
	for {
		v, ok := r.Pop()
		if !ok {
			return out
		}
		out = append(out, v)
	}
}
