package renderer

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func startRenderer(t *testing.T) (*renderer, jetstream.JetStream) {
	t.Helper()
	js := streamtest.JetStream(t)
	ctx := context.Background()
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []*postbackv1.Endpoint{
		{Id: "ep_1", AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:9/a", Method: postbackv1.HttpMethod_HTTP_METHOD_POST},
		{Id: "ep_2", AccountId: "brand-1", EventType: "action_clearing", Url: "http://127.0.0.1:9/b", Method: postbackv1.HttpMethod_HTTP_METHOD_POST},
	} {
		ep.UpdateTime = timestamppb.New(time.Unix(1000, 0))
		if err := eps.Put(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	r, err := newRenderer(ctx, js, slog.New(slog.DiscardHandler), ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.jobKey, err = secret.ParseKeyring("j1:" + base64.StdEncoding.EncodeToString(make([]byte, secret.KeySize))); err != nil {
		t.Fatal(err)
	}
	return r, js
}

func queuedJobs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamtest.Work(t, js, stream.DeliveriesStream)
}

// A redelivered event (the renderer crashed, or its ack was lost) renders
// the same delivery ids; each delivery already queued or already recorded
// is left alone, so the second pass queues nothing, however late it comes
// (after the queue's dedupe window, only this lookup stops a second copy).
func TestARedeliveredEventQueuesOnlyDeliveriesThatHaveNeitherJobNorRecord(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	ev := &stream.Event{ID: "evt_1", AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(2000, 0).UTC(),
		Data: map[string]any{"ActionId": "A-1"}}

	n, err := r.render(ctx, ev, 7, false)
	if err != nil || n != 2 {
		t.Fatalf("first pass: %d queued, %v; want 2", n, err)
	}
	if got := queuedJobs(t, js); got != 2 {
		t.Fatalf("%d jobs queued, want 2", got)
	}
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := dls.Each(ctx, "brand-1", func(rec *inflight.Record) bool {
		if !rec.Queued || rec.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING || rec.Job.EndpointVersion == 0 {
			t.Errorf("delivery %s: %+v, want a queued PENDING first send", rec.Delivery.Id, rec)
		}
		ids = append(ids, rec.Delivery.Id)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("deliveries %v, want 2", ids)
	}

	if n, err := r.render(ctx, ev, 7, true); err != nil || n != 0 {
		t.Fatalf("redelivery while both are queued: %d queued, %v; want 0", n, err)
	}

	// One was sent and recorded, and the queue let its job go.
	sent, err := dls.Find(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	sent.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	if err := dls.Put(ctx, sent); err != nil {
		t.Fatal(err)
	}
	work, _ := js.Stream(ctx, stream.DeliveriesStream)
	if err := work.Purge(ctx, jetstream.WithPurgeSubject(stream.DeliverySubject("brand-1", sent.Delivery.EndpointId, sent.Delivery.Id))); err != nil {
		t.Fatal(err)
	}
	if n, err := r.render(ctx, ev, 7, true); err != nil || n != 0 {
		t.Fatalf("redelivery after one was sent: %d queued, %v; want 0", n, err)
	}
	if got := queuedJobs(t, js); got != 1 {
		t.Fatalf("%d jobs queued, want the 1 not yet sent", got)
	}

	// An event seen for the first time at another sequence is new work.
	if n, err := r.render(ctx, ev, 8, false); err != nil || n != 2 {
		t.Fatalf("another event: %d queued, %v; want 2", n, err)
	}
}

// historyEntries reads every entry logged to the HISTORY stream so far.
func historyEntries(t *testing.T, js jetstream.JetStream) []history.Entry {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, stream.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []history.Entry
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == stream.KeepSubject(stream.HistoryStream) {
			continue
		}
		es, err := inflight.HistoryEntries(m.Data, m.Header)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	return out
}

// A delivery ended at its first send has no record and no job left: only
// its final history entry, until the writer stores it. A redelivery of its
// event must not queue it again, nor log a PENDING entry that would undo
// its ending; and once the entry is stored (nothing left to look up), the
// repeated PENDING entry is the first one again, at its create time and
// version, below the ending's, which the store keeps.
func TestARedeliveredEventLeavesADeliveryEndedAtItsFirstSendEnded(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	ev := &stream.Event{ID: "evt_9", AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(3000, 0).UTC(),
		Data: map[string]any{"ActionId": "A-9"}}
	if n, err := r.render(ctx, ev, 11, false); err != nil || n != 2 {
		t.Fatalf("first pass: %d queued, %v; want 2", n, err)
	}
	first := historyEntries(t, js)
	if len(first) != 2 {
		t.Fatalf("%d PENDING entries logged, want 2", len(first))
	}
	for _, e := range first {
		if !e.Delivery.CreateTime.AsTime().Equal(ev.Time) {
			t.Errorf("delivery %s created %s, want its event's time %s", e.Delivery.Id, e.Delivery.CreateTime.AsTime(), ev.Time)
		}
	}

	// The sender ends both at their first send: each job leaves the queue
	// and its final entry is the only trace.
	dls, err := inflight.OpenDeliveries(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ended := map[string]int64{}
	work, _ := js.Stream(ctx, stream.DeliveriesStream)
	for _, e := range first {
		rec, err := dls.Lookup(ctx, "brand-1", e.Delivery.EndpointId, e.Delivery.Id)
		if err != nil {
			t.Fatal(err)
		}
		at := &postbackv1.Attempt{Number: 1, StatusCode: 200}
		if err := delivery.Succeed(at, 0).Apply(rec.Delivery, time.Now()); err != nil {
			t.Fatal(err)
		}
		rec.Last = at
		if err := dls.Conclude(ctx, rec); err != nil {
			t.Fatal(err)
		}
		ended[e.Delivery.Id] = rec.Delivery.UpdateTime.AsTime().UnixMicro()
		if err := work.Purge(ctx, jetstream.WithPurgeSubject(stream.DeliverySubject("brand-1", e.Delivery.EndpointId, e.Delivery.Id))); err != nil {
			t.Fatal(err)
		}
	}

	if n, err := r.render(ctx, ev, 11, true); err != nil || n != 0 {
		t.Fatalf("redelivery while the endings wait for the writer: %d queued, %v; want 0", n, err)
	}
	if got := len(historyEntries(t, js)); got != 4 {
		t.Fatalf("%d history entries, want the 2 PENDING and the 2 endings, nothing more", got)
	}

	// The writer stores the endings (they leave the stream): the redelivery
	// sees nothing; its job's publish is a duplicate, and its entries are
	// the first ones again.
	hist, _ := js.Stream(ctx, stream.HistoryStream)
	if err := hist.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.render(ctx, ev, 11, true); err != nil {
		t.Fatal(err)
	}
	if got := queuedJobs(t, js); got != 0 {
		t.Errorf("%d jobs queued again within the dedupe window, want 0", got)
	}
	again := historyEntries(t, js)
	if len(again) != 2 {
		t.Fatalf("%d entries logged by the late pass, want 2", len(again))
	}
	versions := map[string]int64{}
	for _, e := range first {
		versions[e.Delivery.Id] = e.Version
	}
	for _, e := range again {
		if e.Version != versions[e.Delivery.Id] || !e.Delivery.CreateTime.AsTime().Equal(ev.Time) {
			t.Errorf("late PENDING entry of %s at version %d created %s; want the first's %d, created %s",
				e.Delivery.Id, e.Version, e.Delivery.CreateTime.AsTime(), versions[e.Delivery.Id], ev.Time)
		}
		if e.Version >= ended[e.Delivery.Id] {
			t.Errorf("late PENDING entry of %s at version %d, not below its ending's %d", e.Delivery.Id, e.Version, ended[e.Delivery.Id])
		}
	}
}

// An earlier pass may have logged a delivery's PENDING entry and then
// failed to queue its job (a broker failover: that is why the event came
// back). The redelivery queues the job: a PENDING entry alone is not a
// delivery on its way.
func TestARedeliveredEventQueuesAJobAnEarlierPassLoggedButLost(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ep := &postbackv1.Endpoint{Id: "ep_3", AccountId: "brand-2", EventType: "action_clearing", Url: "http://127.0.0.1:9/c",
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST, UpdateTime: timestamppb.New(time.Unix(1000, 0))}
	if err := eps.Put(ctx, ep); err != nil {
		t.Fatal(err)
	}
	ev := &stream.Event{ID: "evt_5", AccountID: "brand-2", Type: "action_clearing", Time: time.Unix(4000, 0).UTC(),
		Data: map[string]any{"ActionIds": "A-5"}}
	const seq = 31
	dlvID := id.Derive(id.Delivery, ev.Time, ev.ID, strconv.FormatUint(seq, 10), ep.Id)
	job, body, err := r.job(ep, ev, dlvID)
	if err != nil {
		t.Fatal(err)
	}
	logged, err := r.queued.Log(job, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-logged; err != nil {
		t.Fatal(err)
	}
	if st := streamtest.State(t, js, stream.HistoryStream); st.Msgs != 1 {
		t.Fatalf("HISTORY holds %d messages, want the earlier pass's PENDING entry, waiting for the writer", st.Msgs)
	}
	if n, err := r.render(ctx, ev, seq, true); err != nil || n != 1 {
		t.Fatalf("redelivery: %d queued, %v; want the lost job queued", n, err)
	}
	if got := queuedJobs(t, js); got != 1 {
		t.Errorf("%d jobs queued, want 1", got)
	}
}
