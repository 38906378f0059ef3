package sqslambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/adapters/sqslambda"
)

func ok(context.Context, *sqsconsumer.Message) error { return nil }

func TestNewRefusesInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    sqsconsumer.Handler
		opts []sqslambda.Option
	}{
		{"WithConcurrency", ok, []sqslambda.Option{sqslambda.WithConcurrency(0)}},
		{"WithConcurrency", ok, []sqslambda.Option{sqslambda.WithConcurrency(-3)}},
		{"WithLogger", ok, []sqslambda.Option{sqslambda.WithLogger(nil)}},
		{"option 1 is nil", ok, []sqslambda.Option{sqslambda.WithConcurrency(2), nil}},
		{"handler", nil, nil},
	} {
		h, err := sqslambda.New(tc.h, tc.opts...)
		if h != nil || !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: New = %v, %v; want an ErrInvalidOption naming it", tc.name, h != nil, err)
		}
	}
}

func TestQueueURLFromEventSourceARN(t *testing.T) {
	for _, tc := range []struct{ arn, url string }{
		{"arn:aws:sqs:eu-west-1:123456789012:orders", "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"},
		{"arn:aws:sqs:us-east-1:123456789012:ledger.fifo", "https://sqs.us-east-1.amazonaws.com/123456789012/ledger.fifo"},
		{"arn:aws-cn:sqs:cn-north-1:123456789012:orders", "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/orders"},
		{"arn:aws-us-gov:sqs:us-gov-west-1:123456789012:orders", "https://sqs.us-gov-west-1.amazonaws.com/123456789012/orders"},
		{"arn:aws-eusc:sqs:eusc-de-east-1:123456789012:orders", "https://sqs.eusc-de-east-1.amazonaws.eu/123456789012/orders"},
		{"arn:aws-iso-b:sqs:us-isob-east-1:123456789012:orders", "https://sqs.us-isob-east-1.sc2s.sgov.gov/123456789012/orders"},
		{"arn:aws-mars:sqs:mars-north-1:123456789012:orders", ""}, // a partition not known here
		{"arn:aws:sns:eu-west-1:123456789012:orders", ""},         // not a queue
		{"arn:aws:sqs:eu-west-1:123456789012", ""},
		{"arn:aws:sqs::123456789012:orders", ""},
		{"", ""},
	} {
		var got string
		h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
			got = m.QueueURL()
			return nil
		})
		if _, err := h(context.Background(), event(tc.arn, 1)); err != nil {
			t.Fatal(err)
		}
		if got != tc.url {
			t.Errorf("%q: QueueURL %q, want %q", tc.arn, got, tc.url)
		}
	}
}

// logs collects what a JSON slog handler writes, one map per record.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func newLogger(level slog.Level) (*slog.Logger, *logs) {
	l := &logs{}
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: level})), l
}

func panicsInHandler() { panic("boom") }

func TestLogsFailedAndPanickingRecords(t *testing.T) {
	logger, out := newLogger(slog.LevelDebug)
	h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
		switch *m.Body {
		case "1":
			return errors.New("payment declined")
		case "2":
			panicsInHandler()
		}
		return nil
	}, sqslambda.WithConcurrency(4), sqslambda.WithLogger(logger))
	resp, err := h(context.Background(), event("arn:aws:sqs:eu-west-1:123456789012:orders", 4))
	if err != nil || ids(resp) != "[m1 m2]" {
		t.Fatalf("failures %s, %v", ids(resp), err)
	}
	byID := map[string]map[string]any{}
	for _, r := range out.records(t) {
		if r["msg"] != "sqsconsumer: message handled" || r["queue"] != "https://sqs.eu-west-1.amazonaws.com/123456789012/orders" {
			t.Errorf("log record %v", r)
		}
		byID[r["message_id"].(string)] = r
	}
	if len(byID) != 4 {
		t.Fatalf("logged %d records, want 4: %v", len(byID), byID)
	}
	if r := byID["m1"]; r["level"] != "WARN" || r["outcome"] != "failed" || r["error"] != "payment declined" || r["receive_count"] != 2.0 {
		t.Errorf("failed record logged as %v", r)
	}
	r := byID["m2"]
	if r["level"] != "ERROR" || r["outcome"] != "panicked" || !strings.Contains(r["error"].(string), "boom") {
		t.Errorf("panicking record logged as %v", r)
	}
	if stack, _ := r["stack"].(string); !strings.Contains(stack, "panicsInHandler") {
		t.Errorf("panic logged without the handler's stack: %q", stack)
	}
	for _, id := range []string{"m0", "m3"} {
		if r := byID[id]; r["level"] != "DEBUG" || r["outcome"] != "succeeded" || r["error"] != nil {
			t.Errorf("%s logged as %v", id, r)
		}
	}
}

func TestLogsRecordsNotRun(t *testing.T) {
	logger, out := newLogger(slog.LevelInfo)
	h := mustNew(t, func(ctx context.Context, m *sqsconsumer.Message) error {
		if *m.Body == "1" {
			return errors.New("out of order")
		}
		return nil
	}, sqslambda.WithLogger(logger))
	if resp, _ := h(context.Background(), event("arn:aws:sqs:eu-west-1:123456789012:ledger.fifo", 5)); ids(resp) != "[m1 m2 m3 m4]" {
		t.Fatalf("failures %s", ids(resp))
	}
	recs := out.records(t)
	if len(recs) != 2 || recs[0]["message_id"] != "m1" || recs[0]["outcome"] != "failed" {
		t.Fatalf("logged %v; want the failure, then one line for the records not run", recs)
	}
	if r := recs[1]; r["level"] != "WARN" || r["records"] != 3.0 || !strings.Contains(r["reason"].(string), "FIFO") {
		t.Errorf("records not run logged as %v", r)
	}

	logger, out = newLogger(slog.LevelInfo)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("invocation about to time out"))
	h = mustNew(t, ok, sqslambda.WithLogger(logger), sqslambda.WithConcurrency(3))
	if resp, _ := h(ctx, event("arn:aws:sqs:eu-west-1:123456789012:orders", 6)); len(resp.BatchItemFailures) != 6 {
		t.Fatalf("failures %s", ids(resp))
	}
	if recs := out.records(t); len(recs) != 1 || recs[0]["records"] != 6.0 || recs[0]["reason"] != "invocation about to time out" {
		t.Errorf("logged %v", recs)
	}
}

func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	logger, out := newLogger(slog.LevelInfo)
	// slog.SetDefault redirects the log package too; put both back.
	prev, w, flags := slog.Default(), log.Writer(), log.Flags()
	defer func() { slog.SetDefault(prev); log.SetOutput(w); log.SetFlags(flags) }()
	slog.SetDefault(logger)
	h := mustNew(t, func(context.Context, *sqsconsumer.Message) error { return errors.New("fails") })
	h(context.Background(), event("arn:aws:sqs:eu-west-1:123456789012:orders", 1))
	if recs := out.records(t); len(recs) != 1 || recs[0]["outcome"] != "failed" {
		t.Fatalf("slog.Default() got %v", recs)
	}
}
