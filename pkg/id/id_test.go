package id

import (
	"strings"
	"testing"
	"time"
)

func TestNewIsPrefixedValidAndOrderedByTime(t *testing.T) {
	t0 := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	a := New(Delivery, t0)
	b := New(Delivery, t0.Add(time.Millisecond))
	if !Valid(Delivery, a) || !Valid(Delivery, b) {
		t.Fatalf("not valid: %q %q", a, b)
	}
	if !(a < b) {
		t.Fatalf("ids do not sort by time: %q !< %q", a, b)
	}
	if New(Delivery, t0) == a {
		t.Fatal("two random ids at the same instant are equal")
	}
}

func TestDeriveIsStableForTheSameParts(t *testing.T) {
	t0 := time.Date(2026, 4, 8, 9, 0, 0, 0, time.UTC)
	a := Derive(Delivery, t0, "evt_1", "ep_1")
	if a != Derive(Delivery, t0, "evt_1", "ep_1") {
		t.Fatal("derive is not stable")
	}
	if a == Derive(Delivery, t0, "evt_1", "ep_2") || a == Derive(Delivery, t0, "evt_1ep_1") {
		t.Fatal("different parts gave the same id")
	}
	if !Valid(Delivery, a) {
		t.Fatalf("derived id not valid: %q", a)
	}
}

func TestValidRejectsWrongShapes(t *testing.T) {
	for _, s := range []string{"", "dlv_", "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV", "dlv_01arz3ndektsv4rrffq69g5fav", "dlv_01ARZ3NDEKTSV4RRFFQ69G5FA.", "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAVX"} {
		if Valid(Delivery, s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}

func TestAnIdCarriesTheTimeItWasMadeWith(t *testing.T) {
	at := time.Date(2026, 4, 8, 9, 0, 0, 123456789, time.UTC)
	want := at.Truncate(time.Millisecond)
	for _, c := range []struct {
		name string
		id   string
	}{
		{"a new id", New(Delivery, at)},
		{"a derived id", Derive(Delivery, at, "evt_1", "7", "ep_1")},
		{"an id of another prefix", New(Event, at)},
	} {
		if got, ok := Time(c.id); !ok || !got.Equal(want) {
			t.Errorf("%s: Time(%s) = %v, %v; want %v", c.name, c.id, got, ok, want)
		}
	}
	for _, bad := range []string{"", "dlv_1", "dlv_" + strings.Repeat("U", 26), "dlv_" + strings.Repeat("Z", 26)} {
		if _, ok := Time(bad); ok {
			t.Errorf("Time(%q) ok; want not an id", bad)
		}
	}
}

func TestATokenIsWhatFitsOneTokenOfASubject(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"brand-1", true}, {"Brand_2", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a.b", false}, {"a b", false},
		{"a*", false}, {"a>", false}, {"evt_\x00", false}, {"é", false},
	} {
		if got := ValidToken(c.s); got != c.want {
			t.Errorf("ValidToken(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
