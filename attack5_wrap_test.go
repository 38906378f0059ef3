package sqsconsumer_test

import (
	"context"
	"testing"
	"time"

	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sqsconsumer/sqsconsumer"
)

// tracedClient is how users commonly wrap the SDK client (tracing, metrics): it embeds
// *sqs.Client and overrides nothing, so every call still goes through the SDK's client.
type tracedClient struct{ *sqs.Client }

// The late request-body check e8ed900 fixed loses a receive's answer on any *sqs.Client that
// is not passed bare: a user's wrapper embedding *sqs.Client gets no per-call option, so the
// first answer's messages stay invisible for the visibility timeout, counted nowhere.
func TestAttack5EmulatorWrappedSDKClientSurvivesALateRequestBodyCheck(t *testing.T) {
	direct := emulatorClient(t)
	url := emuQueue(t, direct, nil)
	const n = 30
	sendBodies(t, direct, url, n, 500)

	opts := emulatorOptions(t)
	opts.HTTPClient = newLateCheck()
	var handled atomic.Int64
	all := make(chan struct{})
	c, err := sqsconsumer.New(tracedClient{sqs.New(opts)}, url, func(ctx context.Context, m *sqsconsumer.Message) error {
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
	if handled.Load() != n || inFlight != 0 {
		t.Fatalf("wrapped *sqs.Client: handled %d of %d, %d left invisible after Run; receive errors %d, broken %d: a receive's answer was lost, counted nowhere",
			handled.Load(), n, inFlight, r.ReceiveErrors, r.BrokenReceives)
	}
}
