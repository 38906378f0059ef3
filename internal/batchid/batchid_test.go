package batchid

import "testing"

func TestForAndPosition(t *testing.T) {
	for i := 0; i < 10; i++ {
		if p, ok := Position(For(i), 10); !ok || p != i {
			t.Fatalf("Position(For(%d)) = %d, %v", i, p, ok)
		}
	}
	bad := []string{"", "-1", "10", "01", "+1", " 1", "x"}
	for _, s := range bad {
		if _, ok := Position(&s, 10); ok {
			t.Errorf("Position(%q) accepted", s)
		}
	}
	if _, ok := Position(For(5), 5); ok {
		t.Error("a position past the entries was accepted")
	}
	if _, ok := Position(nil, 10); ok {
		t.Error("nil id accepted")
	}
}

func FuzzPosition(f *testing.F) {
	f.Add("3", 10)
	f.Fuzz(func(t *testing.T, id string, n int) {
		if p, ok := Position(&id, n); ok && (p < 0 || p >= n || *For(p) != id) {
			t.Fatalf("Position(%q, %d) = %d", id, n, p)
		}
	})
}
