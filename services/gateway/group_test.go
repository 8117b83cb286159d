package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// otherAccount is an account whose events go to another subject than
// brand-1's (another partition).
func otherAccount(t *testing.T) string {
	for i := range 100 {
		a := fmt.Sprintf("brand-%d", i+2)
		if stream.EventSubject("action_clearing", a) != stream.EventSubject("action_clearing", "brand-1") {
			return a
		}
	}
	t.Fatal("no account outside brand-1's partition")
	return ""
}

// storedEvents reads EVENTS' messages in order: for each, the ids of the
// events it carries and whether it is a group.
func storedEvents(t *testing.T, s *Server, n int) (ids [][]string, grouped []bool) {
	t.Helper()
	ctx := context.Background()
	st, err := s.js.Stream(ctx, stream.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); len(ids) < n; seq++ {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("events.>"))
		if err != nil {
			t.Fatalf("message %d: %v", len(ids), err)
		}
		seq = m.Sequence
		bodies := [][]byte{m.Data}
		count := m.Header.Get(stream.GroupHeader)
		if count != "" {
			if bodies, err = stream.GroupEvents(m.Data, count); err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
		}
		var in []string
		for _, b := range bodies {
			ev, err := stream.DecodeEvent(b)
			if err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
			in = append(in, ev.ID)
		}
		ids, grouped = append(ids, in), append(grouped, count != "")
	}
	return ids, grouped
}

func TestABatchStoresConsecutiveEventsOfOneSubjectTogether(t *testing.T) {
	other := otherAccount(t)
	for _, tc := range []struct {
		name     string
		accounts []string
		want     []int // events per stored message, in order
	}{
		{"one account", []string{"brand-1", "brand-1", "brand-1"}, []int{3}},
		{"another account between", []string{"brand-1", "brand-1", "brand-1", other, "brand-1", "brand-1"}, []int{3, 1, 2}},
		{"a lone event", []string{"brand-1"}, []int{1}},
		{"more than a group holds", repeat("brand-1", stream.MaxGroupEvents+5), []int{stream.MaxGroupEvents, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := keyedServer(t, time.Minute)
			req := &postbackv1.PublishBatchRequest{}
			for _, a := range tc.accounts {
				ev := clearing("")
				ev.AccountId = a
				req.Events = append(req.Events, ev)
			}
			res, err := s.PublishBatch(operatorCtx(), req)
			if err != nil {
				t.Fatal(err)
			}
			ids, grouped := storedEvents(t, s, len(tc.want))
			next := 0
			for m, n := range tc.want {
				if len(ids[m]) != n || grouped[m] != (n > 1) {
					t.Fatalf("message %d carries %d events (a group: %v), want %d", m, len(ids[m]), grouped[m], n)
				}
				for _, id := range ids[m] {
					r := res.Results[next]
					if r.Error != nil || r.EventId != id {
						t.Fatalf("event %d: result %v, stored as %s; want its id, in order", next, r, id)
					}
					next++
				}
			}
			if got := events(t, s.js); got != uint64(len(tc.want)) {
				t.Errorf("EVENTS holds %d messages, want %d", got, len(tc.want))
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
