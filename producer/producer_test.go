package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"

	"github.com/sqsconsumer/sqsconsumer/producer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConcurrentSendsShareBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		p, err := producer.New(s, url)
		if err != nil {
			t.Fatal(err)
		}
		const n = 1000
		var wg sync.WaitGroup
		ids := sync.Map{}
		for i := 0; i < n; i++ {
			wg.Go(func() {
				id, err := p.Send(context.Background(), producer.Message{Body: fmt.Sprint("m", i)})
				if err != nil || id == "" {
					t.Errorf("send %d: %q %v", i, id, err)
				}
				ids.Store(id, true)
			})
		}
		wg.Wait()
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		count := 0
		ids.Range(func(any, any) bool { count++; return true })
		st, _ := s.Stats(url)
		if count != n || st.Visible != n {
			t.Fatalf("%d distinct ids, %d visible", count, st.Visible)
		}
		if perRequest := float64(n) / float64(p.Requests()); perRequest < 9.5 {
			t.Fatalf("%.2f messages per request (%d requests)", perRequest, p.Requests())
		}
	})
}

func TestSizeLimitFromTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", map[string]string{"MaximumMessageSize": "1024"})
		p, _ := producer.New(s, url, producer.WithBatchWindow(time.Second))
		if _, err := p.Send(context.Background(), producer.Message{Body: strings.Repeat("x", 1025)}); !errors.Is(err, producer.ErrTooLarge) {
			t.Fatalf("oversized: %v", err)
		}
		if s.Calls("SendMessageBatch") != 0 {
			t.Fatal("an oversized message reached SQS")
		}
		results := p.SendBatch(context.Background(), []producer.Message{
			{Body: strings.Repeat("a", 600)}, {Body: strings.Repeat("b", 600)}, {Body: strings.Repeat("c", 300)},
		})
		for i, r := range results {
			if r.Err != nil || r.MessageID == "" {
				t.Fatalf("message %d: %+v", i, r)
			}
		}
		// 600 + 600 > 1024: the first goes alone, the other two share a request.
		if calls := s.Calls("SendMessageBatch"); calls != 2 {
			t.Fatalf("%d requests, want 2", calls)
		}
		p.Close(context.Background())
	})
}

func TestPartialFailuresRetriedAndReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		var entries atomic.Int64
		s.SetFaults(sqstest.Faults{Entry: func(op, _ string) *types.BatchResultErrorEntry {
			switch n := entries.Add(1); {
			case n <= 3:
				return sqstest.EntryError("InternalError", false) // retried
			case n == 5:
				return sqstest.EntryError("InvalidMessageContents", true) // reported
			}
			return nil
		}})
		p, _ := producer.New(s, url, producer.WithMaxMessageSize(1<<18))
		var msgs []producer.Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, producer.Message{Body: fmt.Sprint(i)})
		}
		results := p.SendBatch(context.Background(), msgs)
		failed := 0
		for _, r := range results {
			var se *producer.SendError
			if errors.As(r.Err, &se) {
				failed++
				if se.Code != "InvalidMessageContents" || !se.SenderFault {
					t.Fatalf("reported %+v", se)
				}
			} else if r.Err != nil || r.MessageID == "" {
				t.Fatalf("result %+v", r)
			}
		}
		if st, _ := s.Stats(url); failed != 1 || st.Visible != 9 {
			t.Fatalf("%d failed, %d sent", failed, st.Visible)
		}
		p.Close(context.Background())
	})
}

func TestFIFOAndInvalidMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
		p, _ := producer.New(s, url)
		for name, m := range map[string]producer.Message{
			"no group": {Body: "x"},
			"delay":    {Body: "x", GroupID: "g", Delay: time.Second},
			"empty":    {GroupID: "g"},
		} {
			if _, err := p.Send(context.Background(), m); !errors.Is(err, producer.ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
		id1, err1 := p.Send(context.Background(), producer.Message{Body: "same", GroupID: "g"})
		id2, err2 := p.Send(context.Background(), producer.Message{Body: "same", GroupID: "g"})
		if err1 != nil || err2 != nil || id1 == "" || id2 == "" {
			t.Fatalf("%v %v", err1, err2)
		}
		if st, _ := s.Stats(url); st.Visible != 1 {
			t.Fatalf("dedup within the window: %d messages", st.Visible)
		}
		p.Close(context.Background())
		if _, err := p.Send(context.Background(), producer.Message{Body: "late", GroupID: "g"}); !errors.Is(err, producer.ErrClosed) {
			t.Fatalf("send after Close: %v", err)
		}
	})
}

func TestCloseFlushesAndNewValidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sqstest.New()
		url := s.MustCreateQueue("q", nil)
		p, _ := producer.New(s, url, producer.WithBatchWindow(time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := p.Send(ctx, producer.Message{Body: "waits for its batch"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("send whose ctx ends while it waits: %v", err)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Stats(url); st.Visible != 1 {
			t.Fatalf("Close lost the waiting message: %+v", st)
		}
	})
	for _, bad := range []func() (*producer.Producer, error){
		func() (*producer.Producer, error) { return producer.New(nil, "u") },
		func() (*producer.Producer, error) { return producer.New(sqstest.New(), " ") },
		func() (*producer.Producer, error) {
			return producer.New(sqstest.New(), "u", producer.WithBatchWindow(-1))
		},
		func() (*producer.Producer, error) {
			return producer.New(sqstest.New(), "u", producer.WithMaxMessageSize(10))
		},
	} {
		if _, err := bad(); !errors.Is(err, producer.ErrInvalidOption) {
			t.Errorf("New: %v", err)
		}
	}
}

// BenchmarkSend reports messages per SendMessageBatch request under concurrent load.
func BenchmarkSend(b *testing.B) {
	s := sqstest.New()
	url := s.MustCreateQueue("bench", nil)
	p, _ := producer.New(s, url)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Send(context.Background(), producer.Message{Body: "payload"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	p.Close(context.Background())
	b.ReportMetric(float64(b.N)/float64(max(p.Requests(), 1)), "msgs/request")
}
