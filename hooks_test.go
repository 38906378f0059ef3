package sqsconsumer_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

type ctxKey struct{}

// recorder implements every hook.
type recorder struct {
	mu       sync.Mutex
	events   map[string]int
	startCtx bool
}

func (r *recorder) add(e string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[e] += n
}

func (r *recorder) OnReceive(_ string, n int, err error) {
	if err != nil {
		r.add("receive error", 1)
	}
	r.add("received", n)
}
func (r *recorder) OnHandlerStart(ctx context.Context, m *sqsconsumer.Message) context.Context {
	r.add("start", 1)
	return context.WithValue(ctx, ctxKey{}, "span")
}
func (r *recorder) OnHandlerEnd(ctx context.Context, m *sqsconsumer.Message, err error, took time.Duration) {
	if ctx.Value(ctxKey{}) != "span" {
		r.add("end without the start's ctx", 1)
	}
	if err != nil {
		r.add("end failed", 1)
	} else {
		r.add("end ok", 1)
	}
}
func (r *recorder) OnAck(_ string, n int)                           { r.add("acked", n) }
func (r *recorder) OnAckFailure(_ string, e *sqsconsumer.AckError)  { r.add("ack failed", 1) }
func (r *recorder) OnLeaseExtended(_ string, n int)                 { r.add("extended", n) }
func (r *recorder) OnLeaseLost(m *sqsconsumer.Message, cause error) { r.add("lease lost", 1) }

func TestHooksAndLogging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		sendN(t, s, url, 4) // bodies 0..3
		var mu sync.Mutex
		s.SetFaults(sqstest.Faults{Entry: func(op, handle string) *types.BatchResultErrorEntry {
			mu.Lock()
			defer mu.Unlock()
			// sqstest numbers messages from 1: body "3" is message 4.
			if op == "ChangeMessageVisibilityBatch" && strings.HasPrefix(handle, "rh-4-") {
				return sqstest.EntryError("MessageNotInflight", true) // message 3's lease is lost
			}
			if op == "DeleteMessageBatch" && strings.HasPrefix(handle, "rh-3-") {
				return sqstest.EntryError("ReceiptHandleIsInvalid", true) // message 2's delete fails for good
			}
			return nil
		}})
		r := &recorder{events: map[string]int{}}
		var logs bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c, err := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			if ctx.Value(ctxKey{}) != "span" {
				t.Error("handler did not get the start hook's ctx")
			}
			switch *m.Body {
			case "1":
				return errors.New("nope")
			case "3":
				<-ctx.Done() // until the lease is lost
			}
			return nil
		}, sqsconsumer.WithHooks(r), sqsconsumer.WithLogger(logger), sqsconsumer.WithVisibilityTimeout(4*time.Second),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		if err != nil {
			t.Fatal(err)
		}
		stop := running(t, c)
		for c.Stats().LeaseLost < 1 {
			advance(100 * time.Millisecond)
		}
		advance(time.Second)
		stop()
		want := map[string]int{"start": 4, "end ok": 3, "end failed": 1, "acked": 1, "lease lost": 1}
		for k, v := range want {
			if r.events[k] != v {
				t.Errorf("%s: %d, want %d (all: %v)", k, r.events[k], v, r.events)
			}
		}
		// The delete of message 2 fails for good; so may the release, at shutdown, of message 3
		// when it came back after its lost lease lapsed (its visibility changes all fail).
		if r.events["ack failed"] < 1 {
			t.Errorf("ack failures %d", r.events["ack failed"])
		}
		if r.events["received"] < 4 { // message 3 may come back once its lost lease lapses
			t.Errorf("received %d", r.events["received"])
		}
		if r.events["end without the start's ctx"] != 0 {
			t.Error("end hook got another ctx")
		}
		out := logs.String()
		for _, want := range []string{`"level":"DEBUG","msg":"sqsconsumer: message handled"`, `"level":"WARN"`, `"outcome":"failed"`, `"queue":"` + url, `"message_id":"`, `"level":"ERROR"`} {
			if !strings.Contains(out, want) {
				t.Errorf("logs lack %s:\n%s", want, out)
			}
		}
	})
}

func TestHookAndLoggerOptionsValidate(t *testing.T) {
	h := func(context.Context, *sqsconsumer.Message) error { return nil }
	if _, err := sqsconsumer.New(sqstest.New(), "u", h, sqsconsumer.WithHooks(42)); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
		t.Fatalf("bad hook: %v", err)
	}
	if _, err := sqsconsumer.New(sqstest.New(), "u", h, sqsconsumer.WithLogger(nil)); !errors.Is(err, sqsconsumer.ErrInvalidOption) {
		t.Fatalf("nil logger: %v", err)
	}
}
