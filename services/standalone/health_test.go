package standalone

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	"github.com/postback-dev/postback/pkg/opsevents"
	"github.com/postback-dev/postback/pkg/schedule"
	"github.com/postback-dev/postback/pkg/signature"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// aDay is the seed's schedule compressed 20,000 times: its ~31 hours of
// retries run in about 5.6 s, and a simulated day is 4.32 s.
var aDay = struct {
	schedule schedule.Schedule
	day      time.Duration
}{schedule.Default().Scale(1.0 / 20000), 24 * time.Hour / 20000}

// eventLog collects operational events from one channel.
type eventLog struct {
	mu  sync.Mutex
	got []*postbackv1.OperationalEvent
}

func (l *eventLog) add(ev *postbackv1.OperationalEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, ev)
}

func (l *eventLog) events() []*postbackv1.OperationalEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// types are the types of the endpoint events seen, in order (delivery.dead
// apart).
func (l *eventLog) types() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.got {
		out = append(out, ev.Type)
	}
	return out
}

func TestHealthAutoDisableHoldsAFailingDaysDeliveriesAndReplaysThemOnEnable(t *testing.T) {
	h := start(t, "", withSchedule(aDay.schedule))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, up := failing(t)

	// Channel 1: the documented NATS subject.
	viaNATS := &eventLog{}
	nc, err := nats.Connect(h.addrs.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe("operations.brand-1.>", func(m *nats.Msg) {
		if ev, err := opsevents.Decode(m.Data); err == nil {
			viaNATS.add(ev)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Channel 2: the gRPC server stream, as the account sees it.
	viaGRPC := &eventLog{}
	ops := postbackv1.NewOperationsServiceClient(h.conn)
	watch, err := ops.WatchOperationalEvents(ctx, &postbackv1.WatchOperationalEventsRequest{AccountId: "brand-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			ev, err := watch.Recv()
			if err != nil {
				return
			}
			viaGRPC.add(ev)
		}
	}()

	// Channel 3: the account's operational endpoint, an endpoint of type
	// operational_event, with a signing secret, through the same pipeline.
	viaPostback := &eventLog{}
	secret, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	opsRc := newReceiver(t)
	if _, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-1", EventType: "operational_event", Url: opsRc.URL, Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
		SigningSecret: secret}}); err != nil {
		t.Fatal(err)
	}
	// The operational postbacks are checked as they arrive; what is wrong
	// with one is reported when the test looks (unsigned, not JSON).
	var opsFaults []string
	opsRc.answer = func(n int, r *http.Request) (int, string) {
		body := opsRc.requests()[n-1].Body // the receiver has read it
		if err := signature.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
			viaPostback.mu.Lock()
			opsFaults = append(opsFaults, "not signed: "+err.Error())
			viaPostback.mu.Unlock()
		}
		var ev struct{ OperationalEventId, Type, EndpointId string }
		if err := json.Unmarshal(body, &ev); err != nil {
			viaPostback.mu.Lock()
			opsFaults = append(opsFaults, fmt.Sprintf("%q: %v", body, err))
			viaPostback.mu.Unlock()
			return 200, "OK"
		}
		viaPostback.add(&postbackv1.OperationalEvent{Id: ev.OperationalEventId, Type: ev.Type, EndpointId: ev.EndpointId, AccountId: "brand-1", Time: timestamppb.Now()})
		return 200, "OK"
	}
	defer func() {
		viaPostback.mu.Lock()
		defer viaPostback.mu.Unlock()
		for _, f := range opsFaults {
			t.Errorf("operational postback %s", f)
		}
	}()

	// Auto-disable comes from the account's default: 20 failed attempts
	// over a simulated day.
	if _, err := ops.UpdateAccountSettings(ctx, &postbackv1.UpdateAccountSettingsRequest{Settings: &postbackv1.AccountSettings{
		AccountId: "brand-1", AutoDisable: &postbackv1.AutoDisable{Enabled: true, AfterFailures: 20, AfterDuration: durationpb.New(aDay.day)}}}); err != nil {
		t.Fatal(err)
	}
	ep := postTo(t, h, rc.URL)
	for range 3 {
		publishClearing(t, h)
	}
	var disabled *postbackv1.Endpoint
	eventually(t, 60*time.Second, "the endpoint disabled automatically", func() bool {
		e, err := h.endpoints.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: ep.Id})
		if err != nil {
			t.Fatal(err)
		}
		disabled = e
		return !e.GetEnabled()
	})
	hl := disabled.GetHealth()
	if hl.GetConsecutiveFailures() < 20 || hl.GetFailingSince() == nil || !strings.Contains(hl.GetLastFailureReason(), "503") ||
		hl.GetLastFailureTime().AsTime().Sub(hl.GetFailingSince().AsTime()) < aDay.day {
		t.Errorf("health of the disabled endpoint = %v; want at least 20 failures over %s, the last a 503", hl, aDay.day)
	}
	if n := len(disabled.EnabledChanges); n != 1 || disabled.EnabledChanges[0].Actor != endpoint.ActorAutoDisable ||
		!disabled.EnabledChanges[0].Held || disabled.EnabledChanges[0].Reason == "" {
		t.Errorf("enabled_changes = %v; want one auto-disable that holds, with why", disabled.EnabledChanges)
	}
	// While failing, /metrics shows the endpoint.
	eventually(t, 10*time.Second, "the failing endpoint on /metrics", func() bool {
		v, ok := sample(scrape(t, h), "postback_endpoint_consecutive_failures", "endpoint_id", ep.Id)
		return ok && v >= 20
	})

	// Events published while it is disabled are held too, not dropped.
	for range 2 {
		publishClearing(t, h)
	}
	eventually(t, 30*time.Second, "every delivery held", func() bool {
		ds := listOf(t, h, ep.Id)
		return len(ds) == 5 && !slices.ContainsFunc(ds, func(d *postbackv1.Delivery) bool {
			return d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED || d.Reason != endpoint.ReasonHeld
		})
	})

	// The receiver is back; a person enables the endpoint, saying why.
	up()
	enabled, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
		Endpoint:   &postbackv1.Endpoint{Id: ep.Id, Enabled: proto.Bool(true)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}}, Reason: "the brand fixed its server"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(enabled.EnabledChanges); n != 2 || !enabled.EnabledChanges[1].Enabled || enabled.EnabledChanges[1].Reason != "the brand fixed its server" ||
		enabled.EnabledChanges[1].Actor == "" || enabled.EnabledChanges[1].Replayed != 5 {
		t.Errorf("enabled_changes after the enable = %v; want the enable with who and why, 5 replayed", enabled.EnabledChanges)
	}
	eventually(t, 30*time.Second, "every delivery SUCCEEDED", func() bool {
		return allStatus(listOf(t, h, ep.Id), 5, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)
	})
	want := []string{opsevents.EndpointFailing, opsevents.EndpointDisabled, opsevents.EndpointRecovered}
	for name, l := range map[string]*eventLog{"NATS subject": viaNATS, "gRPC stream": viaGRPC, "operational endpoint": viaPostback} {
		eventually(t, 10*time.Second, "failing, disabled and recovered on the "+name, func() bool {
			return slices.Equal(l.types(), want)
		})
		for _, ev := range l.events() {
			if ev.EndpointId != ep.Id || ev.AccountId != "brand-1" || ev.Id == "" || ev.Time == nil {
				t.Errorf("%s: event %v does not name the endpoint", name, ev)
			}
		}
	}
	healthy, err := h.endpoints.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: ep.Id})
	if err != nil {
		t.Fatal(err)
	}
	if hl := healthy.GetHealth(); hl.GetConsecutiveFailures() != 0 || hl.GetLastSuccessTime() == nil || hl.GetLastDay().GetSucceeded() != 5 || hl.GetLastHour().GetSucceeded() != 5 {
		t.Errorf("health after recovery = %v; want no failures, a last success, 5 succeeded in the hour and the day", hl)
	}
	for id, rs := range byDelivery(rc.requests()) {
		if rs[len(rs)-1].Header.Get("Postback-Delivery-Id") != id {
			t.Errorf("delivery %s: requests mixed up", id)
		}
	}
}

// listOf lists an endpoint's deliveries.
func listOf(t *testing.T, h *harness, endpointID string) []*postbackv1.Delivery {
	t.Helper()
	l, err := h.deliveries.ListDeliveries(context.Background(), &postbackv1.ListDeliveriesRequest{EndpointId: endpointID, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	return l.Deliveries
}

func TestHealthOperationalEventsStreamKeepsToTheCallersAccount(t *testing.T) {
	h := start(t, "", withTokens(t))
	js := h.jetStream(t)
	ops := postbackv1.NewOperationsServiceClient(h.conn)
	tests := []struct {
		name     string
		token    string
		req      *postbackv1.WatchOperationalEventsRequest
		wantCode codes.Code
		badField string
		want     []string // account ids of the events seen, in order
	}{
		{name: "an account sees only its own", token: tokenA, req: &postbackv1.WatchOperationalEventsRequest{}, want: []string{acctA, acctA}},
		{name: "an operator sees every account", token: tokenOp, req: &postbackv1.WatchOperationalEventsRequest{}, want: []string{acctA, acctB, acctA}},
		{name: "an operator may pick one account", token: tokenOp, req: &postbackv1.WatchOperationalEventsRequest{AccountId: acctB}, want: []string{acctB}},
		{name: "another account is denied", token: tokenA, req: &postbackv1.WatchOperationalEventsRequest{AccountId: acctB}, wantCode: codes.PermissionDenied},
		{name: "an unknown type is named", token: tokenOp, req: &postbackv1.WatchOperationalEventsRequest{Types: []string{"endpoint.failing", "endpoint.exploded"}},
			wantCode: codes.InvalidArgument, badField: "types[1]"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := as(t, tt.token)
			w, err := ops.WatchOperationalEvents(ctx, tt.req)
			if err == nil {
				_, err = w.Header()
			}
			if tt.wantCode != codes.OK {
				if err == nil {
					_, err = w.Recv()
				}
				if status.Code(err) != tt.wantCode {
					t.Fatalf("error %v, want %s", err, tt.wantCode)
				}
				if tt.badField != "" && !hasViolation(err, tt.badField) {
					t.Errorf("error %v names no %s", err, tt.badField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for j, acc := range []string{acctA, acctB, acctA} {
				ev := &postbackv1.OperationalEvent{Id: fmt.Sprintf("test:%d:%d", i, j), Type: opsevents.EndpointFailing, AccountId: acc, EndpointId: "ep_x"}
				if err := opsevents.Publish(context.Background(), js, ev); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for range tt.want {
				ev, err := w.Recv()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev.AccountId)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events of %v, want %v", got, tt.want)
			}
		})
	}
}

// hasViolation reports whether err carries a BadRequest naming field.
func hasViolation(err error, field string) bool {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				if v.Field == field {
					return true
				}
			}
		}
	}
	return false
}

func TestHealthSettingsAreCheckedNamingTheField(t *testing.T) {
	h := start(t, "", nil)
	ctx := context.Background()
	rc := newReceiver(t)
	ep := postTo(t, h, rc.URL)
	ops := postbackv1.NewOperationsServiceClient(h.conn)
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"a negative failure count", func() error {
			_, err := h.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_clearing", Url: rc.URL, AutoDisable: &postbackv1.AutoDisable{Enabled: true, AfterFailures: -1}}})
			return err
		}, "endpoint.auto_disable.after_failures"},
		{"a span over 30 days", func() error {
			_, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
				Endpoint:   &postbackv1.Endpoint{Id: ep.Id, AutoDisable: &postbackv1.AutoDisable{Enabled: true, AfterDuration: durationpb.New(31 * 24 * time.Hour)}},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"auto_disable"}}})
			return err
		}, "endpoint.auto_disable.after_duration"},
		{"a reason over 1 KiB", func() error {
			_, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
				Endpoint: &postbackv1.Endpoint{Id: ep.Id, Enabled: proto.Bool(false)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}},
				Reason: strings.Repeat("x", 1025)})
			return err
		}, "reason"},
		{"the health block is read-only", func() error {
			_, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
				Endpoint: &postbackv1.Endpoint{Id: ep.Id}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"health"}}})
			return err
		}, "update_mask.paths[0]"},
		{"an account default with a negative span", func() error {
			_, err := ops.UpdateAccountSettings(ctx, &postbackv1.UpdateAccountSettingsRequest{Settings: &postbackv1.AccountSettings{
				AccountId: "brand-1", AutoDisable: &postbackv1.AutoDisable{Enabled: true, AfterDuration: durationpb.New(-time.Second)}}})
			return err
		}, "settings.auto_disable.after_duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || !hasViolation(err, tt.field) {
				t.Errorf("error %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func TestHealthDisablingByHandCancelsAndRecordsWhoAndWhy(t *testing.T) {
	h := start(t, "", withSchedule(schedule.Schedule{time.Hour}))
	ctx := context.Background()
	rc := newReceiver(t)
	rc.answer = func(int, *http.Request) (int, string) { return 503, "down" }
	ep := postTo(t, h, rc.URL)
	publishClearing(t, h)
	eventually(t, 20*time.Second, "the delivery RETRYING", func() bool {
		return allStatus(listOf(t, h, ep.Id), 1, postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING)
	})
	off, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
		Endpoint: &postbackv1.Endpoint{Id: ep.Id, Enabled: proto.Bool(false)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}},
		Reason: "the brand asked us to stop"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(off.EnabledChanges); n != 1 || off.EnabledChanges[0].Enabled || off.EnabledChanges[0].Held ||
		off.EnabledChanges[0].Reason != "the brand asked us to stop" || off.EnabledChanges[0].Actor == "" {
		t.Errorf("enabled_changes = %v; want one disable by the caller with the reason, not holding", off.EnabledChanges)
	}
	eventually(t, 20*time.Second, "the delivery cancelled (not held)", func() bool {
		ds := listOf(t, h, ep.Id)
		return len(ds) == 1 && ds[0].Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED && ds[0].Reason == endpoint.ReasonDisabled
	})
	on, err := h.endpoints.UpdateEndpoint(ctx, &postbackv1.UpdateEndpointRequest{
		Endpoint: &postbackv1.Endpoint{Id: ep.Id, Enabled: proto.Bool(true)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"enabled"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(on.EnabledChanges); n != 2 || !on.EnabledChanges[1].Enabled || on.EnabledChanges[1].Replayed != 0 {
		t.Errorf("enabled_changes = %v; want the enable recorded, nothing replayed", on.EnabledChanges)
	}
	if h := on.GetHealth(); h.GetConsecutiveFailures() < 1 || h.GetLastDay().GetFailed() != 0 {
		// The cancelled delivery is neither a success nor a failure now.
		t.Errorf("health = %v; want the failed attempt counted, no delivery failing in the day", h)
	}
}
