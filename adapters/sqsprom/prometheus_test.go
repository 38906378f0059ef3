package sqsprom_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqsprom"
	"github.com/sqsconsumer/sqsconsumer/internal/benchkit"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestExportedSeries(t *testing.T) {
	reg := prom.NewRegistry()
	m := sqsprom.New(reg)
	s := sqstest.New()
	url := s.MustCreateQueue("orders", nil)
	if err := benchkit.SendN(context.Background(), s, url, 30); err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	c, err := sqsconsumer.New(s, url, func(ctx context.Context, msg *sqsconsumer.Message) error {
		defer func() {
			if handled.Add(1) == 30 {
				close(done)
			}
		}()
		if strings.HasSuffix(*msg.Body, "7") {
			return errors.New("fails")
		}
		return nil
	}, sqsconsumer.WithHooks(m), sqsconsumer.WithWaitTime(time.Second),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	<-done
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	expect := `
# HELP sqsconsumer_handled_total Handler calls by outcome.
# TYPE sqsconsumer_handled_total counter
sqsconsumer_handled_total{outcome="error",queue="` + url + `"} 3
sqsconsumer_handled_total{outcome="ok",queue="` + url + `"} 27
# HELP sqsconsumer_received_total Messages received.
# TYPE sqsconsumer_received_total counter
sqsconsumer_received_total{queue="` + url + `"} 30
# HELP sqsconsumer_acked_total Deletes SQS confirmed.
# TYPE sqsconsumer_acked_total counter
sqsconsumer_acked_total{queue="` + url + `"} 27
# HELP sqsconsumer_in_flight Handlers running.
# TYPE sqsconsumer_in_flight gauge
sqsconsumer_in_flight{queue="` + url + `"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect),
		"sqsconsumer_handled_total", "sqsconsumer_received_total", "sqsconsumer_acked_total", "sqsconsumer_in_flight"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "sqsconsumer_handler_seconds"); n != 1 {
		t.Fatalf("%d latency series", n)
	}
	receives := testutil.ToFloat64(requests(t, reg, url, "ReceiveMessage"))
	r := c.Report()
	if int64(receives) != r.Receives+r.ReceiveErrors+r.AbandonedReceives || receives == 0 {
		t.Fatalf("receive requests %v, report %+v", receives, r.Stats)
	}
}

func requests(t *testing.T, reg *prom.Registry, queue, op string) prom.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sqsconsumer_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["queue"] == queue && labels["op"] == op {
				g := prom.NewGauge(prom.GaugeOpts{Name: "x"})
				g.Set(m.GetCounter().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no requests_total{op=%q}", op)
	return nil
}

func TestBreakerSeries(t *testing.T) {
	reg := prom.NewRegistry()
	m := sqsprom.New(reg)
	s := sqstest.New()
	url := s.MustCreateQueue("orders", nil)
	if err := benchkit.SendN(context.Background(), s, url, 10); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	c, err := sqsconsumer.New(s, url, func(ctx context.Context, msg *sqsconsumer.Message) error {
		return sqsconsumer.Downstream(errors.New("db down"))
	}, sqsconsumer.WithHooks(m, onOpen(func() { close(opened) })), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithConcurrency(1),
		sqsconsumer.WithBreaker(sqsconsumer.Breaker{OpenFor: time.Hour}),
		sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { errc <- c.Run(ctx) }()
	<-opened
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	expect := `
# HELP sqsconsumer_breaker_opened_total Times the queue's breaker opened.
# TYPE sqsconsumer_breaker_opened_total counter
sqsconsumer_breaker_opened_total{queue="` + url + `"} 1
# HELP sqsconsumer_breaker_state The queue's breaker: 0 closed, 1 half-open, 2 open.
# TYPE sqsconsumer_breaker_state gauge
sqsconsumer_breaker_state{queue="` + url + `"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect), "sqsconsumer_breaker_opened_total", "sqsconsumer_breaker_state"); err != nil {
		t.Fatal(err)
	}
}

// onOpen is a hook that calls f when a breaker opens (after the Metrics hook, added before it).
type onOpen func()

func (f onOpen) OnBreaker(c sqsconsumer.BreakerChange) {
	if c.To == sqsconsumer.BreakerOpen {
		f()
	}
}
