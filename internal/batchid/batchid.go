// Package batchid numbers the entries of SQS batch requests by position ("0".."9"), never by
// MessageId: a batch keyed by MessageId is rejected whole when one message shows up twice.
// The ids are shared, so numbering an entry allocates nothing.
package batchid

import "strconv"

var ids = func() (a [10]*string) {
	for i := range a {
		s := strconv.Itoa(i)
		a[i] = &s
	}
	return a
}()

// For returns the id of the entry at position i (0..9). The SDK only reads it.
func For(i int) *string { return ids[i] }

// Position returns the position an id names, and false for an id that names none.
func Position(id *string, entries int) (int, bool) {
	if id == nil {
		return 0, false
	}
	i, err := strconv.Atoi(*id)
	if err != nil || i < 0 || i >= entries || *id != *ids[min(i, len(ids)-1)] {
		return 0, false
	}
	return i, true
}
