package stream

import (
	"testing"
	"time"
)

func TestASequenceRateNeedsTwoLooksAndForgetsAStreamThatWentBack(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var r SeqRate
	if _, _, ok := r.Observe(0, t0); ok {
		t.Fatal("the first look judged a rate")
	}
	if gap, elapsed, ok := r.Observe(500, t0.Add(250*time.Millisecond)); !ok || gap != 500 || elapsed != 250*time.Millisecond {
		t.Fatalf("second look: %d messages in %v (%v), want 500 in 250ms", gap, elapsed, ok)
	}
	if _, _, ok := r.Observe(10, t0.Add(time.Second)); ok {
		t.Fatal("a sequence that went back was judged")
	}
	if gap, _, ok := r.Observe(30, t0.Add(2*time.Second)); !ok || gap != 20 {
		t.Fatalf("after the stream went back: %d messages (%v), want 20", gap, ok)
	}
	r.Forget()
	if _, _, ok := r.Observe(40, t0.Add(3*time.Second)); ok {
		t.Fatal("a forgotten rate judged its first look")
	}
}
