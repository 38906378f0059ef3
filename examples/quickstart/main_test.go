package main

import (
	"bytes"
	"context"
	"io"
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

// FuzzParseConfig: flags and environment come from outside; any of them give a checked
// config or an error, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add("-n", "10", "-strategy", "semaphore", "")
	f.Add("-n", "-1", "-fail-every", "x", "http://127.0.0.1:1/q")
	f.Add("--concurrency=0", "extra", "", "", "")
	f.Fuzz(func(t *testing.T, a, b, c, d, env string) {
		cfg, err := parseConfig([]string{a, b, c, d}, func(string) string { return env }, io.Discard)
		if err != nil {
			return
		}
		if cfg.n < 1 || cfg.failEvery < 0 || (cfg.strategy != "pool" && cfg.strategy != "semaphore") {
			t.Fatalf("accepted %+v", cfg)
		}
	})
}

func TestParseConfigDefaultsFromEnvironment(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string { return map[string]string{"SQS_QUEUE_URL": "u", "SQS_ENDPOINT": "e"}[k] }, io.Discard)
	if err != nil || cfg.queueURL != "u" || cfg.endpoint != "e" || cfg.n != 300 || cfg.strategy != "pool" {
		t.Fatalf("%+v %v", cfg, err)
	}
}
