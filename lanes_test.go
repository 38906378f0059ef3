package sqsconsumer

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func TestOverflowDelayGrowsAndIsCapped(t *testing.T) {
	for count, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 4 * time.Second, 3: 16 * time.Second, 5: 256 * time.Second, 6: 15 * time.Minute, 1000: 15 * time.Minute} {
		if got := overflowDelay(count); got != want {
			t.Errorf("overflowDelay(%d) = %v, want %v", count, got, want)
		}
	}
}

func laneMsg(group string, receiveCount int) *Message {
	m := &Message{}
	m.Attributes = map[string]string{
		string(types.MessageSystemAttributeNameMessageGroupId):          group,
		string(types.MessageSystemAttributeNameApproximateReceiveCount): strconv.Itoa(receiveCount),
	}
	return m
}

// With a limit of 1 and a capacity of 20: one runs, one waits, a first delivery beyond that is
// handed back, a returning one waits up to a quarter of the capacity.
func TestLanesLimitWaitAndOverflow(t *testing.T) {
	l := newLanes(false, 1, 20)
	first := []*Message{laneMsg("t", 1), laneMsg("t", 1), laneMsg("t", 1)}
	start, overflow, refused := l.enter(first, false)
	if len(start) != 1 || len(overflow) != 1 || len(refused) != 0 || !start[0].lane {
		t.Fatalf("start %d overflow %d refused %d", len(start), len(overflow), len(refused))
	}
	var back []*Message
	for range 6 {
		back = append(back, laneMsg("t", 2))
	}
	_, overflow, _ = l.enter(back, false)
	if len(overflow) != 2 { // 1 waits already; returning ones wait up to 5 (a quarter of 20): 4 more
		t.Fatalf("returning overflow %d, want 2", len(overflow))
	}
	next, rest := l.leave(start[0], true)
	if next != first[1] || len(rest) != 0 || !next.lane {
		t.Fatalf("leave: next %v rest %d", next, len(rest))
	}
	if waiting := l.close(); len(waiting) != 4 {
		t.Fatalf("close returned %d waiting, want 4", len(waiting))
	}
	if _, _, refused := l.enter([]*Message{laneMsg("t", 1), laneMsg("", 1)}, false); len(refused) != 1 {
		t.Fatalf("closed lanes refused %d, want the one with a group", len(refused))
	}
}

// FIFO: a failure sends the rest of the lane back behind it.
func TestLanesFIFOFailureReleasesTheRest(t *testing.T) {
	l := newLanes(true, 0, 20)
	batch := []*Message{laneMsg("g", 1), laneMsg("g", 1), laneMsg("g", 1), laneMsg("h", 1)}
	start, overflow, _ := l.enter(batch, false)
	if len(start) != 2 || len(overflow) != 0 {
		t.Fatalf("start %d overflow %d", len(start), len(overflow))
	}
	next, rest := l.leave(batch[0], false)
	if next != nil || len(rest) != 2 {
		t.Fatalf("after a failed head: next %v, %d released, want none and 2", next, len(rest))
	}
}
