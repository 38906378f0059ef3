package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/mock/gomock"

	"github.com/sqsconsumer/sqsconsumer/internal/mocks"
	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
)

// testTries is how many calls the test harvester lets carry a request before its keep says the
// message is no longer ours (the consumer's keep asks the lease instead).
const testTries = 4

// newTestHarvester builds a harvester of 10-entry batches on queue "q" that counts into stats
// and reports failures to onError; a request is retried until it has been sent testTries times.
func newTestHarvester(client Client, interval time.Duration, onError func(error), stats *counters) *harvester {
	var mu sync.Mutex
	tries := map[string]int{}
	return newHarvester(harvesterConfig{
		client: client, queueURL: "q", size: 10, interval: interval,
		requested: func(string) { stats.requests.Add(1) },
		keep: func(r ackReq) error {
			mu.Lock()
			defer mu.Unlock()
			if tries[r.id]++; tries[r.id] >= testTries {
				return errors.New("test: no longer ours")
			}
			return nil
		},
		settled: func(r ackReq, res sqsbatch.Result) bool {
			if res.OK {
				return r.kind == ackDelete
			}
			if r.kind == ackDelete {
				stats.ackFailed.Add(1)
			} else {
				stats.visibilityFailed.Add(1)
			}
			onError(&AckError{Op: r.kind.String(), MessageID: r.id, Code: res.Code, SenderFault: res.SenderFault, Err: res.Error()})
			return false
		},
		acked: func(n int) { stats.acked.Add(int64(n)) },
	})
}

// harvest runs a harvester on client, feeds it reqs, and closes it.
func harvest(t *testing.T, client Client, interval time.Duration, reqs []ackReq) (*counters, []error) {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	stats := &counters{}
	h := newTestHarvester(client, interval, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }, stats)
	go h.run()
	for _, r := range reqs {
		h.add(r)
	}
	h.close()
	return stats, errs
}

func deletes(n int) []ackReq {
	reqs := make([]ackReq, n)
	for i := range reqs {
		reqs[i] = ackReq{kind: ackDelete, id: fmt.Sprintf("m%d", i), handle: aws.String(fmt.Sprintf("h%d", i))}
	}
	return reqs
}

// entriesOK answers a DeleteMessageBatch with every entry successful, after checking that the
// entries are numbered by position.
func entriesOK(t *testing.T, sizes chan<- []string) func(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	return func(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
		if ctx.Err() != nil {
			t.Errorf("delete sent with a finished ctx: %v", ctx.Err())
		}
		var handles []string
		out := &sqs.DeleteMessageBatchOutput{}
		for i, e := range in.Entries {
			if *e.Id != strconv.Itoa(i) {
				t.Errorf("entry %d has id %q: ids must be positions", i, *e.Id)
			}
			handles = append(handles, *e.ReceiptHandle)
			out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
		}
		sizes <- handles
		return out, nil
	}
}

func TestHarvesterBatchesByTenWithPositionIds(t *testing.T) {
	ctrl := gomock.NewController(t)
	client := mocks.NewMockClient(ctrl)
	sizes := make(chan []string, 10)
	client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).DoAndReturn(entriesOK(t, sizes)).Times(3)
	stats, errs := harvest(t, client, time.Hour, deletes(25))
	close(sizes)
	var got []int
	seen := map[string]bool{}
	for handles := range sizes {
		got = append(got, len(handles))
		for _, h := range handles {
			seen[h] = true
		}
	}
	if len(seen) != 25 || stats.acked.Load() != 25 || len(errs) != 0 {
		t.Fatalf("batches %v, %d distinct handles, acked %d, errors %v", got, len(seen), stats.acked.Load(), errs)
	}
	if fmt.Sprint(got) != "[10 10 5]" && fmt.Sprint(got) != "[10 5 10]" && fmt.Sprint(got) != "[5 10 10]" {
		t.Fatalf("batch sizes %v, want two full batches and the final flush of 5", got)
	}
}

func TestHarvesterFlushesAfterInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctrl := gomock.NewController(t)
		client := mocks.NewMockClient(ctrl)
		sizes := make(chan []string, 1)
		client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).DoAndReturn(entriesOK(t, sizes))
		h := newTestHarvester(client, 100*time.Millisecond, func(error) {}, &counters{})
		go h.run()
		start := time.Now()
		for _, r := range deletes(3) {
			h.add(r)
		}
		handles := <-sizes
		if len(handles) != 3 || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("flushed %d after %v", len(handles), time.Since(start))
		}
		h.close()
	})
}

func TestHarvesterRetriesRetryableEntriesAndReportsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctrl := gomock.NewController(t)
		client := mocks.NewMockClient(ctrl)
		first := client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).DoAndReturn(
			func(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
				if len(in.Entries) != 3 {
					t.Errorf("first call with %d entries", len(in.Entries))
				}
				return &sqs.DeleteMessageBatchOutput{
					Successful: []types.DeleteMessageBatchResultEntry{{Id: aws.String("0")}},
					Failed: []types.BatchResultErrorEntry{
						{Id: aws.String("1"), Code: aws.String("InternalError"), SenderFault: false},
						{Id: aws.String("2"), Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true, Message: aws.String("bad handle")},
					},
				}, nil
			})
		client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).After(first.Call).DoAndReturn(
			func(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
				if len(in.Entries) != 1 || *in.Entries[0].ReceiptHandle != "h1" || *in.Entries[0].Id != "0" {
					t.Errorf("retry entries %+v, want only h1 renumbered as 0", in.Entries)
				}
				return &sqs.DeleteMessageBatchOutput{Successful: []types.DeleteMessageBatchResultEntry{{Id: aws.String("0")}}}, nil
			})
		stats, errs := harvest(t, client, time.Hour, deletes(3))
		if stats.acked.Load() != 2 || stats.ackFailed.Load() != 1 || len(errs) != 1 {
			t.Fatalf("acked %d failed %d errors %v", stats.acked.Load(), stats.ackFailed.Load(), errs)
		}
		var ae *AckError
		if !errors.As(errs[0], &ae) || ae.MessageID != "m2" || ae.Code != "ReceiptHandleIsInvalid" || !ae.SenderFault {
			t.Fatalf("reported %v", errs[0])
		}
	})
}

func TestHarvesterRetriesFailedCallsButNotPermanentOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctrl := gomock.NewController(t)
		client := mocks.NewMockClient(ctrl)
		transient := &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}
		gomock.InOrder(
			client.EXPECT().ChangeMessageVisibilityBatch(gomock.Any(), gomock.Any()).Return(nil, transient).Times(2),
			client.EXPECT().ChangeMessageVisibilityBatch(gomock.Any(), gomock.Any()).Return(&sqs.ChangeMessageVisibilityBatchOutput{
				Successful: []types.ChangeMessageVisibilityBatchResultEntry{{Id: aws.String("0")}}}, nil),
		)
		stats, errs := harvest(t, client, time.Hour, []ackReq{{kind: ackVisibility, id: "m", handle: aws.String("h"), seconds: 5}})
		if len(errs) != 0 || stats.visibilityFailed.Load() != 0 {
			t.Fatalf("transient call errors were not retried: %v", errs)
		}

		client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).Return(nil, &types.QueueDoesNotExist{}).Times(1)
		stats, errs = harvest(t, client, time.Hour, deletes(2))
		if len(errs) != 2 || stats.ackFailed.Load() != 2 {
			t.Fatalf("permanent error: %d reports, %d failed; want one per message, no retry", len(errs), stats.ackFailed.Load())
		}

		client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).Return(nil, transient).Times(testTries)
		_, errs = harvest(t, client, time.Hour, deletes(1))
		if len(errs) != 1 {
			t.Fatalf("after %d failed tries: %d reports", testTries, len(errs))
		}
	})
}

func TestHarvesterFinalFlushUsesAnUncancelledContext(t *testing.T) {
	ctrl := gomock.NewController(t)
	client := mocks.NewMockClient(ctrl)
	sizes := make(chan []string, 1)
	client.EXPECT().DeleteMessageBatch(gomock.Any(), gomock.Any()).DoAndReturn(entriesOK(t, sizes))
	// An hour-long interval: only the final flush can send these.
	stats, _ := harvest(t, client, time.Hour, deletes(4))
	if len(<-sizes) != 4 || stats.acked.Load() != 4 {
		t.Fatal("final flush did not send the waiting acks")
	}
}

func TestVisibilitySeconds(t *testing.T) {
	for d, want := range map[time.Duration]int32{
		-time.Second: 0, 0: 0, time.Nanosecond: 1, 1500 * time.Millisecond: 2, 13 * time.Hour: 43200,
	} {
		if got := visibilitySeconds(d); got != want {
			t.Errorf("visibilitySeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
