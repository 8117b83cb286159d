package schedule

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// sends simulates a receiver that always answers status, and returns the attempt
// numbers sent (0 = first send) and the delay before each retry.
func sends(t *testing.T, s Schedule, status int) (attempts []int, delays []time.Duration) {
	t.Helper()
	attempt := 0
	attempts = append(attempts, attempt)
	for {
		retry, delay, ok := s.Next(attempt, status)
		if !ok {
			return attempts, delays
		}
		if retry <= attempt {
			t.Fatalf("Next(%d, %d) went backwards to retry %d", attempt, status, retry)
		}
		attempts = append(attempts, retry)
		delays = append(delays, delay)
		attempt = retry
		if len(attempts) > 1000 {
			t.Fatal("schedule never ends")
		}
	}
}

func TestDefaultIsTheSeedTable(t *testing.T) {
	want := []time.Duration{
		15 * time.Second, 15 * time.Second, 15 * time.Second,
		3 * time.Minute, 3 * time.Minute,
		15 * time.Minute, 15 * time.Minute, 15 * time.Minute,
		2 * time.Hour, 2 * time.Hour, 2 * time.Hour,
		6 * time.Hour, 6 * time.Hour, 6 * time.Hour, 6 * time.Hour,
	}
	got := Default()
	if len(got) != 15 {
		t.Fatalf("Default has %d retries, the seed has 15", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("retry %d: delay %v, seed says %v", i+1, got[i], want[i])
		}
	}
	// Default returns a fresh copy each time.
	got[0] = time.Hour
	if Default()[0] != 15*time.Second {
		t.Error("Default shares its backing array between calls")
	}
}

func TestRetryRules(t *testing.T) {
	d := Default()
	seq := func(from, to int) []int {
		var out []int
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		name   string
		status int
		want   []int // attempt numbers sent
	}{
		{"a receiver always answering 503 gets retries 1..15, then the delivery is dead", 503, seq(0, 15)},
		{"a receiver always answering 404 skips retries 1-3", 404, append([]int{0}, seq(4, 15)...)},
		{"400 is the low end of the 4xx rule and jumps", 400, append([]int{0}, seq(4, 15)...)},
		{"500 is the high end of the 4xx rule and jumps", 500, append([]int{0}, seq(4, 15)...)},
		{"399 is outside the 4xx rule and does not jump", 399, seq(0, 15)},
		{"501 is outside the 4xx rule and does not jump", 501, seq(0, 15)},
		{"a transport error (status 0) does not jump", 0, seq(0, 15)},
		{"a 2xx that failed on the brand's Error Response does not jump", 200, seq(0, 15)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := sends(t, d, tc.status)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("attempts %v, want %v", got, tc.want)
			}
		})
	}
	if got, _ := sends(t, d, 503); len(got) != 16 {
		t.Errorf("always 503: %d sends, want 16", len(got))
	}
	if got, _ := sends(t, d, 404); len(got) != 13 {
		t.Errorf("always 404: %d sends, want 13", len(got))
	}
}

func TestNext(t *testing.T) {
	d := Default()
	tests := []struct {
		name      string
		attempt   int
		status    int
		wantRetry int
		wantDelay time.Duration
		wantOK    bool
	}{
		{"first send fails with 503: retry 1 after 15s", 0, 503, 1, 15 * time.Second, true},
		{"first send fails with 404: jump to retry 4 with retry 4's delay", 0, 404, 4, 3 * time.Minute, true},
		{"retry 1 fails with 404: jump to retry 4", 1, 404, 4, 3 * time.Minute, true},
		{"retry 2 fails with 404: jump to retry 4", 2, 404, 4, 3 * time.Minute, true},
		{"retry 3 fails with 404: retry 4 anyway", 3, 404, 4, 3 * time.Minute, true},
		{"retry 2 fails with a transport error: retry 3", 2, 0, 3, 15 * time.Second, true},
		{"a 404 on retry 5 just goes to 6", 5, 404, 6, 15 * time.Minute, true},
		{"retry 8 fails: retry 9 after 2h", 8, 502, 9, 2 * time.Hour, true},
		{"retry 14 fails: retry 15 after 6h", 14, 500, 15, 6 * time.Hour, true},
		{"retry 15 fails with 503: dead", 15, 503, 0, 0, false},
		{"retry 15 fails with 404: dead", 15, 404, 0, 0, false},
		{"an attempt past the schedule: dead", 40, 0, 0, 0, false},
		{"a negative attempt has no next", -1, 503, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, dl, ok := d.Next(tc.attempt, tc.status)
			if r != tc.wantRetry || dl != tc.wantDelay || ok != tc.wantOK {
				t.Fatalf("Next(%d, %d) = (%d, %v, %v), want (%d, %v, %v)",
					tc.attempt, tc.status, r, dl, ok, tc.wantRetry, tc.wantDelay, tc.wantOK)
			}
		})
	}
}

func TestDelaysFollowTheTable(t *testing.T) {
	d := Default()
	_, delays := sends(t, d, 503)
	for i, dl := range delays {
		if dl != d[i] {
			t.Errorf("retry %d: delay %v, want %v", i+1, dl, d[i])
		}
	}
	_, delays = sends(t, d, 404)
	for i, dl := range delays {
		if want := d[i+3]; dl != want {
			t.Errorf("404, retry %d: delay %v, want %v", i+4, dl, want)
		}
	}
}

func TestShortSchedules(t *testing.T) {
	tests := []struct {
		name     string
		schedule Schedule
		status   int
		want     []int
	}{
		{"empty schedule: no retries at all", Schedule{}, 503, []int{0}},
		{"empty schedule with a 404: no retries at all", Schedule{}, 404, []int{0}},
		{"two retries, 503", Schedule{time.Second, time.Second}, 503, []int{0, 1, 2}},
		{"two retries, 404 jumps to the last retry", Schedule{time.Second, time.Second}, 404, []int{0, 2}},
		{"four retries, 404 jumps to retry 4", Schedule{1, 2, 3, 4}, 404, []int{0, 4}},
		{"five retries, 503 then dead", Schedule{1, 2, 3, 4, 5}, 503, []int{0, 1, 2, 3, 4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := sends(t, tc.schedule, tc.status)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("attempts %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Schedule
		wantErr []string // substrings the error must contain
	}{
		{name: "empty means the seed's table", in: "", want: Default()},
		{name: "blank means the seed's table", in: "  ", want: Default()},
		{name: "one entry", in: "1s", want: Schedule{time.Second}},
		{name: "spaces around entries are ignored", in: " 15s , 3m,2h ", want: Schedule{15 * time.Second, 3 * time.Minute, 2 * time.Hour}},
		{name: "sub-second and compound durations", in: "15ms,1m30s", want: Schedule{15 * time.Millisecond, 90 * time.Second}},
		{name: "not a duration names entry and position", in: "15s,abc,3m", wantErr: []string{"entry 2", `"abc"`}},
		{name: "a bare number has no unit", in: "15s,15s,15", wantErr: []string{"entry 3", `"15"`}},
		{name: "zero is refused", in: "0s", wantErr: []string{"entry 1", `"0s"`, "greater than zero"}},
		{name: "negative is refused", in: "15s,-3m", wantErr: []string{"entry 2", `"-3m"`, "greater than zero"}},
		{name: "an empty entry is refused", in: "15s,,3m", wantErr: []string{"entry 2", "empty"}},
		{name: "a trailing comma is refused", in: "15s,", wantErr: []string{"entry 2", "empty"}},
		{name: "more than 100 entries", in: strings.Repeat("1s,", 100) + "1s", wantErr: []string{"101 entries", "100"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tc.in, got)
				}
				for _, sub := range tc.wantErr {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("error %q does not mention %q", err, sub)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if got, err := Parse(strings.Repeat("1s,", 99) + "1s"); err != nil || len(got) != 100 {
		t.Errorf("100 entries: len %d, err %v; want 100 entries", len(got), err)
	}
}

func TestStringRoundTrips(t *testing.T) {
	d := Default()
	const want = "15s,15s,15s,3m,3m,15m,15m,15m,2h,2h,2h,6h,6h,6h,6h"
	if got := d.String(); got != want {
		t.Fatalf("Default().String() = %q, want %q", got, want)
	}
	for _, s := range []Schedule{
		d,
		d.Scale(0.001),
		{90 * time.Second, time.Hour + 30*time.Second, 1500 * time.Microsecond, 1},
	} {
		back, err := Parse(s.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", s.String(), err)
		}
		if !slices.Equal(back, s) {
			t.Errorf("round trip of %v gave %v", s, back)
		}
	}
	if got := (Schedule{}).String(); got != "" {
		t.Errorf("empty schedule formats as %q", got)
	}
}

func TestScale(t *testing.T) {
	d := Default()
	fast := d.Scale(1.0 / 1000)
	if fast[0] != 15*time.Millisecond || fast[3] != 180*time.Millisecond || fast[14] != 21600*time.Millisecond {
		t.Fatalf("Scale(1/1000) = %v", fast)
	}
	if d[0] != 15*time.Second {
		t.Fatal("Scale modified its receiver")
	}
	// Scaling keeps the shape: the 4xx rule still lands on retry 4's (scaled) delay.
	if r, dl, ok := fast.Next(0, 404); r != 4 || dl != 180*time.Millisecond || !ok {
		t.Fatalf("scaled Next(0, 404) = (%d, %v, %v)", r, dl, ok)
	}
	if tiny := (Schedule{time.Nanosecond}).Scale(1e-9); tiny[0] != 1 {
		t.Errorf("scaling below 1ns gave %v, want 1ns", tiny[0])
	}
	if huge := (Schedule{time.Hour}).Scale(1e30); huge[0] <= 0 {
		t.Errorf("scaling past the largest duration gave %v", huge[0])
	}
	for _, f := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Scale(%v) did not panic", f)
				}
			}()
			d.Scale(f)
		}()
	}
}
