package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/jobs"
	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Welcome struct {
	User string `json:"user"`
}

type Invoice struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
}

func TestEnqueueAndHandleByName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("jobs", nil)
		p, _ := producer.New(s, url)
		e := jobs.NewEnqueuer(p, nil)
		ctx := context.Background()
		if _, err := e.Enqueue(ctx, "welcome", Welcome{User: "ada"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Enqueue(ctx, "invoice", Invoice{ID: 7, Total: 12.5}, jobs.Delay(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Enqueue(ctx, "", Welcome{}); !errors.Is(err, producer.ErrInvalid) {
			t.Fatalf("empty name: %v", err)
		}
		// An unknown job and a malformed payload, sent by hand.
		for name, body := range map[string]string{"retired-job": "{}", "invoice": `{"id":"seven"}`} {
			s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body),
				MessageAttributes: map[string]types.MessageAttributeValue{jobs.NameAttribute: {DataType: aws.String("String"), StringValue: aws.String(name)}}})
		}
		p.Close(ctx)

		var mu sync.Mutex
		var got []string
		r := jobs.NewRegistry(nil)
		jobs.Register(r, "welcome", func(ctx context.Context, m *sqsconsumer.Message, w Welcome) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, "welcome "+w.User)
			return nil
		})
		jobs.Register(r, "invoice", func(ctx context.Context, m *sqsconsumer.Message, inv Invoice) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, "invoice")
			if inv.ID != 7 || inv.Total != 12.5 {
				t.Errorf("invoice %+v", inv)
			}
			return nil
		})
		var errs []error
		c, _ := sqsconsumer.New(s, url, func(ctx context.Context, m *sqsconsumer.Message) error {
			err := r.Handle(ctx, m)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		}, sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), sqsconsumer.WithWaitTime(time.Second))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- c.Run(runCtx) }()
		<-time.After(2 * time.Minute) // past the invoice's delay
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("handled %v", got)
		}
		var unknown, malformed int
		for _, err := range errs {
			var de *sqsconsumer.DecodeError
			switch {
			case errors.Is(err, jobs.ErrUnknownJob):
				unknown++
			case errors.As(err, &de):
				malformed++
			}
		}
		if unknown != 1 || malformed != 1 {
			t.Fatalf("errors %v", errs)
		}
		if st, _ := s.Stats(url); st.Deleted != 2 || st.InFlight != 2 {
			t.Fatalf("queue %+v: the unknown and malformed jobs must stay for the DLQ", st)
		}
	})
}

// jobMessage is a received message carrying the job called name.
func jobMessage(id, name, body string) *sqsconsumer.Message {
	m := &sqsconsumer.Message{}
	m.MessageId, m.Body = aws.String(id), aws.String(body)
	m.MessageAttributes = map[string]types.MessageAttributeValue{jobs.NameAttribute: {DataType: aws.String("String"), StringValue: aws.String(name)}}
	return m
}

// recoverString runs f and returns what it panicked with, as a string ("" if it did not).
func recoverString(f func()) (s string) {
	defer func() {
		if v := recover(); v != nil {
			s, _ = v.(string)
			if s == "" {
				s = "non-string panic"
			}
		}
	}()
	f()
	return ""
}

// A second handler for a job name panics at registration (as http.ServeMux does): replacing the
// first would have the second handle, and delete, the first one's jobs.
func TestRegisterRefusesDuplicates(t *testing.T) {
	r := jobs.NewRegistry(nil)
	var first, second int
	jobs.Register(r, "welcome", func(ctx context.Context, m *sqsconsumer.Message, w Welcome) error { first++; return nil })
	got := recoverString(func() {
		jobs.Register(r, "welcome", func(ctx context.Context, m *sqsconsumer.Message, inv Invoice) error { second++; return nil })
	})
	if !strings.Contains(got, `Register("welcome"): job already registered`) {
		t.Fatalf("duplicate: panic %q", got)
	}
	if got := recoverString(func() { jobs.Register[Welcome](r, "other", nil) }); !strings.Contains(got, "nil handler") {
		t.Fatalf("nil handler: panic %q", got)
	}
	if err := r.Handle(context.Background(), jobMessage("m-1", "welcome", `{"user":"ada"}`)); err != nil || first != 1 || second != 0 {
		t.Fatalf("Handle = %v; first %d, second %d: the first handler must stay", err, first, second)
	}
	err := r.Handle(context.Background(), jobMessage("m-2", "other", `{}`))
	if !errors.Is(err, jobs.ErrUnknownJob) {
		t.Fatalf("a refused registration must leave no handler: %v", err)
	}
	if mf := (*sqsconsumer.MessageFaultError)(nil); !errors.As(err, &mf) {
		t.Fatalf("an unknown job is not marked as the message's fault (it would open a breaker): %v", err)
	}
}

// Register may run while the consumer dispatches (go test -race): a job is unknown until its
// handler is registered and handled after, and of racing registrations of one name exactly one
// wins.
func TestRegisterConcurrentWithHandle(t *testing.T) {
	r := jobs.NewRegistry(nil)
	const names = 50
	var handled atomic.Int64
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			jobs.Register(r, fmt.Sprintf("job-%d", i), func(ctx context.Context, m *sqsconsumer.Message, w Welcome) error {
				handled.Add(1)
				return nil
			})
		})
	}
	var panics atomic.Int64
	for range 4 {
		wg.Go(func() {
			if recoverString(func() {
				jobs.Register(r, "contested", func(ctx context.Context, m *sqsconsumer.Message, w Welcome) error { return nil })
			}) != "" {
				panics.Add(1)
			}
		})
	}
	var dispatched atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			for i := range names {
				err := r.Handle(context.Background(), jobMessage(fmt.Sprint(g, i), fmt.Sprintf("job-%d", i), `{"user":"ada"}`))
				switch {
				case err == nil:
					dispatched.Add(1)
				case !errors.Is(err, jobs.ErrUnknownJob):
					t.Errorf("Handle: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if panics.Load() != 3 {
		t.Fatalf("%d of 4 racing registrations of one name panicked, want 3", panics.Load())
	}
	if handled.Load() != dispatched.Load() {
		t.Fatalf("handled %d, dispatched %d", handled.Load(), dispatched.Load())
	}
	for i := range names {
		if err := r.Handle(context.Background(), jobMessage("late", fmt.Sprintf("job-%d", i), `{}`)); err != nil {
			t.Fatalf("job-%d after every Register returned: %v", i, err)
		}
	}
}

// The default codec decodes a payload of the wrong shape into zero values; StrictJSON makes it
// a *sqsconsumer.DecodeError, the outcome the consumer retries and a redrive policy dead-letters.
func TestStrictJSONCodec(t *testing.T) {
	for _, tc := range []struct {
		body          string
		loose, strict bool // handled (true) or a DecodeError
	}{
		{`{"id":7,"total":12.5}`, true, true},
		{`{"id":7,"total":12.5,"currency":"EUR"}`, true, false},
		{`{"customer":"ada"}`, true, false}, // another job's payload: all zero values without strict
		{`null`, true, false},
		{`{"id":7} {"id":8}`, false, false},
		{`{"id":"seven"}`, false, false},
	} {
		for _, codec := range []jobs.Codec{jobs.JSON{}, jobs.StrictJSON{}} {
			_, strict := codec.(jobs.StrictJSON)
			want := tc.loose
			if strict {
				want = tc.strict
			}
			r := jobs.NewRegistry(codec)
			jobs.Register(r, "invoice", func(ctx context.Context, m *sqsconsumer.Message, inv Invoice) error { return nil })
			err := r.Handle(context.Background(), jobMessage("m-3", "invoice", tc.body))
			var de *sqsconsumer.DecodeError
			if want && err != nil || !want && (!errors.As(err, &de) || de.MessageID != "m-3") {
				t.Errorf("%T, %s: %v", codec, tc.body, err)
			}
		}
	}
	if body, err := (jobs.StrictJSON{}).Marshal(Invoice{ID: 1}); err != nil || body != `{"id":1,"total":0}` {
		t.Fatalf("Marshal = %s, %v", body, err)
	}
}
