// Package endpointhealth keeps each endpoint's health: its current run of
// failed attempts, its last success and its last failure with the reason.
//
// Design and failure policy:
//
//   - Health is judged by attempts, not deliveries: every request sent is
//     a success or a failure (a retry is an attempt of its own), so an
//     endpoint that went down shows it within one attempt, not after a
//     delivery's whole retry schedule (about 31 hours). The history writer
//     (services/historian) sees every attempt and applies them here, in the
//     order they started, after it has stored them.
//   - The state lives in a NATS KV bucket (stream.HealthBucket), one key per
//     endpoint, updated with compare-and-set, so several writers may run.
//   - An attempt is counted by the entry that recorded it (Counted): the
//     record writes that repeat an attempt (a retry's schedule, a kill, a
//     cancellation) do not count it again. A change the writer stores twice
//     after a crash counts twice: the rule that disables an endpoint also
//     needs the run to last (AutoDisablePolicy.After), which a repeat
//     cannot stretch.
//   - Apply is pure (times come from the attempts): tests drive it with
//     made-up times, and the result says which operational events the
//     update caused (failing, recovered), so that exactly the writer whose
//     compare-and-set made the change publishes them.
package endpointhealth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// FailingAfter is how many failed attempts in a row make an endpoint
// "failing" (the endpoint.failing event), unless its auto-disable rule
// needs fewer: a blip of one or two failed attempts is not news.
const FailingAfter = 5

// State is one endpoint's health.
type State struct {
	ConsecutiveFailures int       `json:"failures,omitempty"`
	FailingSince        time.Time `json:"failing_since,omitzero"` // first failure of the current run
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastFailure         time.Time `json:"last_failure,omitzero"`
	LastFailureReason   string    `json:"last_failure_reason,omitempty"`
	// Announced: endpoint.failing was published for the current run.
	Announced bool `json:"announced,omitempty"`
	// Disabled: the current run disabled the endpoint.
	Disabled bool `json:"disabled,omitempty"`
	// The run auto-disable judges: the current run of failures, begun
	// again when the endpoint is enabled (Rearm), so an endpoint a person
	// enables gets a whole new allowance before it is disabled again.
	DisableRunFailures int       `json:"disable_run_failures,omitempty"`
	DisableRunSince    time.Time `json:"disable_run_since,omitzero"`
}

// Rearm begins auto-disable's run again (the endpoint was enabled).
func (s *State) Rearm() { s.DisableRunFailures, s.DisableRunSince = 0, time.Time{} }

// Outcome is one attempt's result.
type Outcome struct {
	At      time.Time // the attempt's start
	Success bool
	Reason  string // why it failed
}

// Change is what applying outcomes did: the events it calls for.
type Change struct {
	Failing   bool // the run reached the failing threshold
	Recovered bool // a success ended a run that was announced or disabled
}

// Apply adds outcomes (in the order they started) to s. failingAfter is
// the run length that makes the endpoint failing (FailingAfter or less).
func (s *State) Apply(outcomes []Outcome, failingAfter int) Change {
	var c Change
	for _, o := range outcomes {
		if o.Success {
			if o.At.After(s.LastSuccess) {
				s.LastSuccess = o.At
			}
			if o.At.Before(s.LastFailure) {
				continue // an older success does not end a later run
			}
			if s.Announced || s.Disabled {
				c.Recovered, c.Failing = true, false
			}
			s.ConsecutiveFailures, s.FailingSince, s.Announced, s.Disabled = 0, time.Time{}, false, false
			s.Rearm()
			continue
		}
		if !o.At.After(s.LastSuccess) && !s.LastSuccess.IsZero() {
			// Started before the last success: it belongs to no current run.
			if o.At.After(s.LastFailure) {
				s.LastFailure, s.LastFailureReason = o.At, o.Reason
			}
			continue
		}
		s.ConsecutiveFailures++
		if s.FailingSince.IsZero() || o.At.Before(s.FailingSince) {
			s.FailingSince = o.At
		}
		s.DisableRunFailures++
		if s.DisableRunSince.IsZero() || o.At.Before(s.DisableRunSince) {
			s.DisableRunSince = o.At
		}
		if !o.At.Before(s.LastFailure) {
			s.LastFailure, s.LastFailureReason = o.At, o.Reason
		}
		if !s.Announced && s.ConsecutiveFailures >= max(1, failingAfter) {
			s.Announced, c.Failing = true, true
		}
	}
	return c
}

// Proto is the API's health block (without the windowed counts).
func (s State) Proto() *postbackv1.EndpointHealth {
	h := &postbackv1.EndpointHealth{ConsecutiveFailures: int32(min(s.ConsecutiveFailures, 1<<31-1)), LastFailureReason: s.LastFailureReason}
	ts := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	h.FailingSince, h.LastSuccessTime, h.LastFailureTime = ts(s.FailingSince), ts(s.LastSuccess), ts(s.LastFailure)
	return h
}

// Counted returns the outcome of the attempt an entry recorded, and false
// when the entry recorded none: only the entry of the transition that
// followed a request (SUCCEEDED, FAILED, or RETRYING not yet scheduled)
// counts its attempt; a retry's scheduling, a kill or a cancellation
// repeat the attempt they came after.
func Counted(d *postbackv1.Delivery, at *postbackv1.Attempt) (Outcome, bool) {
	if at == nil || at.StartTime == nil {
		return Outcome{}, false
	}
	switch d.GetStatus() {
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED:
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING:
		if d.NextAttemptTime != nil {
			return Outcome{}, false
		}
	default:
		return Outcome{}, false
	}
	o := Outcome{At: at.StartTime.AsTime(), Success: at.Outcome == postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS}
	if !o.Success {
		o.Reason = Reason(at)
	}
	return o, true
}

// Reason is a failed attempt's reason for a person: its error, else its
// status.
func Reason(at *postbackv1.Attempt) string {
	if at.Error != "" {
		return at.Error
	}
	if at.StatusCode != 0 {
		return "HTTP " + strconv.Itoa(int(at.StatusCode))
	}
	return "failed"
}

// Store is the health bucket.
type Store struct {
	kv jetstream.KeyValue
}

// OpenStore binds the health bucket (stream.Ensure must have run).
func OpenStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, stream.HealthBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", stream.HealthBucket, err)
	}
	return &Store{kv: kv}, nil
}

// Get reads an endpoint's health (zero when it has none yet).
func (s *Store) Get(ctx context.Context, endpointID string) (State, error) {
	st, _, err := s.get(ctx, endpointID)
	return st, err
}

func (s *Store) get(ctx context.Context, endpointID string) (State, uint64, error) {
	e, err := s.kv.Get(ctx, endpointID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("read health of %s: %w", endpointID, err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return State{}, 0, fmt.Errorf("decode health of %s: %w", endpointID, err)
	}
	return st, e.Revision(), nil
}

// Update reads an endpoint's health, changes it with fn and writes it back
// with compare-and-set, trying again (from a fresh read) when another
// writer changed it meanwhile. It returns the state written and what fn
// returned for it.
func (s *Store) Update(ctx context.Context, endpointID string, fn func(*State) Change) (State, Change, error) {
	for try := 0; ; try++ {
		st, rev, err := s.get(ctx, endpointID)
		if err != nil {
			return State{}, Change{}, err
		}
		c := fn(&st)
		b, err := json.Marshal(st)
		if err != nil {
			return State{}, Change{}, err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, endpointID, b)
		} else {
			_, err = s.kv.Update(ctx, endpointID, b, rev)
		}
		if err == nil {
			return st, c, nil
		}
		if try+1 >= stream.CASTries || !stream.Contended(err) {
			return State{}, Change{}, fmt.Errorf("write health of %s: %w", endpointID, err)
		}
		if err := stream.CASBackoff(ctx, try+1); err != nil {
			return State{}, Change{}, fmt.Errorf("write health of %s: %w", endpointID, err)
		}
	}
}

// Delete drops an endpoint's health (the endpoint was deleted).
func (s *Store) Delete(ctx context.Context, endpointID string) error {
	if err := s.kv.Delete(ctx, endpointID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete health of %s: %w", endpointID, err)
	}
	return nil
}

// Watch calls fn with every endpoint's health, then with each change,
// until ctx ends (for /metrics).
func (s *Store) Watch(ctx context.Context, fn func(endpointID string, st State, deleted bool)) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch health: %w", err)
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue // the initial values are all in
				}
				if e.Operation() != jetstream.KeyValuePut {
					fn(e.Key(), State{}, true)
					continue
				}
				var st State
				if json.Unmarshal(e.Value(), &st) == nil {
					fn(e.Key(), st, false)
				}
			}
		}
	}()
	return nil
}
