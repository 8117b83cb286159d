package limiter

import (
	"math"
	"testing"
	"time"
)

func TestObservePacesBelowTheBrandsLimits(t *testing.T) {
	const ms = int64(time.Millisecond)
	const t0 = int64(1_700_000_000) * int64(time.Second)
	brand := Limits{Rate: 10} // a gap of 100 ms
	refused := Feedback{Refused: true}
	ok := Feedback{OK: true, Latency: 20 * time.Millisecond}
	type step struct {
		at      int64 // ms after t0
		f       Feedback
		wantGap int64 // ms; 0: the brand's
		wantCut bool
		wantNB  int64 // ms after t0; -1: none
	}
	for _, tc := range []struct {
		name  string
		lim   Limits
		steps []step
	}{
		{"a refusal halves the rate", brand, []step{
			{0, refused, 200, true, -1},
		}},
		{"refusals within a second are one cut", brand, []step{
			{0, refused, 200, true, -1},
			{10, refused, 200, false, -1},
			{999, refused, 200, false, -1},
			{1000, refused, 400, true, -1},
		}},
		{"the cut interval is two paced gaps when that is longer than a second", brand, []step{
			{0, refused, 200, true, -1},
			{1000, refused, 400, true, -1},
			{2000, refused, 800, true, -1},
			{3000, refused, 800, false, -1}, // 1.6 s interval since the last cut
			{3600, refused, 1600, true, -1},
		}},
		{"the rate never falls below 1/64 of the brand's", Limits{MinDelay: time.Second}, []step{
			{0, refused, 2000, true, -1},
			{100_000, refused, 4000, true, -1},
			{200_000, refused, 8000, true, -1},
			{300_000, refused, 16000, true, -1},
			{400_000, refused, 32000, true, -1},
			{500_000, refused, 64000, true, -1},
			{700_000, refused, 64000, false, -1}, // at the floor: nothing left to cut
		}},
		{"a success raises the rate by a fortieth of the brand's per second of sending", brand, []step{
			{0, refused, 200, true, -1},
			// rate 5/s + (10/40)/5 = 5.05/s: a gap of 198.02 ms, rounded up
			{300, ok, 198, false, -1},
		}},
		{"retry-after holds the next starts back and keeps the later instant", brand, []step{
			{0, Feedback{Refused: true, RetryAfter: 3 * time.Second}, 200, true, 3000},
			{500, Feedback{Refused: true, RetryAfter: time.Second}, 200, false, 3000},
			{600, Feedback{Refused: true, RetryAfter: 5 * time.Second}, 200, false, 5600},
			{6000, ok, 198, false, -1},
		}},
		{"retry-after without a refusal is ignored", brand, []step{
			{0, Feedback{OK: true, RetryAfter: time.Hour, Latency: time.Millisecond}, 0, false, -1},
		}},
		{"successes at the brand's rate change nothing", brand, []step{
			{0, ok, 0, false, -1},
			{100, ok, 0, false, -1},
		}},
		{"three answers in a row far slower than the baseline cut the rate", brand, []step{
			{0, Feedback{OK: true, Latency: 20 * time.Millisecond}, 0, false, -1},
			{100, Feedback{OK: true, Latency: 500 * time.Millisecond}, 0, false, -1},
			{200, Feedback{OK: true, Latency: 500 * time.Millisecond}, 0, false, -1},
			{300, Feedback{OK: true, Latency: 500 * time.Millisecond}, 200, true, -1},
		}},
		{"a fast answer breaks a run of slow ones", brand, []step{
			{0, Feedback{OK: true, Latency: 20 * time.Millisecond}, 0, false, -1},
			{100, Feedback{OK: true, Latency: 500 * time.Millisecond}, 0, false, -1},
			{200, Feedback{OK: true, Latency: 500 * time.Millisecond}, 0, false, -1},
			{300, Feedback{OK: true, Latency: 20 * time.Millisecond}, 0, false, -1},
			{400, Feedback{OK: true, Latency: 500 * time.Millisecond}, 0, false, -1},
		}},
		{"slower answers within the margin are not slow", brand, []step{
			{0, Feedback{OK: true, Latency: 10 * time.Millisecond}, 0, false, -1},
			{100, Feedback{OK: true, Latency: 90 * time.Millisecond}, 0, false, -1},
			{200, Feedback{OK: true, Latency: 90 * time.Millisecond}, 0, false, -1},
			{300, Feedback{OK: true, Latency: 90 * time.Millisecond}, 0, false, -1},
		}},
		{"a paced gap shorter than a new brand gap is dropped", Limits{Rate: 1}, []step{
			{0, Feedback{OK: true}, 0, false, -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Pace{}
			if tc.name == "a paced gap shorter than a new brand gap is dropped" {
				p.Gap = 200 * ms // paced under Rate 10, now the brand allows only 1/s
			}
			for i, s := range tc.steps {
				now := t0 + s.at*ms
				var cut bool
				var keep int64
				p, cut, keep = Observe(p, now, tc.lim, s.f, time.Nanosecond)
				if got := p.Gap / ms; got != s.wantGap {
					t.Fatalf("step %d: paced gap %d ms, want %d ms", i, got, s.wantGap)
				}
				if cut != s.wantCut {
					t.Fatalf("step %d: cut = %v, want %v", i, cut, s.wantCut)
				}
				nb := int64(-1)
				if p.NotBefore > now {
					nb = (p.NotBefore - t0) / ms
				}
				if nb != s.wantNB {
					t.Fatalf("step %d: not before %d ms, want %d ms", i, nb, s.wantNB)
				}
				if want := max(now, p.NotBefore) + int64(PaceMemory); keep != want {
					t.Fatalf("step %d: kept until %d, want %d", i, keep, want)
				}
			}
		})
	}
}

func TestSuccessesBringTheRateBackToTheBrandsAndNoFurther(t *testing.T) {
	const t0 = int64(1_700_000_000) * int64(time.Second)
	lim := Limits{Rate: 200}
	p, _, _ := Observe(Pace{}, t0, lim, Feedback{Refused: true}, time.Nanosecond)
	p, _, _ = Observe(p, t0+int64(time.Second), lim, Feedback{Refused: true}, time.Nanosecond)
	if got := p.Rate(time.Nanosecond); math.Abs(got-50) > 0.01 {
		t.Fatalf("after two cuts the rate is %v, want 50", got)
	}
	// Additive: a success per paced gap; the rate climbs by 200/40 = 5
	// requests/s per second of sending, so 150/s more take about 30 s.
	now := t0 + int64(time.Second)
	var seconds float64
	for n := 0; p.Gap > 0; n++ {
		if n > 100_000 {
			t.Fatal("the rate never came back to the brand's")
		}
		seconds += float64(p.Gap) / float64(time.Second)
		now += p.Gap
		p, _, _ = Observe(p, now, lim, Feedback{OK: true, Latency: time.Millisecond}, time.Nanosecond)
		if p.Gap != 0 && p.Gap < lim.Gap(time.Nanosecond) {
			t.Fatalf("paced gap %d is shorter than the brand's %d", p.Gap, lim.Gap(time.Nanosecond))
		}
	}
	if seconds < 29 || seconds > 31 {
		t.Fatalf("from 50/s back to 200/s took %.1f s of sending, want about 30", seconds)
	}
}

func TestPacedSlotsAndStartsUseTheLongerGapAndTheNotBefore(t *testing.T) {
	const t0 = int64(1_000_000)
	lim := Limits{Rate: 10} // 100 ms
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name string
		pace Pace
		st   State
		want int64 // ms after t0
	}{
		{"no pacing is the brand's gap", Pace{}, State{Has: true, Last: t0, Started: true, LastStart: t0}, 100},
		{"a longer paced gap wins", Pace{Gap: 300 * ms}, State{Has: true, Last: t0, Started: true, LastStart: t0}, 300},
		{"a shorter paced gap never does", Pace{Gap: 50 * ms}, State{Has: true, Last: t0, Started: true, LastStart: t0}, 100},
		{"not before holds a first request back", Pace{NotBefore: t0 + 2000*ms}, State{}, 2000},
		{"a past not before does nothing", Pace{NotBefore: t0 - ms}, State{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, _, _ := NextPaced(tc.st, tc.pace, t0, lim, time.Nanosecond)
			if got := (at - t0) / ms; got != tc.want {
				t.Errorf("slot at +%d ms, want +%d ms", got, tc.want)
			}
			sat, ok, _, _ := NextStartPaced(tc.st, tc.pace, t0, lim, time.Nanosecond, 0, int64(time.Hour))
			if got := (sat - t0) / ms; !ok || got != tc.want {
				t.Errorf("start at +%d ms (ok %v), want +%d ms", got, ok, tc.want)
			}
		})
	}
}
