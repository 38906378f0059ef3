package main

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders the report; heavy says whether the scale benchmarks ran their full
// variants (BENCH_HEAVY=1).
func Markdown(results []Result, machine, chart, benchtime string, count int, idle time.Duration, heavy bool) string {
	med := Median(results)
	get := func(name, unit string) (float64, bool) {
		v, ok := med[name][unit]
		return v, ok
	}
	work := func(workload, consumer, unit string) (float64, bool) {
		return get("BenchmarkWorkload/emulator/"+workload+"/"+consumer, unit)
	}
	fmtv := func(v float64, ok bool, format string) string {
		if !ok {
			return "—"
		}
		return fmt.Sprintf(format, v)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("# Benchmarks")
	p("")
	p("Written by `go run ./cmd/benchreport` on %s.", time.Now().UTC().Format("2006-01-02"))
	p("")
	p("Machine: %s.", machine)
	p("")
	p("Rerun with `go run ./cmd/benchreport` (several minutes; it starts the fauxqs emulator the way the tests do; `-quick` for a shorter run). Every number below comes from that one run.")
	p("")

	p("## Targets")
	p("")
	p("| target (DESIGN.md) | measured | |")
	p("| --- | --- | --- |")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	{
		pool, ok1 := work("backlog-noop", "sqsconsumer-pool", "requests/msg")
		sem, ok2 := work("backlog-noop", "sqsconsumer-semaphore", "requests/msg")
		p("| deep backlog, no-op handler, emulator: <= 0.21 requests/msg | pool %s, semaphore %s | %s |",
			fmtv(pool, ok1, "%.3f"), fmtv(sem, ok2, "%.3f"), verdict(ok1 && ok2 && pool <= 0.21 && sem <= 0.21))
	}
	for _, where := range []struct{ label, prefix, workload string }{
		{"handlers of 10-50 ms, concurrency 32, emulator", "BenchmarkWorkload/emulator/", "latency-10-50ms"},
		{"handlers of 10-50 ms, concurrency 256, sqstest", "BenchmarkWorkload/sqstest/", "latency-10-50ms-c256"},
	} {
		var parts []string
		met := true
		for _, s := range []string{"pool", "semaphore"} {
			u, ok1 := get(where.prefix+where.workload+"/sqsconsumer-"+s, "utilisation")
			r, ok2 := get(where.prefix+where.workload+"/sqsconsumer-"+s, "requests/msg")
			parts = append(parts, fmt.Sprintf("%s: utilisation %s at %s requests/msg", s, fmtv(u, ok1, "%.3f"), fmtv(r, ok2, "%.3f")))
			met = met && ok1 && ok2 && u >= 0.95 && r <= 0.25
		}
		p("| %s: utilisation >= 0.95 (stretch 0.97) at <= 0.25 requests/msg | %s | %s |", where.label, strings.Join(parts, "; "), verdict(met))
	}
	{
		text, met := latencyTarget(results)
		p("| 15 ms round trip, HTTP and TLS (W1, W2 under latency): W2 utilisation >= 0.95 at <= 0.21 requests/msg, W1 msgs/s at least Go CDK's | %s | %s |", text, verdict(met))
	}
	{
		v, ok := get("BenchmarkIdle/emulator/sqsconsumer", "receives/20s")
		p("| idle queue: at most one ReceiveMessage per poller per 20 s long poll | %s receives per 20 s with one poller (watched for %v) | %s |",
			fmtv(v, ok, "%.2f"), idle, verdict(ok && v <= 1.0+20/idle.Seconds()+0.01))
	}
	{
		text, met := fifoTarget(results)
		p("| FIFO, 100 groups, 10 ms handlers, 15 ms round trip: <= 0.25 requests/msg, delete calls under FIFO's 300 a second | %s | %s |", text, verdict(met))
	}
	{
		text, met := groupIdleTarget(results, idle)
		p("| a Group of 50 idle queues: every queue polled, at most one ReceiveMessage per queue per 20 s long poll | %s | %s |", text, verdict(met))
	}
	{
		best, name := 0.0, ""
		for _, s := range []string{"pool", "semaphore"} {
			for _, c := range concurrencies {
				if v, ok := get(fmt.Sprintf("BenchmarkThroughput/%s/c=%d", s, c), "msgs/s"); ok && v > best {
					best, name = v, fmt.Sprintf("%s, c=%d", s, c)
				}
			}
		}
		pool16, ok := get("BenchmarkThroughput/pool/c=16", "msgs/s")
		p("| library overhead on sqstest, no-op handler: >= 150,000 msgs/s | default pool at c=16: %s msgs/s; best %.0f (%s) | %s |",
			fmtv(pool16, ok, "%.0f"), best, name, verdict(ok && pool16 >= 150000))
	}
	p("")
	p("The idle verdict allows the one receive that starts as the window closes. The memory bound (never more than concurrency + waiting room received-and-unacknowledged messages, plus 10 per delete batch in flight, at a 1,000,000-message backlog) is asserted by `TestMemoryBoundedAtDeepBacklog`, not timed here.")
	p("")

	p("## Compared, on the emulator, in the same run")
	p("")
	p("Every consumer runs the same workloads (`internal/benchkit`) against the same fauxqs emulator; requests are counted at the HTTP transport, utilisation from the handler calls, as DESIGN.md defines it. The naive baseline receives 10, handles them all, waits for the slowest, and deletes the batch. Go CDK is `gocloud.dev/pubsub/awssnssqs` v0.47 used as its documentation recommends (a receive loop with a semaphore of 32 handlers, `Raw: true`, other options default), from the `bench/gocdk` module.")
	p("")
	p("| consumer | backlog: requests/msg | 10-50 ms: utilisation | 10-50 ms: requests/msg | 10-50 ms: msgs/s | idle: receives per 20 s |")
	p("| --- | --- | --- | --- | --- | --- |")
	consumers := []struct{ name, idle string }{
		{"sqsconsumer-pool", "sqsconsumer"}, {"sqsconsumer-semaphore", ""}, {"naive-baseline", "naive-baseline"}, {"gocdk-awssnssqs", "gocdk-awssnssqs"},
	}
	for _, c := range consumers {
		br, ok1 := work("backlog-noop", c.name, "requests/msg")
		u, ok2 := work("latency-10-50ms", c.name, "utilisation")
		r, ok3 := work("latency-10-50ms", c.name, "requests/msg")
		rate, ok4 := work("latency-10-50ms", c.name, "msgs/s")
		iv, ok5 := get("BenchmarkIdle/emulator/"+c.idle, "receives/20s")
		if c.idle == "" {
			ok5 = false
		}
		p("| %s | %s | %s | %s | %s | %s |", c.name, fmtv(br, ok1, "%.3f"), fmtv(u, ok2, "%.3f"), fmtv(r, ok3, "%.3f"), fmtv(rate, ok4, "%.0f"), fmtv(iv, ok5, "%.1f"))
	}
	p("")
	ours, okU := work("latency-10-50ms", "sqsconsumer-pool", "utilisation")
	oursR, okR := work("latency-10-50ms", "sqsconsumer-pool", "requests/msg")
	for _, other := range []string{"naive-baseline", "gocdk-awssnssqs"} {
		u, ok1 := work("latency-10-50ms", other, "utilisation")
		r, ok2 := work("latency-10-50ms", other, "requests/msg")
		if okU && okR && ok1 && ok2 && u > 0 && oursR > 0 {
			cost := "about as many requests per message"
			switch {
			case r/oursR >= 1.05:
				cost = fmt.Sprintf("%.1f times fewer requests per message", r/oursR)
			case oursR/r >= 1.05:
				cost = fmt.Sprintf("%.0f%% more requests per message", (oursR/r-1)*100)
			}
			p("- sqsconsumer (pool) against %s, handlers of 10-50 ms: utilisation x%.2f, with %s (%.3f against %.3f).", other, ours/u, cost, oursR, r)
		}
	}
	p("")

	b.WriteString(LatencySection(results))
	b.WriteString(ScaleSections(results, heavy))

	p("## Library overhead: throughput on sqstest")
	p("")
	p("End-to-end consumption of a pre-filled in-memory sqstest queue with a no-op handler; one op is one message received, handled and deleted. Median of %d runs of `-benchtime=%s`. allocs/op and B/op include sqstest's own allocations (it builds SDK output structs as the real client does).", count, benchtime)
	p("")
	p("| strategy | concurrency | msgs/s | requests/msg | allocs/msg | B/msg |")
	p("| --- | --- | --- | --- | --- | --- |")
	for _, s := range []string{"pool", "semaphore"} {
		for _, c := range concurrencies {
			name := fmt.Sprintf("BenchmarkThroughput/%s/c=%d", s, c)
			if _, ok := med[name]; !ok {
				continue
			}
			m := med[name]
			p("| %s | %d | %.0f | %.4f | %.0f | %.0f |", s, c, m["msgs/s"], m["requests/msg"], m["allocs/op"], m["B/op"])
		}
	}
	p("")
	p("Below concurrency 10 a receive can bring no more than the capacity (concurrency + waiting room of worker.DefaultWaitingRoom(concurrency)), so requests per message rise: that is the bound working, not batching failing.")
	p("")
	p("![throughput against concurrency](%s)", chart)
	p("")
	p("To see where the allocations are:")
	p("")
	p("```sh")
	p("go test -run '^$' -bench 'Throughput/pool/c=16$' -benchtime 50000x -memprofile mem.out .")
	p("go tool pprof -sample_index=alloc_objects -top mem.out")
	p("```")
	p("")
	p("## All results")
	p("")
	p("| benchmark | metrics |")
	p("| --- | --- |")
	for _, name := range sortedKeys(med) {
		var parts []string
		for _, unit := range sortedKeys(med[name]) {
			parts = append(parts, fmt.Sprintf("%s %s", trim(med[name][unit]), unit))
		}
		p("| %s | %s |", strings.TrimPrefix(name, "Benchmark"), strings.Join(parts, ", "))
	}
	return b.String()
}

func trim(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}
