package sqsconsumer

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// FuzzReceiveCount: the attribute comes from SQS; any text gives a count >= 1, and a valid
// positive number gives itself.
func FuzzReceiveCount(f *testing.F) {
	for _, s := range []string{"1", "7", "0", "-3", "", "x", "99999999999999999999", " 2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := &Message{}
		m.Attributes = map[string]string{"ApproximateReceiveCount": s, "MessageGroupId": s}
		n := m.ReceiveCount()
		if n < 1 {
			t.Fatalf("ReceiveCount(%q) = %d", s, n)
		}
		if v, err := strconv.Atoi(s); err == nil && v >= 1 && n != v {
			t.Fatalf("ReceiveCount(%q) = %d, want %d", s, n, v)
		}
		if m.GroupID() != s {
			t.Fatal("GroupID does not return the attribute")
		}
	})
}

// failingClient answers every batch call with the given failed entry ids.
type failingClient struct {
	Client
	ids []string
}

func (c failingClient) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	out := &sqs.DeleteMessageBatchOutput{}
	for _, id := range c.ids {
		out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: aws.String(id), Code: aws.String("X"), SenderFault: true})
	}
	return out, nil
}

// FuzzBatchEntryMapping: SQS's Failed entries name batch entries by the ids we sent; whatever
// ids come back (unknown, repeated, malformed), the harvester maps only real positions.
func FuzzBatchEntryMapping(f *testing.F) {
	f.Add(3, "0", "2", "9")
	f.Add(10, "-1", "10", "x")
	f.Add(1, "0", "0", "00")
	f.Fuzz(func(t *testing.T, n int, a, b, c string) {
		n = 1 + abs(n)%10
		h := newTestHarvester(failingClient{ids: []string{a, b, c}}, 0, func(error) {}, &counters{})
		batch := make([]ackReq, n)
		failed, err := h.call(ackDelete, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range failed {
			if i < 0 || i >= n {
				t.Fatalf("failed entry mapped to position %d of %d", i, n)
			}
		}
		if len(failed) > 3 {
			t.Fatalf("%d failures from 3 entries", len(failed))
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the most negative int
			return 0
		}
		return -n
	}
	return n
}
