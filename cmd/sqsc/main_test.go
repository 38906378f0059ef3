package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// fake is sqstest without a message move task, as the emulator is, and without ListQueues.
type fake struct{ *sqstest.Server }

func (fake) StartMessageMoveTask(context.Context, *sqs.StartMessageMoveTaskInput, ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
	return nil, &types.UnsupportedOperation{Message: aws.String("none")}
}

func (fake) ListQueues(context.Context, *sqs.ListQueuesInput, ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error) {
	return nil, &types.UnsupportedOperation{Message: aws.String("none")}
}

// result is what one sqsc invocation printed and returned, and what it connected with.
type result struct {
	out, errOut      string
	err              error
	endpoint, region string
	connected        bool
}

// invoke runs sqsc with args against c, with env as the environment.
func invoke(t *testing.T, c Client, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	var r result
	r.err = run(context.Background(), args, stdio{strings.NewReader(stdin), &out, &errOut}, func(k string) string { return env[k] },
		func(endpoint, region string) (Client, error) {
			r.endpoint, r.region, r.connected = endpoint, region, true
			return c, nil
		})
	r.out, r.errOut = out.String(), errOut.String()
	return r
}

func sqsc(t *testing.T, s *sqstest.Server, stdin string, args ...string) (string, error) {
	t.Helper()
	r := invoke(t, fake{s}, nil, stdin, args...)
	return r.out, r.err
}

func TestCommands(t *testing.T) {
	s := sqstest.New()
	url := s.MustCreateQueue("jobs", nil)
	dlq := s.MustCreateQueue("jobs-dlq", nil)

	out, err := sqsc(t, s, "", "send", "-queue", url, "one", "two")
	if err != nil || strings.Count(out, "sent ") != 2 {
		t.Fatalf("send: %q %v", out, err)
	}
	out, err = sqsc(t, s, "", "peek", "-queue", url, "-n", "5")
	if err != nil || !strings.Contains(out, ": one") || !strings.Contains(out, ": two") {
		t.Fatalf("peek: %q %v", out, err)
	}
	if st, _ := s.Stats(url); st.Visible != 2 {
		t.Fatalf("peek did not release: %+v", st)
	}
	out, err = sqsc(t, s, "", "stats", "-queue", url)
	if err != nil || !strings.Contains(out, "ApproximateNumberOfMessages ") || !strings.Contains(out, "QueueArn") {
		t.Fatalf("stats: %q %v", out, err)
	}
	if _, err := sqsc(t, s, "nope\n", "purge", "-queue", url); err == nil {
		t.Fatal("purge without confirmation went ahead")
	}
	if st, _ := s.Stats(url); st.Visible != 2 {
		t.Fatal("an unconfirmed purge deleted messages")
	}
	if out, err := sqsc(t, s, "jobs\n", "purge", "-queue", url); err != nil || !strings.Contains(out, "purged jobs") {
		t.Fatalf("purge: %q %v", out, err)
	}
	sqsc(t, s, "", "send", "-queue", dlq, "dead1", "dead2", "dead3")
	out, err = sqsc(t, s, "", "redrive", "-dlq", dlq, "-to", url, "-dry-run")
	if err != nil || !strings.Contains(out, "3 messages waiting") {
		t.Fatalf("dry run: %q %v", out, err)
	}
	out, err = sqsc(t, s, "", "redrive", "-dlq", dlq, "-to", url)
	if err != nil || !strings.Contains(out, "moved 3 of 3") {
		t.Fatalf("redrive: %q %v", out, err)
	}
	if st, _ := s.Stats(url); st.Visible != 3 {
		t.Fatalf("after redrive: %+v", st)
	}
}

// TestPeekVisibility: -visibility keeps what peek printed invisible instead of releasing it.
func TestPeekVisibility(t *testing.T) {
	s := sqstest.New()
	url := s.MustCreateQueue("jobs", nil)
	sqsc(t, s, "", "send", "-queue", url, "one")
	r := invoke(t, fake{s}, nil, "", "peek", "-queue", url, "-visibility", "5m")
	if r.err != nil || !strings.Contains(r.out, ": one") || !strings.Contains(r.errOut, "raises each message's receive count") {
		t.Fatalf("peek: %+v", r)
	}
	if st, _ := s.Stats(url); st.Visible != 0 || st.InFlight != 1 {
		t.Fatalf("peek -visibility 5m released the message: %+v", st)
	}
}

func TestUsage(t *testing.T) {
	s := fake{sqstest.New()}
	url := s.MustCreateQueue("jobs", nil)
	for _, args := range [][]string{{"-h"}, {"-help"}, {"help"}, {"send", "-h"}, {"help", "tail"}, {"-endpoint", "x", "list", "-help"}} {
		r := invoke(t, s, nil, "", args...)
		if r.err != nil && !errors.Is(r.err, flag.ErrHelp) || !strings.Contains(r.out, "usage: sqsc") || r.connected {
			t.Errorf("%q: err %v, connected %v, stdout %q", args, r.err, r.connected, r.out)
		}
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"send"}, {"send", "-queue", url}, {"send", "-bogus"},
		{"peek", "-queue", url, "-n", "11"}, {"peek", "-queue", url, "-visibility", "1500ms"},
		{"redrive", "-dlq", url}, {"redrive", "-queue", url, "-dlq", url, "-to", url}, // redrive has no -queue
		{"create"}, {"create", "a", "b"}, {"create", "-max-receives", "3", "a"}, {"create", "-dlq", "-max-receives", "0", "a"},
		{"list", "extra"}, {"tail", "-queue", url, "-wait", "21s"}, {"tail", "-queue", url, "-n", "-1"},
	} {
		r := invoke(t, s, nil, "", args...)
		if !errors.Is(r.err, errUsage) {
			t.Errorf("%q: err %v, want a usage error", args, r.err)
		}
		if r.out != "" {
			t.Errorf("%q printed to stdout: %q", args, r.out)
		}
	}
}

// TestGlobalFlags: -endpoint and -region are taken before or after the command, and default to
// the AWS environment variables; -queue defaults to SQS_QUEUE_URL.
func TestGlobalFlags(t *testing.T) {
	s := fake{sqstest.New()}
	url := s.MustCreateQueue("jobs", nil)
	env := map[string]string{"AWS_ENDPOINT_URL": "http://env", "AWS_REGION": "eu-west-1", "SQS_QUEUE_URL": url}
	for _, tc := range []struct {
		env              map[string]string
		args             []string
		endpoint, region string
	}{
		{nil, []string{"-endpoint", "http://a", "-region", "r1", "stats", "-queue", url}, "http://a", "r1"},
		{nil, []string{"stats", "-queue", url, "-endpoint", "http://b", "-region", "r2"}, "http://b", "r2"},
		{env, []string{"stats"}, "http://env", "eu-west-1"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://env", "AWS_ENDPOINT_URL_SQS": "http://sqs", "SQS_QUEUE_URL": url}, []string{"stats"}, "http://sqs", ""},
		{env, []string{"-endpoint", "http://a", "stats", "-region", "r3"}, "http://a", "r3"},
	} {
		r := invoke(t, s, tc.env, "", tc.args...)
		if r.err != nil || r.endpoint != tc.endpoint || r.region != tc.region {
			t.Errorf("%q with %v: endpoint %q region %q err %v; want %q %q", tc.args, tc.env, r.endpoint, r.region, r.err, tc.endpoint, tc.region)
		}
	}
}

// TestTailHoldsPastTheVisibility: on fake time, a tail without -delete keeps what it printed
// invisible for minutes (far past tailHold) by extending it, never receives it again, and
// releases it when stopped.
func TestTailHoldsPastTheVisibility(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("jobs", nil)
		sqsc(t, s, "", "send", "-queue", url, "one")
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"tail", "-queue", url}, stdio{strings.NewReader(""), &out, &errOut}, func(string) string { return "" },
				func(string, string) (Client, error) { return fake{s}, nil })
		}()
		time.Sleep(10 * tailHold)
		synctest.Wait()
		if st, _ := s.Stats(url); st.InFlight != 1 || st.Visible != 0 {
			t.Fatalf("after %v of tail: %+v", 10*tailHold, st)
		}
		if s.Calls("ChangeMessageVisibilityBatch") < 10 {
			t.Fatalf("%d extensions in %v", s.Calls("ChangeMessageVisibilityBatch"), 10*tailHold)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Stats(url); st.Visible != 1 || strings.Count(out.String(), "\n") != 1 || !strings.Contains(errOut.String(), "released 1 messages") {
			t.Fatalf("after Ctrl-C: %+v, printed %q, stderr %q", st, out.String(), errOut.String())
		}
		res, err := s.ReceiveMessage(context.Background(), receiveInput(url, 1, time.Minute, 0))
		if err != nil || len(res.Messages) != 1 || res.Messages[0].Attributes["ApproximateReceiveCount"] != "2" {
			t.Fatalf("received after the tail: %+v %v (want receive count 2: the tail's and this)", res, err)
		}
	})
}
