package delivery

import (
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
