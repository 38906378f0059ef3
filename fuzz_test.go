package sqsconsumer

import (
	"strconv"
	"testing"
)

// FuzzReceiveCount: the attribute comes from SQS; any text gives a count >= 1, and a valid
// positive number gives itself.
func FuzzReceiveCount(f *testing.F) {
	for _, s := range []string{"1", "7", "0", "-3", "", "x", "99999999999999999999", " 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := &Message{}
		m.Attributes = map[string]string{"ApproximateReceiveCount": s, "MessageGroupId": s}
		n := m.ReceiveCount()
		if n < 1 {
			t.Fatalf("ReceiveCount(%q) = %d", s, n)
		}
		if v, err := strconv.Atoi(s); err == nil && v >= 1 && n != v {
			t.Fatalf("ReceiveCount(%q) = %d, want %d", s, n, v)
		}
		if m.GroupID() != s {
			t.Fatal("GroupID does not return the attribute")
		}
	})
}
