package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstartInMemory(t *testing.T) {
	for _, strategy := range []string{"pool", "semaphore"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-n", "60", "-strategy", strategy, "-fail-every", "20"}, &out); err != nil {
			t.Fatalf("%s: %v\n%s", strategy, err, out.String())
		}
		text := out.String()
		for _, want := range []string{"sent 60 messages", "handled 60/60", "succeeded 60, failed (retried) 3", "acked 60"} {
			if !strings.Contains(text, want) {
				t.Fatalf("%s: output lacks %q:\n%s", strategy, want, text)
			}
		}
	}
}

func TestQuickstartRejectsUnknownStrategy(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-strategy", "magic"}, &out); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("run = %v", err)
	}
}
