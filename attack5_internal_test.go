package sqsconsumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// A 503 answered whole (here by a front end, with a non-JSON body, as an ELB or proxy sends)
// hands out nothing: the SDK should retry it, and it must not be counted as a broken receive
// ("messages SQS may have handed it come back after their visibility timeout").
func TestAttack5ServiceUnavailableWithHTMLBodyIsNotABrokenReceive(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		status            int
	}{
		{"503 html", "text/html", "<html><body><h1>503 Service Unavailable</h1></body></html>", 503},
		{"502 html", "text/html", "<html><body>Bad Gateway</body></html>", 502},
		{"500 plain", "text/plain", "Internal Server Error", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if calls.Add(1) == 1 {
					w.Header().Set("Content-Type", tc.ctype)
					w.WriteHeader(tc.status)
					fmt.Fprint(w, tc.body)
					return
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				fmt.Fprint(w, `{"Messages":[{"MessageId":"1","ReceiptHandle":"h","Body":"b","MD5OfBody":"92eb5ffee6ae2fec3ad71c777531578f"}]}`)
			}))
			defer srv.Close()
			client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
			_, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.URL + "/000000000000/q")}, bodyInMemory, noRetryAfterSend)
			if errors.As(err, new(*sentReceiveError)) || err != nil || calls.Load() != 2 {
				t.Fatalf("%d requests, err %v; want a %d answered whole retried by the SDK (nothing was handed out), not a broken receive", calls.Load(), err, tc.status)
			}
		})
	}
}

// Pins: a long poll in flight at shutdown, through an *sqs.Client on a standard queue, is
// counted as abandoned, not as a receive error nor a broken receive, and Run returns promptly.
// And the same Consumer-level view of a 503 answered whole: it must not show as broken.
func TestAttack5ShutdownReceiveIsAbandonedNotBroken(t *testing.T) {
	var calls atomic.Int64
	inFlight := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		calls.Add(1)
		select {
		case inFlight <- struct{}{}:
		default:
		}
		<-r.Context().Done() // a long poll that never answers
	}))
	defer srv.Close()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
	c, err := New(client, srv.URL+"/000000000000/q", func(context.Context, *Message) error { return nil },
		WithConcurrency(1), WithWaitTime(20*time.Second), WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("no receive reached the server")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of shutdown")
	}
	r := c.Report()
	if r.BrokenReceives != 0 || r.ReceiveErrors != 0 || r.AbandonedReceives != 1 {
		t.Fatalf("receive errors %d, broken %d, abandoned %d; want 0, 0, 1", r.ReceiveErrors, r.BrokenReceives, r.AbandonedReceives)
	}
}

// Consumer-level consequence of the misclassification: one 503 answered whole (HTML, from a
// front end) shows in the Report as a broken receive, and the error handler is told messages
// may come back after their visibility timeout, though SQS handed out none.
func TestAttack5ConsumerCountsA503AsBroken(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			fmt.Fprint(w, "<html><body>503 Service Unavailable</body></html>")
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprint(w, `{"Messages":[]}`)
	}))
	defer srv.Close()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
	var reported atomic.Int64
	c, err := New(client, srv.URL+"/000000000000/q", func(context.Context, *Message) error { return nil },
		WithConcurrency(1), WithWaitTime(0), WithErrorHandler(func(err error) {
			if errors.As(err, new(*sentReceiveError)) {
				reported.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	cancel()
	<-done
	r := c.Report()
	if r.BrokenReceives != 0 || reported.Load() != 0 {
		t.Fatalf("a 503 answered whole: receive errors %d, broken receives %d, %d reported as 'messages come back after their visibility timeout'; want no broken receive (SQS handed out nothing; before d8f40fd the SDK retried it)", r.ReceiveErrors, r.BrokenReceives, reported.Load())
	}
}

// Pins: on a FIFO queue a receive whose answer is cut short is retried by the SDK with the
// same ReceiveRequestAttemptId, not counted as broken; the retry's messages are handled.
func TestAttack5FIFOCutAnswerIsRetriedWithSameAttemptID(t *testing.T) {
	var calls atomic.Int64
	var ids [3]atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		var in struct{ ReceiveRequestAttemptId string }
		_ = json.Unmarshal(b, &in)
		switch r.Header.Get("X-Amz-Target") {
		case "AmazonSQS.ReceiveMessage":
		default:
			fmt.Fprint(w, `{"Successful":[{"Id":"0"}],"Failed":[]}`)
			return
		}
		n := calls.Add(1)
		if n <= 3 {
			ids[n-1].Store(in.ReceiveRequestAttemptId)
		}
		switch n {
		case 1:
			w.Header().Set("Content-Length", "1000")
			fmt.Fprint(w, `{"Messages":[{"MessageId":"1",`)
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		case 2:
			fmt.Fprint(w, `{"Messages":[{"MessageId":"1","ReceiptHandle":"h","Body":"b","MD5OfBody":"92eb5ffee6ae2fec3ad71c777531578f","Attributes":{"MessageGroupId":"g"}}]}`)
		default:
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}})
	var handled atomic.Int64
	c, err := New(client, srv.URL+"/000000000000/q.fifo", func(context.Context, *Message) error { handled.Add(1); return nil },
		WithConcurrency(1), WithWaitTime(20*time.Second), WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() < 1 && time.Now().Before(deadline) {
		<-time.After(5 * time.Millisecond)
	}
	cancel()
	<-done
	r := c.Report()
	id1, _ := ids[0].Load().(string)
	id2, _ := ids[1].Load().(string)
	if handled.Load() != 1 || r.BrokenReceives != 0 || id1 == "" || id1 != id2 {
		t.Fatalf("handled %d, receive errors %d, broken %d, attempt ids %q %q; want the cut FIFO receive retried (by the SDK or the runner) with the same attempt id, not counted broken", handled.Load(), r.ReceiveErrors, r.BrokenReceives, id1, id2)
	}
}
