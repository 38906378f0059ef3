package envelope

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// genuine is a message SNS signed, from testdata/sns (see its README).
type genuine struct {
	name string
	body string
}

func genuineMessages(t *testing.T) []genuine {
	t.Helper()
	files, err := filepath.Glob("testdata/sns/messages/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no genuine messages: %v", err)
	}
	var out []genuine
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, genuine{strings.TrimSuffix(filepath.Base(f), ".json"), string(b)})
	}
	return out
}

// testdataFetcher serves testdata/sns/certs/<last path segment> and records what was asked.
type testdataFetcher struct {
	mu   sync.Mutex
	urls []string
}

func (f *testdataFetcher) fetch(_ context.Context, u string) ([]byte, error) {
	f.mu.Lock()
	f.urls = append(f.urls, u)
	f.mu.Unlock()
	p, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join("testdata/sns/certs", path.Base(p.Path)))
}

func TestVerifyGenuineMessages(t *testing.T) {
	f := &testdataFetcher{}
	v := &Verifier{Fetch: f.fetch}
	seen := map[string]bool{}
	for _, g := range genuineMessages(t) {
		e, err := Parse(g.body)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		wantKind := SNS
		if strings.Contains(g.name, "confirmation") {
			wantKind = SNSConfirmation
		}
		if e.Kind != wantKind {
			t.Fatalf("%s: kind %v, want %v", g.name, e.Kind, wantKind)
		}
		if err := v.Verify(context.Background(), e); err != nil {
			t.Errorf("%s: %v", g.name, err)
		}
		seen[e.Type+" v"+e.SignatureVersion] = true
	}
	for _, want := range []string{"Notification v1", "Notification v2", "SubscriptionConfirmation v1", "UnsubscribeConfirmation v2"} {
		if !seen[want] {
			t.Errorf("no genuine %s in testdata", want)
		}
	}
	for _, u := range f.urls {
		if strings.Contains(u, "?") {
			t.Errorf("fetched %s with a query", u)
		}
	}
	if len(f.urls) != 4 { // three files, one of them on two hosts: each fetched once
		t.Errorf("fetched %d certificates, want 4: %q", len(f.urls), f.urls)
	}
}

// TestVerifyGenuineTampered changes one character (at the start, middle and end) of every
// signed field of every genuine message, and adds or drops a notification's Subject: none
// verifies.
func TestVerifyGenuineTampered(t *testing.T) {
	v := &Verifier{Fetch: (&testdataFetcher{}).fetch}
	fields := map[string]func(e *Envelope) *string{
		"Message":      func(e *Envelope) *string { return &e.Payload },
		"MessageId":    func(e *Envelope) *string { return &e.MessageID },
		"Subject":      func(e *Envelope) *string { return &e.Subject },
		"Timestamp":    func(e *Envelope) *string { return &e.Timestamp },
		"TopicArn":     func(e *Envelope) *string { return &e.TopicArn },
		"Type":         func(e *Envelope) *string { return &e.Type },
		"SubscribeURL": func(e *Envelope) *string { return &e.SubscribeURL },
		"Token":        func(e *Envelope) *string { return &e.Token },
		"Signature":    func(e *Envelope) *string { return &e.Signature },
	}
	tampered := 0
	for _, g := range genuineMessages(t) {
		orig, _ := Parse(g.body)
		for name, field := range fields {
			s := *field(orig)
			if s == "" {
				continue
			}
			for _, i := range []int{0, len(s) / 2, len(s) - 1} {
				e := *orig
				*field(&e) = s[:i] + string(other(s[i])) + s[i+1:]
				if err := v.Verify(context.Background(), &e); err == nil {
					t.Errorf("%s: %s changed at %d verifies", g.name, name, i)
				}
				tampered++
			}
		}
		if orig.Kind == SNSConfirmation {
			continue // a confirmation signs no Subject
		}
		e := *orig
		e.hasSubject = !e.hasSubject
		if err := v.Verify(context.Background(), &e); err == nil {
			t.Errorf("%s: Subject presence flipped verifies", g.name)
		}
		tampered++
	}
	t.Logf("%d tampered messages refused", tampered)
}

// other returns a character unlike c, of the same class where the class has two.
func other(c byte) byte {
	switch {
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		return c + 1
	case c == '9':
		return '0'
	case c == 'z':
		return 'a'
	case c == 'Z':
		return 'A'
	}
	return 'x'
}

// TestVerifyGenuineConfirmationNotANotification checks that a genuine confirmation cannot be
// passed off as a notification (or the other way round): the Type is signed, and Verify
// checks that Kind and Type agree.
func TestVerifyGenuineConfirmationNotANotification(t *testing.T) {
	v := &Verifier{Fetch: (&testdataFetcher{}).fetch}
	for _, g := range genuineMessages(t) {
		e, _ := Parse(g.body)
		swapped := *e
		if e.Kind == SNS {
			swapped.Kind = SNSConfirmation
		} else {
			swapped.Kind = SNS
		}
		if err := v.Verify(context.Background(), &swapped); !errors.Is(err, ErrNotSigned) {
			t.Errorf("%s as %v: %v, want ErrNotSigned", g.name, swapped.Kind, err)
		}
	}
}
