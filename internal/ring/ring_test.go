package ring

import "testing"

func TestRingFIFOAndWrap(t *testing.T) {
	r := New[int](3)
	if r.Cap() != 3 || r.Len() != 0 {
		t.Fatalf("cap %d len %d", r.Cap(), r.Len())
	}
	if _, ok := r.Pop(); ok {
		t.Fatal("pop from empty ring succeeded")
	}
	next, want := 0, 0
	// Push and pop in an uneven rhythm so head wraps many times.
	for round := 0; round < 20; round++ {
		for r.Push(next) {
			next++
		}
		if r.Len() != 3 {
			t.Fatalf("full ring holds %d", r.Len())
		}
		for i := 0; i < 1+round%3; i++ {
			v, ok := r.Pop()
			if !ok || v != want {
				t.Fatalf("pop = %d,%v want %d", v, ok, want)
			}
			want++
		}
	}
	rest := r.Drain()
	if r.Len() != 0 {
		t.Fatalf("len after drain %d", r.Len())
	}
	for i, v := range rest {
		if v != want+i {
			t.Fatalf("drain = %v, want from %d", rest, want)
		}
	}
	if r.Drain() != nil {
		t.Fatal("drain of empty ring is not nil")
	}
}

func TestRingZeroCapacity(t *testing.T) {
	r := New[string](-1)
	if r.Push("x") {
		t.Fatal("push into zero-capacity ring succeeded")
	}
	if _, ok := r.Pop(); ok || r.Len() != 0 {
		t.Fatal("zero-capacity ring is not empty")
	}
}

func BenchmarkRingPushPop(b *testing.B) {
	r := New[int](64)
	for i := 0; b.Loop(); i++ {
		r.Push(i)
		r.Pop()
	}
}
