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
		for _, want := range []string{
			"sent 60 orders (180 units) with the producer",
			"every 20th order fails on its first try, on purpose (-fail-every 20)",
			"handled 60/60", "succeeded 60, failed (retried) 3", "acked 60",
			"units 180 of 180 sent: every order handled exactly once",
		} {
			if !strings.Contains(text, want) {
				t.Fatalf("%s: output lacks %q:\n%s", strategy, want, text)
			}
		}
		// The consumer's WARN line for each deliberate failure, in the same output.
		if n := strings.Count(text, "level=WARN"); n != 3 || strings.Count(text, "deliberate failure") != 3 {
			t.Fatalf("%s: %d WARN lines, want one per deliberate failure:\n%s", strategy, n, text)
		}
	}
}

func TestQuickstartWithoutFailures(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-n", "10", "-fail-every", "0"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	if strings.Contains(text, "on purpose") || strings.Contains(text, "WARN") || !strings.Contains(text, "units 30 of 30 sent") {
		t.Fatalf("output:\n%s", text)
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 25: "25th", 112: "112th", 122: "122nd"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
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
