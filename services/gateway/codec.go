// The gateway's gRPC server codec leaves an event's data undecoded.
//
// A PublishRequest's data is a google.protobuf.Struct, and the gateway wants
// it only as a map[string]any (to validate it, and to encode the event as
// JSON). Decoding it as grpc's proto codec does, into a structpb.Struct, and
// then converting that with AsMap, built every value twice and took about a
// third of the gateway's CPU when publishing. So the server codec, registered
// on the gateway's server alone with grpc.ForceServerCodecV2 under the name
// "proto", decodes every message exactly as the standard proto codec does
// (it delegates to encoding.GetCodecV2("proto"), and always for Marshal),
// except PublishRequest and PublishBatchRequest: for those it walks the
// top-level wire fields with protowire, unmarshals everything but the data
// field with proto.Unmarshal (run by run, merging, which is what one
// proto.Unmarshal of those bytes does), and keeps the data field, tag and
// length prefix included, exactly as on the wire, as the message's unknown
// fields. req.Data is then nil, and eventData (events.go) decodes the data
// once, straight into a map, with eventdata.FromStructWire. In a
// PublishBatchRequest each element of events is a PublishRequest decoded the
// same way. Input the walk finds malformed goes to proto.Unmarshal, which
// fails on it as it always did; a malformed data field is no longer the
// codec's error but eventData's, an InvalidArgument naming the field.
//
// Invalid UTF-8 is not the codec's error either. When unmarshalling a
// postback.v1 message fails (any message: the standard codec's, a
// PublishRequest, each event of a batch), markInvalidUTF8 (utf8.go) walks
// its bytes, guided by its descriptor, for the string fields that are not
// UTF-8. If the bytes are otherwise well formed and it finds some, the
// message is reset and marked with them, and Unmarshal succeeds; the
// server's innermost interceptor (requestChecks) answers a marked request
// InvalidArgument naming every such field ("account_id",
// "endpoint.headers[1].value"), and PublishBatch a marked event in its
// result ("events[3].idempotency_key"). gRPC would have made the codec's
// error an Internal. Any other failure is proto.Unmarshal's error, as it
// was. So this codec goes with that interceptor: serverCodecOptions
// (gateway.go) installs both.
//
// The message's bytes are materialized into a pooled buffer, freed before
// Unmarshal returns; the data fields, which outlive it as unknown fields,
// are copied into one allocation per call (the arena), their total size
// being at most the message's.

package gateway

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" CodecV2 that serverCodec delegates to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Field numbers, from the generated descriptors.
var (
	publishDataField = fieldNumber(&postbackv1.PublishRequest{}, "data")
	batchEventsField = fieldNumber(&postbackv1.PublishBatchRequest{}, "events")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil {
		panic("gateway: " + string(m.ProtoReflect().Descriptor().FullName()) + " has no field " + string(name))
	}
	return fd.Number()
}

// serverCodec is the gateway server's codec (see the file comment).
type serverCodec struct {
	std encoding.CodecV2
}

func newServerCodec() serverCodec {
	return serverCodec{std: encoding.GetCodecV2("proto")}
}

func (serverCodec) Name() string { return "proto" }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) { return c.std.Marshal(v) }

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *postbackv1.PublishRequest:
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b := buf.ReadOnlyData()
		return unmarshalPublish(b, m, &arena{size: len(b)})
	case *postbackv1.PublishBatchRequest:
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b := buf.ReadOnlyData()
		if err := unmarshalBatch(b, m); err != nil {
			return markInvalidUTF8(b, m, err)
		}
		return nil
	}
	err := c.std.Unmarshal(data, v)
	if m, ok := v.(proto.Message); ok && err != nil {
		return markInvalidUTF8(data.Materialize(), m, err)
	}
	return err
}

// merge unmarshals a run of fields into a message, keeping what it holds:
// consecutive runs merged are one proto.Unmarshal of their concatenation.
var merge = proto.UnmarshalOptions{Merge: true}

// arena holds the data fields of one call: one allocation of at most size
// bytes (the message's), made at the first data field.
type arena struct {
	size int
	buf  []byte
}

func (a *arena) add(b []byte) {
	if a.buf == nil {
		a.buf = make([]byte, 0, a.size)
	}
	a.buf = append(a.buf, b...)
}

// unmarshalPublish is proto.Unmarshal(b, m) but for the data fields, which
// end up, as they are on the wire, in m's unknown fields, and for invalid
// UTF-8, which marks m (markInvalidUTF8).
func unmarshalPublish(b []byte, m *postbackv1.PublishRequest, a *arena) error {
	start := len(a.buf)
	found, err := splitFields(b, m, publishDataField, func(field, _ []byte) error {
		a.add(field)
		return nil
	})
	if err != nil {
		return markInvalidUTF8(b, m, err)
	}
	if !found {
		return nil
	}
	data := a.buf[start:len(a.buf):len(a.buf)]
	r := m.ProtoReflect()
	if u := r.GetUnknown(); len(u) > 0 {
		data = append(u[:len(u):len(u)], data...)
	}
	r.SetUnknown(data)
	return nil
}

// unmarshalBatch is proto.Unmarshal(b, m) with each event decoded by
// unmarshalPublish.
func unmarshalBatch(b []byte, m *postbackv1.PublishBatchRequest) error {
	a := &arena{size: len(b)}
	_, err := splitFields(b, m, batchEventsField, func(_, value []byte) error {
		req := new(postbackv1.PublishRequest)
		if err := unmarshalPublish(value, req, a); err != nil {
			return err
		}
		m.Events = append(m.Events, req)
		return nil
	})
	return err
}

// splitFields is proto.Unmarshal(b, m) except for the length-delimited fields
// numbered num: the runs of other fields around them are merged into m, and
// take gets each such field (tag included) and its value. found is false
// when b has no such field; b is then simply unmarshalled, as it is when the
// walk finds it malformed (proto.Unmarshal reports the error).
func splitFields(b []byte, m proto.Message, num protowire.Number, take func(field, value []byte) error) (found bool, err error) {
	proto.Reset(m)
	run := 0
	for i := 0; i < len(b); {
		n, typ, tagLen := protowire.ConsumeTag(b[i:])
		if tagLen < 0 {
			return false, proto.Unmarshal(b, m) // resets m
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[i+tagLen:])
		if valLen < 0 {
			return false, proto.Unmarshal(b, m) // resets m
		}
		end := i + tagLen + valLen
		if n == num && typ == protowire.BytesType {
			if run < i {
				if err := merge.Unmarshal(b[run:i], m); err != nil {
					return false, err
				}
			}
			value, _ := protowire.ConsumeBytes(b[i+tagLen : end])
			if err := take(b[i:end], value); err != nil {
				return false, err
			}
			found, run = true, end
		}
		i = end
	}
	if !found {
		return false, proto.Unmarshal(b, m)
	}
	if run < len(b) {
		return true, merge.Unmarshal(b[run:], m)
	}
	return true, nil
}
