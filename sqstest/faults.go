package sqstest

import (
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// Throttled returns the error SQS answers a throttled call with (RequestThrottled), for
// Faults.Call.
func Throttled() error {
	return &types.RequestThrottled{Message: ptr("Rate exceeded"), ErrorCodeOverride: ptr("RequestThrottled")}
}

// ServerError returns an internal server error (InternalFailure), for Faults.Call.
func ServerError() error {
	return &smithy.GenericAPIError{Code: "InternalFailure", Message: "injected server error", Fault: smithy.FaultServer}
}

// EntryError returns a failed batch entry, for Faults.Entry. SQS sets senderFault false for
// failures worth retrying (e.g. "InternalError") and true for the caller's mistakes.
func EntryError(code string, senderFault bool) *types.BatchResultErrorEntry {
	return &types.BatchResultErrorEntry{Code: ptr(code), Message: ptr("injected " + code), SenderFault: senderFault}
}
