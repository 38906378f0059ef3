package sqsconsumer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// bodyInMemory is a per-call option of every ReceiveMessage the runner makes (a client that
// is not the SDK's, or a wrapper that does not pass options on, is unaffected; a generated
// mock is called without options): on the SDK's client the HTTP request body is handed to
// the HTTP client as a *bytes.Reader, read from the SDK's body before the request goes out. It can go once smithy-go's WriteTo after
// Close returns (0, nil).
//
// Why: the SDK (smithy-go's Request.Build) wraps a request body in a reader whose WriteTo
// returns io.EOF once the body was closed, and the SDK closes it as soon as Do returned the
// response headers. net/http flushes the headers of a body it does not know to be in memory
// before the body, writes the body straight to the connection, and then reads the body once
// more (through WriteTo) to check that nothing is left. When SQS answers before the
// transport's write goroutine got to that check, the check gets io.EOF from the closed body,
// the write goroutine takes it for a write error and closes the connection while the response
// body is still being read: the read fails with "use of closed network connection", which the
// SDK retries, so the messages of the first answer stay invisible for the visibility timeout,
// handled by no one. A *bytes.Reader body is written into the connection's buffer with the
// headers, and sent after the check, which it passes.
func bodyInMemory(o *sqs.Options) {
	if o.HTTPClient != nil {
		o.HTTPClient = inMemoryBody{next: o.HTTPClient}
	}
}

// inMemoryBody is the HTTP client bodyInMemory installs for one call.
type inMemoryBody struct{ next sqs.HTTPClient }

// Do sends req with its body read into memory. req is the SDK's own, built for this attempt,
// so it is changed in place.
func (c inMemoryBody) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	return c.next.Do(req)
}

// noRetryAfterSend is a per-call option of ReceiveMessage on a standard queue: an attempt that
// failed after its request went out and before an answer of SQS was read whole (a connection
// closed or reset, a response cut short, a deadline) is not retried by the SDK, and its error
// becomes a *sentReceiveError, which the runner counts (Stats.BrokenReceives). SQS may have
// handed that attempt messages: a retry would receive other ones while those stay invisible
// for the visibility timeout, seen by no one and counted nowhere. An error SQS answered with
// (throttling, ...) hands out nothing and is retried as before, and so is any answer with an
// HTTP status of 300 or more whose body did not parse (a load balancer's HTML 502/503); so is
// an attempt whose request never went out. A FIFO queue's retry reuses the ReceiveRequestAttemptId and gets the same
// messages back, so there the SDK keeps retrying.
func noRetryAfterSend(o *sqs.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		return s.Finalize.Insert(sentCheck{}, "Retry", middleware.After) // inside the retry loop: once per attempt
	})
}

// sentCheck is the middleware noRetryAfterSend adds after the SDK's retry middleware.
type sentCheck struct{}

func (sentCheck) ID() string { return "sqsconsumer.SentCheck" }

func (sentCheck) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	var sent atomic.Bool // the request went out whole, or an answer began
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
		GotFirstResponseByte: func() { sent.Store(true) },
	})
	out, md, err := next.HandleFinalize(ctx, in)
	var api smithy.APIError
	var resp *smithyhttp.ResponseError
	answered := errors.As(err, &resp) && resp.HTTPStatusCode() >= 300 // an error reply whose body did not parse (a proxy's HTML 503)
	if err != nil && sent.Load() && !errors.As(err, &api) && !answered {
		err = &sentReceiveError{err: err}
	}
	return out, md, err
}

// sentReceiveError is the error of a ReceiveMessage attempt that failed after its request was
// sent, with no answer of SQS read: see noRetryAfterSend.
type sentReceiveError struct{ err error }

func (e *sentReceiveError) Error() string {
	return "the receive failed after its request was sent, and messages SQS may have handed it come back after their visibility timeout: " + e.err.Error()
}

func (e *sentReceiveError) Unwrap() error { return e.err }

// RetryableError tells the SDK's retryer not to retry the attempt.
func (e *sentReceiveError) RetryableError() bool { return false }
