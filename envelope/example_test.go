package envelope_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// A queue subscribed to a topic of another account receives a SubscriptionConfirmation.
// Confirm verifies it and only then requests its SubscribeURL from SNS.
func ExampleVerifier_Confirm() {
	var v envelope.Verifier // one per process: it caches certificates
	handle := func(ctx context.Context, body string) error {
		e, err := envelope.Parse(body)
		if err != nil {
			return err
		}
		switch {
		case e.Kind == envelope.SNSConfirmation && e.Type == envelope.TypeSubscriptionConfirmation:
			if e.TopicArn != "arn:aws:sns:eu-west-1:210987654321:orders" {
				return errors.New("not a topic we subscribe to")
			}
			return v.Confirm(ctx, e, &http.Client{Timeout: 10 * time.Second})
		case e.Kind == envelope.SNS:
			if err := v.Verify(ctx, e); err != nil {
				return err // errors.Is(err, envelope.ErrCertFetch) is worth a retry; the rest is not SNS's
			}
			log.Printf("order from %s: %s", e.Topic(), e.Payload)
			return nil
		}
		return errors.New("not from SNS")
	}
	_ = handle
}
