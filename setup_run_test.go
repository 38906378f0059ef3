package sqsconsumer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// refusedEndpoint returns an SDK client for a loopback port nothing listens on, with one
// attempt per call (no SDK retries) and its own transport, closed when the test ends.
func refusedEndpoint(t *testing.T, httpClient func(http.RoundTripper) *http.Client) *sqs.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	if httpClient != nil {
		hc = httpClient(tr)
	}
	return sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1, HTTPClient: hc})
}

// realError returns the error a real SDK receive from a refused endpoint fails with.
func realError(t *testing.T) error {
	t.Helper()
	url := "http://127.0.0.1/000000000000/q"
	_, err := refusedEndpoint(t, nil).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url})
	if err == nil {
		t.Fatal("a receive from a closed port succeeded")
	}
	return err
}

// flaky is a Client whose receives succeed (empty) while ok says so and fail with err after.
type flaky struct {
	*sqstest.Server
	err      error
	ok       func(n int64) bool
	receives atomic.Int64
}

func (f *flaky) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if f.ok(f.receives.Add(1)) {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	return nil, f.err
}

func TestUnreachableEndpointEndsRunBeforeAnyReceive(t *testing.T) {
	refused := realError(t)
	synctest.Test(t, func(t *testing.T) {
		f := &flaky{Server: sqstest.New(), err: refused, ok: func(int64) bool { return false }}
		collect, reported := errorsTo(t)
		c, err := sqsconsumer.New(f, "http://127.0.0.1/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, collect)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Run(context.Background())
		took := time.Since(start)
		var op *net.OpError
		if !errors.As(err, &op) || !strings.Contains(err.Error(), "no connection could be made") {
			t.Fatalf("Run = %v; want the connection error with a hint", err)
		}
		if took < 10*time.Second || took > 40*time.Second {
			t.Errorf("Run gave up after %v; want after the 10 s of patience, soon after", took)
		}
		if r := c.Report(); !errors.Is(r.Err, op) || r.ReceiveErrors < 3 {
			t.Errorf("report: Err %v after %d receive errors", r.Err, r.ReceiveErrors)
		}
		if len(reported()) == 0 {
			t.Error("the failures before the last were not reported to the error handler")
		}
	})
}

func TestNetworkFailureAfterAReceiveIsRetried(t *testing.T) {
	refused := realError(t)
	synctest.Test(t, func(t *testing.T) {
		f := &flaky{Server: sqstest.New(), err: refused, ok: func(n int64) bool { return n == 1 }}
		c, err := sqsconsumer.New(f, "http://127.0.0.1/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run = %v; a network outage after receives had succeeded must be waited out", err)
		}
		if r := c.Report(); r.ReceiveErrors < 10 {
			t.Errorf("only %d receive errors in 5 minutes of outage", r.ReceiveErrors)
		}
	})
}

func TestTransientFailuresBetweenSetupFailuresKeepRunGoing(t *testing.T) {
	refused := realError(t)
	synctest.Test(t, func(t *testing.T) {
		// A throttle between refused connections breaks the streak: SQS answered.
		f := &flaky{Server: sqstest.New(), ok: func(int64) bool { return false }}
		var n atomic.Int64
		c, err := sqsconsumer.New(&alternating{f, refused, &n}, "http://127.0.0.1/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run = %v; want it to keep going while SQS answers every other receive", err)
		}
	})
}

// alternating fails receives with a refused connection and a throttle, in turn.
type alternating struct {
	*flaky
	refused error
	n       *atomic.Int64
}

func (a *alternating) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if a.n.Add(1)%2 == 0 {
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}
	}
	return nil, a.refused
}

func TestInvalidRegionEndsRunAfterThreeReceives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client := sqs.New(sqs.Options{Region: "us east 1", Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
		c, err := sqsconsumer.New(client, "https://sqs.us-east-1.amazonaws.com/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, quiet)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "AWS region") {
			t.Fatalf("Run = %v; want the endpoint error with a hint naming the region", err)
		}
		if r := c.Report(); r.ReceiveErrors != 3 || r.Requests != 3 {
			t.Errorf("%d receive errors, %d requests; want 3 of each", r.ReceiveErrors, r.Requests)
		}
	})
}

// wrapped hides an *sqs.Client behind a Client of its own, as instrumentation does, so New
// cannot look at its configuration.
type wrapped struct{ *sqs.Client }

func (w wrapped) Options() {} // not *sqs.Client's: New cannot see its options

func TestShortHTTPTimeoutBehindAWrapperEndsRunAtTheFirstReceive(t *testing.T) {
	// A long poll that the server holds until the client gives up, as SQS holds an empty one.
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices the client going away only then
		<-r.Context().Done()
	}))
	defer hanging.Close()
	defer hanging.CloseClientConnections()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := wrapped{sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(hanging.URL), Credentials: aws.AnonymousCredentials{},
		RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: tr, Timeout: 200 * time.Millisecond}})}
	c, err := sqsconsumer.New(client, hanging.URL+"/000000000000/q", func(context.Context, *sqsconsumer.Message) error { return nil }, quiet)
	if err != nil {
		t.Fatalf("New = %v; it cannot see through the wrapper", err)
	}
	err = c.Run(context.Background())
	if !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), "WithWaitTime") {
		t.Fatalf("Run = %v; want the HTTP timeout refused, saying what to set", err)
	}
	if r := c.Report(); r.Requests != 1 {
		t.Errorf("%d requests; want Run to end at the first", r.Requests)
	}
}

func TestNewAndGroupAddRefuseAClientThatCannotWork(t *testing.T) {
	h := func(context.Context, *sqsconsumer.Message) error { return nil }
	url := "https://sqs.eu-west-1.amazonaws.com/000000000000/q"
	cases := map[string]struct {
		client *sqs.Client
		says   string
	}{
		"no region":        {sqs.New(sqs.Options{}), "AWS_REGION"},
		"5 s HTTP timeout": {sqs.New(sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 5 * time.Second}}), "at least 25s"},
	}
	for name, tc := range cases {
		if _, err := sqsconsumer.New(tc.client, url, h); !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("New, %s: %v; want ErrInvalidOption saying %q", name, err, tc.says)
		}
		g, err := sqsconsumer.NewGroup()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Add(tc.client, url, h, sqsconsumer.Share{}); !errors.Is(err, sqsconsumer.ErrInvalidOption) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Group.Add, %s: %v; want ErrInvalidOption saying %q", name, err, tc.says)
		}
	}
	ok := sqs.New(sqs.Options{Region: "eu-west-1", HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if _, err := sqsconsumer.New(ok, url, h, sqsconsumer.WithWaitTime(0)); err != nil {
		t.Errorf("a 5 s timeout with short polls: %v", err)
	}
}
