package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scalePasses returns the passes of the scale-out, Group, send-latency and shutdown
// benchmarks over the round trips of latencies (empty: none), both modules: their full
// variants (BENCH_HEAVY=1) unless quick.
func scalePasses(root, latencies string, idle time.Duration, quick bool) ([]pass, error) {
	if latencies == "" {
		return nil, nil
	}
	for _, v := range strings.Split(latencies, ",") {
		if _, err := time.ParseDuration(strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("-scale-latencies %q: %w", latencies, err)
		}
	}
	heavy := "1"
	if quick {
		heavy = "0"
	}
	env := []string{"BENCH_LATENCY=" + latencies, "BENCH_CONN_LATENCY=0s", "BENCH_TLS=0", "BENCH_HEAVY=" + heavy, "BENCH_IDLE_WINDOW=" + idle.String()}
	return []pass{
		{root, "^Benchmark(ScaleOut|Group50|SendLatency|Shutdown|FIFOManyGroups)$", "1x", 1, env},
		{filepath.Join(root, "bench", "gocdk"), "^Benchmark(SendLatency|Shutdown)$", "1x", 1, env},
	}, nil
}

var scaleName = regexp.MustCompile(`^BenchmarkScaleOut/([^/]+)/([^/]+)/processes=(\d+)$`)

// ScaleSections renders the scale-out, Group of 50, send-latency and shutdown sections; heavy
// says whether the full variants ran (BENCH_HEAVY=1).
func ScaleSections(results []Result, heavy bool) string {
	med := Median(results)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	pick := func(full, short string) string {
		if heavy {
			return full
		}
		return short
	}
	get := func(name, unit, format string) string {
		v, ok := med[name][unit]
		return fmtOpt(v, ok, format)
	}

	p("## Scale-out: processes on one queue")
	p("")
	p("One, two and four consumer processes (the test binary re-executed, one sqsconsumer consumer each, default options but the concurrency) consume one emulator queue through the latency proxy; the parent fills the queue directly and counts every handler call of every process by message. W1 is %s messages with a no-op handler at concurrency 64 per process; W2 is %s messages with handlers of 10-50 ms at concurrency 16 per process. msgs/s runs from the first handler start to the last handler end across the processes; requests are every process's; duplicates are handler calls beyond the first for a message (0 is expected: nothing fails and the visibility timeout, 30 s, never lapses); left is what the queue still holds, visible or not, after every process stopped.",
		pick("5,000", "500"), pick("2,000", "200"))
	p("")
	p("What a 2-core machine can show: the emulator (one Node.js process), the latency proxy and every consumer process share two cores. W2 is bound by handler time, so it shows how processes add capacity when the handlers wait (as they do on I/O); W1, with a no-op handler, soon meets the emulator's CPU: a second process still helps (one process at a round trip away leaves the emulator idle part of the time), but past that the processes compete for the same two cores, and those numbers say nothing about SQS, which scales out per queue far beyond this.")
	p("")
	type scaleRow struct {
		net, workload string
		procs         int
		name          string
	}
	var rows []scaleRow
	for name := range med {
		if m := scaleName.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[3])
			rows = append(rows, scaleRow{m[1], m[2], n, name})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, c := rows[i], rows[j]
		if a.net != c.net {
			return a.net < c.net
		}
		if a.workload != c.workload {
			return a.workload < c.workload
		}
		return a.procs < c.procs
	})
	if len(rows) == 0 {
		p("Not measured in this run.")
	} else {
		p("| network | workload | processes | msgs/s | x one process | requests/msg | duplicates | left | handler utilisation |")
		p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range rows {
			speedup := "—"
			one := fmt.Sprintf("BenchmarkScaleOut/%s/%s/processes=1", r.net, r.workload)
			if base, ok := med[one]["msgs/s"]; ok && base > 0 {
				speedup = fmt.Sprintf("x%.2f", med[r.name]["msgs/s"]/base)
			}
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s |", networkLabel(r.net), r.workload, r.procs,
				get(r.name, "msgs/s", "%.0f"), speedup, get(r.name, "requests/msg", "%.3f"),
				get(r.name, "duplicates", "%.0f"), get(r.name, "left", "%.0f"), get(r.name, "utilisation", "%.3f"))
		}
	}
	p("")

	p("## A Group of 50 queues")
	p("")
	p("One `Group` of 50 emulator queues, equal weights, default options but those named. Idle: all 50 empty, long polls capped at the window, on the emulator directly, at the default concurrency (10 slots for the whole group) and at 50; receives per queue per 20 s (one per queue is what polling every queue costs with 20 s long polls) and the share of the queues that sent any receive in the window. A queue's long poll holds at least one of the group's slots while it waits, so with fewer slots than queues some queues are not polled at all for a while: a message arriving there waits until a slot comes free. Less than one receive per queue is therefore not a saving but a sign of that. Backlog: %s messages on each queue, handlers of 10-50 ms, concurrency 50 across the group, through the latency proxy, stopped when half of all the messages were handled so that every queue had a backlog throughout; the spread of handled counts per queue is the smallest over the largest (1 is perfectly even) and the coefficient of variation (standard deviation over mean; 0 is perfectly even). Go CDK has no counterpart to a group; a single queue's idle cost is in the comparison table above.",
		pick("100", "20"))
	p("")
	var groupNets []string
	for name := range med {
		if rest, ok := strings.CutPrefix(name, "BenchmarkGroup50/"); ok && strings.HasSuffix(rest, "/backlog") {
			groupNets = append(groupNets, strings.TrimSuffix(rest, "/backlog"))
		}
	}
	sort.Strings(groupNets)
	p("| measurement | value |")
	p("| --- | --- |")
	for _, v := range []struct{ label, name string }{
		{"default concurrency (10)", "BenchmarkGroup50/idle/default-concurrency"},
		{"concurrency 50", "BenchmarkGroup50/idle/concurrency=50"},
	} {
		p("| idle, %s: receives per queue per 20 s; share of queues polled | %s; %s |", v.label,
			get(v.name, "receives/queue/20s", "%.2f"), get(v.name, "polled", "%.2f"))
	}
	for _, n := range groupNets {
		name := "BenchmarkGroup50/" + n + "/backlog"
		p("| backlog, %s: handled per queue, min/max | %s |", networkLabel(n), get(name, "min/max", "%.3f"))
		p("| backlog, %s: handled per queue, coefficient of variation | %s |", networkLabel(n), get(name, "cv", "%.3f"))
		p("| backlog, %s: msgs/s, requests/msg, handler utilisation | %s, %s, %s |", networkLabel(n),
			get(name, "msgs/s", "%.0f"), get(name, "requests/msg", "%.3f"), get(name, "utilisation", "%.3f"))
	}
	p("")

	consumers := []string{"sqsconsumer-pool", "naive-baseline", "gocdk-awssnssqs"}
	p("## Send to handler start")
	p("")
	p("A producer sends %s, one SendMessage call each, through the same latency proxy as the consumer, stamping each body as its call starts; handlers take 10-50 ms at concurrency 32, well below capacity. The producer starts once the consumer's first receive is on its way. sqsconsumer runs with default options but the concurrency (20 s long polls); the naive baseline long-polls for 1 s; Go CDK runs with its defaults (short polls, `Raw: true`). Delays from the send call's start to the handler's start, in ms. The naive baseline waits for the slowest handler of each batch of 10 and then a delete and a receive round trip; when that makes it slower than the send rate (it does at 15 ms), the queue grows and its delays with it.",
		pick("200 messages a second for 5 s", "100 messages a second for 1 s"))
	p("")
	nets := prefixedNetworks(results, "BenchmarkSendLatency/")
	if len(nets) == 0 {
		p("Not measured in this run.")
	} else {
		p("| network | consumer | p50 | p90 | p99 | max |")
		p("| --- | --- | --- | --- | --- | --- |")
		for _, n := range nets {
			for _, c := range consumers {
				name := "BenchmarkSendLatency/" + n + "/" + c
				if med[name] == nil {
					continue
				}
				p("| %s | %s | %s | %s | %s | %s |", networkLabel(n), c, get(name, "p50-ms", "%.1f"), get(name, "p90-ms", "%.1f"), get(name, "p99-ms", "%.1f"), get(name, "max-ms", "%.1f"))
			}
		}
	}
	p("")

	p("## FIFO acks")
	p("")
	p("A FIFO queue on sqstest a 15 ms round trip away (every call waits 15 ms before it reaches the server), 2,000 messages over 100 message groups, handlers of 10 ms at concurrency 32. A group stays locked until its message's delete lands, so FIFO deletes are not held for a batch to fill; deletes that arrive while a call is out share the next one. FIFO queues allow 300 calls a second per API action without high-throughput mode: at N msgs/s with B entries per DeleteMessageBatch, deletes take N / B of them.")
	p("")
	if m, ok := med["BenchmarkFIFOManyGroups"]; !ok {
		p("Not measured in this run.")
	} else {
		p("| msgs/s | requests/msg | entries per delete call | delete calls/s |")
		p("| --- | --- | --- | --- |")
		p("| %.0f | %.3f | %.2f | %.0f |", m["msgs/s"], m["requests/msg"], m["entries/delete"], m["deletes/s"])
	}
	p("")

	p("## Shutdown time")
	p("")
	p("From cancelling the consumer (Run's ctx; for Go CDK, the receive loop's ctx, then waiting for running handlers and `Subscription.Shutdown`) to its return, through the latency proxy, concurrency 32. Idle: an empty queue, cancelled as the first receive starts (for sqsconsumer a 20 s long poll; Go CDK short-polls). Busy: 1,000 messages with handlers of 10-50 ms, cancelled once 64 handlers have started; sqsconsumer finishes the running handlers, releases the messages it holds unstarted and flushes its deletes; Go CDK finishes its running handlers and flushes its acks, and leaves messages it received but had not handed out to their visibility timeout. %s; median / longest, in ms.",
		pick("Five shutdowns each, on a fresh queue each", "One shutdown each"))
	p("")
	nets = prefixedNetworks(results, "BenchmarkShutdown/")
	if len(nets) == 0 {
		p("Not measured in this run.")
	} else {
		p("| network | consumer | idle | busy |")
		p("| --- | --- | --- | --- |")
		for _, n := range nets {
			for _, c := range []string{"sqsconsumer-pool", "gocdk-awssnssqs"} {
				cell := func(state string) string {
					name := "BenchmarkShutdown/" + n + "/" + state + "/" + c
					return get(name, "shutdown-ms", "%.1f") + " / " + get(name, "shutdown-max-ms", "%.1f")
				}
				p("| %s | %s | %s | %s |", networkLabel(n), c, cell("idle"), cell("busy"))
			}
		}
	}
	p("")
	return b.String()
}

// prefixedNetworks returns the networks named right after prefix in results, in the order
// they first appear.
func prefixedNetworks(results []Result, prefix string) []string {
	var nets []string
	seen := map[string]bool{}
	for _, r := range results {
		rest, ok := strings.CutPrefix(r.Name, prefix)
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, "/")
		if !seen[n] {
			seen[n] = true
			nets = append(nets, n)
		}
	}
	return nets
}

// groupIdleTarget is the idle target for a Group: at most one ReceiveMessage per queue per
// 20 s long poll, allowing the receive that starts as the window closes.
// The target is read at concurrency 50, where every queue can hold a slot for its long poll,
// and needs every queue polled.
func groupIdleTarget(results []Result, idle time.Duration) (string, bool) {
	m := Median(results)["BenchmarkGroup50/idle/concurrency=50"]
	v, ok1 := m["receives/queue/20s"]
	polled, ok2 := m["polled"]
	return fmt.Sprintf("concurrency 50: %s receives per queue per 20 s, %s of the queues polled (watched for %v)", fmtOpt(v, ok1, "%.2f"), fmtOpt(polled, ok2, "%.2f"), idle),
		ok1 && ok2 && v <= 1.0+20/idle.Seconds()+0.01 && polled == 1
}

// fifoTarget is the FIFO cost target: at most 0.25 requests per message with many groups, and
// delete calls under the 300 a second FIFO queues allow per action.
func fifoTarget(results []Result) (string, bool) {
	m, ok := Median(results)["BenchmarkFIFOManyGroups"]
	if !ok {
		return "not measured", false
	}
	return fmt.Sprintf("%.3f requests/msg, %.2f entries per delete call, %.0f delete calls/s at %.0f msgs/s", m["requests/msg"], m["entries/delete"], m["deletes/s"], m["msgs/s"]),
		m["requests/msg"] <= 0.25 && m["deletes/s"] < 300
}
