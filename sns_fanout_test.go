package sqsconsumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/envelope"
)

// snsClient returns an SNS client of the running emulator (it serves SQS and SNS on one
// endpoint).
func snsClient(t *testing.T) *sns.Client {
	o := emulatorOptions(t)
	return sns.New(sns.Options{BaseEndpoint: o.BaseEndpoint, Region: o.Region, Credentials: o.Credentials})
}

// fanOut creates a topic and subscribes the queue at url to it, raw or enveloped.
func fanOut(t *testing.T, sc *sns.Client, qc *sqs.Client, url, topic string, raw bool) (topicArn string) {
	t.Helper()
	ctx := context.Background()
	out, err := sc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(topic)})
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	attrs, err := qc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	in := &sns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)])}
	if raw {
		in.Attributes = map[string]string{"RawMessageDelivery": "true"}
	}
	if _, err := sc.Subscribe(ctx, in); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return *out.TopicArn
}

// Notifications published through SNS and delivered by its fan-out (not hand-built envelopes):
// payload, subject and message attributes arrive intact through Unwrap and the topic router;
// a raw-delivery subscription passes the payload through as it was published; a topic outside
// the allowlist is refused (retried, never handled or deleted).
func TestEmulatorSNSFanOutThroughUnwrapAndTheRouter(t *testing.T) {
	qc := emulatorClient(t)
	sc := snsClient(t)
	ctx := context.Background()
	url := emuQueue(t, qc, nil)
	suffix := fmt.Sprint(queueSeq.Add(1))
	orders := fanOut(t, sc, qc, url, "orders-"+suffix, false)
	refunds := fanOut(t, sc, qc, url, "refunds-"+suffix, false)
	foreign := fanOut(t, sc, qc, url, "foreign-"+suffix, false)
	rawURL := emuQueue(t, qc, nil)
	rawTopic := fanOut(t, sc, qc, rawURL, "raw-"+suffix, true)

	const order = `{"id":9007199254740993,"items":["a","b"],"note":"caf\u00e9"}`
	publish := func(topic, subject, msg string, attrs map[string]snstypes.MessageAttributeValue) {
		t.Helper()
		in := &sns.PublishInput{TopicArn: &topic, Message: &msg, MessageAttributes: attrs}
		if subject != "" {
			in.Subject = &subject
		}
		if _, err := sc.Publish(ctx, in); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	publish(orders, "new order", order, map[string]snstypes.MessageAttributeValue{
		"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
	})
	publish(refunds, "", "plain text refund", nil)
	publish(foreign, "forged", `{"id":3}`, nil)
	publish(rawTopic, "", order, map[string]snstypes.MessageAttributeValue{
		"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
	})

	var mu sync.Mutex
	var got []string
	record := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
	router := sqsconsumer.NewTopicRouter().
		Route(orders, func(ctx context.Context, m *sqsconsumer.Message) error {
			env, _ := m.Envelope()
			if *m.Body != order {
				return fmt.Errorf("payload changed: %s", *m.Body)
			}
			if env.Subject != "new order" || env.Attributes["tenant"].Value != "acme" || env.TopicArn != orders {
				return fmt.Errorf("envelope fields lost: %+v", env)
			}
			record("orders")
			return nil
		}).
		Route(refunds, func(ctx context.Context, m *sqsconsumer.Message) error {
			if *m.Body != "plain text refund" {
				return fmt.Errorf("payload changed: %s", *m.Body)
			}
			record("refunds")
			return nil
		})
	c, _ := sqsconsumer.New(qc, url, sqsconsumer.Chain(router.Handle, sqsconsumer.Unwrap(sqsconsumer.AllowTopics(orders, refunds))),
		sqsconsumer.WithWaitTime(time.Second), sqsconsumer.WithBackoff(func(int) time.Duration { return time.Hour }), quiet,
		sqsconsumer.WithErrorHandler(func(error) {}))
	stop := running(t, c)
	eventually(t, 20*time.Second, "two notifications handled and the foreign one refused", func() bool {
		st := c.Stats()
		return st.Succeeded == 2 && st.Failed == 1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "orders,refunds" {
		t.Fatalf("handled %v", got)
	}
	if r := checkReportAddsUp(t, c); r.Succeeded != 2 || r.Failed != 1 {
		t.Fatalf("report %+v", r.Stats)
	}

	// Raw delivery: the body is the payload as published, with the attributes as SQS message
	// attributes; Unwrap passes it through (no guard), and the bytes are the published ones.
	var rawBody, rawTenant string
	rc, _ := sqsconsumer.New(qc, rawURL, sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
		env, err := m.Envelope()
		if err != nil || env.Kind != envelope.Raw {
			return errors.Join(errors.New("not raw"), err)
		}
		rawBody = *m.Body
		if v, ok := m.MessageAttributes["tenant"]; ok {
			rawTenant = aws.ToString(v.StringValue)
		}
		return nil
	}, sqsconsumer.Unwrap()), sqsconsumer.WithWaitTime(time.Second), quiet)
	stop = running(t, rc)
	eventually(t, 20*time.Second, "the raw delivery handled", func() bool { return rc.Stats().Succeeded == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if rawBody != order || rawTenant != "acme" {
		t.Fatalf("raw delivery: body %q tenant %q", rawBody, rawTenant)
	}
	var check struct {
		ID json.Number `json:"id"`
	}
	d := json.NewDecoder(strings.NewReader(rawBody))
	d.UseNumber()
	if err := d.Decode(&check); err != nil || check.ID != "9007199254740993" {
		t.Fatalf("the large integer did not arrive as published: %v %v", check, err)
	}
}

// A FIFO topic fans out to a FIFO queue: each group's notifications are handled in published
// order, unwrapped, one at a time.
func TestEmulatorSNSFIFOTopicKeepsGroupOrder(t *testing.T) {
	qc := emulatorClient(t)
	sc := snsClient(t)
	ctx := context.Background()
	url := emuQueue(t, qc, map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	suffix := fmt.Sprint(queueSeq.Add(1))
	out, err := sc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("events-" + suffix + ".fifo"),
		Attributes: map[string]string{"FifoTopic": "true", "ContentBasedDeduplication": "true"}})
	if err != nil {
		t.Fatalf("create FIFO topic: %v", err)
	}
	attrs, err := qc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)])}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	const perGroup = 10
	for i := range perGroup {
		for _, g := range []string{"a", "b"} {
			if _, err := sc.Publish(ctx, &sns.PublishInput{TopicArn: out.TopicArn, Message: aws.String(fmt.Sprintf("%s-%02d", g, i)), MessageGroupId: aws.String(g)}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}
	var mu sync.Mutex
	order := map[string][]string{}
	c, _ := sqsconsumer.New(qc, url, sqsconsumer.Chain(func(ctx context.Context, m *sqsconsumer.Message) error {
		env, err := m.Envelope()
		if err != nil || env.Kind != envelope.SNS || env.TopicArn != *out.TopicArn {
			return fmt.Errorf("not unwrapped from the topic: %+v %v", env, err)
		}
		mu.Lock()
		defer mu.Unlock()
		g, _, _ := strings.Cut(*m.Body, "-")
		order[g] = append(order[g], *m.Body)
		return nil
	}, sqsconsumer.Unwrap(sqsconsumer.AllowTopics(*out.TopicArn))), sqsconsumer.WithWaitTime(time.Second), quiet)
	stop := running(t, c)
	eventually(t, 30*time.Second, "every notification handled", func() bool { return c.Stats().Succeeded == 2*perGroup })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkReportAddsUp(t, c)
	for _, g := range []string{"a", "b"} {
		if !sort.StringsAreSorted(order[g]) || len(order[g]) != perGroup {
			t.Fatalf("group %s handled in order %v", g, order[g])
		}
	}
}
