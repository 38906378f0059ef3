// Package lease keeps received SQS messages invisible while they are held: one goroutine per
// consumer extends the visibility of every held message in ChangeMessageVisibilityBatch calls
// before it lapses, up to a cap on the total, and tells the holder when it can no longer keep
// a message, before its visibility lapses.
package lease

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer/internal/sqsbatch"
)

// Causes handed to Entry.Lost.
var (
	// ErrLost means SQS refused to extend the visibility (the receipt handle is invalid or
	// expired, the message is no longer in flight, or SQS's 12 h limit was hit), or the
	// visibility lapsed before an extension landed. Another consumer may receive the message.
	ErrLost = errors.New("sqsconsumer: lease lost")
	// ErrExpired means the lease reached its cap on total extension; the message becomes
	// visible again when its current visibility lapses.
	ErrExpired = errors.New("sqsconsumer: lease expired")
)

// maxExtendsOpen is how many ChangeMessageVisibilityBatch calls one tick makes at once.
const maxExtendsOpen = 16

// maxExtendCall bounds one extension call.
const maxExtendCall = 10 * time.Second

// SQSMaxTotal is SQS's limit on a message's visibility counted from its receipt.
const SQSMaxTotal = 12 * time.Hour

// Changer is the SQS call the lease makes.
type Changer interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Entry is one held message. The holder fills ReceiptHandle, MessageID and Lost, and keeps the
// Entry at a stable address from Add until Remove.
type Entry struct {
	ReceiptHandle string
	MessageID     string
	// Lost is called at most once, from the lease goroutine, when the lease gives the message
	// up; the cause is ErrLost or ErrExpired, wrapping SQS's reason where there is one.
	Lost func(cause error)

	receivedAt time.Time
	expires    time.Time // when the visibility lapses, as far as we know
	lost       bool
	cause      error // why it was lost: ErrLost or ErrExpired, possibly wrapped
	extending  bool  // an extension of it is in flight
	frozen     bool  // no longer extended (see Freeze)
}

// Manager holds the entries of one consumer. Create it with New and start Run on a goroutine.
type Manager struct {
	client     Changer
	queueURL   string
	visibility time.Duration
	maxTotal   time.Duration
	onError    func(error)
	extended   func(n int)
	called     func()

	poke chan struct{} // buffered 1: Add asks Run to look again (an earlier cap than it waits for)

	mu      sync.Mutex
	settled *sync.Cond // on mu: signalled when extensions in flight are answered
	entries map[*Entry]struct{}
	wake    time.Time // when Run next wakes unless poked; zero while it is not waiting (or not running)
}

// Config holds a Manager's settings.
type Config struct {
	Client     Changer
	QueueURL   string
	Visibility time.Duration // requested on receive, and by each extension; >= 1 s
	MaxTotal   time.Duration // cap on visibility since receipt; at most SQSMaxTotal
	OnError    func(error)   // a failed extension call (may be nil)
	Extended   func(n int)   // n visibilities extended (may be nil)
	Called     func()        // one ChangeMessageVisibilityBatch call made (may be nil)
}

// New returns a manager; it starts no goroutine.
func New(c Config) *Manager {
	m := &Manager{
		client: c.Client, queueURL: c.QueueURL, visibility: c.Visibility,
		maxTotal: min(c.MaxTotal, SQSMaxTotal), onError: c.OnError, extended: c.Extended, called: c.Called,
		entries: make(map[*Entry]struct{}), poke: make(chan struct{}, 1),
	}
	m.settled = sync.NewCond(&m.mu)
	return m
}

// Add starts covering e, received at receivedAt with the manager's visibility.
func (m *Manager) Add(e *Entry, receivedAt time.Time) {
	e.receivedAt = receivedAt
	e.expires = receivedAt.Add(m.visibility)
	m.mu.Lock()
	m.entries[e] = struct{}{}
	poke := m.wake.IsZero() || e.limit(m.maxTotal).Before(m.wake)
	m.mu.Unlock()
	if poke { // Run may wait past e's cap: have it look again
		select {
		case m.poke <- struct{}{}:
		default:
		}
	}
}

// limit is when e reaches the cap.
func (e *Entry) limit(maxTotal time.Duration) time.Time { return e.receivedAt.Add(maxTotal) }

// Remove stops covering e and returns why the lease had already given it up (ErrLost or
// ErrExpired, possibly wrapping SQS's reason), or nil when it had not, in which case the message
// is still the holder's to acknowledge or release. Once the visibility it knows of has lapsed,
// Remove returns ErrLost whatever the ticks saw: another consumer may have the message, and a
// delete SQS accepts now may be a superseded handle's.
//
// Remove blocks while an extension of e is in flight, so that whatever the holder asks of SQS
// next (a delete, a retry delay, a release) lands after it and is not overridden by it.
func (m *Manager) Remove(e *Entry) (cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, e)
	for e.extending {
		m.settled.Wait()
	}
	switch {
	case !time.Now().Before(e.expires): // lapsed, marked by a tick or not
		return ErrLost
	case e.lost:
		return e.cause
	}
	return nil
}

// Lost returns why the lease gave e up, or nil while e is still the holder's: covered and not
// lapsed. It does not block.
func (m *Manager) Lost(e *Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case e.lost:
		return e.cause
	case !time.Now().Before(e.expires):
		return ErrLost
	}
	return nil
}

// Freeze stops extending e but keeps covering it: its visibility is about to be set by the
// holder (a retry delay, a release), which an extension landing later would override. Lost
// reports it lost once the visibility it has now lapses. Freeze blocks while an extension of e
// is in flight.
func (m *Manager) Freeze(e *Entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for e.extending {
		m.settled.Wait()
	}
	e.frozen = true
}

// Len reports how many entries are covered.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Interval is how often Run looks for entries to extend: a quarter of the visibility. An entry
// is extended once at most half its visibility is left, so a failed extension is retried at
// the next tick, a quarter of the visibility before it lapses.
func (m *Manager) Interval() time.Duration { return max(m.visibility/4, 50*time.Millisecond) }

// Run extends visibilities until stop is closed. It blocks; run it on its own goroutine.
//
// Run wakes every Interval to extend the entries that are due, and in between at the earliest
// cap among the entries, so that an entry is given up when its cap is reached even when that
// is long before it is next due for extension (a cap below the visibility).
func (m *Manager) Run(stop <-chan struct{}) {
	interval := m.Interval()
	next := time.Now().Add(interval) // the next regular tick
	t := time.NewTimer(interval)
	defer t.Stop()
	now, regular := time.Now(), false // first pass: entries added before Run may be capped
	for {
		earliest := m.tick(now, regular)
		if regular {
			if next = next.Add(interval); !next.After(now) { // fell behind: do not catch up
				next = now.Add(interval)
			}
		}
		wake := next
		m.mu.Lock()
		if !earliest.IsZero() && earliest.Before(wake) {
			wake = earliest
		}
		m.wake = wake
		m.mu.Unlock()
		// An Add since tick's scan (which cleared m.wake) has poked; the channel holds the poke.
		t.Reset(time.Until(wake))
		select {
		case <-stop:
			return
		case <-m.poke:
			now, regular = time.Now(), false
		case now = <-t.C:
			regular = !now.Before(next)
		}
	}
}

type due struct {
	e       *Entry
	handle  string
	seconds int32
	until   time.Time
}

// tick gives up the entries that reached their cap and, on a regular tick, extends the entries
// that are due and gives up those that cannot be extended. It returns the earliest cap among
// the entries it leaves covered (zero if none).
func (m *Manager) tick(now time.Time, regular bool) (earliest time.Time) {
	var todo []due
	var gone []*Entry
	m.mu.Lock()
	m.wake = time.Time{} // until Run waits again, every Add pokes
	for e := range m.entries {
		if e.lost {
			continue
		}
		limit := e.limit(m.maxTotal)
		if !now.Before(e.expires) || !now.Before(limit) { // lapsed, or the cap is reached
			e.lost, e.cause = true, ErrExpired
			if !now.Before(e.expires) {
				e.cause = ErrLost
			}
			gone = append(gone, e)
			continue
		}
		if e.frozen {
			continue
		}
		if !regular || e.expires.Sub(now) > m.visibility/2 {
			if earliest.IsZero() || limit.Before(earliest) {
				earliest = limit
			}
			continue
		}
		until := now.Add(m.visibility)
		if limit.Before(until) {
			until = limit
		}
		if !until.After(e.expires) { // the cap is reached: give it up while it is still ours
			e.lost, e.cause = true, ErrExpired
			gone = append(gone, e)
			continue
		}
		secs := int32(math.Ceil(until.Sub(now).Seconds()))
		e.extending = true
		todo = append(todo, due{e: e, handle: e.ReceiptHandle, seconds: secs, until: now.Add(time.Duration(secs) * time.Second)})
		if earliest.IsZero() || limit.Before(earliest) {
			earliest = limit
		}
	}
	m.mu.Unlock()
	for _, e := range gone {
		e.Lost(e.cause)
	}
	// Batches go out together, at most maxExtendsOpen at once: sent one after the other, slow
	// calls would let the last batches lapse while the first are answered.
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxExtendsOpen)
	for len(todo) > 0 {
		n := min(10, len(todo))
		batch := todo[:n]
		todo = todo[n:]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			m.extend(batch)
		})
	}
	wg.Wait()
	return earliest
}

func (m *Manager) extend(batch []due) {
	defer func() { // after Lost was called for what SQS refused
		m.mu.Lock()
		for _, d := range batch {
			d.e.extending = false
		}
		m.settled.Broadcast()
		m.mu.Unlock()
	}()
	results := make([]sqsbatch.Result, len(batch))
	// One attempt: what fails is tried again at the next tick, while there is time. A call
	// may not take longer than a tick, nor hold up for long whoever waits on it (Remove, Freeze).
	policy := sqsbatch.Policy{Attempts: 1, Timeout: min(m.Interval(), maxExtendCall)}
	send := sqsbatch.ChangeVisibility(m.client, m.queueURL,
		func(i int) (*string, int32) { return aws.String(batch[i].handle), batch[i].seconds }, m.called)
	sqsbatch.Do(len(batch), policy, send, func(i int, r sqsbatch.Result) { results[i] = r })
	if err := results[0].Err; err != nil {
		// Nothing was extended; the next tick tries again, and an entry whose visibility lapses
		// meanwhile is given up then.
		if m.onError != nil {
			m.onError(errors.Join(errors.New("sqsconsumer: extend visibility"), err))
		}
		return
	}
	var lost []due
	var lostErr []error
	ok := 0
	m.mu.Lock()
	for i, d := range batch {
		if _, covered := m.entries[d.e]; !covered || d.e.lost {
			continue
		}
		r := results[i]
		switch {
		case r.OK:
			d.e.expires = d.until
			ok++
		case refused(r.Code):
			refusal := &RefusedError{Code: r.Code, Message: r.Message}
			d.e.lost, d.e.cause = true, refusal
			lost = append(lost, d)
			lostErr = append(lostErr, refusal)
		}
		// Any other failure is retried on the next tick.
	}
	m.mu.Unlock()
	if m.extended != nil && ok > 0 {
		m.extended(ok)
	}
	for i, d := range lost {
		d.e.Lost(lostErr[i])
	}
}

// RefusedError is SQS's reason for refusing an extension. It unwraps to ErrLost.
type RefusedError struct{ Code, Message string }

func (e *RefusedError) Error() string {
	return "sqsconsumer: lease lost: SQS refused the extension: " + e.Code + ": " + e.Message
}

// Unwrap returns ErrLost.
func (e *RefusedError) Unwrap() error { return ErrLost }

// refused reports whether an entry error code means the message is no longer ours to extend.
func refused(code string) bool {
	switch code {
	case "ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue",
		"AWS.SimpleQueueService.MessageNotInflight", "AWS.SimpleQueueService.ReceiptHandleIsInvalid":
		return true
	}
	return false
}
