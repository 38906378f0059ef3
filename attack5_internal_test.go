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
