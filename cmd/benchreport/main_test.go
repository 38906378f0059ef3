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
	md := Markdown(rs, "test machine", "chart.svg", "50000x", 3, time.Minute, true)
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

const latencySample = `BenchmarkUnderLatency/rtt=15ms/W1-noop-c64/sqsconsumer-pool-2         	       1	2115549116 ns/op	        23.00 conns	         0.9903 cpu-s/10k-msgs	      3353 msgs/s	         2.000 peak-handlers	         0.2012 requests/msg	         0.0000080 utilisation
BenchmarkUnderLatency/rtt=15ms/W2-10-50ms-c32/sqsconsumer-pool-2      	       1	3201301347 ns/op	         6.000 conns	         2.873 cpu-s/10k-msgs	       714.7 msgs/s	        32.00 peak-handlers	         0.2080 requests/msg	         0.9609 utilisation
BenchmarkUnderLatency/rtt=15ms/W1-noop-c64/gocdk-awssnssqs-2         	       1	3180165901 ns/op	      1073 conns	         2.086 cpu-s/10k-msgs	      2144 msgs/s	         1.000 peak-handlers	         0.3820 requests/msg	         0.0000038 utilisation
BenchmarkUnderLatency/rtt=15ms/W2-10-50ms-c32/gocdk-awssnssqs-2      	       1	3076595867 ns/op	       989.0 conns	         5.339 cpu-s/10k-msgs	       728.9 msgs/s	        32.00 peak-handlers	         1.109 requests/msg	         0.8317 utilisation
BenchmarkUnderLatency/rtt=15ms,tls,conn=30ms/W1-noop-c64/sqsconsumer-pool-2         	       1	2732923953 ns/op	        36.00 conns	         1.380 cpu-s/10k-msgs	      2705 msgs/s	         2.000 peak-handlers	         0.2012 requests/msg	         0.0001180 utilisation
BenchmarkUnderLatency/rtt=15ms,tls,conn=30ms/W1-noop-c64/gocdk-awssnssqs-2         	       1	3020178080 ns/op	      1231 conns	         4.107 cpu-s/10k-msgs	      2067 msgs/s	         2.000 peak-handlers	         0.3728 requests/msg	         0.0000771 utilisation
`

func TestLatencySection(t *testing.T) {
	rs := Parse(strings.NewReader(latencySample))
	md := LatencySection(rs)
	for _, want := range []string{
		"## Under latency",
		"| 15ms | sqsconsumer-pool | 3353 | 0.961 | 0.201 / 0.208 | 23 / 6 | 0.99 / 2.87 | $0.080 / $0.083 | $0.101 / $0.104 |",
		"| 15ms | naive-baseline | — | — | — / — | — / — | — / — | — / — | — / — |",
		"| 15ms, TLS, 30ms per new connection | gocdk-awssnssqs | 2067 | — | 0.373 / — | 1231 / — |",
		"- 15ms: sqsconsumer (pool) against Go CDK: W1 throughput x1.56, W2 utilisation x1.16.",
		"$0.40 per million requests",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	text, met := latencyTarget(rs)
	if met || !strings.Contains(text, "15ms: W2 utilisation 0.961 at 0.208 requests/msg; W1 3353 msgs/s against Go CDK's 2144") {
		t.Errorf("target %q met=%v: the TLS row lacks W2, so it is not met", text, met)
	}
	if got := LatencySection(nil); !strings.Contains(got, "Not measured in this run.") {
		t.Errorf("empty section:\n%s", got)
	}
}

func TestLatencyPasses(t *testing.T) {
	envs, err := latencyPasses("0ms,15ms", "15ms,30ms")
	if err != nil || len(envs) != 2 || envs[0][0] != "BENCH_LATENCY=0ms,15ms" || envs[1][1] != "BENCH_CONN_LATENCY=30ms" || envs[1][2] != "BENCH_TLS=1" {
		t.Fatalf("%v %v", envs, err)
	}
	if envs, err := latencyPasses("", ""); err != nil || len(envs) != 0 {
		t.Fatalf("empty: %v %v", envs, err)
	}
	for _, bad := range [][2]string{{"15", ""}, {"", "15ms"}, {"", "15ms,x"}} {
		if _, err := latencyPasses(bad[0], bad[1]); err == nil {
			t.Errorf("latencyPasses(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// A benchmark that logs while it runs splits its line: go test prints the name, then the log
// output, then the result on a line of its own. The result must still be found under its name.
func TestParseResultAfterLogOutput(t *testing.T) {
	out := "BenchmarkThroughput/pool/c=1-2         \t2026/12/02 17:55:10 INFO sqsconsumer: started queue=q\n" +
		"2026/12/02 17:55:10 INFO sqsconsumer: stopped queue=q took=351ms\n" +
		"   50000\t      7007 ns/op\t    142716 msgs/s\t         0.3076 requests/msg\t    1837 B/op\t      25 allocs/op\n" +
		"BenchmarkThroughput/pool/c=4-2         \t   50000\t      5233 ns/op\t    191111 msgs/s\n" +
		"2026/12/02 17:55:12 INFO stray line\n" +
		"   12\t  99 ns/op\n" // a result with no pending name is not invented
	rs := Parse(strings.NewReader(out))
	if len(rs) != 2 {
		t.Fatalf("parsed %d results: %+v", len(rs), rs)
	}
	if rs[0].Name != "BenchmarkThroughput/pool/c=1" || rs[0].Metrics["msgs/s"] != 142716 || rs[0].Metrics["allocs/op"] != 25 {
		t.Fatalf("first result %+v", rs[0])
	}
	if rs[1].Name != "BenchmarkThroughput/pool/c=4" || rs[1].Metrics["msgs/s"] != 191111 {
		t.Fatalf("second result %+v", rs[1])
	}
}
