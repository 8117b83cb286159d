package dispatch

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfterReadsSecondsAndDates(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		value string
		want  time.Duration
		ok    bool
	}{
		{"delta seconds", "120", 2 * time.Minute, true},
		{"zero seconds", "0", 0, true},
		{"space around", "  5 ", 5 * time.Second, true},
		{"IMF-fixdate ahead", "Sun, 06 Dec 2026 12:00:30 GMT", 30 * time.Second, true},
		{"RFC 850 date ahead", "Sunday, 06-Dec-26 12:01:00 GMT", time.Minute, true},
		{"asctime date ahead", "Sun Dec  6 12:00:10 2026", 10 * time.Second, true},
		{"a date in the past is no wait", "Sun, 06 Dec 2026 11:00:00 GMT", 0, true},
		{"huge delta seconds are held to a century", "99999999999999999999999", maxWait, true},
		{"empty is none", "", 0, false},
		{"negative seconds are malformed", "-5", 0, false},
		{"fractional seconds are malformed", "1.5", 0, false},
		{"a number with junk is malformed", "10s", 0, false},
		{"junk is malformed", "soon", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.value, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.value, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRetryAfterCountsOnlyWith429And503(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		status int
		want   time.Duration
	}{
		{http.StatusTooManyRequests, 7 * time.Second},
		{http.StatusServiceUnavailable, 7 * time.Second},
		{http.StatusOK, 0},
		{http.StatusInternalServerError, 0},
		{http.StatusMovedPermanently, 0},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Retry-After": {"7"}}}
		if got := retryAfterOf(resp, now); got != tc.want {
			t.Errorf("status %d: Retry-After %v, want %v", tc.status, got, tc.want)
		}
	}
}
