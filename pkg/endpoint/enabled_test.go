package endpoint

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestAutoDisableIsOptInWithTheAccountDefault(t *testing.T) {
	on := &postbackv1.AutoDisable{Enabled: true}
	custom := &postbackv1.AutoDisable{Enabled: true, AfterFailures: 3, AfterDuration: durationpb.New(time.Minute)}
	off := &postbackv1.AutoDisable{Enabled: false}
	tests := []struct {
		name    string
		own     *postbackv1.AutoDisable
		account *postbackv1.AutoDisable
		want    AutoDisablePolicy
	}{
		{"neither set: off", nil, nil, AutoDisablePolicy{}},
		{"account default applies when the endpoint leaves it unset", nil, on, AutoDisablePolicy{On: true, Failures: DefaultAutoDisableFailures, After: DefaultAutoDisableAfter}},
		{"the endpoint's own rule wins", custom, on, AutoDisablePolicy{On: true, Failures: 3, After: time.Minute}},
		{"the endpoint opts out of the account default", off, on, AutoDisablePolicy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AutoDisableOf(&postbackv1.Endpoint{AutoDisable: tt.own}, tt.account); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAutoDisableIsDueOnlyWhenTheRunIsLongAndLasting(t *testing.T) {
	p := AutoDisablePolicy{On: true, Failures: 20, After: 24 * time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		failures int
		lasted   time.Duration
		want     bool
	}{
		{"many failures within minutes", 100, time.Hour, false},
		{"a day of too few failures", 19, 25 * time.Hour, false},
		{"enough failures over a day", 20, 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Due(tt.failures, t0, t0.Add(tt.lasted)); got != tt.want {
				t.Errorf("Due = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHoldingOnlyAfterAnAutoDisable(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	auto := &postbackv1.Endpoint{}
	RecordEnabledChange(auto, false, ActorAutoDisable, "failing", true, at)
	manual := &postbackv1.Endpoint{}
	RecordEnabledChange(manual, false, "operator", "maintenance", false, at)
	again := &postbackv1.Endpoint{}
	RecordEnabledChange(again, false, ActorAutoDisable, "failing", true, at)
	RecordEnabledChange(again, true, "operator", "fixed", false, at)
	for name, tt := range map[string]struct {
		e      *postbackv1.Endpoint
		want   bool
		reason string
	}{
		"auto-disabled holds":  {auto, true, ReasonHeld},
		"disabled by a person": {manual, false, ReasonDisabled},
		"enabled again":        {again, false, ReasonDisabled},
	} {
		if got := Holding(tt.e); got != tt.want {
			t.Errorf("%s: Holding = %v, want %v", name, got, tt.want)
		}
		if !Enabled(tt.e) && DisabledReason(tt.e) != tt.reason {
			t.Errorf("%s: reason %q, want %q", name, DisabledReason(tt.e), tt.reason)
		}
	}
}

func TestRecordEnabledChangeKeepsTheLatest(t *testing.T) {
	e := &postbackv1.Endpoint{}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range MaxEnabledChanges + 3 {
		RecordEnabledChange(e, i%2 == 0, "operator", "", false, at.Add(time.Duration(i)*time.Second))
	}
	if len(e.EnabledChanges) != MaxEnabledChanges {
		t.Fatalf("%d changes kept, want %d", len(e.EnabledChanges), MaxEnabledChanges)
	}
	if got := e.EnabledChanges[MaxEnabledChanges-1].Time.AsTime(); !got.Equal(at.Add(time.Duration(MaxEnabledChanges+2) * time.Second)) {
		t.Errorf("latest change at %v", got)
	}
}
