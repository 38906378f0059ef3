package sqsconsumer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

func TestErrorClassification(t *testing.T) {
	api := func(code string) error { return &smithy.GenericAPIError{Code: code} }
	cases := []struct {
		name             string
		err              error
		fatal, permanent bool
	}{
		{"queue does not exist", &types.QueueDoesNotExist{}, true, true},
		{"wrapped missing queue", fmt.Errorf("op: %w", &types.QueueDoesNotExist{}), true, true},
		{"query-protocol missing queue", api("AWS.SimpleQueueService.NonExistentQueue"), true, true},
		{"access denied", api("AccessDenied"), true, true},
		{"access denied exception", api("AccessDeniedException"), true, true},
		{"bad credentials", api("InvalidClientTokenId"), true, true},
		{"throttled", &types.RequestThrottled{}, false, false},
		{"throttling exception", api("ThrottlingException"), false, false},
		{"over limit", &types.OverLimit{}, false, false},
		{"KMS throttled", &types.KmsThrottled{}, false, false},
		{"retries exhausted", &retry.MaxAttemptsError{Attempt: 3, Err: &types.RequestThrottled{}}, false, false},
		{"server error", api("InternalFailure"), false, false},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, false},
		{"deadline", context.DeadlineExceeded, false, false},
		{"malformed batch", &types.BatchEntryIdsNotDistinct{}, false, true},
		{"too many entries", &types.TooManyEntriesInBatchRequest{}, false, true},
	}
	for _, tc := range cases {
		if got := fatal(tc.err); got != tc.fatal {
			t.Errorf("%s: fatal = %v, want %v", tc.name, got, tc.fatal)
		}
		if got := permanent(tc.err); got != tc.permanent {
			t.Errorf("%s: permanent = %v, want %v", tc.name, got, tc.permanent)
		}
	}
}
