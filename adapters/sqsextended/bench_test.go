package sqsextended

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/producer"
)

// The adapter's own cost around S3 (an in-memory store stands in for it): go test -run '^$'
// -bench . -benchmem ./adapters/sqsextended (from the repository root, in the workspace).

func BenchmarkFetch1MiB(b *testing.B) {
	payload := strings.Repeat("x", 1<<20)
	store := &memS3{objects: map[string]string{"b/k": payload}}
	body := Pointer{"b", "k"}.Body()
	h := Fetch(store)(func(_ context.Context, m *sqsconsumer.Message) error {
		if len(*m.Body) != len(payload) {
			b.Fatal("payload changed")
		}
		return nil
	})
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		m := &sqsconsumer.Message{}
		m.MessageId, m.Body = aws.String("id"), &body
		if err := h(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFetchPassThrough(b *testing.B) {
	h := Fetch(&memS3{})(func(context.Context, *sqsconsumer.Message) error { return nil })
	body := `{"order":42,"lines":["a","b"]}`
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m := &sqsconsumer.Message{}
		m.MessageId, m.Body = aws.String("id"), &body
		if err := h(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOffload300KiB(b *testing.B) {
	store := &memS3{}
	o, _ := NewOffloader(store, "b")
	m := producer.Message{Body: strings.Repeat("x", 300<<10)}
	ctx := context.Background()
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		store.objects = nil // keep memory flat
		if _, err := o.Offload(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
