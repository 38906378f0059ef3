package sqsconsumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// logLines is a JSON slog handler's output, safe for concurrent writes, read back as records.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) logger(level slog.Level) sqsconsumer.Option {
	return sqsconsumer.WithLogger(slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level})))
}

func (l *logLines) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	var out []map[string]any
	for _, r := range l.records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func TestLogsStartStopAndRateLimitsRepeatedFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 50)
		var logs logLines
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "7" {
				panic("boom at seven")
			}
			return fmt.Errorf("database down (message %s)", *m.Body)
		}, logs.logger(slog.LevelInfo), sqsconsumer.WithoutBackoff(), sqsconsumer.WithConcurrency(5))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for c.Stats().Failed < 50 {
			advance(10 * time.Millisecond)
		}
		advance(11 * time.Second) // the repeat window passes
		sendN(t, s, url, 1)       // one more failure of the same kind: logged, with the count
		for c.Stats().Failed < 51 {
			advance(time.Second)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		started := logs.with(t, "sqsconsumer: started")
		if len(started) != 1 || started[0]["queue"] != url || started[0]["concurrency"] != 5.0 || started[0]["wait_time"] == nil {
			t.Errorf("start lines: %v", started)
		}
		stopped := logs.with(t, "sqsconsumer: stopped")
		if len(stopped) != 1 || stopped[0]["level"] != "INFO" || stopped[0]["failed"] != 51.0 || stopped[0]["log_lines_suppressed"] == nil {
			t.Errorf("stop lines: %v", stopped)
		}
		failures := logs.with(t, "sqsconsumer: message handled")
		var panics, plain int
		var suppressedCount float64
		for _, r := range failures {
			if r["level"] != "WARN" {
				t.Errorf("failure logged at %v", r["level"])
			}
			if strings.Contains(fmt.Sprint(r["error"]), "boom at seven") {
				panics++
				if !strings.Contains(fmt.Sprint(r["stack"]), "logging_test.go") {
					t.Errorf("a panic logged without its stack: %v", r)
				}
				continue
			}
			plain++
			if n, ok := r["repeats_suppressed"].(float64); ok {
				suppressedCount = n
			}
		}
		// 49 "database down" failures in the first burst: five logged, 44 left out; the 51st,
		// after the window, logged with the count.
		if panics != 1 || plain != 6 || suppressedCount != 44 {
			t.Errorf("%d panic lines, %d failure lines, %v counted as left out; want 1, 6 and 44", panics, plain, suppressedCount)
		}
	})
}

func TestLogSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 20)
		var logs logLines
		c, err := sqsconsumer.New(s, url, func(context.Context, *sqsconsumer.Message) error { return nil },
			logs.logger(slog.LevelInfo), sqsconsumer.WithLogSummary(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		advance(90 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		sums := logs.with(t, "sqsconsumer: summary")
		if len(sums) != 1 || sums[0]["succeeded"] != 20.0 || sums[0]["in_flight"] != 0.0 {
			t.Errorf("summaries: %v", sums)
		}
	})
	if _, err := sqsconsumer.New(sqstest.New(), "u", func(context.Context, *sqsconsumer.Message) error { return nil }, sqsconsumer.WithLogSummary(time.Millisecond)); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
		t.Errorf("WithLogSummary(1ms): %v", err)
	}
}

func TestReceiveErrorsAreRateLimitedInTheDefaultLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flaky{Server: sqstest.New(), err: errors.New("throttled 503"), ok: func(int64) bool { return false }}
		var logs logLines
		c, err := sqsconsumer.New(f, "http://127.0.0.1/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, logs.logger(slog.LevelInfo))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatal(err)
		}
		errs := logs.with(t, "sqsconsumer: error")
		receives := c.Report().ReceiveErrors
		// Failure n in a row retries after up to 200 ms x 2^(n-1), at most 20 s: over a
		// minute, more than the log's five per 10 s window.
		if receives < 8 || len(errs) < 5 || int64(len(errs)) >= receives {
			t.Errorf("%d receive errors, %d logged; want some left out of the log", receives, len(errs))
		}
	})
}

func TestReportString(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 10)
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body == "3" {
				return errors.New("no")
			}
			return nil
		}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Report().String(); !strings.Contains(got, "Run has not returned") {
			t.Errorf("before Run: %q", got)
		}
		stop := running(t, c)
		for c.Stats().Succeeded+c.Stats().Failed < 10 {
			advance(100 * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got := c.Report().String()
		for _, want := range []string{"received 10: 9 succeeded, 1 failed", "acked 9", "requests", "utilisation"} {
			if !strings.Contains(got, want) {
				t.Errorf("Report.String() = %q; want it to say %q", got, want)
			}
		}
	})
}

func TestGroupReportTotalUtilisation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		g, err := sqsconsumer.NewGroup(sqsconsumer.WithConcurrency(4), quiet)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, name := range []string{"a", "b"} {
			url := s.MustCreateQueue(name, nil)
			sendN(t, s, url, 40)
			wg.Add(40)
			if err := g.Add(s, url, func(context.Context, *sqsconsumer.Message) error {
				defer wg.Done()
				advance(100 * time.Millisecond)
				return nil
			}, sqsconsumer.Share{}, quiet); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- g.Run(ctx) }()
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		r := g.Report()
		// 80 messages x 100 ms on 4 slots: 2 s of a window of about 2 s.
		if u := r.Total.Utilisation; u < 0.8 || u > 1.0001 {
			t.Errorf("Total.Utilisation = %.3f; want about 1 (%s)", u, r)
		}
		if !strings.HasPrefix(r.String(), "total: received 80") {
			t.Errorf("GroupReport.String() = %q", r)
		}
	})
}
