package retry

import (
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/stream"
)

// The clock is the failure's own end time: Next is a pure function of the
// failed attempt, so the schedule is checked without waiting.
func TestNextRetryCountsFromTheEndOfTheFailedAttempt(t *testing.T) {
	end := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		attempt     int
		sent        int
		status      int
		wantRetry   int
		wantDelay   time.Duration
		wantDead    bool
		wantSentNow int
	}{
		{"a 503 on the first send is retry 1 after 15 s", 0, 0, 503, 1, 15 * time.Second, false, 1},
		{"a 404 on the first send jumps to retry 4 after 3 min", 0, 0, 404, 4, 3 * time.Minute, false, 1},
		{"a 500 on retry 2 jumps to retry 4", 2, 2, 500, 4, 3 * time.Minute, false, 3},
		{"a 501 on retry 2 is retry 3", 2, 2, 501, 3, 15 * time.Second, false, 3},
		{"a transport error on retry 8 is retry 9 after 2 h", 8, 8, 0, 9, 2 * time.Hour, false, 9},
		{"retry 14 failing leads to the last retry after 6 h", 14, 11, 503, 15, 6 * time.Hour, false, 12},
		{"retry 15 failing leaves the delivery dead", 15, 12, 503, 0, 0, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &stream.Failure{Job: delivery.Job{DeliveryID: "dlv_1", Attempt: c.attempt, Sent: c.sent,
				Slot: end.Add(-time.Second)}, StatusCode: c.status, Error: "boom", End: end}
			job, at, ok := Next(schedule.Default(), f)
			if c.wantDead {
				if ok {
					t.Fatalf("got retry %d, want dead", job.Attempt)
				}
				return
			}
			if !ok || job.Attempt != c.wantRetry || at != end.Add(c.wantDelay) || job.Scheduled != at {
				t.Fatalf("got retry %d at %s (ok %v), want retry %d at %s", job.Attempt, at, ok, c.wantRetry, end.Add(c.wantDelay))
			}
			if job.Sent != c.wantSentNow || !job.Slot.IsZero() || job.LastStatus != c.status || job.LastError != "boom" {
				t.Fatalf("job = %+v", job)
			}
		})
	}
}
