package stream

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestAnEventGroupCarriesItsEventsInOrder(t *testing.T) {
	var body []byte
	var want []string
	for i := range 3 {
		b, err := EncodeEvent(&Event{ID: "evt_" + strconv.Itoa(i), AccountID: "brand-1", Type: "action_clearing", Time: time.Unix(3000, 0).UTC(),
			Data: map[string]any{"ActionId": "A-" + strconv.Itoa(i)}})
		if err != nil {
			t.Fatal(err)
		}
		body = AppendGroupEvent(body, b)
		want = append(want, string(b))
	}
	got, err := GroupEvents(body, "3")
	if err != nil || len(got) != 3 {
		t.Fatalf("GroupEvents = %d events, %v; want 3", len(got), err)
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Errorf("event %d = %s, want %s", i, got[i], want[i])
		}
		ev, err := DecodeEvent(got[i])
		if err != nil || ev.ID != "evt_"+strconv.Itoa(i) {
			t.Errorf("event %d decodes to %q, %v", i, ev.ID, err)
		}
	}
}

func TestAMalformedEventGroupIsRefusedNotHalfRead(t *testing.T) {
	body := AppendGroupEvent(AppendGroupEvent(nil, []byte(`{"id":"evt_1"}`)), []byte(`{"id":"evt_2"}`))
	for _, tc := range []struct {
		name, count string
		body        []byte
	}{
		{"a count above what it holds", "3", body},
		{"a count below what it holds", "1", body},
		{"a count that is not a number", "two", body},
		{"a count of none", "0", body},
		{"a count above the bound", strconv.Itoa(MaxGroupEvents + 1), body},
		{"a body cut short", "2", body[:len(body)-3]},
		{"an empty body", "1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if evs, err := GroupEvents(tc.body, tc.count); err == nil {
				t.Fatalf("split into %d events, want an error", len(evs))
			}
		})
	}
}

func TestEveryEventOfAGroupHasAPlaceOfItsOwn(t *testing.T) {
	seen := map[string]bool{"7": true, "70": true} // single events' places: their sequence
	for _, seq := range []uint64{7, 70} {
		for i := range MaxGroupEvents {
			p := GroupPlace(seq, i)
			if seen[p] {
				t.Fatalf("place %q given twice", p)
			}
			seen[p] = true
		}
	}
}

func TestAGroupCarriesEachEventsOwnTraceOnlyWhenOneHasAny(t *testing.T) {
	traced := func(b byte) context.Context {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{b}, SpanID: trace.SpanID{b}, TraceFlags: trace.FlagsSampled})
		return trace.ContextWithSpanContext(context.Background(), sc)
	}
	bare := context.Background()
	for _, tc := range []struct {
		name string
		ctxs []context.Context
		want []string // nil: no header
	}{
		{"every event traced", []context.Context{traced(1), traced(2)}, []string{
			"00-01000000000000000000000000000000-0100000000000000-01", "00-02000000000000000000000000000000-0200000000000000-01"}},
		{"one event without a trace", []context.Context{traced(1), bare, traced(3)}, []string{
			"00-01000000000000000000000000000000-0100000000000000-01", "-", "00-03000000000000000000000000000000-0300000000000000-01"}},
		{"no event traced", []context.Context{bare, bare}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := nats.NewMsg("events.action_clearing.0")
			SetEventTraces(msg, tc.ctxs)
			if tc.want == nil {
				if v := msg.Header.Get(EventTracesHeader); v != "" {
					t.Fatalf("header %q, want none", v)
				}
				return
			}
			got := EventTraces(msg.Header, len(tc.ctxs))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("traces %q, want %q", got, tc.want)
			}
			if got := EventTraces(msg.Header, len(tc.ctxs)+1); got != nil {
				t.Errorf("read as a group of %d: %q, want nil (the count does not match)", len(tc.ctxs)+1, got)
			}
		})
	}
}
