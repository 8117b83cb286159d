package renderer

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/inflight"
	"github.com/postback-dev/postback/pkg/render"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// An ordinary template (it passed save: "<note>{Note}</note>" writes one
// event at most) meets one big event the gateway accepts, 200 KiB of
// apostrophes that XML writes as "&apos;": its body passes the limit. The
// render stops there, the delivery is FAILED with the reason (a record
// GetDelivery reads, and a history entry ListDeliveries lists), nothing is
// queued, and the event is done: render returns no error, so it is acked,
// and its redelivery finds the delivery ended instead of rendering again.
func TestAnEventThatRendersOverALimitIsAFailedDeliveryWithTheReason(t *testing.T) {
	r, js := startRenderer(t)
	ctx := context.Background()
	eps, err := endpoints.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	bigNote := map[string]any{"Note": strings.Repeat("'", 200<<10)}
	tests := []struct {
		name, reason string
		ep           *postbackv1.Endpoint
		data         map[string]any
	}{
		{"body", "the rendered body is over the limit of " + render.HumanBytes(r.limits.Body), &postbackv1.Endpoint{Id: "ep_body",
			Url: "http://127.0.0.1:9/x", Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
			BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_XML, BodyTemplate: "<note>{Note}</note>"}, bigNote},
		{"URL", "the rendered URL is over the limit of 8 KiB (8192 bytes)", &postbackv1.Endpoint{Id: "ep_url",
			Url: "http://127.0.0.1:9/x?note={Note}"}, bigNote},
		{"header", "the rendered value of header X-Note is over the limit of 8 KiB (8192 bytes)", &postbackv1.Endpoint{Id: "ep_header",
			Url: "http://127.0.0.1:9/x?a=1", Headers: []*postbackv1.Header{{Name: "X-Note", Value: "{Note}"}}}, bigNote},
		// A body just within its limit, with a long URL: the job does not
		// fit one message (an event larger than the gateway takes).
		{"job", "bytes a queued delivery may hold", &postbackv1.Endpoint{Id: "ep_job",
			Url: "http://127.0.0.1:9/x?pad=" + strings.Repeat("p", 7<<10), Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
			BodyFormat: postbackv1.BodyFormat_BODY_FORMAT_TEXT, BodyTemplate: "{Note}"},
			map[string]any{"Note": strings.Repeat("n", r.limits.Body)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			account := "brand-big-" + strconv.Itoa(i)
			tt.ep.AccountId, tt.ep.EventType, tt.ep.UpdateTime = account, "action_lifecycle", timestamppb.New(time.Unix(1000, 0))
			if err := eps.Put(ctx, tt.ep); err != nil {
				t.Fatal(err)
			}
			ev := &stream.Event{ID: "evt_big", AccountID: account, Type: "action_lifecycle", Time: time.Unix(5000, 0).UTC(),
				Data: tt.data}
			const seq = 41
			dlvID := id.Derive(id.Delivery, ev.Time, ev.ID, strconv.FormatUint(seq, 10), tt.ep.Id)
			jobsBefore := queuedJobs(t, js)

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			n, err := r.render(ctx, ev, seq, false)
			runtime.ReadMemStats(&after)
			if err != nil || n != 0 {
				t.Fatalf("render: %d queued, %v; want none queued and no error (the event acked)", n, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("rendering it allocated %d bytes", alloc)
			}
			if got := queuedJobs(t, js); got != jobsBefore {
				t.Errorf("%d jobs queued, want none", got-jobsBefore)
			}

			dls, err := inflight.OpenDeliveries(ctx, js)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := dls.Find(ctx, dlvID)
			if err != nil {
				t.Fatalf("the delivery's record: %v", err)
			}
			if rec.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED || !strings.Contains(rec.Delivery.Reason, tt.reason) {
				t.Fatalf("delivery %s, reason %q; want FAILED, %q", rec.Delivery.Status, rec.Delivery.Reason, tt.reason)
			}
			logged := false
			for _, e := range historyEntries(t, js) {
				if e.Delivery.Id == dlvID && e.Delivery.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED && e.Delivery.Reason == rec.Delivery.Reason {
					logged = true
				}
			}
			if !logged {
				t.Error("no FAILED entry in the history")
			}

			// The event again (its ack lost): the delivery is seen, not
			// rendered again.
			runtime.GC()
			runtime.ReadMemStats(&before)
			n, err = r.render(ctx, ev, seq, true)
			runtime.ReadMemStats(&after)
			if err != nil || n != 0 {
				t.Fatalf("redelivery: %d queued, %v; want nothing", n, err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("the redelivery allocated %d bytes: rendered again?", alloc)
			}
		})
	}
}

// A rendered body is held to what a queued delivery can carry over this
// connection, and a long failure reason to 1 KiB.
func TestTheRenderersLimitsFollowTheConnection(t *testing.T) {
	r, js := startRenderer(t)
	want := render.DefaultLimits().WithMaxPayload(js.Conn().MaxPayload())
	if r.limits != want || int64(r.limits.Body) > js.Conn().MaxPayload()-render.JobHeadroom {
		t.Fatalf("limits %+v, want %+v (max payload %d)", r.limits, want, js.Conn().MaxPayload())
	}
	long := failureReason(errString(strings.Repeat("é", 4<<10)))
	if len(long) > maxReason || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "éé") {
		t.Fatalf("a reason of %d bytes: %q…", len(long), long[:16])
	}
	if got := failureReason(errString("short")); got != "short" {
		t.Fatalf("failureReason(short) = %q", got)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
