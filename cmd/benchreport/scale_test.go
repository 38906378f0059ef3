package main

import (
	"strings"
	"testing"
	"time"
)

const scaleSample = `
BenchmarkScaleOut/rtt=15ms/W2-10-50ms-c16/processes=1-2 	1	1 ns/op	 0 duplicates	 0 left	 480.0 msgs/s	 0.2150 requests/msg	 0.93 utilisation
BenchmarkScaleOut/rtt=15ms/W2-10-50ms-c16/processes=2-2 	1	1 ns/op	 0 duplicates	 0 left	 960.0 msgs/s	 0.2250 requests/msg	 0.86 utilisation
BenchmarkGroup50/idle/default-concurrency-2 	1	1 ns/op	 0.1 polled	 0.1000 receives/queue/20s
BenchmarkGroup50/idle/concurrency=50-2 	1	1 ns/op	 1 polled	 1.000 receives/queue/20s
BenchmarkGroup50/rtt=15ms/backlog-2 	1	1 ns/op	 0.0995 cv	 0.8 min/max	 1374 msgs/s	 50.00 peak-handlers	 0.2736 requests/msg	 0.9239 utilisation
BenchmarkSendLatency/rtt=15ms/sqsconsumer-pool-2 	1	1 ns/op	 40.5 max-ms	 20.5 p50-ms	 25 p90-ms	 30.25 p99-ms
BenchmarkSendLatency/rtt=15ms/gocdk-awssnssqs-2 	1	1 ns/op	 300 max-ms	 145.3 p50-ms	 237.1 p90-ms	 268.5 p99-ms
BenchmarkShutdown/rtt=15ms/idle/sqsconsumer-pool-2 	1	1 ns/op	 0.5 shutdown-max-ms	 0.25 shutdown-ms
BenchmarkShutdown/rtt=15ms/busy/gocdk-awssnssqs-2 	1	1 ns/op	 60 shutdown-max-ms	 56.19 shutdown-ms
`

func TestScaleSections(t *testing.T) {
	rs := Parse(strings.NewReader(scaleSample))
	md := ScaleSections(rs, true)
	for _, want := range []string{
		"| 15ms | W2-10-50ms-c16 | 2 | 960 | x2.00 | 0.225 | 0 | 0 | 0.860 |",
		"| idle, default concurrency (10): receives per queue per 20 s; share of queues polled | 0.10; 0.10 |",
		"| backlog, 15ms: handled per queue, min/max | 0.800 |",
		"| 15ms | sqsconsumer-pool | 20.5 | 25.0 | 30.2 | 40.5 |",
		"| 15ms | gocdk-awssnssqs | 145.3 | 237.1 | 268.5 | 300.0 |",
		"| 15ms | sqsconsumer-pool | 0.2 / 0.5 | — / — |",
		"200 messages a second for 5 s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("sections lack %q:\n%s", want, md)
		}
	}
	if !strings.Contains(ScaleSections(nil, false), "Not measured in this run.") {
		t.Error("no results, no 'not measured'")
	}
	if text, met := groupIdleTarget(rs, 20*time.Second); !met || !strings.Contains(text, "1.00 receives per queue per 20 s, 1.00 of the queues polled") {
		t.Errorf("group idle target: %s %v", text, met)
	}
}

func TestFIFOTargetAndSection(t *testing.T) {
	rs := Parse(strings.NewReader("BenchmarkFIFOManyGroups-2 \t 1\t 764846103 ns/op\t 275.0 deletes/s\t 9.901 entries/delete\t 2723 msgs/s\t 0.2040 requests/msg\n"))
	text, met := fifoTarget(rs)
	if !met || !strings.Contains(text, "0.204 requests/msg, 9.90 entries per delete call, 275 delete calls/s at 2723 msgs/s") {
		t.Fatalf("target %q met=%v", text, met)
	}
	if !strings.Contains(ScaleSections(rs, true), "| 2723 | 0.204 | 9.90 | 275 |") {
		t.Error("FIFO section lacks the row")
	}
	if _, met := fifoTarget(Parse(strings.NewReader("BenchmarkFIFOManyGroups-2 \t 1\t 1 ns/op\t 310 deletes/s\t 9 entries/delete\t 3000 msgs/s\t 0.21 requests/msg\n"))); met {
		t.Error("310 delete calls a second met the target")
	}
	if _, met := fifoTarget(nil); met {
		t.Error("no measurement met the target")
	}
}
