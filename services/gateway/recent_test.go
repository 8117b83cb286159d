package gateway

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/recent"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func accountCtx(account string) context.Context {
	return auth.NewContext(context.Background(), auth.Identity{Account: account, TokenID: "t-" + account})
}

func TestListRecentEventsAppliesTheTenancyRules(t *testing.T) {
	s, js := keyedServer(t, time.Minute)
	ctx := context.Background()
	store, err := recent.OpenStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"evt_1", "evt_2"} {
		ev := recent.Event{ID: id, Time: time.Unix(int64(1000+i), 0).UTC(), Data: json.RawMessage(`{"ActionId":"A-` + id + `","CampaignId":9876}`)}
		if err := store.Add(ctx, "brand-a", "action_clearing", ev); err != nil {
			t.Fatal(err)
		}
	}
	req := func(account, typ string) *postbackv1.ListRecentEventsRequest {
		return &postbackv1.ListRecentEventsRequest{AccountId: account, EventType: typ}
	}
	check := func(who string, resp *postbackv1.ListRecentEventsResponse, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if len(resp.Events) != 2 || resp.Events[0].EventId != "evt_2" || resp.Events[1].EventId != "evt_1" {
			t.Fatalf("%s: %v, want evt_2, evt_1", who, resp.Events)
		}
		e := resp.Events[0]
		if e.EventType != "action_clearing" || !e.CreateTime.AsTime().Equal(time.Unix(1001, 0)) ||
			e.Data.AsMap()["ActionId"] != "A-evt_2" || e.Data.AsMap()["CampaignId"] != float64(9876) {
			t.Fatalf("%s: %v", who, e)
		}
	}
	// The account itself, by name or implicitly.
	resp, err := s.ListRecentEvents(accountCtx("brand-a"), req("brand-a", "action_clearing"))
	check("brand-a", resp, err)
	resp, err = s.ListRecentEvents(accountCtx("brand-a"), req("", "action_clearing"))
	check("brand-a, account implicit", resp, err)
	// An operator names any account.
	resp, err = s.ListRecentEvents(operatorCtx(), req("brand-a", "action_clearing"))
	check("operator", resp, err)
	// Another account's token cannot list them.
	if _, err := s.ListRecentEvents(accountCtx("brand-b"), req("brand-a", "action_clearing")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("brand-b listing brand-a's: %v, want PermissionDenied", err)
	}
	if resp, err := s.ListRecentEvents(accountCtx("brand-b"), req("", "action_clearing")); err != nil || len(resp.Events) != 0 {
		t.Fatalf("brand-b's own: %v, %v; want none", resp, err)
	}
	// No caller: nothing.
	if _, err := s.ListRecentEvents(context.Background(), req("brand-a", "action_clearing")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no caller: %v", err)
	}
	// Bad input: BadRequest field violations.
	_, err = s.ListRecentEvents(accountCtx("brand-a"), req("brand-a", "no_such_type"))
	checkBadRequest(t, err, "event_type")
	_, err = s.ListRecentEvents(accountCtx("brand-a"), req("brand-a", ""))
	checkBadRequest(t, err, "event_type")
	_, err = s.ListRecentEvents(operatorCtx(), req("bad account!", "nope"))
	checkBadRequest(t, err, "account_id", "event_type")
	_, err = s.ListRecentEvents(operatorCtx(), req("", "action_clearing"))
	checkBadRequest(t, err, "account_id")
}
