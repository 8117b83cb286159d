package gateway

import (
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/eventdata"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// wireRequest is a PublishRequest as the server codec leaves it: the data
// field's bytes kept undecoded in the unknown fields.
func wireRequest(eventType string, data []byte) *postbackv1.PublishRequest {
	req := &postbackv1.PublishRequest{AccountId: "brand-1", EventType: eventType}
	req.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, publishDataField, protowire.BytesType), data))
	return req
}

func sampleWire(t testing.TB, typ *event.Type) []byte {
	t.Helper()
	st, err := structpb.NewStruct(typ.Sample())
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generalData is what prepare's general path makes of data: the JSON of the
// decoded map, or ok=false where it refuses the data.
func generalData(s *Server, typ *event.Type, wire []byte) (json []byte, ok bool) {
	data, err := eventdata.FromStructWire(wire)
	if err != nil {
		return nil, false
	}
	if items, isList := data[event.ItemsName].([]any); isList && len(items) > s.limits.MaxItems {
		return nil, false
	}
	typ.NumbersFromStrings(data)
	if typ.Validate(data) != nil {
		return nil, false
	}
	b, err := eventdata.AppendJSON(nil, data)
	return b, err == nil
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, err := eventdata.Parse(a)
	if err != nil {
		t.Fatalf("fast path wrote invalid JSON %s: %v", a, err)
	}
	vb, err := eventdata.Parse(b)
	if err != nil {
		t.Fatalf("general path wrote invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// Every event type's sample event, as a client's protobuf library writes
// it, takes the fast path and reads back as the general path's JSON.
func TestSampleEventsOfEveryTypeTakeTheFastPath(t *testing.T) {
	s := fuzzServer(t, Limits{})
	for _, typ := range event.Types() {
		t.Run(typ.Name, func(t *testing.T) {
			wire := sampleWire(t, typ)
			fast, ok := s.fastData(typ, wireRequest(typ.Name, wire))
			if !ok {
				t.Fatal("the sample event did not take the fast path")
			}
			general, ok := generalData(s, typ, wire)
			if !ok {
				t.Fatal("the general path refuses the sample")
			}
			if !sameJSON(t, fast, general) {
				t.Fatalf("fast path JSON\n%s\ngeneral path\n%s", fast, general)
			}
		})
	}
}

// What the fast path must leave to the general path: each of these is
// valid protobuf, and either invalid data or a shape the transcoder does
// not take.
func TestDataOutsideTheUsualShapeTakesTheGeneralPath(t *testing.T) {
	s := fuzzServer(t, Limits{MaxItems: 2})
	typ, _ := event.Lookup("action_lifecycle")
	entry := func(key string, value []byte) []byte {
		e := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), key)
		e = protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), value)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
	}
	str := func(s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), s)
	}
	num := func(f float64) []byte {
		return protowire.AppendFixed64(protowire.AppendTag(nil, 2, protowire.Fixed64Type), mathBits(f))
	}
	item := func(fields ...[]byte) []byte {
		var st []byte
		for _, f := range fields {
			st = append(st, f...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), st)
	}
	list := func(values ...[]byte) []byte {
		var l []byte
		for _, v := range values {
			l = protowire.AppendBytes(protowire.AppendTag(l, 1, protowire.BytesType), v)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), l)
	}
	cases := []struct {
		name string
		wire []byte
	}{
		{"an unknown data point", entry("Nope", str("x"))},
		{"a value of the wrong type", entry("Payout", str("ten"))},
		{"a decimal sent as a string", entry("Payout", str("10.50"))},
		{"a repeated key", append(entry("Status", str("A")), entry("Status", str("B"))...)},
		{"a NaN", entry("Payout", num(nan()))},
		{"more items than the limit", entry("items", list(item(), item(), item()))},
		{"an unknown item field", entry("items", list(item(entry("nope", str("x")))))},
		{"a repeated item field", entry("items", list(item(append(entry("sku", str("a")), entry("sku", str("b"))...))))},
		{"an item that is not an object", entry("items", list(str("x")))},
		{"a value with two kinds (the last wins)", entry("Status", append(str("A"), str("B")...))},
		{"an entry with no value", protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "Status"))},
		{"a field the Struct does not have", protowire.AppendString(protowire.AppendTag(nil, 7, protowire.BytesType), "x")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, ok := s.fastData(typ, wireRequest(typ.Name, c.wire)); ok {
				t.Fatal("took the fast path")
			}
		})
	}
	// And a few of them, valid all the same, come out right the general way.
	if _, ok := generalData(s, typ, entry("Status", append(str("A"), str("B")...))); !ok {
		t.Error("the general path refuses a value with two kinds")
	}
}

// The fast path never accepts what the general path refuses, and what it
// writes reads back as the general path's JSON.
func FuzzFastDataAgreesWithTheGeneralPath(f *testing.F) {
	s := fuzzServer(f, Limits{MaxItems: 3})
	types := event.Types()
	for i, typ := range types {
		f.Add(uint8(i), sampleWire(f, typ))
	}
	f.Fuzz(func(t *testing.T, which uint8, wire []byte) {
		typ := types[int(which)%len(types)]
		fast, ok := s.fastData(typ, wireRequest(typ.Name, wire))
		if !ok {
			return
		}
		general, valid := generalData(s, typ, wire)
		if !valid {
			t.Fatalf("the fast path accepted data the general path refuses: %x", wire)
		}
		if !sameJSON(t, fast, general) {
			t.Fatalf("fast path JSON\n%s\ngeneral path\n%s", fast, general)
		}
	})
}

func mathBits(f float64) uint64 { return math.Float64bits(f) }

func nan() float64 { return math.NaN() }
