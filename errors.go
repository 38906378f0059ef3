package sqsconsumer

import (
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// ErrAlreadyRun is returned by a second call to Run.
var ErrAlreadyRun = errors.New("sqsconsumer: Run called twice")

// fatal reports whether a receive error will not go away by retrying: the queue does not exist
// or the caller may not use it. Throttling, over-limit, KMS throttling, retry-quota exhaustion,
// server and network errors are all transient.
func fatal(err error) bool {
	var missing *types.QueueDoesNotExist
	if errors.As(err, &missing) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
		"AccessDenied", "AccessDeniedException", "KmsAccessDenied", "KMS.AccessDeniedException",
		"InvalidClientTokenId", "UnrecognizedClientException", "InvalidSecurity", "InvalidAddress",
		"SignatureDoesNotMatch", "MissingAuthenticationToken":
		return true
	}
	return false
}

// permanent reports whether a failed batch call would fail the same way again: the fatal
// errors, and requests SQS rejects as malformed.
func permanent(err error) bool {
	if fatal(err) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "InvalidParameterValue", "BatchEntryIdsNotDistinct", "TooManyEntriesInBatchRequest",
		"EmptyBatchRequest", "InvalidBatchEntryId", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
		"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest":
		return true
	}
	return false
}
