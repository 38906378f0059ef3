package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// noRetryAfterSend stops the SDK's retries only for an attempt whose request went out and
// whose answer was not read whole; an error SQS answered with, and a request that never went
// out, are retried as before.
func TestNoRetryAfterSend(t *testing.T) {
	var calls atomic.Int64
	answer := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		switch calls.Add(1) {
		case 1: // the server's error: SQS handed out nothing
			w.Header().Set("x-amzn-query-error", "InternalError;Receiver")
			w.WriteHeader(500)
			fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#InternalError","message":"boom"}`)
		default:
			fmt.Fprint(w, `{"Messages":[{"MessageId":"1","ReceiptHandle":"h","Body":"b","MD5OfBody":"92eb5ffee6ae2fec3ad71c777531578f"}]}`)
		}
	}
	cut := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("Content-Length", "1000")
		fmt.Fprint(w, `{"Messages":[{"MessageId":"1",`) // and the connection closes: the answer is cut short
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	receive := func(t *testing.T, endpoint string) (int, error) {
		t.Helper()
		calls.Store(0)
		client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: aws.AnonymousCredentials{}})
		_, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(endpoint + "/000000000000/q")}, noRetryAfterSend)
		return int(calls.Load()), err
	}

	t.Run("error answered", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(answer))
		defer srv.Close()
		n, err := receive(t, srv.URL)
		if err != nil || n != 2 {
			t.Fatalf("%d requests, %v; want the 500 retried and the retry's messages", n, err)
		}
	})
	t.Run("answer cut short", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(cut))
		defer srv.Close()
		n, err := receive(t, srv.URL)
		if !errors.As(err, new(*sentReceiveError)) || n != 1 {
			t.Fatalf("%d requests, %v; want one, failing with a *sentReceiveError", n, err)
		}
	})
	t.Run("never sent", func(t *testing.T) {
		n, err := receive(t, closedPort(t))
		if !errors.As(err, new(*retry.MaxAttemptsError)) || errors.As(err, new(*sentReceiveError)) {
			t.Fatalf("%v; want a connection error the SDK retried, not a *sentReceiveError", err)
		}
		if n != 0 {
			t.Fatalf("%d requests reached no server?", n)
		}
	})
}
