package sender

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// A job deferred for want of a place (or of a limiter slot) must leave a
// schedule whose copy finds the delivery's record as it names it when it
// fires, however soon that is: the record is written before the schedule,
// and the copy claims against its revision. (Written the other way round,
// a schedule due at once could fire first: a queued first send's copy found
// no record and was dropped as aged out, a claimed job's copy found the
// record still claimed by the message that deferred it and was dropped as a
// duplicate, and the delivery stayed PENDING, never sent.)
func TestADeferredJobIsScheduledAgainstARecordWrittenBeforeIt(t *testing.T) {
	ctx := context.Background()
	s, schedules := deferring(t)
	now := time.Now().UTC()
	// Due in an hour, so the schedule is still there to be read; when it is
	// due changes nothing in the order of the writes.
	at := now.Add(time.Hour)

	cases := []struct {
		name string
		// before writes what the delivery's record holds when the job
		// comes (nothing: the renderer writes none).
		before func(t *testing.T, job *delivery.Job)
		// claimed, when set, is the claim the sender holds on the record
		// (a job whose slot came too late after its claim).
		claimed string
		// wantErr is what deferring returns; wantScheduled whether a
		// schedule is left.
		wantErr       error
		wantScheduled bool
	}{
		{"a queued first send with no record yet: the record first, then the schedule naming it", nil, "", errBusy, true},
		{"a record left by an earlier pass over the same job (a crash before its ack): scheduled against it",
			func(t *testing.T, job *delivery.Job) {
				rec := assumed(job)
				if err := delivery.Defer(at).Apply(rec.Delivery, now); err != nil {
					t.Fatal(err)
				}
				rec.Job = job
				if err := s.deliveries.Update(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}, "", errBusy, true},
		{"a delivery cancelled meanwhile: dropped, nothing scheduled",
			func(t *testing.T, job *delivery.Job) {
				rec := assumed(job)
				if err := delivery.Cancel("the endpoint was deleted").Apply(rec.Delivery, now); err != nil {
					t.Fatal(err)
				}
				rec.Job = job
				if err := s.deliveries.Update(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}, "", inflight.ErrConflict, false},
		{"a job claimed and then deferred: the record leaves its claim first, then the schedule names it",
			func(t *testing.T, job *delivery.Job) {
				rec := assumed(job)
				if err := delivery.Claim().Apply(rec.Delivery, now); err != nil {
					t.Fatal(err)
				}
				rec.Job, rec.Claim = job, "DELIVERIES:9"
				if err := s.deliveries.Update(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}, "DELIVERIES:9", errBusy, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			job := queuedJob(now)
			job.EndpointVersion = now.UnixNano()
			if c.before != nil {
				c.before(t, job)
			}
			held := assumed(job)
			if c.claimed != "" {
				var err error
				if held, err = s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID); err != nil {
					t.Fatal(err)
				}
				job.Queued, job.Revision = false, held.Revision
			}
			err := s.busy(ctx, held, job, at)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("deferring returned %v, want %v", err, c.wantErr)
			}
			msg, err := schedules.GetLastMsgForSubject(ctx, stream.ScheduleSubject(job.DeliveryID))
			if !c.wantScheduled {
				if !errors.Is(err, jetstream.ErrMsgNotFound) {
					t.Fatalf("a schedule was left (%v), want none", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("no schedule: %v", err)
			}
			var copied delivery.Job
			stream.ReadJobHeaders(&copied, msg.Header)
			rec, err := s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID)
			if err != nil {
				t.Fatalf("no record behind the schedule: %v", err)
			}
			if copied.Revision == 0 || copied.Revision != rec.Revision {
				t.Fatalf("the scheduled copy claims against revision %d, the record is at %d", copied.Revision, rec.Revision)
			}
			if copied.Queued {
				t.Fatal("the scheduled copy says the delivery has no record")
			}
			if got := rec.Delivery.Status; got != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || rec.Delivery.NextAttemptTime == nil || rec.Claim != "" {
				t.Fatalf("record: %v, next attempt %v, claim %q; want PENDING with a next attempt, unclaimed",
					got, rec.Delivery.NextAttemptTime, rec.Claim)
			}
		})
	}
}

// A schedule that the broker fires early by its own clock (the sender's
// host running behind it) brings a job back while its slot is still far:
// the job is deferred again to the same slot, and that second schedule
// must be kept. Its message id used to be the first one's (delivery,
// requests sent, slot), so the broker dropped it as a repeat within its
// dedupe window, and the delivery was left PENDING with nothing to send it.
func TestAJobDeferredAgainToTheSameSlotIsScheduledAgain(t *testing.T) {
	ctx := context.Background()
	s, schedules := deferring(t)
	now := time.Now().UTC()
	lim := limiter.Limits{Rate: 1}
	job := queuedJob(now)
	job.Slot = now.Add(time.Minute) // reserved a minute ahead: further than a worker waits
	lastSchedule := func() (seq, revision uint64) {
		t.Helper()
		m, err := schedules.GetLastMsgForSubject(ctx, stream.ScheduleSubject(job.DeliveryID))
		if err != nil {
			t.Fatalf("no schedule: %v", err)
		}
		var j delivery.Job
		stream.ReadJobHeaders(&j, m.Header)
		return m.Sequence, j.Revision
	}

	if err := s.slot(ctx, job.EndpointID, lim, assumed(job), job); !errors.Is(err, errDeferred) {
		t.Fatalf("first deferral: %v, want deferred", err)
	}
	firstSeq, _ := lastSchedule()

	// The copy that schedule fires, back early: it holds the same slot and
	// names the record's revision.
	fired := *job
	rec, err := s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.slot(ctx, fired.EndpointID, lim, rec, &fired); !errors.Is(err, errDeferred) {
		t.Fatalf("second deferral: %v, want deferred", err)
	}
	seq, revision := lastSchedule()
	rec, err = s.deliveries.Get(ctx, job.AccountID, job.EndpointID, job.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if seq == firstSeq || revision != rec.Revision {
		t.Fatalf("the second deferral left no schedule of its own (the last is at sequence %d, the first's %d, "+
			"naming revision %d; the record is at %d)", seq, firstSeq, revision, rec.Revision)
	}
}

// deferring is a sender on a fresh JetStream server, and the stream its
// deferrals are scheduled in.
func deferring(t *testing.T) (*sender, jetstream.Stream) {
	t.Helper()
	ctx := context.Background()
	js := streamtest.JetStream(t)
	s, err := newSender(ctx, js, Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	schedules, err := js.Stream(ctx, stream.SchedulesStream)
	if err != nil {
		t.Fatal(err)
	}
	return s, schedules
}

// queuedJob is the renderer's job for a new delivery: queued, no record.
func queuedJob(now time.Time) *delivery.Job {
	return &delivery.Job{
		DeliveryID: id.New(id.Delivery, now), AccountID: "acme", EndpointID: id.New(id.Endpoint, now),
		EventID: id.New(id.Event, now), EventType: "action_clearing", Created: now, Queued: true,
	}
}
