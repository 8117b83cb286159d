// Package schedule holds Postback's retry schedule as pure functions: no clock, no
// timers, no I/O. The retry service asks Next what follows a failed attempt and
// publishes a delayed re-delivery; nothing here waits.
//
// The schedule, from the seed ("Postback retry mechanism") and docs/architecture.md, decision 7:
// a failed postback is retried up to 15 times, each delay counted from the end of
// the previous attempt:
//
//	retry  1– 3   +15 seconds each
//	retry  4– 5   +3 minutes each
//	retry  6– 8   +15 minutes each
//	retry  9–11   +2 hours each
//	retry 12–15   +6 hours each
//
// The 4xx rule: "Retry 1, 2, and 3 are skipped if the HTTP response code is in the
// range of 400 to 500." Decision 7 makes it exact: if the failed attempt's status
// is 400–500 inclusive and the next retry would be 1, 2 or 3, it becomes retry 4
// (with retry 4's delay). A transport error (no status) never jumps. After the last
// retry fails the delivery is dead; it can be replayed, but the schedule has no
// next step for it.
//
// Attempts are numbered as in the API: 0 is the first send, n is retry n. The
// schedule is configuration (POSTBACK_RETRY_SCHEDULE) so tests and demos can run it
// compressed (Scale) or shortened. For a schedule shorter than four retries the
// 4xx rule jumps to the last retry instead of to a retry that does not exist, so a
// 4xx still gets the slowest retry the operator configured rather than none.
package schedule

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// MaxEntries bounds the length of a parsed schedule.
const MaxEntries = 100

// Schedule is a retry schedule: Schedule[i] is the delay before retry i+1,
// counted from the end of the previous attempt. len(s) is the number of retries.
type Schedule []time.Duration

// jumpRetry is the retry that a 4xx-ish failure skips forward to (decision 7).
const jumpRetry = 4

// Default returns the seed's 15-step table.
func Default() Schedule {
	const (
		s15 = 15 * time.Second
		m3  = 3 * time.Minute
		m15 = 15 * time.Minute
		h2  = 2 * time.Hour
		h6  = 6 * time.Hour
	)
	return Schedule{s15, s15, s15, m3, m3, m15, m15, m15, h2, h2, h2, h6, h6, h6, h6}
}

// Parse reads a schedule in the POSTBACK_RETRY_SCHEDULE format: comma-separated
// Go durations ("15s,15s,3m,2h"). Space around entries is ignored. An empty (or
// all-space) string means Default(). Every entry must be a valid duration greater
// than zero, and there may be at most MaxEntries of them. Errors name the bad
// entry and its 1-based position.
func Parse(s string) (Schedule, error) {
	if strings.TrimSpace(s) == "" {
		return Default(), nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxEntries {
		return nil, fmt.Errorf("schedule: %d entries, at most %d allowed", len(parts), MaxEntries)
	}
	out := make(Schedule, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("schedule: entry %d is empty", i+1)
		}
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, fmt.Errorf("schedule: entry %d %q is not a duration (like 15s, 3m, 2h)", i+1, p)
		}
		if d <= 0 {
			return nil, fmt.Errorf("schedule: entry %d %q must be greater than zero", i+1, p)
		}
		out = append(out, d)
	}
	return out, nil
}

// Scale returns a copy of s with every delay multiplied by f, e.g. Scale(0.001)
// runs the seed's table (about 31 hours end to end) in under two minutes. Results
// are rounded to the nearest nanosecond, never below 1ns (a delay stays positive)
// and never above the largest time.Duration. f must be finite and greater than
// zero; anything else is a programming error and panics.
func (s Schedule) Scale(f float64) Schedule {
	if !(f > 0) || math.IsInf(f, 0) {
		panic(fmt.Sprintf("schedule: Scale factor must be finite and > 0, got %v", f))
	}
	out := make(Schedule, len(s))
	for i, d := range s {
		v := math.Round(float64(d) * f)
		switch {
		case v < 1:
			out[i] = 1
		case v >= math.MaxInt64:
			out[i] = time.Duration(math.MaxInt64)
		default:
			out[i] = time.Duration(v)
		}
	}
	return out
}

// Next decides what follows a failed attempt. attempt is the failed attempt's
// number (0 = first send, n = retry n); status is its HTTP status, 0 when there
// was none (a transport error).
//
// It returns the retry to schedule and its delay, counted from the end of the
// failed attempt, or ok=false when there is no next retry (the last retry has
// failed, or attempt is negative): the delivery is dead.
//
// If status is 400–500 inclusive and the next retry would be 1, 2 or 3, it
// becomes retry 4 (or the last retry, if the schedule has fewer than 4), and the
// delay is that retry's own delay.
func (s Schedule) Next(attempt int, status int) (retry int, delay time.Duration, ok bool) {
	if attempt < 0 {
		return 0, 0, false
	}
	retry = attempt + 1
	if skipsEarlyRetries(status) && retry < jumpRetry {
		retry = max(retry, min(jumpRetry, len(s)))
	}
	if retry > len(s) {
		return 0, 0, false
	}
	return retry, s[retry-1], true
}

// skipsEarlyRetries reports whether a failed attempt's status triggers the 4xx rule.
func skipsEarlyRetries(status int) bool {
	return status >= 400 && status <= 500
}

// String formats s in the form Parse reads, with compact durations
// ("15s,15s,15s,3m,3m,15m,…,6h"), so Parse(s.String()) equals s for any non-empty
// schedule. An empty schedule formats as "" (which Parse reads as Default()).
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = compact(d)
	}
	return strings.Join(parts, ",")
}

// compact drops the zero tails Duration.String adds: "3m0s" → "3m", "2h0m0s" → "2h".
func compact(d time.Duration) string {
	t := d.String()
	if strings.HasSuffix(t, "m0s") {
		t = strings.TrimSuffix(t, "0s")
		if strings.HasSuffix(t, "h0m") {
			t = strings.TrimSuffix(t, "0m")
		}
	}
	return t
}
