package benchkit

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 50}, {0.99, 99}, {1, 100}} {
		if got := Percentile(s, tc.q); got != tc.want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}

func TestSpread(t *testing.T) {
	ratio, cv := Spread([]int{10, 10, 10})
	if ratio != 1 || cv != 0 {
		t.Errorf("even: %v %v", ratio, cv)
	}
	ratio, cv = Spread([]int{5, 15})
	if ratio != 1.0/3 || math.Abs(cv-0.5) > 1e-9 {
		t.Errorf("5, 15: %v %v", ratio, cv)
	}
}

type stampSender struct {
	mu     sync.Mutex
	bodies []string
}

func (s *stampSender) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, *in.MessageBody)
	return &sqs.SendMessageOutput{}, nil
}

func TestProduceAndDelays(t *testing.T) {
	s := &stampSender{}
	if err := Produce(context.Background(), s, "q", 5, 1000); err != nil {
		t.Fatal(err)
	}
	d := &Delays{Want: 5}
	seen := map[string]bool{}
	for _, body := range s.bodies {
		seq, _, _ := cutSeq(body)
		seen[seq] = true
		if _, ok := SentAt(body); !ok {
			t.Fatalf("body %q has no send time", body)
		}
		d.Start(body)
	}
	if len(seen) != 5 {
		t.Fatalf("bodies %q", s.bodies)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Done not closed after Want starts")
	}
	if _, ok := SentAt("12"); ok {
		t.Error("a body without a stamp parsed")
	}
}

func cutSeq(body string) (string, int, bool) {
	for i := range body {
		if body[i] == ' ' {
			n, err := strconv.Atoi(body[:i])
			return body[:i], n, err == nil
		}
	}
	return "", 0, false
}

func TestReceiveSignal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	r := &ReceiveSignal{Base: http.DefaultTransport}
	c := &http.Client{Transport: r}
	armed := r.Arm()
	req := func(target string) {
		q, _ := http.NewRequest(http.MethodPost, srv.URL, nil)
		q.Header.Set("X-Amz-Target", target)
		resp, err := c.Do(q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req("AmazonSQS.DeleteMessageBatch")
	select {
	case <-armed:
		t.Fatal("signalled by a delete")
	default:
	}
	req("AmazonSQS.ReceiveMessage")
	<-armed
	req("AmazonSQS.ReceiveMessage") // not armed: no second close
	c.CloseIdleConnections()
}
