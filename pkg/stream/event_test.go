package stream

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/event"
)

// sampleStreamEvents are the seed's example events (pkg/event's samples)
// wrapped as the gateway publishes them.
func sampleStreamEvents() []Event {
	var out []Event
	at := time.Date(2026, 4, 8, 9, 0, 0, 123456789, time.UTC)
	for i, typ := range event.Types() {
		out = append(out, Event{
			ID: "evt_" + typ.Name, AccountID: "brand-1", Type: typ.Name,
			Time: at.Add(time.Duration(i) * time.Second), Data: typ.Sample(),
		})
	}
	return out
}

// decodeEventStd is the reference: what the renderer did before DecodeEvent
// (a json.Decoder with UseNumber), for input that is one JSON value.
func decodeEventStd(b []byte) (Event, bool) {
	var ev Event
	if !json.Valid(b) {
		return ev, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, false
	}
	return ev, true
}

func TestEncodeEventWritesWhatJSONMarshalWrites(t *testing.T) {
	events := sampleStreamEvents()
	var structData map[string]any // numbers as float64, as structpb.AsMap gives them
	b, _ := json.Marshal(events[0].Data)
	_ = json.Unmarshal(b, &structData)
	zone := time.FixedZone("", -(7*3600 + 30*60))
	events = append(events,
		Event{ID: "evt_structpb", AccountID: "brand-1", Type: "action_lifecycle", Time: time.Now(), Data: structData},
		Event{},
		Event{ID: `odd "id" <&>`, AccountID: "a\u2028b", Type: "t\xff", Time: time.Date(1, 1, 1, 0, 0, 0, 0, zone), Data: map[string]any{}},
		Event{ID: "e", Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.Local), Data: map[string]any{
			"n": json.Number("12.50"), "f": 1e21, "g": 1e-7, "s": "a\nb", "l": []any{nil, true, map[string]any{"z": 1, "a": 2}},
		}},
	)
	for _, e := range events {
		want, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeEvent(&e)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("EncodeEvent(%s)\n got %s (%v)\nwant %s", e.ID, got, err, want)
		}
	}
}

func TestEncodeEventFailsWhereJSONMarshalFails(t *testing.T) {
	for name, e := range map[string]Event{
		"NaN in data":   {ID: "e", Data: map[string]any{"Payout": math.NaN()}},
		"bad number":    {ID: "e", Data: map[string]any{"Payout": json.Number("1.")}},
		"year 10000":    {ID: "e", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"negative year": {ID: "e", Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"zone over 24h": {ID: "e", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 25*3600))},
	} {
		_, wantErr := json.Marshal(&e)
		_, err := EncodeEvent(&e)
		if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: EncodeEvent error %v, json.Marshal error %v", name, err, wantErr)
		}
	}
}

// oddEvents are event messages the gateway does not write, which DecodeEvent
// reads as encoding/json does.
var oddEvents = map[string]string{
	"null":                       `null`,
	"null with spaces":           " \n null \t",
	"empty object":               `{}`,
	"null data":                  `{"id":"e1","data":null}`,
	"empty data":                 `{"id":"e1","data":{}}`,
	"no data":                    `{"id":"e1","account_id":"a","event_type":"job_completed","time":"2026-04-08T09:00:00Z"}`,
	"keys in other case":         `{"ID":"e1","Account_ID":"a","EVENT_TYPE":"t","Time":"2026-04-08T09:00:00Z","DATA":{"x":1}}`,
	"escaped key in other case":  `{"\u0049d":"e1"}`,
	"dotted capital I is not i":  `{"id":"e1","\u0130d":"x","\u0131d":"y"}`,
	"unknown fields":             `{"id":"e1","extra":{"deep":[1,2,{"x":null}]},"data":{"a":1}}`,
	"repeated id":                `{"id":"e1","id":"e2"}`,
	"null keeps a field":         `{"id":"e1","account_id":"a","time":"2026-04-08T09:00:00Z","id":null,"account_id":null,"time":null}`,
	"repeated data merges":       `{"data":{"a":1,"b":2},"data":{"b":3,"c":4}}`,
	"null data then data":        `{"data":{"a":1},"data":null,"data":{"c":4}}`,
	"data then null":             `{"data":{"a":1},"data":null}`,
	"time with offset":           `{"time":"2026-04-08T09:00:00.5+02:00"}`,
	"time with nanoseconds":      `{"time":"2026-04-08T09:00:00.123456789Z"}`,
	"escaped strings":            `{"id":"e\u00e9\n","data":{"k\"":"v\\","s":"\ud83c\udf89\ud800"}}`,
	"invalid UTF-8":              "{\"id\":\"e\xff\",\"data\":{\"\xfe\":\"\xc3(\"}}",
	"whitespace":                 " {\n\t\"id\" : \"e1\" ,\r\n \"data\" : { } } ",
	"numbers kept as text":       `{"data":{"a":1.50,"b":-0,"c":1E+400,"d":123456789012345678901234567890}}`,
	"items":                      `{"data":{"items":[{"sku":"A","amt":33.25},{"sku":"B","amt":34.25}]}}`,
	"empty key in data":          `{"data":{"":1}}`,
	"depth at the limit in data": `{"data":{"d":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`,
}

// badEvents are event messages both encoding/json and DecodeEvent refuse.
var badEvents = map[string]string{
	"empty":                  ``,
	"array":                  `[]`,
	"string":                 `"event"`,
	"number":                 `1`,
	"boolean":                `true`,
	"number id":              `{"id":5}`,
	"object account":         `{"account_id":{}}`,
	"array event type":       `{"event_type":["a"]}`,
	"boolean id":             `{"id":true}`,
	"array data":             `{"data":[]}`,
	"string data":            `{"data":"x"}`,
	"number data":            `{"data":1}`,
	"time not RFC 3339":      `{"time":"yesterday"}`,
	"time without zone":      `{"time":"2026-04-08T09:00:00"}`,
	"time as a number":       `{"time":1775638800}`,
	"time as an object":      `{"time":{}}`,
	"time with an escape":    `{"time":"2026\u002d04-08T09:00:00Z"}`,
	"time with 24h":          `{"time":"2026-04-08T24:00:00Z"}`,
	"time lower-case t, z":   `{"time":"2026-04-08t09:00:00z"}`,
	"syntax error":           `{"id":"e1",}`,
	"syntax error in data":   `{"data":{"a":01}}`,
	"unterminated":           `{"id":"e1"`,
	"trailing comma":         `{"id":"e1","data":{},}`,
	"depth over the limit":   `{"data":{"d":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`,
	"control char in string": "{\"id\":\"a\x01\"}",
}

func TestDecodeEventReadsWhatEncodingJSONReads(t *testing.T) {
	cases := map[string][]byte{}
	for name, s := range oddEvents {
		cases[name] = []byte(s)
	}
	for _, e := range sampleStreamEvents() {
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		cases["sample "+e.Type] = b
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			want, ok := decodeEventStd(b)
			if !ok {
				t.Fatal("encoding/json refuses it: a bad case")
			}
			got, err := DecodeEvent(b)
			if err != nil {
				t.Fatalf("DecodeEvent: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeEvent\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestDecodeEventRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for name, s := range badEvents {
		t.Run(name, func(t *testing.T) {
			if _, ok := decodeEventStd([]byte(s)); ok {
				t.Fatal("encoding/json accepts it: a bad case")
			}
			if ev, err := DecodeEvent([]byte(s)); err == nil {
				t.Fatalf("DecodeEvent accepts it: %#v", ev)
			}
		})
	}
}

// A json.Decoder stops after the first value; DecodeEvent refuses anything
// after the event, as json.Unmarshal does.
func TestDecodeEventRefusesDataAfterTheEvent(t *testing.T) {
	for _, s := range []string{`{"id":"e1"} x`, `{"id":"e1"}{"id":"e2"}`, `null null`} {
		if _, err := DecodeEvent([]byte(s)); err == nil {
			t.Errorf("DecodeEvent accepts %q", s)
		}
	}
}

func TestEventsRoundTrip(t *testing.T) {
	for _, e := range sampleStreamEvents() {
		b, err := EncodeEvent(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != e.ID || got.AccountID != e.AccountID || got.Type != e.Type || !got.Time.Equal(e.Time) || len(got.Data) != len(e.Data) {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
		again, err := EncodeEvent(&got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("encoded again:\n got %s (%v)\nwant %s", again, err, b)
		}
	}
}

// FuzzDecodeEvent: DecodeEvent accepts exactly the messages that encoding/json
// (a Decoder with UseNumber, the whole input one value) reads into an Event,
// and reads them the same.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range oddEvents {
		f.Add([]byte(s))
	}
	for _, s := range badEvents {
		f.Add([]byte(s))
	}
	for _, e := range sampleStreamEvents() {
		b, _ := json.Marshal(&e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, ok := decodeEventStd(b)
		got, err := DecodeEvent(b)
		if !ok {
			if err == nil {
				t.Fatalf("DecodeEvent accepts %q, encoding/json does not: %#v", b, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeEvent refuses %q, encoding/json reads it: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeEvent(%q)\n got %#v\nwant %#v", b, got, want)
		}
	})
}

// The event benchmarks use the seed's action_lifecycle example (about 60
// data points, 2 items).
func BenchmarkDecodeEvent(b *testing.B) {
	e := sampleStreamEvents()[0]
	data, _ := json.Marshal(&e)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := sampleStreamEvents()[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEvent(&e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEventEncodingJSON(b *testing.B) {
	e := sampleStreamEvents()[0]
	data, _ := json.Marshal(&e)
	b.ReportAllocs()
	for b.Loop() {
		var ev Event
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEventEncodingJSON(b *testing.B) {
	e := sampleStreamEvents()[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&e); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEncodeEvent: EncodeEvent writes what json.Marshal writes, byte for
// byte, or fails where it fails with its error, for arbitrary ids, times
// (zones included) and data (from arbitrary JSON, numbers as float64 as
// structpb gives them); and DecodeEvent reads it back as encoding/json does.
func FuzzEncodeEvent(f *testing.F) {
	for _, e := range sampleStreamEvents() {
		data, _ := json.Marshal(e.Data)
		f.Add(e.ID, e.AccountID, e.Type, e.Time.Unix(), int64(e.Time.Nanosecond()), 0, data)
	}
	f.Add("a\xff\"<", "\u2028", "", int64(-62135596800), int64(0), -45000, []byte(`{"x":1e-7,"y":[null,"\u0000"]}`))
	f.Add("e", "a", "t", int64(253402300800), int64(1), 90000, []byte(`null`))
	f.Fuzz(func(t *testing.T, id, account, typ string, sec, nsec int64, offset int, data []byte) {
		e := Event{ID: id, AccountID: account, Type: typ, Time: time.Unix(sec, nsec).In(time.FixedZone("", offset%200000))}
		_ = json.Unmarshal(data, &e.Data)
		want, wantErr := json.Marshal(&e)
		got, err := EncodeEvent(&e)
		if wantErr != nil || err != nil {
			if wantErr == nil || err == nil || err.Error() != wantErr.Error() {
				t.Fatalf("EncodeEvent error %v, json.Marshal error %v", err, wantErr)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("EncodeEvent\n got %s\nwant %s", got, want)
		}
		back, err := DecodeEvent(got)
		std, ok := decodeEventStd(got)
		if !ok || err != nil || !reflect.DeepEqual(back, std) {
			t.Fatalf("DecodeEvent(%s) = %#v, %v; encoding/json reads %#v (%v)", got, back, err, std, ok)
		}
	})
}
