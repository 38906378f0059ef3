// Command benchreport runs the repository's benchmarks and writes BENCHMARKS.md, with a chart
// of throughput against concurrency (benchmarks-throughput.svg), stating the machine. Run it
// from anywhere in the repository:
//
//	go run ./cmd/benchreport
//
// It runs, in order: BenchmarkThroughput on sqstest (-count runs each, the median reported),
// BenchmarkWorkload and BenchmarkIdle on sqstest and the fauxqs emulator, and the same
// workloads through Go CDK in bench/gocdk; then BenchmarkUnderLatency in both modules through
// a latency proxy, once with the round trips of -latencies over HTTP and once with -tls (a
// round trip and a cost per new connection, over HTTPS). It takes several minutes; -quick
// cuts it down (one run each, fewer messages on sqstest, a short idle window, 0 and 15 ms).
//
// Last it runs the benchmarks of scale and latency in both modules through a latency proxy of
// -scale-latencies (15 ms): BenchmarkScaleOut (1, 2 and 4 consumer processes on one queue),
// BenchmarkGroup50 (a Group of 50 queues, idle and backlogged), BenchmarkSendLatency (send to
// handler start) and BenchmarkShutdown, their full variants (BENCH_HEAVY=1) unless -quick.
//
// With -latency-only it runs only the latency benchmarks and prints the "Under latency"
// section on stdout, writing no file; -scale-only does the same for the scale sections:
//
//	go run ./cmd/benchreport -latency-only -latencies 15ms
//	go run ./cmd/benchreport -scale-only
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		out       = flag.String("o", "BENCHMARKS.md", "report file, relative to the repository root")
		chart     = flag.String("svg", "benchmarks-throughput.svg", "chart file, relative to the repository root")
		benchtime = flag.String("throughput-benchtime", "50000x", "-benchtime of BenchmarkThroughput")
		count     = flag.Int("count", 3, "runs of each throughput benchmark (the median is reported)")
		idle      = flag.Duration("idle-window", 60*time.Second, "how long the idle benchmarks watch an empty queue")
		latencies = flag.String("latencies", "0ms,5ms,15ms,50ms", "round trips of the latency benchmarks over HTTP, comma-separated (empty: none)")
		tlsNet    = flag.String("tls", "15ms,30ms", "round trip and cost per new connection of the latency benchmarks over HTTPS (empty: none)")
		quick     = flag.Bool("quick", false, "a quick run: -count 1, -throughput-benchtime 5000x, -idle-window 5s, -latencies 0ms,15ms")
		latOnly   = flag.Bool("latency-only", false, "run only the latency benchmarks and print their section on stdout; write no file")
		scaleLat  = flag.String("scale-latencies", "15ms", "round trips of the scale-out, Group, send-latency and shutdown benchmarks, comma-separated (empty: none)")
		scaleOnly = flag.Bool("scale-only", false, "run only the scale-out, Group, send-latency and shutdown benchmarks and print their sections on stdout; write no file")
	)
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["count"] {
			*count = 1
		}
		if !set["throughput-benchtime"] {
			*benchtime = "5000x"
		}
		if !set["idle-window"] {
			*idle = 5 * time.Second
		}
		if !set["latencies"] {
			*latencies = "0ms,15ms"
		}
	}
	passes, err := latencyPasses(*latencies, *tlsNet)
	var root string
	if err == nil {
		root, err = repoRoot()
	}
	var scale []pass
	if err == nil {
		scale, err = scalePasses(root, *scaleLat, *idle, *quick)
	}
	switch {
	case err != nil:
	case *latOnly:
		err = runLatencyOnly(root, passes)
	case *scaleOnly:
		err = runScaleOnly(scale, !*quick)
	default:
		err = run(root, *out, *chart, *benchtime, *count, *idle, passes, scale, !*quick)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// pass is one `go test -bench` run of the report.
type pass struct {
	dir, bench, benchtime string
	count                 int
	env                   []string // added to the environment
}

// latencyPasses returns the environments of the latency benchmarks: one with the round trips
// of latencies over HTTP, one with tlsNet ("RTT,CONN") over HTTPS; an empty string skips one.
func latencyPasses(latencies, tlsNet string) ([][]string, error) {
	var envs [][]string
	if latencies != "" {
		for _, v := range strings.Split(latencies, ",") {
			if _, err := time.ParseDuration(strings.TrimSpace(v)); err != nil {
				return nil, fmt.Errorf("-latencies %q: %w", latencies, err)
			}
		}
		envs = append(envs, []string{"BENCH_LATENCY=" + latencies, "BENCH_CONN_LATENCY=0s", "BENCH_TLS=0"})
	}
	if tlsNet != "" {
		rtt, conn, ok := strings.Cut(tlsNet, ",")
		_, err1 := time.ParseDuration(rtt)
		_, err2 := time.ParseDuration(conn)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("-tls %q: want ROUNDTRIP,PERCONNECTION, e.g. 15ms,30ms", tlsNet)
		}
		envs = append(envs, []string{"BENCH_LATENCY=" + rtt, "BENCH_CONN_LATENCY=" + conn, "BENCH_TLS=1"})
	}
	return envs, nil
}

// latencyRuns returns the passes of the latency benchmarks, each environment in both modules.
func latencyRuns(root string, envs [][]string) []pass {
	var out []pass
	for _, env := range envs {
		out = append(out,
			pass{root, "^BenchmarkUnderLatency$", "1x", 1, env},
			pass{filepath.Join(root, "bench", "gocdk"), "^BenchmarkUnderLatency$", "1x", 1, env})
	}
	return out
}

func run(root, out, chart, benchtime string, count int, idle time.Duration, latency [][]string, scale []pass, heavy bool) error {
	env := []string{"BENCH_IDLE_WINDOW=" + idle.String()}
	results, err := runPasses(append([]pass{
		{root, "^BenchmarkThroughput$", benchtime, count, env},
		{root, "^Benchmark(Workload|Idle)$", "1x", 1, env},
		{filepath.Join(root, "bench", "gocdk"), "^Benchmark(Workload|Idle)$", "1x", 1, env},
	}, append(latencyRuns(root, latency), scale...)...))
	if err != nil {
		return err
	}
	svg := Chart(results)
	if err := os.WriteFile(filepath.Join(root, chart), []byte(svg), 0o644); err != nil {
		return err
	}
	md := Markdown(results, Machine(), chart, benchtime, count, idle, heavy)
	return os.WriteFile(filepath.Join(root, out), []byte(md), 0o644)
}

func runLatencyOnly(root string, latency [][]string) error {
	results, err := runPasses(latencyRuns(root, latency))
	if err != nil {
		return err
	}
	fmt.Print(LatencySection(results))
	return nil
}

func runScaleOnly(scale []pass, heavy bool) error {
	results, err := runPasses(scale)
	if err != nil {
		return err
	}
	fmt.Print(ScaleSections(results, heavy))
	return nil
}

// runPasses runs each pass, its output copied to stderr, and returns the benchmark lines.
func runPasses(passes []pass) ([]Result, error) {
	var results []Result
	for _, r := range passes {
		args := []string{"test", "-run", "^$", "-bench", r.bench, "-benchtime", r.benchtime, "-count", strconv.Itoa(r.count), "."}
		fmt.Fprintf(os.Stderr, "== (cd %s && %s go %s)\n", r.dir, strings.Join(r.env, " "), strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = r.dir, append(os.Environ(), r.env...)
		var buf bytes.Buffer
		cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go test in %s: %w", r.dir, err)
		}
		got := Parse(&buf)
		if len(got) == 0 {
			return nil, fmt.Errorf("go test in %s (-bench %s) printed no benchmark result that could be read", r.dir, r.bench)
		}
		results = append(results, got...)
	}
	return results, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/sqsconsumer/sqsconsumer\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sqsconsumer repository")
		}
		dir = parent
	}
}

// Result is one benchmark line: its name without the -GOMAXPROCS suffix, and its metrics by
// unit (ns/op, msgs/s, allocs/op, ...).
type Result struct {
	Name    string
	Metrics map[string]float64
}

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)
	// benchName is a benchmark's name alone, or followed by output the benchmark printed
	// before its result (a log line): go test writes the name when the benchmark starts.
	benchName = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?(?:\s|$)`)
	// benchTail is a result that follows such output on a line of its own.
	benchTail = regexp.MustCompile(`^(\d+)\s+(\S+ ns/op.*)$`)
)

// Parse reads `go test -bench` output and returns its benchmark lines. A result printed on a
// later line than its benchmark's name (because the benchmark logged in between) is joined to
// the latest name.
func Parse(r io.Reader) []Result {
	var out []Result
	pending := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var name, metrics string
		if m := benchLine.FindStringSubmatch(line); m != nil {
			name, metrics = m[1], m[3]
		} else if m := benchTail.FindStringSubmatch(line); m != nil && pending != "" {
			name, metrics = pending, m[2]
		} else {
			if m := benchName.FindStringSubmatch(line); m != nil {
				pending = m[1]
			}
			continue
		}
		pending = ""
		fields := strings.Fields(metrics)
		res := Result{Name: name, Metrics: map[string]float64{}}
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			res.Metrics[fields[i+1]] = v
		}
		out = append(out, res)
	}
	return out
}

// Median returns, for each benchmark name, the median of each metric over its runs.
func Median(results []Result) map[string]map[string]float64 {
	runs := map[string][]Result{}
	for _, r := range results {
		runs[r.Name] = append(runs[r.Name], r)
	}
	out := map[string]map[string]float64{}
	for name, rs := range runs {
		out[name] = map[string]float64{}
		for unit := range rs[0].Metrics {
			var vs []float64
			for _, r := range rs {
				if v, ok := r.Metrics[unit]; ok {
					vs = append(vs, v)
				}
			}
			sort.Float64s(vs)
			out[name][unit] = vs[len(vs)/2]
		}
	}
	return out
}

// Machine describes the machine the benchmarks ran on.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^MemTotal:\s*(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.ParseFloat(string(m[1]), 64)
			mem = fmt.Sprintf(", %.0f GiB", kb/1024/1024)
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

var concurrencies = []int{1, 4, 16, 64, 256}

// Chart draws msgs/s against concurrency for both strategies as an SVG line chart.
func Chart(results []Result) string {
	med := Median(results)
	const w, h, left, right, top, bottom = 640, 360, 80, 20, 40, 50
	series := []struct{ name, colour string }{{"pool", "#1f77b4"}, {"semaphore", "#d62728"}}
	maxY := 1.0
	for _, s := range series {
		for _, c := range concurrencies {
			maxY = max(maxY, med[fmt.Sprintf("BenchmarkThroughput/%s/c=%d", s.name, c)]["msgs/s"])
		}
	}
	maxY = niceCeil(maxY)
	x := func(i int) float64 { return left + float64(i)*(w-left-right)/float64(len(concurrencies)-1) }
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/maxY) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">Throughput on sqstest, no-op handler (msgs/s, median)</text>`+"\n", left)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, humanize(v))
	}
	for i, c := range concurrencies {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(i), h-bottom+18, c)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">concurrency</text>`+"\n", (w+left)/2, h-10)
	for k, s := range series {
		var pts []string
		for i, c := range concurrencies {
			if v, ok := med[fmt.Sprintf("BenchmarkThroughput/%s/c=%d", s.name, c)]["msgs/s"]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i), y(v), s.colour)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.colour, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			w-right-120, top+k*18, s.colour, w-right-102, top+k*18+11, s.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func niceCeil(v float64) float64 {
	step := 1.0
	for step*10 < v {
		step *= 10
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step*m >= v {
			return step * m
		}
	}
	return step * 10
}

func humanize(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func sortStrings(s []string) { sort.Strings(s) }
