package endpointhealth

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func fail(min int) Outcome { return Outcome{At: at(min), Reason: "HTTP 500"} }
func ok(min int) Outcome   { return Outcome{At: at(min), Success: true} }

func TestApplyTracksTheRunOfFailures(t *testing.T) {
	tests := []struct {
		name          string
		start         State
		batches       [][]Outcome
		wantFailures  int
		wantSince     time.Time
		wantLastOK    time.Time
		wantLastFail  time.Time
		wantFailing   []bool // per batch
		wantRecovered []bool
	}{
		{
			name:         "failures count up from the first and announce once at the threshold",
			batches:      [][]Outcome{{fail(1), fail(2)}, {fail(3)}, {fail(4)}},
			wantFailures: 4, wantSince: at(1), wantLastFail: at(4),
			wantFailing: []bool{false, true, false}, wantRecovered: []bool{false, false, false},
		},
		{
			name:         "a success ends an announced run and says it recovered",
			batches:      [][]Outcome{{fail(1), fail(2), fail(3)}, {ok(4)}},
			wantFailures: 0, wantLastOK: at(4), wantLastFail: at(3),
			wantFailing: []bool{true, false}, wantRecovered: []bool{false, true},
		},
		{
			name:         "a success after a short blip is no recovery",
			batches:      [][]Outcome{{fail(1)}, {ok(2)}},
			wantFailures: 0, wantLastOK: at(2), wantLastFail: at(1),
			wantFailing: []bool{false, false}, wantRecovered: []bool{false, false},
		},
		{
			name:         "a failure that started before the last success does not start a run",
			start:        State{LastSuccess: at(10)},
			batches:      [][]Outcome{{fail(5)}},
			wantFailures: 0, wantLastOK: at(10), wantLastFail: at(5),
			wantFailing: []bool{false}, wantRecovered: []bool{false},
		},
		{
			name:         "a success that started before the run's last failure does not end it",
			batches:      [][]Outcome{{fail(1), fail(3)}, {ok(2)}},
			wantFailures: 2, wantSince: at(1), wantLastOK: at(2), wantLastFail: at(3),
			wantFailing: []bool{false, false}, wantRecovered: []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start
			for i, b := range tt.batches {
				c := s.Apply(b, 3)
				if c.Failing != tt.wantFailing[i] || c.Recovered != tt.wantRecovered[i] {
					t.Errorf("batch %d: change %+v, want failing %v recovered %v", i, c, tt.wantFailing[i], tt.wantRecovered[i])
				}
			}
			if s.ConsecutiveFailures != tt.wantFailures || !s.FailingSince.Equal(tt.wantSince) ||
				!s.LastSuccess.Equal(tt.wantLastOK) || !s.LastFailure.Equal(tt.wantLastFail) {
				t.Errorf("state %+v, want failures %d since %v last ok %v last failure %v", s, tt.wantFailures, tt.wantSince, tt.wantLastOK, tt.wantLastFail)
			}
		})
	}
}

func TestRearmBeginsAutoDisablesRunAgainButNotTheHealthRun(t *testing.T) {
	var s State
	s.Apply([]Outcome{fail(1), fail(2)}, FailingAfter)
	s.Rearm()
	s.Apply([]Outcome{fail(3)}, FailingAfter)
	if s.ConsecutiveFailures != 3 || !s.FailingSince.Equal(at(1)) {
		t.Errorf("health run %d since %v, want 3 since %v", s.ConsecutiveFailures, s.FailingSince, at(1))
	}
	if s.DisableRunFailures != 1 || !s.DisableRunSince.Equal(at(3)) {
		t.Errorf("auto-disable run %d since %v, want 1 since %v", s.DisableRunFailures, s.DisableRunSince, at(3))
	}
}

func TestCountedTakesEachAttemptFromTheEntryThatRecordedIt(t *testing.T) {
	attempt := &postbackv1.Attempt{StartTime: timestamppb.New(at(1)), Outcome: postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE, StatusCode: 503}
	tests := []struct {
		name   string
		status postbackv1.DeliveryStatus
		next   bool
		want   bool
	}{
		{"succeeded", postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, false, true},
		{"failed for good", postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, false, true},
		{"retrying, just sent", postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, false, true},
		{"retrying, scheduled (the same attempt again)", postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, true, false},
		{"dead (the same attempt again)", postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, false, false},
		{"cancelled (the same attempt again)", postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED, false, false},
		{"pending", postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &postbackv1.Delivery{Status: tt.status}
			if tt.next {
				d.NextAttemptTime = timestamppb.New(at(2))
			}
			o, got := Counted(d, attempt)
			if got != tt.want {
				t.Fatalf("counted %v, want %v", got, tt.want)
			}
			if got && (o.Success || o.Reason != "HTTP 503" || !o.At.Equal(at(1))) {
				t.Errorf("outcome %+v", o)
			}
		})
	}
}
