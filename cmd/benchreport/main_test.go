package main

import (
	"strings"
	"testing"
	"time"
)

const sample = `goos: linux
BenchmarkThroughput/pool/c=16-2         	   50000	      4104 ns/op	    243649 msgs/s	         0.2001 requests/msg	    1355 B/op	      20 allocs/op
BenchmarkThroughput/pool/c=16-2         	   50000	      4104 ns/op	    200000 msgs/s	         0.2001 requests/msg	    1355 B/op	      20 allocs/op
BenchmarkThroughput/pool/c=16-2         	   50000	      4104 ns/op	    260000 msgs/s	         0.2001 requests/msg	    1355 B/op	      20 allocs/op
BenchmarkThroughput/semaphore/c=16-2    	   50000	      5514 ns/op	    181351 msgs/s	         0.2001 requests/msg	    1907 B/op	      29 allocs/op
BenchmarkWorkload/emulator/backlog-noop/sqsconsumer-pool-2 	 1	1811378982 ns/op	 11892 msgs/s	 2.000 peak-handlers	 0.2006 requests/msg	 0.0000232 utilisation
BenchmarkWorkload/emulator/backlog-noop/sqsconsumer-semaphore-2 	 1	1811378982 ns/op	 11892 msgs/s	 2.000 peak-handlers	 0.2010 requests/msg	 0.0000232 utilisation
BenchmarkWorkload/emulator/latency-10-50ms/sqsconsumer-pool-2 	 1	4021255896 ns/op	 1036 msgs/s	 32.00 peak-handlers	 0.2053 requests/msg	 0.9885 utilisation
BenchmarkWorkload/emulator/latency-10-50ms/gocdk-awssnssqs-2 	 1	3205026982 ns/op	 1016 msgs/s	 32.00 peak-handlers	 1.136 requests/msg	 0.9773 utilisation
BenchmarkIdle/emulator/sqsconsumer-2 	 1	6002821676 ns/op	 1.000 receives/20s
PASS
ok  	github.com/sqsconsumer/sqsconsumer	51.163s
`

func TestParseAndMedian(t *testing.T) {
	rs := Parse(strings.NewReader(sample))
	if len(rs) != 9 {
		t.Fatalf("parsed %d results", len(rs))
	}
	if rs[0].Name != "BenchmarkThroughput/pool/c=16" || rs[0].Metrics["allocs/op"] != 20 || rs[0].Metrics["ns/op"] != 4104 {
		t.Fatalf("first result %+v", rs[0])
	}
	med := Median(rs)
	if got := med["BenchmarkThroughput/pool/c=16"]["msgs/s"]; got != 243649 {
		t.Fatalf("median msgs/s %v, want the middle of three", got)
	}
}

func TestReportAndChart(t *testing.T) {
	rs := Parse(strings.NewReader(sample))
	md := Markdown(rs, "test machine", "chart.svg", "50000x", 3, time.Minute)
	for _, want := range []string{
		"Machine: test machine.",
		"| deep backlog, no-op handler, emulator: <= 0.21 requests/msg | pool 0.201, semaphore 0.201 | met |",
		"gocdk-awssnssqs | — | 0.977 | 1.136",
		"against gocdk-awssnssqs, handlers of 10-50 ms: utilisation x1.01, with 5.5 times fewer requests per message (0.205 against 1.136)",
		"| pool | 16 | 243649 | 0.2001 | 20 | 1355 |",
		"![throughput against concurrency](chart.svg)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(md, "**missed**") { // the sqstest c=256 workload is absent from the sample
		t.Error("a target without numbers was not marked missed")
	}
	svg := Chart(rs)
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<polyline") != 2 || !strings.Contains(svg, "250k") {
		t.Fatalf("chart:\n%s", svg)
	}
}
