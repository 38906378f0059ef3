package queues_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/goleak"
	"go.uber.org/mock/gomock"

	"github.com/sqsconsumer/sqsconsumer/internal/mocks"
	"github.com/sqsconsumer/sqsconsumer/queues"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noMoveTask is sqstest without a message move task, as the emulator is.
type noMoveTask struct{ *sqstest.Server }

func (noMoveTask) StartMessageMoveTask(context.Context, *sqs.StartMessageMoveTaskInput, ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
	return nil, &types.UnsupportedOperation{Message: aws.String("no message move task here")}
}

func TestCreateWithDLQAndRedriveBack(t *testing.T) {
	ctx := context.Background()
	s := sqstest.New()
	url, dlq, err := queues.CreateWithDLQ(ctx, s, queues.Spec{Name: "orders", MaxReceiveCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		s.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprint("order-", i)),
			MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("order")}}})
	}
	// Fail every message twice: the redrive policy moves them all to the DLQ.
	for round := 0; round < 3; round++ {
		for {
			out, _ := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
			if len(out.Messages) == 0 {
				break
			}
			for _, m := range out.Messages {
				s.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
			}
		}
	}
	if st, _ := s.Stats(dlq); st.Visible != 25 {
		t.Fatalf("DLQ holds %+v", st)
	}
	dry, err := queues.Redrive(ctx, noMoveTask{s}, dlq, url, queues.RedriveOptions{DryRun: true})
	if err != nil || dry.Waiting != 25 || dry.Moved != 0 {
		t.Fatalf("dry run %+v %v", dry, err)
	}
	res, err := queues.Redrive(ctx, noMoveTask{s}, dlq, url, queues.RedriveOptions{Max: 12})
	if err != nil || !res.Fallback || res.Moved != 12 {
		t.Fatalf("bounded redrive %+v %v", res, err)
	}
	res, err = queues.Redrive(ctx, noMoveTask{s}, dlq, url, queues.RedriveOptions{})
	if err != nil || res.Moved != 13 {
		t.Fatalf("redrive %+v %v", res, err)
	}
	if st, _ := s.Stats(dlq); st.Visible+st.InFlight != 0 {
		t.Fatalf("DLQ after redrive %+v", st)
	}
	out, _ := s.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
	if len(out.Messages) == 0 || *out.Messages[0].MessageAttributes["kind"].StringValue != "order" {
		t.Fatalf("redriven messages lost their attributes: %+v", out.Messages)
	}
	if _, _, err := queues.CreateWithDLQ(ctx, s, queues.Spec{Name: "x.fifo"}); !errors.Is(err, queues.ErrInvalid) {
		t.Fatalf("bad spec: %v", err)
	}
	fifo, fifoDLQ, err := queues.CreateWithDLQ(ctx, s, queues.Spec{Name: "ledger", FIFO: true})
	if err != nil || fifo[len(fifo)-5:] != ".fifo" || fifoDLQ[len(fifoDLQ)-9:] != "-dlq.fifo" {
		t.Fatalf("FIFO pair %q %q %v", fifo, fifoDLQ, err)
	}
}

// Where SQS has the message move task, Redrive starts it and moves nothing itself.
func TestRedriveUsesTheMoveTask(t *testing.T) {
	ctrl := gomock.NewController(t)
	m := mocks.NewMockMover(ctrl)
	ctx := context.Background()
	attrs := func(k, v string) *sqs.GetQueueAttributesOutput {
		return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{k: v}}
	}
	gomock.InOrder(
		m.EXPECT().GetQueueAttributes(gomock.Any(), gomock.Any()).Return(attrs("ApproximateNumberOfMessages", "40"), nil),
		m.EXPECT().GetQueueAttributes(gomock.Any(), gomock.Any()).Return(attrs("QueueArn", "arn:aws:sqs:eu-west-1:1:dlq"), nil),
		m.EXPECT().GetQueueAttributes(gomock.Any(), gomock.Any()).Return(attrs("QueueArn", "arn:aws:sqs:eu-west-1:1:src"), nil),
		m.EXPECT().StartMessageMoveTask(gomock.Any(), gomock.Any()).DoAndReturn(
			func(_ context.Context, in *sqs.StartMessageMoveTaskInput, _ ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error) {
				if *in.SourceArn != "arn:aws:sqs:eu-west-1:1:dlq" || *in.DestinationArn != "arn:aws:sqs:eu-west-1:1:src" {
					t.Errorf("move task %s -> %s", *in.SourceArn, *in.DestinationArn)
				}
				return &sqs.StartMessageMoveTaskOutput{TaskHandle: aws.String("task-1")}, nil
			}),
	)
	res, err := queues.Redrive(ctx, m, "dlq", "src", queues.RedriveOptions{})
	if err != nil || res.TaskID != "task-1" || res.Waiting != 40 || res.Fallback {
		t.Fatalf("%+v %v", res, err)
	}

	// Any other failure of the move task is an error, not a silent fallback.
	m2 := mocks.NewMockMover(ctrl)
	m2.EXPECT().GetQueueAttributes(gomock.Any(), gomock.Any()).Return(attrs("ApproximateNumberOfMessages", "1"), nil)
	m2.EXPECT().GetQueueAttributes(gomock.Any(), gomock.Any()).Return(attrs("QueueArn", "a"), nil).Times(2)
	m2.EXPECT().StartMessageMoveTask(gomock.Any(), gomock.Any()).Return(nil, errors.New("AccessDenied"))
	if _, err := queues.Redrive(ctx, m2, "dlq", "src", queues.RedriveOptions{}); err == nil {
		t.Fatal("a failed move task was ignored")
	}
}
