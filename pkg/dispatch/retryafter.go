package dispatch

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After header value (RFC 9110, 10.2.3):
// either delta-seconds (a non-negative whole number of seconds) or an
// HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms
// http.ParseTime also reads), taken relative to now. A date in the past is
// a wait of 0. ok is false for an empty or malformed value, which callers
// treat as no Retry-After at all. The wait is not bounded here: the sender
// bounds it by the retry schedule.
func ParseRetryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		secs, err := strconv.ParseUint(v, 10, 63)
		if err != nil || secs > uint64(maxWait/time.Second) {
			return maxWait, true // only too many digits fail: the caller's bound applies
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := at.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// maxWait keeps huge delta-seconds from overflowing a Duration.
const maxWait = 100 * 365 * 24 * time.Hour

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// retryAfterOf is a 429 or 503 answer's Retry-After (0: none or another
// status).
func retryAfterOf(resp *http.Response, now time.Time) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	d, _ := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return d
}
