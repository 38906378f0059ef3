package sqsconsumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/logging"

	"github.com/sqsconsumer/sqsconsumer"
)

// lateCheck is an SDK HTTP client that makes, on every ReceiveMessage, the interleaving that
// lost a receive of 10 in the sqs2sidekiq daemon: net/http's write goroutine, having written
// the request body straight to the connection, checks for bytes past the ContentLength (a
// WriteTo on the body) only after SQS answered and the SDK closed the request body; and the
// caller reads the rest of the response body only after that check. On a loaded host this
// happens now and then; here it happens every time. The SDK's body answers a WriteTo after
// Close with io.EOF, the write goroutine takes it for a write error and closes the connection,
// and the response read fails with "use of closed network connection", which the SDK retries.
type lateCheck struct {
	next   *awshttp.BuildableClient
	closes sync.Map // *signalConn -> struct{}: connections closed
}

func newLateCheck() *lateCheck {
	lc := &lateCheck{}
	lc.next = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		dial := (&net.Dialer{Timeout: 5 * time.Second}).DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &signalConn{Conn: c, closed: make(chan struct{})}, nil
		}
	})
	return lc
}

func (lc *lateCheck) Do(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" || req.Body == nil || req.Body == http.NoBody {
		return lc.next.Do(req)
	}
	body := &lateCheckBody{ReadCloser: req.Body, ctx: req.Context(), closed: make(chan struct{}), checked: make(chan struct{})}
	req.Body = body // in place: the SDK closes this request's Body once Do returned
	var conn *signalConn
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { conn, _ = info.Conn.(*signalConn) },
	}))
	resp, err := lc.next.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &lateRead{ReadCloser: resp.Body, body: body, conn: conn, ctx: req.Context()}
	return resp, nil
}

// lateCheckBody is a request body whose WriteTo (net/http's check for bytes past the
// ContentLength) runs only after the SDK closed the body.
type lateCheckBody struct {
	io.ReadCloser
	ctx       context.Context
	closeOnce sync.Once
	closed    chan struct{}
	checked   chan struct{} // closed when WriteTo returned, with checkErr
	checkErr  error
}

func (b *lateCheckBody) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return b.ReadCloser.Close()
}

func (b *lateCheckBody) WriteTo(w io.Writer) (n int64, err error) {
	defer func() { b.checkErr = err; close(b.checked) }()
	select {
	case <-b.closed:
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	}
	if wt, ok := b.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{b.ReadCloser})
}

// lateRead is a response body read only after the request body's check returned and, when
// the check failed, after net/http closed the connection for it.
type lateRead struct {
	io.ReadCloser
	body *lateCheckBody
	conn *signalConn
	ctx  context.Context
	once sync.Once
}

func (r *lateRead) Read(p []byte) (int, error) {
	r.once.Do(func() {
		select {
		case <-r.body.checked:
		case <-r.ctx.Done():
			return
		}
		if r.body.checkErr != nil && r.conn != nil {
			select {
			case <-r.conn.closed:
			case <-r.ctx.Done():
			}
		}
	})
	return r.ReadCloser.Read(p)
}

type signalConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *signalConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// sendBodies puts n messages of about size bytes each on the queue: ten of them make a
// response larger than the 4 KB net/http reads with the headers.
func sendBodies(t *testing.T, client *sqs.Client, url string, n, size int) {
	t.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)),
				MessageBody: aws.String(strconv.Itoa(j) + " " + strings.Repeat("x", size))})
		}
		if _, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
}

// A receive's answer is read whole even when net/http's write goroutine runs late: the
// consumer's ReceiveMessage does not let it close the connection under the response (which
// the SDK retried, leaving the first answer's messages invisible, handled by no one, for the
// visibility timeout).
func TestEmulatorReceiveSurvivesALateRequestBodyCheck(t *testing.T) {
	direct := emulatorClient(t)
	url := emuQueue(t, direct, nil)
	const n = 30
	sendBodies(t, direct, url, n, 500)

	opts := emulatorOptions(t)
	lc := newLateCheck()
	opts.HTTPClient = lc
	var discards atomic.Int64
	opts.Logger = logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
		if strings.Contains(format, "failed to discard remaining HTTP response body") {
			discards.Add(1)
		}
	})
	var handled atomic.Int64
	all := make(chan struct{})
	c, err := sqsconsumer.New(sqs.New(opts), url, func(ctx context.Context, m *sqsconsumer.Message) error {
		if handled.Add(1) == n {
			close(all)
		}
		return nil
	}, sqsconsumer.WithConcurrency(10), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithVisibilityTimeout(time.Minute), quiet)
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	select {
	case <-all:
	case <-time.After(15 * time.Second):
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := c.Report()
	_, inFlight := counts(t, direct, url)
	t.Logf("sent %d, handled %d, in flight after Run %d; receives %d, receive errors %d; SDK 'failed to discard' warnings %d",
		n, handled.Load(), inFlight, r.Receives, r.ReceiveErrors, discards.Load())
	if handled.Load() != n || inFlight != 0 {
		t.Fatalf("handled %d of %d, %d left invisible after Run: a receive's answer was lost", handled.Load(), n, inFlight)
	}
	if d := discards.Load(); d != 0 {
		t.Errorf("the SDK failed to read %d responses whole", d)
	}
}

// cutOnce is an SDK HTTP client that cuts the first ReceiveMessage answer carrying messages
// short, as a connection reset in the middle of the response would.
type cutOnce struct {
	next *awshttp.BuildableClient
	done atomic.Bool
}

func (c *cutOnce) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil || req.Header.Get("X-Amz-Target") != "AmazonSQS.ReceiveMessage" || resp.ContentLength < 1000 || !c.done.CompareAndSwap(false, true) {
		return resp, err
	}
	resp.Body = &cutBody{ReadCloser: resp.Body, left: 100}
	return resp, nil
}

type cutBody struct {
	io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	n, err := b.ReadCloser.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// A receive whose answer is cut short after SQS handed it messages is not retried by the SDK
// (the retry would take ten more while those ten stay invisible, seen by no one): it is
// counted as a receive error and a broken receive, and logged once at Warn saying the
// messages come back after their visibility timeout. The consumer receives the rest.
func TestEmulatorReceiveCutShortIsCountedAndLogged(t *testing.T) {
	direct := emulatorClient(t)
	url := emuQueue(t, direct, nil)
	const n = 20
	sendBodies(t, direct, url, n, 100)

	opts := emulatorOptions(t)
	opts.HTTPClient = &cutOnce{next: awshttp.NewBuildableClient()}
	var logs logLines
	var handled atomic.Int64
	rest := make(chan struct{})
	c, err := sqsconsumer.New(sqs.New(opts), url, func(ctx context.Context, m *sqsconsumer.Message) error {
		if handled.Add(1) == n-10 {
			close(rest)
		}
		return nil
	}, sqsconsumer.WithConcurrency(10), sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithVisibilityTimeout(time.Minute), logs.logger(slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, c)
	select {
	case <-rest:
	case <-time.After(15 * time.Second):
		t.Error("the ten messages the cut receive did not take were not handled in 15 s")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r := c.Report()
	_, inFlight := counts(t, direct, url)
	warned := logs.with(t, "sqsconsumer: error")
	t.Logf("sent %d, handled %d, in flight after Run %d; receive errors %d, broken %d; %d logged", n, handled.Load(), inFlight, r.ReceiveErrors, r.BrokenReceives, len(warned))
	if r.ReceiveErrors != 1 || r.BrokenReceives != 1 {
		t.Errorf("receive errors %d, broken receives %d; want 1 and 1 (the SDK retried the cut receive?)", r.ReceiveErrors, r.BrokenReceives)
	}
	if handled.Load() != n-10 || inFlight != 10 {
		t.Errorf("handled %d, %d in flight after Run; want %d and the cut receive's 10", handled.Load(), inFlight, n-10)
	}
	if len(warned) != 1 || warned[0]["level"] != "WARN" || !strings.Contains(fmt.Sprint(warned[0]["error"]), "come back after their visibility timeout") {
		t.Errorf("logged %v; want one line at WARN saying the messages come back after their visibility timeout", warned)
	}
}
