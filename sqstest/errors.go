package sqstest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The errors below are built as the SDK builds them from an SQS response: the typed error of the
// service model where there is one, its ErrorCode the code SQS sends in the x-amzn-query-error
// header (the SDK's ErrorCodeOverride), else a smithy.GenericAPIError. The exported methods wrap
// them with wrapErr as the SDK does, so errors.As finds the typed error and smithy.APIError.

func errNoQueue() error {
	return &types.QueueDoesNotExist{Message: ptr("The specified queue does not exist."),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.NonExistentQueue")}
}

func errHandleInvalid(msg string) error {
	return &types.ReceiptHandleIsInvalid{Message: ptr(msg), ErrorCodeOverride: ptr("ReceiptHandleIsInvalid")}
}

func errNotInflight(msg string) error {
	return &types.MessageNotInflight{Message: ptr(msg), ErrorCodeOverride: ptr("AWS.SimpleQueueService.MessageNotInflight")}
}

func errEmptyBatch() error {
	return &types.EmptyBatchRequest{Message: ptr("There should be at least one entry in the request."),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.EmptyBatchRequest")}
}

func errTooManyEntries(n int) error {
	return &types.TooManyEntriesInBatchRequest{Message: ptr(fmt.Sprintf("Maximum number of entries per request are 10. You have sent %d.", n)),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.TooManyEntriesInBatchRequest")}
}

func errIdsNotDistinct(id string) error {
	return &types.BatchEntryIdsNotDistinct{Message: ptr("Id " + id + " repeated."),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.BatchEntryIdsNotDistinct")}
}

func errBadEntryID(id string) error {
	return &types.InvalidBatchEntryId{Message: ptr("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long: " + strconv.Quote(id)),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.InvalidBatchEntryId")}
}

func errBatchTooLong(n int) error {
	return &types.BatchRequestTooLong{Message: ptr(fmt.Sprintf("Batch requests cannot be longer than %d bytes. You have sent %d bytes.", maxPayload, n)),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.BatchRequestTooLong")}
}

func errPurgeInProgress(url string) error {
	return &types.PurgeQueueInProgress{Message: ptr("Only one PurgeQueue operation on " + url + " is allowed every 60 seconds."),
		ErrorCodeOverride: ptr("AWS.SimpleQueueService.PurgeQueueInProgress")}
}

func errQueueExists(name string) error {
	return &types.QueueNameExists{Message: ptr("A queue already exists with the same name and a different value for attribute(s): " + name),
		ErrorCodeOverride: ptr("QueueAlreadyExists")}
}

func errAttrName(name string) error {
	return &types.InvalidAttributeName{Message: ptr("Unknown Attribute " + name + ".")}
}

func errAttrValue(format string, args ...any) error {
	return &types.InvalidAttributeValue{Message: ptr(fmt.Sprintf(format, args...))}
}

func errContents() error {
	return &types.InvalidMessageContents{Message: ptr("Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")}
}

func invalidParam(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func missingParam(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "MissingParameter", Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return "InternalError"
}

var requestIDs atomic.Int64

// wrapErr wraps err as the SDK returns a failed operation: a *smithy.OperationError around, for
// an error SQS answered, an *awshttp.ResponseError carrying the HTTP status and a request id,
// and for a ctx that ended, a *smithy.CanceledError. An error already wrapped, or nil, is
// returned as it is.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var opErr *smithy.OperationError
	if errors.As(err, &opErr) {
		return err
	}
	var api smithy.APIError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		var canceled *smithy.CanceledError
		if !errors.As(err, &canceled) {
			err = &smithy.CanceledError{Err: err}
		}
	case errors.As(err, &api):
		status := http.StatusBadRequest
		if api.ErrorFault() == smithy.FaultServer {
			status = http.StatusInternalServerError
		}
		var resp *smithyhttp.ResponseError
		if !errors.As(err, &resp) {
			id := fmt.Sprintf("00000000-0000-4000-a000-%012d", requestIDs.Add(1))
			hdr := http.Header{"X-Amzn-Requestid": {id}}
			err = &awshttp.ResponseError{RequestID: id, ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: hdr}}, Err: err}}
		}
	}
	return &smithy.OperationError{ServiceID: "SQS", OperationName: op, Err: err}
}

// paramCheck collects the required parameters a call left nil, as the SDK's validation does
// before sending anything.
type paramCheck struct{ errs smithy.InvalidParamsError }

func newParamCheck(context string) *paramCheck {
	return &paramCheck{errs: smithy.InvalidParamsError{Context: context}}
}

func (c *paramCheck) need(present bool, field string) {
	if !present {
		c.errs.Add(smithy.NewErrParamRequired(field))
	}
}

func (c *paramCheck) nested(name string, inner *paramCheck) {
	if inner.errs.Len() > 0 {
		c.errs.AddNested(name, inner.errs)
	}
}

func (c *paramCheck) attrs(name string, m map[string]types.MessageAttributeValue) {
	if m == nil {
		return
	}
	outer := newParamCheck("MessageBodyAttributeMap")
	for k, v := range m {
		inner := newParamCheck("MessageAttributeValue")
		inner.need(v.DataType != nil, "DataType")
		outer.nested(fmt.Sprintf("[%s]", k), inner)
	}
	c.nested(name, outer)
}

func (c *paramCheck) sysAttrs(name string, m map[string]types.MessageSystemAttributeValue) {
	if m == nil {
		return
	}
	outer := newParamCheck("MessageBodySystemAttributeMap")
	for k, v := range m {
		inner := newParamCheck("MessageSystemAttributeValue")
		inner.need(v.DataType != nil, "DataType")
		outer.nested(fmt.Sprintf("[%s]", k), inner)
	}
	c.nested(name, outer)
}

func (c *paramCheck) err() error {
	if c.errs.Len() == 0 {
		return nil
	}
	return c.errs
}

// validate checks in's required parameters as the SDK does for op; a nil in is checked as an
// empty input, as the SDK does.
func validate(op string, in any) error {
	c := newParamCheck(op + "Input")
	switch in := in.(type) {
	case *sqs.CreateQueueInput:
		c.need(in != nil && in.QueueName != nil, "QueueName")
	case *sqs.GetQueueUrlInput:
		c.need(in != nil && in.QueueName != nil, "QueueName")
	case *sqs.ReceiveMessageInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
	case *sqs.SendMessageInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.MessageBody != nil, "MessageBody")
		if in != nil {
			c.attrs("MessageAttributes", in.MessageAttributes)
			c.sysAttrs("MessageSystemAttributes", in.MessageSystemAttributes)
		}
	case *sqs.SendMessageBatchInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.Entries != nil, "Entries")
		if in != nil && in.Entries != nil {
			list := newParamCheck("SendMessageBatchRequestEntryList")
			for i, e := range in.Entries {
				ec := newParamCheck("SendMessageBatchRequestEntry")
				ec.need(e.Id != nil, "Id")
				ec.need(e.MessageBody != nil, "MessageBody")
				ec.attrs("MessageAttributes", e.MessageAttributes)
				ec.sysAttrs("MessageSystemAttributes", e.MessageSystemAttributes)
				list.nested(fmt.Sprintf("[%d]", i), ec)
			}
			c.nested("Entries", list)
		}
	case *sqs.DeleteMessageInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.ReceiptHandle != nil, "ReceiptHandle")
	case *sqs.DeleteMessageBatchInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.Entries != nil, "Entries")
		if in != nil && in.Entries != nil {
			list := newParamCheck("DeleteMessageBatchRequestEntryList")
			for i, e := range in.Entries {
				ec := newParamCheck("DeleteMessageBatchRequestEntry")
				ec.need(e.Id != nil, "Id")
				ec.need(e.ReceiptHandle != nil, "ReceiptHandle")
				list.nested(fmt.Sprintf("[%d]", i), ec)
			}
			c.nested("Entries", list)
		}
	case *sqs.ChangeMessageVisibilityInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.ReceiptHandle != nil, "ReceiptHandle")
	case *sqs.ChangeMessageVisibilityBatchInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.Entries != nil, "Entries")
		if in != nil && in.Entries != nil {
			list := newParamCheck("ChangeMessageVisibilityBatchRequestEntryList")
			for i, e := range in.Entries {
				ec := newParamCheck("ChangeMessageVisibilityBatchRequestEntry")
				ec.need(e.Id != nil, "Id")
				ec.need(e.ReceiptHandle != nil, "ReceiptHandle")
				list.nested(fmt.Sprintf("[%d]", i), ec)
			}
			c.nested("Entries", list)
		}
	case *sqs.GetQueueAttributesInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
	case *sqs.SetQueueAttributesInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
		c.need(in != nil && in.Attributes != nil, "Attributes")
	case *sqs.PurgeQueueInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
	case *sqs.DeleteQueueInput:
		c.need(in != nil && in.QueueUrl != nil, "QueueUrl")
	}
	return c.err()
}
