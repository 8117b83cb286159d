package gateway

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// violations is the BadRequest detail of st (failing the test when it has
// none, or more than one).
func violations(t *testing.T, st *spb.Status) []*errdetails.BadRequest_FieldViolation {
	t.Helper()
	var found []*errdetails.BadRequest_FieldViolation
	n := 0
	for _, d := range st.GetDetails() {
		br := &errdetails.BadRequest{}
		if d.MessageIs(br) {
			if err := d.UnmarshalTo(br); err != nil {
				t.Fatal(err)
			}
			found, n = br.FieldViolations, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d BadRequest details in %v, want 1", n, st)
	}
	return found
}

func fields(vs []*errdetails.BadRequest_FieldViolation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Field)
	}
	return out
}

// checkBadRequest checks that err is InvalidArgument whose BadRequest lists
// exactly want, and whose message lists the same, "field: what; …".
func checkBadRequest(t *testing.T, err error, want ...string) {
	t.Helper()
	st := status.Convert(err).Proto()
	checkStatus(t, st, want...)
}

func checkStatus(t *testing.T, st *spb.Status, want ...string) {
	t.Helper()
	if codes.Code(st.GetCode()) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", st)
	}
	vs := violations(t, st)
	if got := fields(vs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("violations %q, want %q (%s)", got, want, st.GetMessage())
	}
	var msg []string
	for _, v := range vs {
		if v.Description == "" {
			t.Errorf("%s: no description", v.Field)
		}
		msg = append(msg, v.Field+": "+v.Description)
	}
	if st.GetMessage() != strings.Join(msg, "; ") {
		t.Fatalf("message %q, want the violations %q", st.GetMessage(), strings.Join(msg, "; "))
	}
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInvalidArgumentListsEveryViolationAsABadRequest(t *testing.T) {
	s := fuzzServer(t, Limits{})
	ctx := operator()
	sealed := "enc:v1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	cases := []struct {
		name string
		call func() error
		want []string
	}{
		{"three bad data points", func() error {
			_, err := s.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle",
				Data: mustStruct(t, map[string]any{"Bogus": 1, "CampaignId": "abc", "Status": "OK",
					"items": []any{map[string]any{"sku": "S", "qty": 1.5}}})})
			return err
		}, []string{"data.Bogus", "data.CampaignId", "data.items[0].qty"}},
		{"three bad fields of a publish", func() error {
			_, err := s.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand 1", EventType: "no_such_type",
				Data: mustStruct(t, map[string]any{}), EventId: "bad id!"})
			return err
		}, []string{"account_id", "event_type", "event_id"}},
		{"bad fields and bad data points of a publish", func() error {
			_, err := s.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand 1", EventType: "action_lifecycle",
				Data: mustStruct(t, map[string]any{"Bogus": 1}), IdempotencyKey: strings.Repeat("k", MaxIdempotencyKey+1)})
			return err
		}, []string{"account_id", "data.Bogus", "idempotency_key"}},
		{"a publish without data", func() error {
			_, err := s.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle"})
			return err
		}, []string{"data"}},
		{"every secret in the sealed form", func() error {
			_, err := s.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/pb", SigningSecret: sealed,
				Headers: []*postbackv1.Header{{Name: "A", Value: sealed}, {Name: "B", Value: "b"}, {Name: "C", Value: sealed, Secret: true}}}})
			return err
		}, []string{"endpoint.headers[0].value", "endpoint.headers[2].value", "endpoint.signing_secret"}},
		{"an endpoint fault and a bad signing secret", func() error {
			_, err := s.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "action_lifecycle", Url: "https://brand.example/{Nope}", SigningSecret: "whsec_short"}})
			return err
		}, []string{"endpoint.url", "endpoint.signing_secret"}},
		{"a list of endpoints", func() error {
			_, err := s.ListEndpoints(ctx, &postbackv1.ListEndpointsRequest{AccountId: "a b", EventType: "nope", PageSize: -1})
			return err
		}, []string{"account_id", "event_type", "page_size"}},
		{"a list of deliveries", func() error {
			_, err := s.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "a b", EndpointId: "x", Status: 99, PageSize: -1})
			return err
		}, []string{"account_id", "endpoint_id", "status", "page_size"}},
		{"a list of dead letters", func() error {
			_, err := s.ListDeadLetters(ctx, &postbackv1.ListDeadLettersRequest{Consumer: "nobody", PageSize: -1, PageToken: "x"})
			return err
		}, []string{"consumer", "page_size", "page_token"}},
		{"a single fault keeps its message", func() error {
			_, err := s.GetEndpoint(ctx, &postbackv1.GetEndpointRequest{Id: "nope"})
			if got := status.Convert(err).Message(); got != `id: want an endpoint id (ep_…), got "nope"` {
				t.Errorf("message %q", got)
			}
			return err
		}, []string{"id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkBadRequest(t, c.call(), c.want...) })
	}
}

func TestPublishBatchResultsCarryTheirOwnBadRequest(t *testing.T) {
	s := fuzzServer(t, Limits{})
	resp, err := s.PublishBatch(operator(), &postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{
		{AccountId: "brand-1", EventType: "action_lifecycle", Data: mustStruct(t, map[string]any{"Bogus": 1, "CampaignId": "abc",
			"items": []any{map[string]any{"qty": "x"}}})},
		{AccountId: "brand-1", EventType: "no_such_type", Data: mustStruct(t, map[string]any{})},
		{AccountId: "brand 1", EventType: "action_lifecycle", Data: mustStruct(t, map[string]any{}), EventId: "bad id!"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"events[0].data.Bogus", "events[0].data.CampaignId", "events[0].data.items[0].qty"},
		{"events[1].event_type"},
		{"events[2].account_id", "events[2].event_id"},
	}
	if len(resp.Results) != len(want) {
		t.Fatalf("results %v", resp.Results)
	}
	for i, w := range want {
		t.Run(fmt.Sprintf("events[%d]", i), func(t *testing.T) { checkStatus(t, resp.Results[i].GetError(), w...) })
	}
}

// unknownPoints is data of n unknown data points.
func unknownPoints(t testing.TB, n int) *structpb.Struct {
	t.Helper()
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprintf("Unknown%06d", i)] = nil
	}
	return mustStruct(t, m)
}

func TestAHundredThousandUnknownDataPointsGiveABoundedError(t *testing.T) {
	cc := codecServer(t, fuzzServer(t, Limits{}))
	req, err := proto.Marshal(&postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: unknownPoints(t, 100_000)})
	if err != nil {
		t.Fatal(err)
	}
	raw := rawMessage(req)
	err = cc.Invoke(operator(), postbackv1.EventService_Publish_FullMethodName, &raw, &postbackv1.PublishResponse{})
	st := status.Convert(err).Proto()
	if codes.Code(st.Code) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	msg := st.GetMessage()
	if len(msg) > maxMessageBytes || !strings.HasPrefix(msg, "data.Unknown000000: unknown data point; data.Unknown000001: ") {
		t.Fatalf("message of %d bytes: %.200q", len(msg), msg)
	}
	listed := strings.Count(msg, "unknown data point")
	if tail := fmt.Sprintf("; … and %d more", 100_000-listed); !strings.HasSuffix(msg, tail) {
		t.Fatalf("message ends %q, want %q", msg[len(msg)-40:], tail)
	}
	vs := violations(t, st)
	if len(vs) != maxViolations || vs[0].Field != "data.Unknown000000" || vs[maxViolations-1].Field != "data.Unknown000099" {
		t.Fatalf("%d violations, %v … %v", len(vs), vs[0], vs[len(vs)-1])
	}
	if n := proto.Size(st); n > 16<<10 {
		t.Fatalf("the error is %d bytes", n)
	}
}

func TestABatchBoundsItsEventsErrorsTogether(t *testing.T) {
	s := fuzzServer(t, Limits{})
	data := unknownPoints(t, 150)
	req := &postbackv1.PublishBatchRequest{}
	for range MaxBatch {
		req.Events = append(req.Events, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_lifecycle", Data: data})
	}
	resp, err := s.PublishBatch(operator(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(resp); n > 3<<20 {
		t.Fatalf("the response is %d bytes", n)
	}
	first, last := resp.Results[0].GetError(), resp.Results[MaxBatch-1].GetError()
	if vs := violations(t, first); len(vs) != maxViolations || !strings.HasSuffix(first.Message, " more") || len(first.Message) > maxMessageBytes {
		t.Fatalf("the first event's error: %d violations, message of %d bytes", len(vs), len(first.Message))
	}
	if vs := violations(t, last); len(vs) != 1 || vs[0].Field != "events[999].data.Unknown000000" || len(last.Message) > tightMessage ||
		!strings.HasPrefix(last.Message, "events[999].data.Unknown000000: unknown data point; ") || !strings.HasSuffix(last.Message, " more") {
		t.Fatalf("the last event's error: %v", last)
	}
	for i, r := range resp.Results {
		if codes.Code(r.GetError().GetCode()) != codes.InvalidArgument {
			t.Fatalf("events[%d]: %v", i, r)
		}
	}
}

func TestErrorMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("é", 5000) // two bytes each: clipping must not split one
	cases := []struct {
		name  string
		err   error
		field string // of the BadRequest violation, for InvalidArgument
	}{
		{"Unavailable", status.Error(codes.Unavailable, long), ""},
		{"not a status", fmt.Errorf("store: %s", long), ""},
		{"InvalidArgument made elsewhere", status.Error(codes.InvalidArgument, "some_field: "+long), "some_field"},
		{"one violation", invalid("url", "%s", long), "url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := status.Convert(boundError(c.err)).Proto()
			if len(st.Message) > maxMessageBytes || !utf8.ValidString(st.Message) || !strings.HasSuffix(st.Message, "é…") {
				t.Fatalf("message of %d bytes, ending %q", len(st.Message), st.Message[max(len(st.Message)-10, 0):])
			}
			if c.field != "" {
				if vs := violations(t, st); len(vs) != 1 || vs[0].Field != c.field || len(vs[0].Description) > maxDescBytes {
					t.Fatalf("violations %v", vs)
				}
			}
		})
	}
	if err := status.Error(codes.NotFound, "short"); boundError(err) != err {
		t.Error("a short error is changed")
	}
	// Violations that are not UTF-8 themselves (a path of a data point
	// name that is not) still make a status that marshals.
	bad := &badRequest{}
	bad.add("data.\xff", "\xfe")
	if _, err := proto.Marshal(bad.GRPCStatus().Proto()); err != nil {
		t.Fatal(err)
	}
}

// placeholder stands for a string that is not UTF-8 when a request is
// built; notUTF8Bytes, of the same length, replaces it on the wire.
const placeholder = "zzBADzz"

var notUTF8Bytes = []byte("z\xffBAD\xfez")

// stringField is a string field of a request message, at path, set by set.
type stringField struct {
	path string
	set  func(m protoreflect.Message, v string)
}

// stringFields lists every string field of md, in nested messages too (of
// a repeated field, element 1 after an empty element 0), and of a Struct
// a data point, an item's field and a data point's name.
func stringFields(md protoreflect.MessageDescriptor, depth int) []stringField {
	var out []stringField
	fds := md.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		name := string(fd.Name())
		switch {
		case fd.IsMap():
			panic("a map field in the API: add it to this test")
		case fd.Kind() == protoreflect.StringKind && fd.IsList():
			out = append(out, stringField{name + "[1]", func(m protoreflect.Message, v string) {
				l := m.Mutable(fd).List()
				l.Append(protoreflect.ValueOfString("ok"))
				l.Append(protoreflect.ValueOfString(v))
			}})
		case fd.Kind() == protoreflect.StringKind:
			out = append(out, stringField{name, func(m protoreflect.Message, v string) { m.Set(fd, protoreflect.ValueOfString(v)) }})
		case fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() == "google.protobuf.Struct":
			data := func(m protoreflect.Message) *structpb.Struct {
				return m.Mutable(fd).Message().Interface().(*structpb.Struct)
			}
			out = append(out,
				stringField{name + ".Status", func(m protoreflect.Message, v string) {
					data(m).Fields = map[string]*structpb.Value{"Status": structpb.NewStringValue(v)}
				}},
				stringField{name + ".items[1].sku", func(m protoreflect.Message, v string) {
					item := func(sku string) *structpb.Value {
						return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"sku": structpb.NewStringValue(sku)}})
					}
					data(m).Fields = map[string]*structpb.Value{"items": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{item("ok"), item(v)}})}
				}},
				stringField{name, func(m protoreflect.Message, v string) { // a data point's name
					data(m).Fields = map[string]*structpb.Value{v: structpb.NewNullValue()}
				}},
			)
		case fd.Kind() == protoreflect.MessageKind && depth < 4:
			for _, sub := range stringFields(fd.Message(), depth+1) {
				if fd.IsList() {
					out = append(out, stringField{name + "[1]." + sub.path, func(m protoreflect.Message, v string) {
						l := m.Mutable(fd).List()
						l.Append(l.NewElement())
						e := l.NewElement()
						sub.set(e.Message(), v)
						l.Append(e)
					}})
				} else {
					out = append(out, stringField{name + "." + sub.path, func(m protoreflect.Message, v string) { sub.set(m.Mutable(fd).Message(), v) }})
				}
			}
		}
	}
	return out
}

func TestInvalidUTF8InAnyStringFieldIsInvalidArgumentNamingIt(t *testing.T) {
	cc := codecServer(t, fuzzServer(t, Limits{}))
	fd, err := protoregistry.GlobalFiles.FindFileByPath("postback/v1/event.proto")
	if err != nil {
		t.Fatal(err)
	}
	methods := 0
	protoregistry.GlobalFiles.RangeFilesByPackage(fd.Package(), func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				methods++
				in, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
				if err != nil {
					t.Fatal(err)
				}
				out, err := protoregistry.GlobalTypes.FindMessageByName(m.Output().FullName())
				if err != nil {
					t.Fatal(err)
				}
				for _, sf := range stringFields(m.Input(), 0) {
					t.Run(string(m.Name())+"/"+sf.path, func(t *testing.T) {
						req := in.New()
						sf.set(req, placeholder)
						b, err := proto.Marshal(req.Interface())
						if err != nil {
							t.Fatal(err)
						}
						if bytes.Count(b, []byte(placeholder)) != 1 {
							t.Fatalf("%x holds the placeholder %d times", b, bytes.Count(b, []byte(placeholder)))
						}
						raw := rawMessage(bytes.Replace(b, []byte(placeholder), notUTF8Bytes, 1))
						if proto.Unmarshal(raw, in.New().Interface()) == nil {
							t.Fatal("proto.Unmarshal accepts the request")
						}
						resp := out.New().Interface()
						err = cc.Invoke(operator(), "/"+string(svc.FullName())+"/"+string(m.Name()), &raw, resp)
						st := status.Convert(err).Proto()
						if m.Name() == "PublishBatch" {
							// events[0] is empty: it fails alone, with no
							// UTF-8 fault.
							if err != nil || len(resp.(*postbackv1.PublishBatchResponse).Results) != 2 {
								t.Fatalf("PublishBatch: %v %v", err, resp)
							}
							st = resp.(*postbackv1.PublishBatchResponse).Results[1].GetError()
						}
						if codes.Code(st.GetCode()) != codes.InvalidArgument {
							t.Fatalf("got %v, want InvalidArgument", st)
						}
						var utf8Fields []string
						for _, v := range violations(t, st) {
							if strings.Contains(v.Description, "UTF-8") {
								utf8Fields = append(utf8Fields, v.Field)
							}
						}
						if len(utf8Fields) != 1 || utf8Fields[0] != sf.path {
							t.Fatalf("UTF-8 violations of %q, want %s (%s)", utf8Fields, sf.path, st.GetMessage())
						}
						if !strings.Contains(st.GetMessage(), sf.path+": ") || !utf8.ValidString(st.GetMessage()) {
							t.Fatalf("message %q does not name %s", st.GetMessage(), sf.path)
						}
					})
				}
			}
		}
		return true
	})
	if methods < 16 {
		t.Fatalf("%d methods found", methods)
	}
}

func TestAMarkIsTheCodecsOwn(t *testing.T) {
	cc := codecServer(t, fuzzServer(t, Limits{}))
	// A request a client sends with a field numbered as a mark is decoded,
	// and handled, as any request with an unknown field.
	req, _ := proto.Marshal(&postbackv1.GetEndpointRequest{Id: "nope"})
	for _, v := range [][]byte{nil, append(append([]byte{}, markNonce[:4]...), 0x0a, 0x01, 'x', 0x12, 0x01, 'y')} {
		forged := protowire.AppendBytes(protowire.AppendTag(append([]byte{}, req...), markField, protowire.BytesType), v)
		raw := rawMessage(forged)
		err := cc.Invoke(context.Background(), postbackv1.EndpointService_GetEndpoint_FullMethodName, &raw, &postbackv1.Endpoint{})
		checkBadRequest(t, err, "id")
	}
	// Nor does a message the codec did not mark have a mark.
	m := &postbackv1.GetEndpointRequest{}
	m.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, markField, protowire.BytesType), markNonce[:8]))
	if utf8Mark(m) != nil {
		t.Fatal("a short mark is taken")
	}
}

func TestInvalidUTF8OutsideTheAPIKeepsProtosError(t *testing.T) {
	codec := newServerCodec()
	// grpc.health.v1.HealthCheckRequest{service: "\xff"}
	raw := []byte{0x0a, 0x01, 0xff}
	mt, err := protoregistry.GlobalTypes.FindMessageByName("grpc.health.v1.HealthCheckRequest")
	if err != nil {
		t.Fatal(err)
	}
	if err := codec.Unmarshal(split(raw, 1), mt.New().Interface()); err == nil {
		t.Fatal("the codec accepts a health check that is not UTF-8")
	}
	// Malformed bytes after invalid UTF-8 are malformed: proto's error.
	bad := append([]byte{0x0a, 0x01, 0xff}, 0x12, 0x09)
	if err := codec.Unmarshal(split(bad, 1), &postbackv1.GetDeliveryRequest{}); err == nil {
		t.Fatal("the codec accepts a malformed request")
	}
}

func TestEveryStringThatIsNotUTF8IsListed(t *testing.T) {
	cc := codecServer(t, fuzzServer(t, Limits{}))
	wire := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.ReplaceAll(b, []byte(placeholder), notUTF8Bytes)
	}
	publish := wire(&postbackv1.PublishRequest{AccountId: placeholder, EventType: "action_lifecycle",
		Data: mustStruct(t, map[string]any{"Status": placeholder}), IdempotencyKey: placeholder})
	malformedData := protowire.AppendBytes(protowire.AppendTag(wire(&postbackv1.PublishRequest{AccountId: placeholder}),
		publishDataField, protowire.BytesType), []byte{0x0a, 0x05, 0x0a, 0x01, 'k'})
	endpoint := wire(&postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{Url: placeholder,
		Headers: []*postbackv1.Header{{Name: "A", Value: placeholder}, {Name: "B"}, {Name: placeholder}}}})
	batch := wire(&postbackv1.PublishBatchRequest{Events: []*postbackv1.PublishRequest{{}, {AccountId: placeholder, EventId: placeholder}}})
	cases := []struct {
		name, method string
		req          []byte
		want         []string
	}{
		{"a publish", postbackv1.EventService_Publish_FullMethodName, publish, []string{"account_id", "data.Status", "idempotency_key"}},
		{"a publish with malformed data", postbackv1.EventService_Publish_FullMethodName, malformedData, []string{"account_id", "data"}},
		{"an endpoint", postbackv1.EndpointService_CreateEndpoint_FullMethodName, endpoint,
			[]string{"endpoint.url", "endpoint.headers[0].value", "endpoint.headers[2].name"}},
		{"an event of a batch", postbackv1.EventService_PublishBatch_FullMethodName, batch, []string{"events[1].account_id", "events[1].event_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := rawMessage(c.req)
			if c.method == postbackv1.EventService_PublishBatch_FullMethodName {
				resp := &postbackv1.PublishBatchResponse{}
				if err := cc.Invoke(operator(), c.method, &raw, resp); err != nil || len(resp.Results) != 2 {
					t.Fatalf("PublishBatch: %v %v", err, resp)
				}
				checkStatus(t, resp.Results[1].GetError(), c.want...)
				return
			}
			err := cc.Invoke(operator(), c.method, &raw, &postbackv1.Endpoint{})
			checkBadRequest(t, err, c.want...)
		})
	}
}

// FuzzTheCodecRefusesWhatProtoRefuses feeds the server codec arbitrary
// bytes as requests it decodes as proto does (those with an endpoint, a
// field mask and a Struct): it accepts unmarked exactly what proto.Unmarshal
// accepts, marks only what proto.Unmarshal refuses, and a mark's status
// marshals (its violations are UTF-8 themselves).
func FuzzTheCodecRefusesWhatProtoRefuses(f *testing.F) {
	seed := func(m proto.Message) {
		b, _ := proto.Marshal(m)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte(placeholder), notUTF8Bytes))
	}
	seed(&postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{Url: placeholder, Headers: []*postbackv1.Header{{Name: placeholder}}}})
	seed(&postbackv1.PreviewEndpointRequest{Data: mustStruct(f, map[string]any{placeholder: []any{placeholder, map[string]any{"a": placeholder}}})})
	seed(&postbackv1.UpdateEndpointRequest{Endpoint: &postbackv1.Endpoint{Id: placeholder}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url", placeholder}}})
	f.Add([]byte{0x0a, 0x01, 0xff, 0x12, 0x09})
	codec := newServerCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&postbackv1.CreateEndpointRequest{}, &postbackv1.PreviewEndpointRequest{}, &postbackv1.UpdateEndpointRequest{}} {
			protoErr := proto.Unmarshal(b, proto.Clone(m))
			err := codec.Unmarshal(split(b, 2), m)
			e := utf8Mark(m)
			switch {
			case (err != nil) && protoErr == nil:
				t.Fatalf("%T %x: the codec refuses, proto.Unmarshal does not: %v", m, b, err)
			case err == nil && e == nil && protoErr != nil:
				t.Fatalf("%T %x: the codec accepts unmarked what proto.Unmarshal refuses: %v", m, b, protoErr)
			case e != nil && protoErr == nil:
				t.Fatalf("%T %x: marked, but proto.Unmarshal accepts it", m, b)
			case e != nil:
				if _, err := proto.Marshal(e.GRPCStatus().Proto()); err != nil {
					t.Fatalf("%T %x: the mark's status does not marshal: %v", m, b, err)
				}
			}
		}
	})
}

func TestDataNestedTooDeeplyIsInvalidArgumentNamingData(t *testing.T) {
	s := fuzzServer(t, Limits{})
	// Struct{"a": Value{struct_value: …}}, 4,000 deep: 12,000 messages.
	inner := []byte{}
	for range 4000 {
		value := protowire.AppendBytes(protowire.AppendTag(nil, valueStruct, protowire.BytesType), inner)
		entry := protowire.AppendString(protowire.AppendTag(nil, entryKey, protowire.BytesType), "a")
		entry = protowire.AppendBytes(protowire.AppendTag(entry, entryValue, protowire.BytesType), value)
		inner = protowire.AppendBytes(protowire.AppendTag(nil, structFields, protowire.BytesType), entry)
	}
	_, err := s.prepare("", wireRequest("action_lifecycle", inner))
	checkBadRequest(t, err, "data")
	if !strings.Contains(status.Convert(err).Message(), "depth") {
		t.Fatalf("got %v", err)
	}
}
