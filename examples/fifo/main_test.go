package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestEachAccountInOrder(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 3, 5); err != nil {
		t.Fatal(err)
	}
	for a := 0; a < 3; a++ {
		want := fmt.Sprintf("acct-%d: event-0 event-1 event-2 event-3 event-4\n", a)
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "succeeded 15, failed and retried in order 1") {
		t.Fatalf("summary:\n%s", out.String())
	}
}
