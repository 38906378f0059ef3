package benchkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/internal/latencyproxy"
)

func TestMain(m *testing.M) {
	ServeProxyIfChild() // TestStartProxy re-executes this binary as its proxy
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

func TestNetworks(t *testing.T) {
	for _, tc := range []struct {
		latency, conn, tls string
		want               []string
		bad                bool
	}{
		{want: []string{"rtt=0ms"}},
		{latency: "0ms,5ms,15ms,50ms", want: []string{"rtt=0ms", "rtt=5ms", "rtt=15ms", "rtt=50ms"}},
		{latency: "15ms", conn: "30ms", tls: "1", want: []string{"rtt=15ms,tls,conn=30ms"}},
		{latency: "15ms", tls: "true", want: []string{"rtt=15ms,tls"}},
		{latency: "15", bad: true},
		{latency: "-1ms", bad: true},
		{conn: "x", bad: true},
		{tls: "yes", bad: true},
	} {
		t.Setenv("BENCH_LATENCY", tc.latency)
		t.Setenv("BENCH_CONN_LATENCY", tc.conn)
		t.Setenv("BENCH_TLS", tc.tls)
		nets, err := Networks()
		if tc.bad {
			if err == nil {
				t.Errorf("%+v: no error", tc)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
			continue
		}
		var got []string
		for _, n := range nets {
			got = append(got, n.String())
		}
		if len(got) != len(tc.want) {
			t.Errorf("%+v: got %v", tc, got)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%+v: got %v", tc, got)
			}
		}
	}
}

// TestStartProxy runs the proxy as a child process, as the benchmarks do, over TLS.
func TestStartProxy(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer target.Close()
	const rtt = 50 * time.Millisecond
	p := StartProxy(t, target.URL, Network{RoundTrip: rtt, Handshake: 10 * time.Millisecond, TLS: true})
	before := p.Stats(t)
	client, counter := p.HTTPClient()
	defer client.CloseIdleConnections()
	start := time.Now()
	for range 3 {
		resp, err := client.Get(p.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "ok" || resp.ProtoMajor != 1 || resp.TLS == nil {
			t.Fatalf("got %q over %s, TLS %v", body, resp.Proto, resp.TLS != nil)
		}
	}
	if took := time.Since(start); took < 3*rtt {
		t.Errorf("3 requests took %v, want at least 3 round trips (%v)", took, 3*rtt)
	}
	after := p.Stats(t)
	if got := (latencyproxy.Stats{Conns: after.Conns - before.Conns, Requests: after.Requests - before.Requests}); got != (latencyproxy.Stats{Conns: 1, Requests: 3}) {
		t.Errorf("proxy counted %+v, want 1 connection and 3 requests", got)
	}
	if counter.Requests() != 3 {
		t.Errorf("client counted %d requests", counter.Requests())
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCPUTimeAdvances(t *testing.T) {
	start := CPUTime()
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	if CPUTime() <= start || x == 0 {
		t.Errorf("CPU time did not advance over a busy loop: %v then %v", start, CPUTime())
	}
}
