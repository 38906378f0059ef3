package benchkit

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestServeConsumer speaks the Fleet protocol with a child's side in this process.
func TestServeConsumer(t *testing.T) {
	spec, _ := json.Marshal(ConsumerSpec{Endpoint: "http://127.0.0.1:1", QueueURL: "q", Workload: "W1-noop-c64", Concurrency: 4})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- serveConsumer(string(spec), func(ctx context.Context, _ *sqs.Client, s ConsumerSpec, work func(string)) error {
			if s.QueueURL != "q" {
				t.Errorf("spec %+v", s)
			}
			work("1")
			work("2")
			<-ctx.Done()
			return nil
		}, inR, outW)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("child output ended: %v", lines.Err())
		}
		return lines.Text()
	}
	if l := next(); l != "ready" {
		t.Fatalf("first line %q", l)
	}
	io.WriteString(inW, "go\n")
	if a, b := next(), next(); a != "h 1" || b != "h 2" {
		t.Fatalf("handled lines %q %q", a, b)
	}
	io.WriteString(inW, "stop\n")
	l := next()
	var r childReport
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "r ")), &r); err != nil || r.Err != "" || r.First == 0 || r.Last < r.First {
		t.Fatalf("report %q: %v", l, err)
	}
	inW.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
