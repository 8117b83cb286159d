package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/delivery"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestWindowAndPage(t *testing.T) {
	desc := []int64{90, 80, 80, 70, 60, 50, 40}
	for _, c := range []struct {
		start, end int64
		want       []int64
	}{
		{0, 100, desc},
		{50, 80, []int64{70, 60, 50}},
		{80, 81, []int64{80, 80}},
		{91, 200, []int64{}},
		{0, 40, []int64{}},
	} {
		if got := window(desc, c.start, c.end); !slices.Equal(got, c.want) {
			t.Errorf("window [%d, %d) = %v, want %v", c.start, c.end, got, c.want)
		}
	}
	if got := page(desc, 5, 50); !slices.Equal(got, []int64{50, 40}) {
		t.Errorf("page(5, 50) = %v", got)
	}
	if got := page(desc, 7, 50); got != nil {
		t.Errorf("page(7, 50) = %v, want none", got)
	}
}

func TestMakeDelivery(t *testing.T) {
	created := time.Date(2026, 4, 8, 9, 0, 0, 123456000, time.UTC)
	for _, st := range []postbackv1.DeliveryStatus{stSucceeded, stFailed, stDead, stRetrying, stCancelled, stPending} {
		entries, s, err := makeDelivery(created, "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", st, 7)
		if err != nil {
			t.Fatal(err)
		}
		if s.Attempts != attemptsFor(st) || s.Created != created.UnixMicro() {
			t.Errorf("%s: sample %+v", st, s)
		}
		if want := max(1, attemptsFor(st)); len(entries) != want {
			t.Fatalf("%s: %d entries, want %d", st, len(entries), want)
		}
		var job delivery.Job
		if err := delivery.UnmarshalJob(entries[0].Job, &job); err != nil || job.DeliveryID != s.ID {
			t.Errorf("%s: job %q: %v", st, job.DeliveryID, err)
		}
		if n := len(entries[0].Job); n < 250 || n > 350 {
			t.Errorf("%s: job of %d bytes, want about 300", st, n)
		}
		last := entries[len(entries)-1]
		if last.Version != last.Delivery.UpdateTime.AsTime().UnixMicro() {
			t.Errorf("%s: last version %d, update time %v", st, last.Version, last.Delivery.UpdateTime.AsTime())
		}
		for i, e := range entries {
			if i > 0 && (e.Version <= entries[i-1].Version || e.Job != nil) {
				t.Errorf("%s: entry %d: version %d after %d, job %d bytes", st, i, e.Version, entries[i-1].Version, len(e.Job))
			}
			if e.Attempt != nil && e.Attempt.Number != int32(i) {
				t.Errorf("%s: entry %d has attempt %d", st, i, e.Attempt.Number)
			}
		}
	}
}

func TestStatusMix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	got := map[postbackv1.DeliveryStatus]int{}
	const n = 100_000
	for range n {
		got[pickStatus(rng)]++
	}
	for st, pct := range map[postbackv1.DeliveryStatus]float64{stSucceeded: 80, stFailed: 8, stDead: 6, stRetrying: 3, stCancelled: 2, stPending: 1} {
		if p := float64(got[st]) * 100 / n; p < pct*0.9 || p > pct*1.1 {
			t.Errorf("%s: %.2f%%, want about %.0f%%", st, p, pct)
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.P50 != 100 || l.P99 != 198 || l.Max != 200 || l.Samples != 200 {
		t.Errorf("summarize = %+v", l)
	}
}
