package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func semantic(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v
}

// Pins: payload edge cases reach args with the value as published (a JSON null, U+2028, HTML
// characters, deep nesting, surrounding whitespace), and a BOM-prefixed body stays a string.
func TestAttack5PayloadEdgeCases(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W}}")
	deep := strings.Repeat("[", 60) + "1" + strings.Repeat("]", 60)
	payloads := []string{`null`, "{\"s\":\"a\u2028b\u2029c\"}", `{"h":"<b>&amp;</b>"}`, deep, "\t [1, 2]\r\n", "\ufeff{\"bom\":1}", `{"a":1,"a":2}`, `-0`, `1E+2`}
	for _, p := range payloads {
		r.send(snsBody("arn:aws:sns:eu-west-1:1:orders", p))
	}
	r.run()
	r.until("all enqueued", func() bool { return r.b.enqueued.Load() == int64(len(payloads)) })
	r.stop()
	jobs := r.jobs("default")
	got := map[string]string{}
	for _, raw := range jobs {
		args := string(fields(t, raw)["args"])
		var f map[string]json.RawMessage
		json.Unmarshal([]byte(raw), &f)
		got[strings.TrimPrefix(string(f["sns_message_id"]), "")] = args
	}
	for _, p := range payloads {
		var idBuf strings.Builder
		enc := json.NewEncoder(&idBuf)
		enc.SetEscapeHTML(false) // the bridge writes the ids, like the payload, without HTML escapes
		enc.Encode("n-" + p)
		args, ok := got[strings.TrimSuffix(idBuf.String(), "\n")]
		if !ok {
			t.Errorf("payload %q: no job", p)
			continue
		}
		var want any
		if json.Valid([]byte(p)) {
			want = semantic(t, "["+p+"]")
		} else {
			want = []any{p}
		}
		if !reflect.DeepEqual(semantic(t, args), want) {
			t.Errorf("payload %q: args %s", p, args)
		}
		var c bytes.Buffer
		if json.Valid([]byte(p)) && json.Compact(&c, []byte("["+p+"]")) == nil && c.String() != args {
			t.Logf("payload %q: args bytes %s differ from the published %s (same value)", p, args, c.String())
		}
	}
}

// Pins: /metrics and /readyz scraped concurrently while Run handles messages: no data race.
func TestAttack5ConcurrentScrapesDuringRun(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W}}\nconcurrency: 8")
	srv := httptest.NewServer(r.b.Health())
	defer srv.Close()
	for i := 0; i < 200; i++ {
		r.send(snsBody("arn:aws:sns:eu-west-1:1:orders", `{"i":1}`))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, p := range []string{"/metrics", "/readyz"} {
					resp, err := srv.Client().Get(srv.URL + p)
					if err == nil {
						resp.Body.Close()
					}
				}
			}
		}()
	}
	r.run()
	r.until("200 enqueued", func() bool { return r.b.enqueued.Load() == 200 })
	close(stop)
	wg.Wait()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// Pins: retry 0 is written as 0; 1.5, "true" and "yes" are refused; an account-limited name
// route refuses a TopicArn with fewer parts.
func TestAttack5RetryConfigAndShortArn(t *testing.T) {
	base := "queues: [q]\nredis: {url: redis://x}\ntimestamps: seconds\nroutes: {t: {class: W, retry: %s}}"
	for _, bad := range []string{"1.5", `"true"`, "yes", "-1", "0x3", "[]"} {
		if _, err := ParseConfig([]byte(strings.Replace(base, "%s", bad, 1))); err == nil {
			t.Errorf("retry: %s accepted", bad)
		}
	}
	c, err := ParseConfig([]byte(strings.Replace(base, "%s", "0", 1)))
	if err != nil || c.Routes["t"].Retry == nil || c.Routes["t"].Retry.value() != 0 {
		t.Fatalf("retry: 0 -> %+v, %v", c, err)
	}
	rt := Route{Account: "1", Region: "r"}
	for _, arn := range []string{"arn:aws:sns:r:1", "orders", "", "arn:aws:sns:r:1:orders:extra"} {
		if rt.admits(arn) {
			t.Errorf("admits %q", arn)
		}
	}
}

// non_sns: a raw-delivery body (the publisher's own JSON) whose keys only differ in case from
// an SNS envelope's ("type", "topicArn", "message", "messageId") is not an SNS notification:
// SNS writes those keys capitalised. Go's case-insensitive field matching takes it for one, so
// non_sns is bypassed and the body's "message" field is enqueued instead of the body.
func TestAttack5RawBodyWithLowercaseEnvelopeKeysIsNotSNS(t *testing.T) {
	rs := startRedis(t)
	r := newBridgeRun(t, rs.addr(), "timestamps: seconds\nroutes: {orders: {class: W}}\nnon_sns: delete")
	r.send(`{"type":"Notification","topicArn":"arn:aws:sns:eu-west-1:1:orders","message":"inner","messageId":"app-1"}`)
	r.run()
	r.until("the body handled", func() bool { return r.b.enqueued.Load()+r.b.nonSNSDeleted.Load() == 1 })
	r.stop()
	if r.b.enqueued.Load() != 0 || r.b.nonSNSDeleted.Load() != 1 {
		t.Fatalf("a raw body with lowercase keys: enqueued %d (jobs %v), non-SNS deleted %d; want it handled by non_sns", r.b.enqueued.Load(), r.jobs("default"), r.b.nonSNSDeleted.Load())
	}
}
