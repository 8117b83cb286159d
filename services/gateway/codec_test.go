package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/auth"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func codecData(t testing.TB) *structpb.Struct {
	t.Helper()
	items := []any{}
	for i := range 3 {
		items = append(items, map[string]any{"sku": "SKU-" + string(rune('0'+i)), "amt": 33.25 + float64(i), "qty": float64(i + 1)})
	}
	s, err := structpb.NewStruct(map[string]any{"ActionId": "ACT-1", "Amount": 100.0, "Status": "APPROVED",
		"Nothing": nil, "Flag": true, "Nested": map[string]any{"ключ": []any{}, "x": []any{1.0, "2", map[string]any{}}}, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unknownField is field 99 (no field of PublishRequest or
// PublishBatchRequest), a string.
var unknownField = protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "from a newer client")

// split is b as a BufferSlice of up to three buffers, as gRPC may hand it.
func split(b []byte, parts int) mem.BufferSlice {
	var s mem.BufferSlice
	for i := 0; i < parts-1 && len(b) > 1; i++ {
		n := len(b) / (parts - i)
		s = append(s, mem.SliceBuffer(b[:n]))
		b = b[n:]
	}
	return append(s, mem.SliceBuffer(b))
}

// withoutData is m's unknown fields less the data fields.
func withoutData(t *testing.T, m *postbackv1.PublishRequest) {
	t.Helper()
	var rest []byte
	for b := m.ProtoReflect().GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("malformed unknown fields %x", m.ProtoReflect().GetUnknown())
		}
		l := protowire.ConsumeFieldValue(num, typ, b[n:])
		if l < 0 {
			t.Fatalf("malformed unknown fields %x", m.ProtoReflect().GetUnknown())
		}
		if num != publishDataField || typ != protowire.BytesType {
			rest = append(rest, b[:n+l]...)
		}
		b = b[n+l:]
	}
	m.ProtoReflect().SetUnknown(rest)
}

// checkDecoded checks that got, the server codec's PublishRequest, is want,
// proto.Unmarshal's: the same data through eventData, the same everything
// else (unknown fields but the data included).
func checkDecoded(t *testing.T, got, want *postbackv1.PublishRequest) {
	t.Helper()
	if got.Data != nil {
		t.Fatal("the codec decoded data")
	}
	gotData, gotErr := eventData(got)
	wantData, wantErr := eventData(want)
	if (gotErr != nil) != (wantErr != nil) || !reflect.DeepEqual(gotData, wantData) {
		t.Fatalf("eventData = %#v, %v\nwant %#v, %v", gotData, gotErr, wantData, wantErr)
	}
	got, want = proto.CloneOf(got), proto.CloneOf(want)
	withoutData(t, got)
	want.Data = nil
	if !proto.Equal(got, want) {
		t.Fatalf("decoded\n%v\nwant\n%v", got, want)
	}
}

func TestServerCodecLeavesDataForEventData(t *testing.T) {
	data := codecData(t)
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	full := &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: data,
		IdempotencyKey: "idem-1", EventId: "evt-1"}
	dataTwice := &postbackv1.PublishRequest{AccountId: "brand-1", Data: data}
	twice := marshal(dataTwice)
	other, _ := structpb.NewStruct(map[string]any{"ActionId": "second", "Extra": []any{true}})
	twice = protowire.AppendBytes(protowire.AppendTag(twice, publishDataField, protowire.BytesType), marshal(other))
	requests := map[string][]byte{
		"all fields":          marshal(full),
		"without data":        marshal(&postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", IdempotencyKey: "k"}),
		"empty data":          marshal(&postbackv1.PublishRequest{AccountId: "brand-1", Data: &structpb.Struct{}}),
		"only data":           marshal(&postbackv1.PublishRequest{Data: data}),
		"empty":               nil,
		"unknown field":       append(marshal(full), unknownField...),
		"unknown field first": append(append([]byte{}, unknownField...), marshal(full)...),
		"data twice (merged)": twice,
		"data, wrong wire type": protowire.AppendVarint(protowire.AppendTag(marshal(&postbackv1.PublishRequest{AccountId: "a"}),
			publishDataField, protowire.VarintType), 1),
	}
	codec := newServerCodec()
	for name, b := range requests {
		t.Run(name, func(t *testing.T) {
			want := &postbackv1.PublishRequest{}
			if err := proto.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			for parts := 1; parts <= 3; parts++ {
				got := &postbackv1.PublishRequest{}
				if err := codec.Unmarshal(split(b, parts), got); err != nil {
					t.Fatal(err)
				}
				checkDecoded(t, got, want)

				batch := &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{full, want, {EventId: "x"}}}
				bb := append(marshal(batch), unknownField...)
				bb = protowire.AppendBytes(protowire.AppendTag(bb, batchEventsField, protowire.BytesType), b)
				wantBatch := &postbackv1.PublishBatchRequest{}
				if err := proto.Unmarshal(bb, wantBatch); err != nil {
					t.Fatal(err)
				}
				gotBatch := &postbackv1.PublishBatchRequest{}
				if err := codec.Unmarshal(split(bb, parts), gotBatch); err != nil {
					t.Fatal(err)
				}
				if len(gotBatch.Events) != len(wantBatch.Events) {
					t.Fatalf("%d events, want %d", len(gotBatch.Events), len(wantBatch.Events))
				}
				for i := range gotBatch.Events {
					checkDecoded(t, gotBatch.Events[i], wantBatch.Events[i])
				}
				if !reflect.DeepEqual(gotBatch.ProtoReflect().GetUnknown(), wantBatch.ProtoReflect().GetUnknown()) {
					t.Fatalf("batch unknown fields %x, want %x", gotBatch.ProtoReflect().GetUnknown(), wantBatch.ProtoReflect().GetUnknown())
				}
			}
		})
	}
}

func TestServerCodecDecodesOtherMessagesAsProtoDoes(t *testing.T) {
	codec := newServerCodec()
	req := &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{AccountId: "brand-1", EventType: "action_clearing",
		Url: "https://brand.example/pb", Headers: []*postbackv1.Header{{Name: "X-H", Value: "v"}}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, unknownField...)
	want := &postbackv1.CreateEndpointRequest{}
	if err := proto.Unmarshal(b, want); err != nil {
		t.Fatal(err)
	}
	got := &postbackv1.CreateEndpointRequest{}
	if err := codec.Unmarshal(split(b, 2), got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) || len(got.ProtoReflect().GetUnknown()) == 0 {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	out, err := codec.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if m := out.Materialize(); !reflect.DeepEqual(m, b) {
		t.Fatalf("Marshal = %x, want %x", m, b)
	}
	out.Free()
	// Malformed input fails as proto.Unmarshal fails, for every type.
	for _, m := range []proto.Message{&postbackv1.PublishRequest{}, &postbackv1.PublishBatchRequest{}, &postbackv1.CreateEndpointRequest{}} {
		for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0x0a, 0x01, 0xff}, {0x1a, 0x09, 0x0a}, {0x80}} {
			wantErr := proto.Unmarshal(bad, proto.Clone(m))
			err := codec.Unmarshal(split(bad, 1), m)
			if _, isRequest := m.(*postbackv1.PublishRequest); isRequest && bytes.Equal(bad, []byte{0x0a, 0x01, 0xff}) {
				// Well formed, but account_id is not UTF-8: the request is
				// marked for requestChecks, not refused by the codec.
				if wantErr == nil || err != nil || utf8Mark(m) == nil || utf8Mark(m).list[0].field != "account_id" {
					t.Errorf("%T %x: %v, mark %v, proto.Unmarshal: %v", m, bad, err, utf8Mark(m), wantErr)
				}
				continue
			}
			if (err != nil) != (wantErr != nil) {
				t.Errorf("%T %x: %v, proto.Unmarshal: %v", m, bad, err, wantErr)
			}
		}
	}
}

// rawCodec is a client codec that sends a rawMessage's bytes as they are.
type rawCodec struct{ encoding.CodecV2 }

type rawMessage []byte

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(*r)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// codecServer serves s's services with the gateway's server options, on a
// loopback port, and returns a connection to it that sends raw bytes.
func codecServer(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := grpc.NewServer(append(a.ServerOptions(), serverCodecOptions()...)...)
	s.Register(g, health.NewServer())
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{encoding.GetCodecV2("proto")})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestAMalformedDataFieldIsInvalidArgumentNamingIt(t *testing.T) {
	cc := codecServer(t, fuzzServer(t, Limits{}))
	valid, err := proto.Marshal(&postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle"})
	if err != nil {
		t.Fatal(err)
	}
	withData := func(data []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(append([]byte{}, valid...), publishDataField, protowire.BytesType), data)
	}
	for name, c := range map[string]struct {
		data  []byte
		field string // what the error names
	}{
		"invalid UTF-8":       {[]byte{0x0a, 0x0a, 0x0a, 0x01, 'k', 0x12, 0x05, 0x1a, 0x03, 0xed, 0xa0, 0x80}, "data.k"},
		"entry past its end":  {[]byte{0x0a, 0x05, 0x0a, 0x01, 'k'}, "data"},
		"value past its end":  {[]byte{0x0a, 0x05, 0x0a, 0x01, 'k', 0x12, 0x09}, "data"},
		"reserved wire type":  {[]byte{0x0f}, "data"},
		"field number 0":      {[]byte{0x00, 0x01}, "data"},
		"unterminated varint": {[]byte{0x0a, 0x02, 0x20, 0x80}, "data"},
	} {
		t.Run(name, func(t *testing.T) {
			req := rawMessage(withData(c.data))
			err := cc.Invoke(operator(), postbackv1.EventService_Publish_FullMethodName, &req, &postbackv1.PublishResponse{})
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), c.field+": ") {
				t.Fatalf("Publish: %v, want InvalidArgument naming %s", err, c.field)
			}

			bad := &postbackv1.PublishRequest{}
			if err := proto.Unmarshal(req, bad); err == nil {
				t.Fatalf("proto.Unmarshal accepts %x", []byte(req))
			}
			var batch []byte
			first, _ := proto.Marshal(&postbackv1.PublishRequest{AccountId: "brand-1", EventType: "no_such_type", Data: &structpb.Struct{}})
			batch = protowire.AppendBytes(protowire.AppendTag(batch, batchEventsField, protowire.BytesType), first)
			batch = protowire.AppendBytes(protowire.AppendTag(batch, batchEventsField, protowire.BytesType), req)
			breq := rawMessage(batch)
			resp := &postbackv1.PublishBatchResponse{}
			if err := cc.Invoke(operator(), postbackv1.EventService_PublishBatch_FullMethodName, &breq, resp); err != nil {
				t.Fatal(err)
			}
			if len(resp.Results) != 2 {
				t.Fatalf("results %v", resp.Results)
			}
			for i, field := range []string{"events[0].event_type: ", "events[1]." + c.field + ": "} {
				e := resp.Results[i].GetError()
				if codes.Code(e.GetCode()) != codes.InvalidArgument || !strings.HasPrefix(e.GetMessage(), field) {
					t.Fatalf("events[%d]: %v, want InvalidArgument naming %s", i, e, field)
				}
			}
		})
	}
	// Well-formed data is decoded, and validated, as before (the server has
	// no NATS: only refusals can be tested here).
	bogus, _ := structpb.NewStruct(map[string]any{"Bogus": 1.0})
	b, _ := proto.Marshal(bogus)
	req := rawMessage(withData(b))
	err = cc.Invoke(operator(), postbackv1.EventService_Publish_FullMethodName, &req, &postbackv1.PublishResponse{})
	_, wantErr := fuzzServer(t, Limits{}).Publish(operator(), &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: bogus})
	want := status.Convert(wantErr)
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want.Message() {
		t.Fatalf("Publish with a bogus data point: %v, want %v", err, want.Err())
	}
	req = rawMessage(valid)
	err = cc.Invoke(operator(), postbackv1.EventService_Publish_FullMethodName, &req, &postbackv1.PublishResponse{})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "data: required: an object of data points" {
		t.Fatalf("Publish without data: %v", err)
	}
}

func BenchmarkServerCodecPublish(b *testing.B) {
	data := codecData(b)
	msg, err := proto.Marshal(&postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: data, IdempotencyKey: "k"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"gateway", newServerCodec()}, {"proto", encoding.GetCodecV2("proto")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := &postbackv1.PublishRequest{}
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(msg)}, req); err != nil {
					b.Fatal(err)
				}
				if _, err := eventData(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
