package delivery

import (
	"cmp"
	"slices"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// SameAttempt reports whether a and b are the same attempt (its number and start).
func SameAttempt(a, b *postbackv1.Attempt) bool {
	return a.GetNumber() == b.GetNumber() && a.GetStartTime().AsTime().Equal(b.GetStartTime().AsTime())
}

// Attempts is a delivery's attempts, oldest first: those moved to the
// ATTEMPTS stream, then the record's latest unless it is already there (a
// crash between moving it and writing its successor leaves it in both).
func Attempts(moved []*postbackv1.Attempt, last *postbackv1.Attempt) []*postbackv1.Attempt {
	if last == nil {
		return moved
	}
	for _, at := range moved {
		if SameAttempt(at, last) {
			return moved
		}
	}
	return append(moved, last)
}

// Merge is the attempts of several lists (the history store's, the
// ATTEMPTS stream's), each attempt once, oldest first (by start, then
// number).
func Merge(lists ...[]*postbackv1.Attempt) []*postbackv1.Attempt {
	var out []*postbackv1.Attempt
	for _, list := range lists {
		for _, at := range list {
			if !slices.ContainsFunc(out, func(o *postbackv1.Attempt) bool { return SameAttempt(o, at) }) {
				out = append(out, at)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b *postbackv1.Attempt) int {
		if c := a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetNumber(), b.GetNumber())
	})
	return out
}
