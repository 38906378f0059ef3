package main

import (
	"fmt"
	"strings"
)

// SQS request prices, US East (N. Virginia), per million requests after the free tier (the
// first million requests a month), for the first 100 billion requests a month. Every 64 KB
// chunk of a request's payload is billed as one request.
const (
	priceStandard = 0.40
	priceFIFO     = 0.50
	priceSource   = "$0.40 per million requests on standard queues and $0.50 on FIFO queues (US East, after the free tier of one million requests a month, up to 100 billion a month); each 64 KB chunk of a request's payload is billed as one request. Checked on 2026-12-02 against summaries of the AWS pricing page dated March and June 2026 (cloudburn.io, factualminds.com) and AWS's SQS features page for the 64 KB rule; AWS's own pricing page was not reachable from here."
)

// The consumers and workloads of BenchmarkUnderLatency, as named in the benchmarks.
var (
	latencyConsumers = []string{"sqsconsumer-pool", "naive-baseline", "gocdk-awssnssqs"}
	latencyW1        = "W1-noop-c64"
	latencyW2        = "W2-10-50ms-c32"
)

const latencyPrefix = "BenchmarkUnderLatency/"

// latencyNetworks returns the networks that BenchmarkUnderLatency results name, in the order
// they first appear.
func latencyNetworks(results []Result) []string {
	var nets []string
	seen := map[string]bool{}
	for _, r := range results {
		rest, ok := strings.CutPrefix(r.Name, latencyPrefix)
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

// networkLabel turns "rtt=15ms,tls,conn=30ms" into "15ms, TLS, 30ms per new connection".
func networkLabel(n string) string {
	var parts []string
	for _, f := range strings.Split(n, ",") {
		switch k, v, _ := strings.Cut(f, "="); k {
		case "rtt":
			parts = append(parts, v)
		case "tls":
			parts = append(parts, "TLS")
		case "conn":
			parts = append(parts, v+" per new connection")
		default:
			parts = append(parts, f)
		}
	}
	return strings.Join(parts, ", ")
}

// LatencySection renders the "Under latency" section from BenchmarkUnderLatency results.
func LatencySection(results []Result) string {
	med := Median(results)
	get := func(net, workload, consumer, unit string) (float64, bool) {
		v, ok := med[latencyPrefix+net+"/"+workload+"/"+consumer][unit]
		return v, ok
	}
	cell := func(format string, vs ...func() (float64, bool)) string {
		var parts []string
		for _, v := range vs {
			x, ok := v()
			if !ok {
				parts = append(parts, "—")
				continue
			}
			parts = append(parts, fmt.Sprintf(format, x))
		}
		return strings.Join(parts, " / ")
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("## Under latency")
	p("")
	p("SQS is a round trip away. Here every consumer reaches the emulator through a proxy (`internal/latencyproxy`, in a child process) that holds each request for half the round trip before forwarding it and half before returning its response, holds each new connection for the stated cost before reading from it, and, where stated, speaks HTTPS (HTTP/1.1, as SQS does) with a certificate the client trusts. The queue is filled directly; only the consumption goes through the proxy, with a fresh HTTP client that has the AWS SDK's default transport settings (up to 10 idle connections kept per host).")
	p("")
	p("W1 is a backlog of 5,000 messages with a no-op handler at concurrency 64 (throughput); W2 is 2,000 messages with handlers of 10-50 ms at concurrency 32 (utilisation, as DESIGN.md defines it). Requests are counted at the client's transport, connections at the proxy. CPU is this process's user + system time (getrusage, every thread) from the moment the consumer starts until it has stopped, per 10,000 messages: the consumer, the SDK and the benchmark's own bookkeeping, not the emulator or the proxy. Request cost is requests/msg at SQS's published prices, per million messages consumed (receives, deletes, visibility changes; sending is not counted).")
	p("")
	nets := latencyNetworks(results)
	if len(nets) == 0 {
		p("Not measured in this run.")
		p("")
		return b.String()
	}
	p("| network | consumer | W1 msgs/s | W2 utilisation | requests/msg W1 / W2 | conns W1 / W2 | CPU s per 10k msgs W1 / W2 | $ per million msgs, standard W1 / W2 | $ per million msgs, FIFO W1 / W2 |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, n := range nets {
		for _, c := range latencyConsumers {
			at := func(w, unit string, scale float64) func() (float64, bool) {
				return func() (float64, bool) {
					v, ok := get(n, w, c, unit)
					return v * scale, ok
				}
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", networkLabel(n), c,
				cell("%.0f", at(latencyW1, "msgs/s", 1)),
				cell("%.3f", at(latencyW2, "utilisation", 1)),
				cell("%.3f", at(latencyW1, "requests/msg", 1), at(latencyW2, "requests/msg", 1)),
				cell("%.0f", at(latencyW1, "conns", 1), at(latencyW2, "conns", 1)),
				cell("%.2f", at(latencyW1, "cpu-s/10k-msgs", 1), at(latencyW2, "cpu-s/10k-msgs", 1)),
				cell("$%.3f", at(latencyW1, "requests/msg", priceStandard), at(latencyW2, "requests/msg", priceStandard)),
				cell("$%.3f", at(latencyW1, "requests/msg", priceFIFO), at(latencyW2, "requests/msg", priceFIFO)))
		}
	}
	p("")
	for _, n := range nets {
		ours, ok1 := get(n, latencyW1, "sqsconsumer-pool", "msgs/s")
		cdk, ok2 := get(n, latencyW1, "gocdk-awssnssqs", "msgs/s")
		u, ok3 := get(n, latencyW2, "sqsconsumer-pool", "utilisation")
		cu, ok4 := get(n, latencyW2, "gocdk-awssnssqs", "utilisation")
		if ok1 && ok2 && ok3 && ok4 && cdk > 0 && cu > 0 {
			p("- %s: sqsconsumer (pool) against Go CDK: W1 throughput x%.2f, W2 utilisation x%.2f.", networkLabel(n), ours/cdk, u/cu)
		}
	}
	p("")
	p("Prices: %s", priceSource)
	p("")
	return b.String()
}

// latencyTarget is DESIGN.md's target under a 15 ms round trip, plain and TLS: W2 utilisation
// >= 0.95 at <= 0.21 requests/msg, and W1 throughput at least Go CDK's in the same run. It
// returns the measured text and whether the target is met.
func latencyTarget(results []Result) (string, bool) {
	med := Median(results)
	var parts []string
	met, any := true, false
	for _, n := range latencyNetworks(results) {
		if !strings.HasPrefix(n, "rtt=15ms") {
			continue
		}
		any = true
		at := func(w, c, unit string) (float64, bool) {
			v, ok := med[latencyPrefix+n+"/"+w+"/"+c][unit]
			return v, ok
		}
		u, ok1 := at(latencyW2, "sqsconsumer-pool", "utilisation")
		r, ok2 := at(latencyW2, "sqsconsumer-pool", "requests/msg")
		ours, ok3 := at(latencyW1, "sqsconsumer-pool", "msgs/s")
		cdk, ok4 := at(latencyW1, "gocdk-awssnssqs", "msgs/s")
		ok := ok1 && ok2 && ok3 && ok4
		met = met && ok && u >= 0.95 && r <= 0.21 && ours >= cdk
		parts = append(parts, fmt.Sprintf("%s: W2 utilisation %s at %s requests/msg; W1 %s msgs/s against Go CDK's %s",
			networkLabel(n), fmtOpt(u, ok1, "%.3f"), fmtOpt(r, ok2, "%.3f"), fmtOpt(ours, ok3, "%.0f"), fmtOpt(cdk, ok4, "%.0f")))
	}
	if !any {
		return "not measured", false
	}
	return strings.Join(parts, "; "), met
}

func fmtOpt(v float64, ok bool, format string) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf(format, v)
}
