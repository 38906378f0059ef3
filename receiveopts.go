package sqsconsumer

import (
	"bytes"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// bodyInMemory is a per-call option of every ReceiveMessage: the HTTP request body is handed
// to the HTTP client as a *bytes.Reader, read from the SDK's body before the request goes out.
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
// and is changed in place: the SDK closes req.Body after Do, which must be the body sent.
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
