package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestPriorityThenWeights(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, time.Second); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s+handled (\d+)$`).FindAllStringSubmatch(out.String(), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if counts["payments"] != 200 {
		t.Fatalf("payments handled %d of 200 (highest priority):\n%s", counts["payments"], out.String())
	}
	if ratio := float64(counts["orders"]) / float64(counts["emails"]); ratio < 2.4 || ratio > 3.6 {
		t.Fatalf("orders:emails = %.2f, want about 3:\n%s", ratio, out.String())
	}
	fmt.Print(out.String())
}
