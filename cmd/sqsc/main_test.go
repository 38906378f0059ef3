package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

// fake is sqstest without a message move task, as the emulator is.
type fake struct{ *sqstest.Server }

func (fake) StartMessageMoveTask(context.Context, *sqs.StartMessageMoveTaskInput, ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
	return nil, &types.UnsupportedOperation{Message: aws.String("none")}
}

func sqsc(t *testing.T, s *sqstest.Server, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, func(endpoint, region string) (Client, error) {
		return fake{s}, nil
	})
	return out.String(), err
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
	for _, bad := range [][]string{{}, {"frobnicate"}, {"send"}, {"send", "-queue", url}, {"redrive", "-dlq", dlq}, {"peek", "-queue", url, "-n", "11"}} {
		if _, err := sqsc(t, s, "", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
