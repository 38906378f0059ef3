package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// failingCredentials is a credentials provider that cannot provide any.
type failingCredentials struct{}

func (failingCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{}, errors.New("no credentials in this environment")
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// sdkError makes one real ReceiveMessage call with the SDK configured by o (one attempt, no
// SDK retries) and returns its error, so that classification is tested on the errors the SDK
// really returns, not on hand-made look-alikes.
func sdkError(t *testing.T, o sqs.Options) error {
	t.Helper()
	o.RetryMaxAttempts = 1
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: tr}
	}
	url := "http://127.0.0.1:1/000000000000/q"
	_, err := sqs.New(o).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1})
	if err == nil {
		t.Fatal("the call succeeded")
	}
	return err
}

func TestClassifySDKErrors(t *testing.T) {
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices the client going away only then
		<-r.Context().Done()
	}))
	defer hanging.Close()
	serverError := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("x-amzn-query-error", "InternalError;Receiver")
		w.WriteHeader(500)
		fmt.Fprint(w, `{"__type":"com.amazonaws.sqs#InternalError","message":"boom"}`)
	}))
	defer serverError.Close()
	anon := aws.AnonymousCredentials{}
	cases := []struct {
		name string
		o    sqs.Options
		want failure
		hint string
	}{
		{"no region, no endpoint", sqs.Options{Credentials: anon}, fatalFailure, "region"},
		{"invalid region", sqs.Options{Region: "us east 1", Credentials: anon}, fatalFailure, "region"},
		{"credentials that cannot be had", sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(closedPort(t)), Credentials: failingCredentials{}}, setupFailure, "credentials"},
		{"connection refused", sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(closedPort(t)), Credentials: anon}, setupFailure, "no connection"},
		{"HTTP client timeout", sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(hanging.URL), Credentials: anon,
			HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}}, misconfigured, "WithWaitTime"},
		{"server error", sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(serverError.URL), Credentials: anon}, transient, ""},
	}
	for _, tc := range cases {
		err := sdkError(t, tc.o)
		got, hint := classify(err, context.Background())
		if got != tc.want || !strings.Contains(hint, tc.hint) {
			t.Errorf("%s: classify(%v) = %v, %q; want %v with a hint naming %q", tc.name, err, got, hint, tc.want, tc.hint)
		}
	}
	hanging.CloseClientConnections()

	more := []struct {
		name string
		err  error
		want failure
	}{
		{"missing queue", &types.QueueDoesNotExist{}, fatalFailure},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDenied"}, fatalFailure},
		{"throttled", &types.RequestThrottled{}, transient},
		{"no such host", &smithy.OperationError{Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "sqs.nowhere.invalid", IsNotFound: true}}}, setupFailure},
		{"our own deadline", &smithy.OperationError{Err: context.DeadlineExceeded}, transient},
		{"client-side retry token", &smithy.OperationError{Err: errors.New("failed to get retry Send token, quota")}, transient},
		{"a fake's error", errors.New("boom"), transient},
	}
	for _, tc := range more {
		if got, _ := classify(tc.err, context.Background()); got != tc.want {
			t.Errorf("%s: classify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckClient(t *testing.T) {
	wait := DefaultWaitTime
	cases := []struct {
		name string
		o    sqs.Options
		wait time.Duration
		bad  string // "" when the client is fine
	}{
		{"no region, no endpoint", sqs.Options{}, wait, "no region"},
		{"endpoint without region (an emulator)", sqs.Options{BaseEndpoint: aws.String("http://127.0.0.1:4566")}, wait, ""},
		{"region, SDK's default HTTP client", sqs.Options{Region: "eu-west-1"}, wait, ""},
		{"5 s http.Client timeout", sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 5 * time.Second}}, wait, "at least 25s"},
		{"24 s http.Client timeout", sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 24 * time.Second}}, wait, "at least 25s"},
		{"25 s http.Client timeout", sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 25 * time.Second}}, wait, ""},
		{"5 s timeout, 0 s wait", sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 5 * time.Second}}, 0, ""},
		{"5 s timeout, 2 s wait", sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 5 * time.Second}}, 2 * time.Second, "at least 7s"},
		{"SDK's buildable client with 5 s", sqs.Options{Region: "eu-west-1", HTTPClient: timeoutClient(5 * time.Second)}, wait, "at least 25s"},
	}
	for _, tc := range cases {
		err := checkClient(sqs.New(tc.o), tc.wait)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: %v, want no error", tc.name, err)
		case tc.bad != "" && (!errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%s: %v, want an ErrInvalidOption saying %q", tc.name, err, tc.bad)
		}
	}
}

// timeoutClient is an HTTP client with the SDK BuildableClient's GetTimeout.
type timeoutClient time.Duration

func (c timeoutClient) Do(*http.Request) (*http.Response, error) { return nil, errors.New("unused") }
func (c timeoutClient) GetTimeout() time.Duration                { return time.Duration(c) }
