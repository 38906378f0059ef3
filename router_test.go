package sqsconsumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// snsBody wraps payload as SNS delivers it without raw delivery.
func snsBody(topicArn, subject, payload string, attrs map[string]string) string {
	w := map[string]any{"Type": "Notification", "MessageId": "sns-" + payload, "TopicArn": topicArn, "Subject": subject,
		"Message": payload, "Timestamp": "2026-11-23T10:00:00.000Z", "SignatureVersion": "2", "Signature": "x",
		"SigningCertURL": "https://sns.eu-west-1.amazonaws.com/c.pem"}
	if len(attrs) > 0 {
		ma := map[string]any{}
		for k, v := range attrs {
			ma[k] = map[string]string{"Type": "String", "Value": v}
		}
		w["MessageAttributes"] = ma
	}
	b, _ := json.Marshal(w)
	return string(b)
}

type routed struct {
	mu  sync.Mutex
	got map[string][]string // route -> payloads
}

func (r *routed) handler(route string) sqsconsumer.Handler {
	return func(ctx context.Context, m *sqsconsumer.Message) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got[route] = append(r.got[route], *m.Body)
		return nil
	}
}

// consumeAll runs a consumer with h over the queue until want handler outcomes (successes
// and failures) were seen, and returns its report.
func consumeAll(t *testing.T, s *sqstest.Server, url string, h sqsconsumer.Handler, want int64) *sqsconsumer.Report {
	t.Helper()
	c, err := sqsconsumer.New(s, url, h, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	for st := c.Stats(); st.Succeeded+st.Failed < want; st = c.Stats() {
		advance(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return checkReportAddsUp(t, c)
}

func TestRouterByAttributeAndFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		send := func(body, typ string) {
			in := &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}
			if typ != "" {
				in.MessageAttributes = map[string]types.MessageAttributeValue{"type": {DataType: aws.String("String"), StringValue: aws.String(typ)}}
			}
			s.SendMessage(context.Background(), in)
		}
		send("a1", "order.created")
		send("b1", "order.cancelled")
		send("a2", "order.created")
		send("x1", "order.unknown")
		send("n1", "")
		send(snsBody("arn:aws:sns:eu-west-1:1:orders", "", "s1", map[string]string{"type": "order.cancelled"}), "")
		r := &routed{got: map[string][]string{}}
		router := sqsconsumer.NewRouter(sqsconsumer.ByAttribute("type")).
			Route("order.created", r.handler("created")).
			Route("order.cancelled", r.handler("cancelled"))
		rep := consumeAll(t, s, url, sqsconsumer.Chain(router.Handle, sqsconsumer.Unwrap()), 6)
		slices.Sort(r.got["created"])
		slices.Sort(r.got["cancelled"])
		if strings.Join(r.got["created"], ",") != "a1,a2" || strings.Join(r.got["cancelled"], ",") != "b1,s1" {
			t.Fatalf("routed %v", r.got)
		}
		if rep.Succeeded != 4 || rep.Failed != 2 {
			t.Fatalf("report %+v: unknown and missing keys must fail, not vanish", rep.Stats)
		}
		if st, _ := s.Stats(url); st.Deleted != 4 || st.InFlight != 2 {
			t.Fatalf("queue %+v: the unrouted two must stay for retry or the DLQ", st)
		}
	})
}

func TestRouterFallbackErrorIsNoRoute(t *testing.T) {
	router := sqsconsumer.NewRouter(sqsconsumer.ByFunc(func(*sqsconsumer.Message) string { return "nope" }))
	m := &sqsconsumer.Message{}
	m.MessageId = aws.String("m-1")
	err := router.Handle(context.Background(), m)
	var nr *sqsconsumer.NoRouteError
	if !errors.Is(err, sqsconsumer.ErrNoRoute) || !errors.As(err, &nr) || nr.Key != "nope" || nr.MessageID != "m-1" {
		t.Fatalf("unrouted: %v", err)
	}
	called := false
	router.Fallback(func(context.Context, *sqsconsumer.Message) error { called = true; return nil })
	if err := router.Handle(context.Background(), m); err != nil || !called {
		t.Fatalf("fallback: %v, called %v", err, called)
	}
}

func TestTopicRouterUnwrapsSNSAndEventBridge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		for _, body := range []string{
			snsBody("arn:aws:sns:eu-west-1:123456789012:orders", "new order", `{"id":1}`, nil),
			snsBody("arn:aws:sns:eu-west-1:123456789012:payments", "", `{"id":2}`, nil),
			snsBody("arn:aws:sns:eu-west-1:999999999999:orders", "forged", `{"id":3}`, nil), // same name, other account
			`{"detail-type":"Shipped","source":"shop","detail":{"id":4}}`,
		} {
			s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)})
		}
		type order struct{ ID int }
		var mu sync.Mutex
		var subjects, payments []string
		var shipped []int
		router := sqsconsumer.NewTopicRouter().
			Route("orders", sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, o order) error {
				env, _ := m.Envelope()
				mu.Lock()
				defer mu.Unlock()
				subjects = append(subjects, env.Subject)
				return nil
			})).
			Route("arn:aws:sns:eu-west-1:123456789012:payments", func(ctx context.Context, m *sqsconsumer.Message) error {
				mu.Lock()
				defer mu.Unlock()
				payments = append(payments, *m.Body)
				return nil
			}).
			Fallback(sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, o order) error {
				env, _ := m.Envelope()
				if env.Kind != envelope.EventBridge || env.DetailType != "Shipped" {
					return errors.New("unexpected")
				}
				mu.Lock()
				defer mu.Unlock()
				shipped = append(shipped, o.ID)
				return nil
			}))
		allowed := sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders", "arn:aws:sns:eu-west-1:123456789012:payments")
		// The queue takes EventBridge events too, on purpose: AllowRaw lets them through.
		rep := consumeAll(t, s, url, sqsconsumer.Chain(router.Handle, sqsconsumer.Unwrap(allowed, sqsconsumer.AllowRaw())), 4)
		if strings.Join(subjects, ",") != "new order" || strings.Join(payments, ",") != `{"id":2}` || len(shipped) != 1 || shipped[0] != 4 {
			t.Fatalf("orders %v, payments %v, shipped %v", subjects, payments, shipped)
		}
		if rep.Failed != 1 || rep.Succeeded != 3 {
			t.Fatalf("report %+v: the forged topic must be refused", rep.Stats)
		}
	})
}

func TestJSONDecodeErrors(t *testing.T) {
	h := sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, v struct{ N int }) error {
		if v.N != 3 {
			return errors.New("wrong value")
		}
		return nil
	})
	m := &sqsconsumer.Message{}
	m.MessageId = aws.String("m-9")
	m.Body = aws.String(`{"N":3,"extra":true}`)
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	m.Body = aws.String(`{"N":"three"}`)
	var de *sqsconsumer.DecodeError
	if err := h(context.Background(), m); !errors.As(err, &de) || de.MessageID != "m-9" || !strings.Contains(err.Error(), "malformed body") {
		t.Fatalf("malformed: %v", err)
	}
}

// JSON ignores what encoding/json ignores; StrictJSON turns a payload of the wrong shape into a
// *DecodeError before the handler runs. Bad syntax, a wrong type and trailing data are
// DecodeErrors either way.
func TestJSONStrictDecoding(t *testing.T) {
	type order struct {
		ID    int `json:"id"`
		Items []struct {
			SKU string `json:"sku"`
		} `json:"items"`
	}
	for _, tc := range []struct {
		name, body    string
		loose, strict bool // handled (true) or a DecodeError
	}{
		{"exact", `{"id":1,"items":[{"sku":"a"}]}`, true, true},
		{"missing fields", `{}`, true, true},
		{"unknown field", `{"id":1,"note":"x"}`, true, false},
		{"unknown nested field", `{"id":1,"items":[{"sku":"a","qty":2}]}`, true, false},
		{"another type's payload", `{"refund":9,"reason":"late"}`, true, false},
		{"null", `null`, true, false},
		{"wrong type", `{"id":"one"}`, false, false},
		{"array", `[{"id":1}]`, false, false},
		{"trailing data", `{"id":1} {"id":2}`, false, false},
		{"empty", ``, false, false},
	} {
		for _, strict := range []bool{false, true} {
			var opts []sqsconsumer.JSONOption
			want := tc.loose
			if strict {
				opts, want = append(opts, sqsconsumer.StrictJSON()), tc.strict
			}
			called := false
			h := sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, o order) error {
				called = true
				return nil
			}, opts...)
			m := &sqsconsumer.Message{}
			m.MessageId, m.Body = aws.String("m-1"), aws.String(tc.body)
			err := h(context.Background(), m)
			var de *sqsconsumer.DecodeError
			if want && (err != nil || !called) || !want && (!errors.As(err, &de) || de.MessageID != "m-1" || called) {
				t.Errorf("%s, strict %v: err %v, handler called %v", tc.name, strict, err, called)
			}
		}
	}
}

// A payload StrictJSON refuses is the message's own fault: never handled, retried after the
// backoff policy's delays (no hot loop), and moved to the dead-letter queue by the redrive
// policy, while good messages are handled.
func TestJSONStrictPoisonMessageIsDeadLettered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		s.MustCreateQueue("dlq", nil)
		url := s.MustCreateQueue("q", map[string]string{
			"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}`,
		})
		ctx := context.Background()
		for _, body := range []string{`{"id":1}`, `{"id":2,"amount":5}`, `{"id":3}`} {
			if _, err := s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var handled []int
		var decodeTimes []time.Time
		h := sqsconsumer.JSON(func(ctx context.Context, m *sqsconsumer.Message, v struct{ ID int }) error {
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, v.ID)
			return nil
		}, sqsconsumer.StrictJSON())
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			err := h(ctx, m)
			if _, ok := errors.AsType[*sqsconsumer.DecodeError](err); ok {
				mu.Lock()
				decodeTimes = append(decodeTimes, time.Now())
				mu.Unlock()
			}
			return err
		}, sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(n int) time.Duration { return time.Duration(n) * 10 * time.Second }), quiet)
		stop := running(t, c)
		advance(2 * time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(handled)
		if !slices.Equal(handled, []int{1, 3}) {
			t.Fatalf("handled %v", handled)
		}
		if len(decodeTimes) != 3 {
			t.Fatalf("the poison message failed %d times, want maxReceiveCount 3", len(decodeTimes))
		}
		for i := 1; i < len(decodeTimes); i++ {
			if gap := decodeTimes[i].Sub(decodeTimes[i-1]); gap < time.Duration(i)*10*time.Second {
				t.Fatalf("retry %d came %v after the previous try, before its backoff", i, gap)
			}
		}
		if st, _ := s.Stats(url); st.MovedToDLQ != 1 || st.Deleted != 2 {
			t.Fatalf("queue %+v: the poison message must be dead-lettered, the rest deleted", st)
		}
	})
}

func TestMiddlewareChainRecoverTimeoutLogging(t *testing.T) {
	var order []string
	mark := func(name string) sqsconsumer.Middleware {
		return func(next sqsconsumer.Handler) sqsconsumer.Handler {
			return func(ctx context.Context, m *sqsconsumer.Message) error {
				order = append(order, name)
				return next(ctx, m)
			}
		}
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
		order = append(order, "handler")
		panic("boom")
	}, mark("outer"), sqsconsumer.Logging(logger), sqsconsumer.Recover(), mark("inner"))
	m := &sqsconsumer.Message{}
	m.MessageId = aws.String("m-7")
	err := h(context.Background(), m)
	var pe *sqsconsumer.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("recovered: %v", err)
	}
	if strings.Join(order, ",") != "outer,inner,handler" {
		t.Fatalf("order %v", order)
	}
	if logs.Len() != 0 { // the failure is the consumer's to log
		t.Fatalf("Logging logged a failure: %s", logs.String())
	}

	synctest.Test(t, func(t *testing.T) {
		slow := sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			<-ctx.Done()
			return nil // finished late: still a failure
		}, sqsconsumer.Timeout(time.Second))
		if err := slow(context.Background(), m); !errors.Is(err, sqsconsumer.ErrHandlerTimeout) {
			t.Fatalf("timeout: %v", err)
		}
	})
}

// With an allowlist or signature checks, a body that is not an SNS notification is refused like
// a foreign topic (anyone allowed to SendMessage could otherwise bypass the check), unless
// AllowRaw says such bodies are expected.
func TestUnwrapGuardsRefuseBodiesThatAreNotNotifications(t *testing.T) {
	notification := `{"Type":"Notification","MessageId":"n-1","TopicArn":"arn:aws:sns:eu-west-1:123456789012:orders","Message":"{\"id\":1}","Timestamp":"2026-01-01T00:00:00Z"}`
	eventBridge := `{"version":"0","id":"e-1","detail-type":"Shipped","source":"shop","time":"2026-01-01T00:00:00Z","detail":{"id":1}}`
	ok := func(ctx context.Context, m *sqsconsumer.Message) error { return nil }
	for _, tc := range []struct {
		name string
		opts []sqsconsumer.UnwrapOption
		body string
		want bool // passes to the handler
	}{
		{"no guard, raw", nil, `{"id":1}`, true},
		{"allowlist, notification", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders")}, notification, true},
		{"allowlist, raw", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders")}, `{"id":1}`, false},
		{"allowlist, EventBridge", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders")}, eventBridge, false},
		{"allowlist, not JSON", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders")}, "plain text", false},
		{"allowlist and AllowRaw, raw", []sqsconsumer.UnwrapOption{sqsconsumer.AllowTopics("arn:aws:sns:eu-west-1:123456789012:orders"), sqsconsumer.AllowRaw()}, `{"id":1}`, true},
		{"signatures, raw", []sqsconsumer.UnwrapOption{sqsconsumer.VerifySignatures(&envelope.Verifier{})}, `{"id":1}`, false},
		{"signatures and AllowRaw, raw", []sqsconsumer.UnwrapOption{sqsconsumer.VerifySignatures(&envelope.Verifier{}), sqsconsumer.AllowRaw()}, `{"id":1}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &sqsconsumer.Message{}
			m.MessageId = aws.String("m-1")
			m.Body = aws.String(tc.body)
			err := sqsconsumer.Unwrap(tc.opts...)(ok)(context.Background(), m)
			switch {
			case tc.want && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.want && !errors.Is(err, sqsconsumer.ErrTopicNotAllowed):
				t.Fatalf("err = %v, want ErrTopicNotAllowed", err)
			}
		})
	}
}

// A second route for a key, or a nil handler, panics at registration (as http.ServeMux does)
// instead of silently sending the first route's messages to the second handler.
func TestRouterRefusesDuplicateRoutes(t *testing.T) {
	first := func(ctx context.Context, m *sqsconsumer.Message) error { return nil }
	second := func(ctx context.Context, m *sqsconsumer.Message) error { return errors.New("wrong handler") }
	mustPanic := func(name, want string, f func()) {
		t.Helper()
		defer func() {
			v := recover()
			if s, ok := v.(string); !ok || !strings.Contains(s, want) {
				t.Fatalf("%s: recovered %v, want a panic mentioning %q", name, v, want)
			}
		}()
		f()
	}
	r := sqsconsumer.NewRouter(sqsconsumer.ByAttribute("type")).Route("orders", first)
	mustPanic("duplicate", `Route("orders"): key already routed`, func() { r.Route("orders", second) })
	mustPanic("nil handler", "nil handler", func() { r.Route("refunds", nil) })

	m := &sqsconsumer.Message{}
	m.MessageAttributes = map[string]types.MessageAttributeValue{"type": {DataType: aws.String("String"), StringValue: aws.String("orders")}}
	if err := r.Handle(context.Background(), m); err != nil {
		t.Fatalf("the first route must stay: %v", err)
	}
	// A topic router's name and ARN are different keys: both may be routed.
	sqsconsumer.NewTopicRouter().Route("orders", first).Route("arn:aws:sns:eu-west-1:123456789012:orders", second)
}

// traceHandler adds the ctx's trace value to each record, as a tracing slog.Handler would.
type traceHandler struct{ slog.Handler }

type traceKey struct{}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if v, ok := ctx.Value(traceKey{}).(string); ok {
		r.AddAttrs(slog.String("trace", v))
	}
	return h.Handler.Handle(ctx, r)
}

// Logging logs successes at Debug through the handler's ctx and leaves failures to the
// consumer, which logs each failed handler at Warn: under a consumer a failure is logged once,
// not once by the middleware and again by the consumer.
func TestLoggingLeavesFailuresToTheConsumer(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(traceHandler{slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})})
	fail := errors.New("refund service down")
	h := sqsconsumer.Logging(logger)(func(ctx context.Context, m *sqsconsumer.Message) error {
		if *m.Body == "bad" {
			return fail
		}
		return nil
	})
	m := &sqsconsumer.Message{}
	m.MessageId, m.Body = aws.String("m-1"), aws.String("good")
	ctx := context.WithValue(context.Background(), traceKey{}, "t-42")
	if err := h(ctx, m); err != nil {
		t.Fatal(err)
	}
	line := logs.String()
	for _, want := range []string{`"level":"DEBUG"`, `"message_id":"m-1"`, `"duration":`, `"trace":"t-42"`} {
		if !strings.Contains(line, want) {
			t.Fatalf("success log lacks %s: %s", want, line)
		}
	}
	logs.Reset()
	m.Body = aws.String("bad")
	if err := h(ctx, m); err != fail {
		t.Fatalf("the error must pass through as it is: %v", err)
	}
	if logs.Len() != 0 {
		t.Fatalf("Logging logged a failure: %s", logs.String())
	}

	// Under a consumer sharing the logger: one Warn line for the failure.
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		s.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("bad")})
		c, _ := sqsconsumer.New(s, url, sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
			return fail
		}, sqsconsumer.Logging(logger)), sqsconsumer.WithLogger(logger), sqsconsumer.WithWaitTime(time.Second),
			sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }))
		stop := running(t, c)
		advance(5 * time.Second)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if n := strings.Count(logs.String(), "refund service down"); n != 1 {
			t.Fatalf("the failure was logged %d times, want once:\n%s", n, logs.String())
		}
	})
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
