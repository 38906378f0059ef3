// Command fifo consumes a FIFO queue: the messages of one MessageGroupId are handled one at a
// time, in the order they were sent, while different groups run in parallel. It runs on an
// in-memory queue (sqstest), no AWS account needed:
//
//	go -C examples/fifo run .
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer"
	"github.com/sqsconsumer/sqsconsumer/sqstest"
)

func main() {
	if err := run(os.Stdout, 4, 6); err != nil {
		fmt.Fprintln(os.Stderr, "fifo:", err)
		os.Exit(1)
	}
}

// run sends perAccount events for each of accounts accounts (one group each), consumes them,
// and prints each account's events in the order they were handled.
func run(out io.Writer, accounts, perAccount int) error {
	ctx := context.Background()
	client := sqstest.New()
	url := client.MustCreateQueue("ledger.fifo", map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "true"})
	for i := 0; i < perAccount; i++ {
		for a := 0; a < accounts; a++ {
			account := fmt.Sprintf("acct-%d", a)
			if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url,
				MessageBody: aws.String(fmt.Sprintf("%s:event-%d", account, i)), MessageGroupId: aws.String(account)}); err != nil {
				return err
			}
		}
	}

	var mu sync.Mutex
	handled := map[string][]string{}
	failedOnce := false
	total := accounts * perAccount
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := sqsconsumer.New(client, url, func(ctx context.Context, m *sqsconsumer.Message) error {
		time.Sleep(time.Duration(1+len(*m.Body)%3) * time.Millisecond) // some work
		mu.Lock()
		defer mu.Unlock()
		if !failedOnce && strings.HasSuffix(*m.Body, "event-2") {
			// One failure: the rest of its group waits for its retry instead of overtaking it.
			failedOnce = true
			return sqsconsumer.RetryAfter(time.Second, errors.New("ledger busy"))
		}
		account := m.GroupID()
		handled[account] = append(handled[account], strings.TrimPrefix(*m.Body, account+":"))
		if total--; total == 0 {
			cancel()
		}
		return nil
	}, sqsconsumer.WithConcurrency(8), sqsconsumer.WithWaitTime(time.Second))
	if err != nil {
		return err
	}
	if err := c.Run(runCtx); err != nil {
		return err
	}
	accountsSeen := make([]string, 0, len(handled))
	for a := range handled {
		accountsSeen = append(accountsSeen, a)
	}
	sort.Strings(accountsSeen)
	for _, a := range accountsSeen {
		fmt.Fprintf(out, "%s: %s\n", a, strings.Join(handled[a], " "))
	}
	r := c.Report()
	fmt.Fprintf(out, "received %d, succeeded %d, failed and retried in order %d\n", r.Received, r.Succeeded, r.Failed)
	return nil
}
