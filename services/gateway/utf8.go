// Invalid UTF-8 in a request: InvalidArgument naming every such field.
//
// proto3 wants a string field to be UTF-8, and proto.Unmarshal refuses a
// message with one that is not. gRPC turns a codec's error into Internal
// ("grpc: failed to unmarshal the received message"), before any
// interceptor or handler runs, and a codec has no way to answer another
// code. So when the gateway's server codec (codec.go) fails to unmarshal a
// postback.v1 message, it walks the message's wire bytes with protowire,
// guided by the message's descriptor (utf8Walker): every string field
// proto.Unmarshal would check (a proto3 field's, or an edition's that
// enforces UTF-8), at any depth (nested messages, repeated fields, map
// entries, and the data points of a google.protobuf.Struct), is checked
// with utf8.Valid and named as the API names it: "account_id",
// "endpoint.headers[1].value", "update_mask.paths[0]",
// "data.items[0].sku". protobuf-go has no option to skip that check for
// proto3, and the walk is what names the field anyway.
//
// When the walk finds the bytes well formed and at least one such string,
// the failure was invalid UTF-8: the codec resets the message, records the
// violations in it (mark: the message's only unknown field, numbered
// protowire.MaxValidNumber, its value starting with a random nonce of this
// process, so a client cannot send a mark of its own) and returns no error.
// The server's innermost unary interceptor (requestChecks, errors.go), which
// runs after authentication, answers a marked request InvalidArgument with
// a google.rpc.BadRequest listing them (errors.go bounds how many). Any
// other failure (malformed bytes, too deep a nesting) keeps proto.Unmarshal's
// error, and its Internal. The walk runs only once proto.Unmarshal has
// failed: it costs nothing to a good request.
//
// A PublishRequest's data field is left undecoded by the codec (codec.go)
// and decoded by eventData; when that fails, prepare walks it the same way
// (dataViolations), so a bad string in the data is named to its data point
// ("data.Status", "data.items[2].sku"). In a PublishBatchRequest each event
// is decoded, and marked, on its own: invalid UTF-8 sinks only its event,
// whose result carries the violations ("events[3].event_id"), as any bad
// event's does.
package gateway

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/postback-dev/postback/pkg/eventdata"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// notUTF8 describes a string field that is not UTF-8.
const notUTF8 = "not valid UTF-8 (a string must be UTF-8 text)"

var (
	apiPackage  = (&postbackv1.PublishRequest{}).ProtoReflect().Descriptor().ParentFile().Package()
	publishName = (&postbackv1.PublishRequest{}).ProtoReflect().Descriptor().FullName()
)

// markInvalidUTF8 is the codec's answer to err, the failure to unmarshal b
// into m: when b is well formed and holds strings that are not UTF-8, m is
// reset and marked with the violations, and the answer is nil; otherwise
// it is err.
func markInvalidUTF8(b []byte, m proto.Message, err error) error {
	md := m.ProtoReflect().Descriptor()
	if md.ParentFile().Package() != apiPackage {
		return err // gRPC's own services (health, reflection): as proto does
	}
	e := &badRequest{}
	if !(utf8Walker{e}).message(b, md, "", 0) || e.empty() {
		return err
	}
	proto.Reset(m)
	mark(m, e)
	return nil
}

// utf8Walker records the strings that are not UTF-8 (see the file comment).
// Its methods report false when the bytes are not well formed.
type utf8Walker struct{ vs *badRequest }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// enforceUTF8 reports whether proto.Unmarshal checks fd's strings (as
// protobuf-go's internal strs.EnforceUTF8 decides).
func enforceUTF8(fd protoreflect.FieldDescriptor) bool {
	if fd.Syntax() == protoreflect.Editions {
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return fd.Syntax() == protoreflect.Proto3
}

// eachField calls fn with each field of b: its number, wire type, and value
// (a length-delimited field's contents; others' bytes as on the wire).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false
		}
		v := b[n : n+m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		b = b[n+m:]
		if !fn(num, typ, v) {
			return false
		}
	}
	return true
}

// message walks b, a message of type md at path.
func (w utf8Walker) message(b []byte, md protoreflect.MessageDescriptor, path string, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	switch md.FullName() {
	case "google.protobuf.Struct":
		return w.structFields(b, path, depth)
	case "google.protobuf.Value":
		return w.value(b, path, depth)
	case "google.protobuf.ListValue":
		return w.list(b, path, depth)
	}
	var seen map[protowire.Number]int // occurrences of repeated fields, for their indexes
	fields := md.Fields()
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		fd := fields.ByNumber(num)
		// Unknown fields, and a field of another wire type (proto.Unmarshal
		// keeps it as an unknown field), are not checked; nor are bytes
		// and packed numbers.
		if fd == nil || typ != protowire.BytesType || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			return true
		}
		name := join(path, string(fd.Name()))
		if fd.IsList() || fd.IsMap() {
			if seen == nil {
				seen = map[protowire.Number]int{}
			}
			i := seen[num]
			seen[num]++
			if fd.IsMap() {
				return w.mapEntry(v, fd, name, i, depth+1)
			}
			name += "[" + strconv.Itoa(i) + "]"
		}
		if fd.Kind() == protoreflect.StringKind {
			if enforceUTF8(fd) && !utf8.Valid(v) {
				w.vs.add(name, notUTF8)
			}
			return true
		}
		if md.FullName() == publishName && num == publishDataField {
			w.vs.merge("", dataViolations(v, name))
			return true
		}
		return w.message(v, fd.Message(), name, depth+1)
	})
}

// mapEntry walks an entry (the i-th) of fd, a map field at path: its
// value is named path["key"] (path[i] for a key that is not a string).
func (w utf8Walker) mapEntry(b []byte, fd protoreflect.FieldDescriptor, path string, i, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	kd, vd := fd.MapKey(), fd.MapValue()
	var key []byte
	var values [][]byte
	if !eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		switch {
		case num == kd.Number() && typ == protowire.BytesType && kd.Kind() == protoreflect.StringKind:
			key = v // the last one counts, as in a message
		case num == vd.Number() && typ == protowire.BytesType:
			values = append(values, v)
		}
		return true
	}) {
		return false
	}
	name := path + "[" + strconv.Itoa(i) + "]"
	if kd.Kind() == protoreflect.StringKind {
		if enforceUTF8(kd) && !utf8.Valid(key) {
			w.vs.addf(path, "the key %s is %s", strconv.Quote(string(key)), notUTF8)
		}
		name = path + "[" + strconv.Quote(strings.ToValidUTF8(string(key), "\uFFFD")) + "]"
	}
	for _, v := range values {
		switch vd.Kind() {
		case protoreflect.StringKind:
			if enforceUTF8(vd) && !utf8.Valid(v) {
				w.vs.add(name, notUTF8)
			}
		case protoreflect.MessageKind:
			if !w.message(v, vd.Message(), name, depth+1) {
				return false
			}
		}
	}
	return true
}

// Field numbers of google/protobuf/struct.proto.
const (
	structFields   = 1 // Struct.fields, map<string, Value>
	entryKey       = 1
	entryValue     = 2
	valueString    = 3 // Value.string_value
	valueStruct    = 5 // Value.struct_value
	valueList      = 6 // Value.list_value
	listValueItems = 1 // ListValue.values
)

// structFields walks a google.protobuf.Struct at path: its fields are data
// points (or an item's fields), named path.Name as the API names them
// ("data.CampaignId", "data.items[0].qty").
func (w utf8Walker) structFields(b []byte, path string, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != structFields || typ != protowire.BytesType {
			return true
		}
		var key []byte
		var values [][]byte
		if !eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) bool {
			switch {
			case num == entryKey && typ == protowire.BytesType:
				key = v
			case num == entryValue && typ == protowire.BytesType:
				values = append(values, v)
			}
			return true
		}) {
			return false
		}
		if !utf8.Valid(key) {
			w.vs.addf(path, "the name %s is %s", strconv.Quote(string(key)), notUTF8)
		}
		name := join(path, strings.ToValidUTF8(string(key), "\uFFFD"))
		for _, v := range values {
			if !w.value(v, name, depth+2) {
				return false
			}
		}
		return true
	})
}

// value walks a google.protobuf.Value at path.
func (w utf8Walker) value(b []byte, path string, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if typ != protowire.BytesType {
			return true
		}
		switch num {
		case valueString:
			if !utf8.Valid(v) {
				w.vs.add(path, notUTF8)
			}
		case valueStruct:
			return w.structFields(v, path, depth+1)
		case valueList:
			return w.list(v, path, depth+1)
		}
		return true
	})
}

// list walks a google.protobuf.ListValue at path: its values are path[i].
func (w utf8Walker) list(b []byte, path string, depth int) bool {
	if depth > protowire.DefaultRecursionLimit {
		return false
	}
	i := 0
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) bool {
		if num != listValueItems || typ != protowire.BytesType {
			return true
		}
		i++
		return w.value(v, path+"["+strconv.Itoa(i-1)+"]", depth+1)
	})
}

// dataViolations is what is wrong with b, the wire bytes of a publish's
// data (a google.protobuf.Struct) at path: its strings that are not UTF-8,
// or, when b is malformed, eventdata's error. It may be empty.
func dataViolations(b []byte, path string) *badRequest {
	e := &badRequest{}
	if (utf8Walker{e}).structFields(b, path, 1) {
		return e
	}
	e = &badRequest{}
	if _, err := eventdata.FromStructWire(b); err != nil {
		e.add(path, strings.TrimPrefix(err.Error(), "eventdata: "))
	}
	return e
}

// markField is the field number of a mark (see the file comment).
const markField = protowire.MaxValidNumber

// Fields of a mark's value, after the nonce.
const (
	markViolationField = 1 // a violation's field path
	markViolationDesc  = 2 // its description
	markMore           = 3 // how many more were found
)

// markNonce starts every mark's value; a client cannot know it.
var markNonce = func() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("gateway: no randomness for the UTF-8 mark: %v", err))
	}
	return b
}()

// mark sets e's violations as m's only unknown field.
func mark(m proto.Message, e *badRequest) {
	v := append([]byte{}, markNonce...)
	for _, x := range e.list {
		v = protowire.AppendTag(v, markViolationField, protowire.BytesType)
		v = protowire.AppendString(v, x.field)
		v = protowire.AppendTag(v, markViolationDesc, protowire.BytesType)
		v = protowire.AppendString(v, x.desc)
	}
	if e.more > 0 {
		v = protowire.AppendTag(v, markMore, protowire.VarintType)
		v = protowire.AppendVarint(v, uint64(e.more))
	}
	u := protowire.AppendTag(nil, markField, protowire.BytesType)
	m.ProtoReflect().SetUnknown(protowire.AppendBytes(u, v))
}

// utf8Mark is the InvalidArgument of m's mark, or nil when the codec did
// not mark m.
func utf8Mark(m proto.Message) *badRequest {
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil
	}
	num, typ, n := protowire.ConsumeTag(u)
	if num != markField || typ != protowire.BytesType {
		return nil
	}
	v, n2 := protowire.ConsumeBytes(u[n:])
	if n2 < 0 || n+n2 != len(u) || !bytes.HasPrefix(v, markNonce) {
		return nil
	}
	e := &badRequest{}
	var field string
	if !eachField(v[len(markNonce):], func(num protowire.Number, typ protowire.Type, v []byte) bool {
		switch num {
		case markViolationField:
			field = string(v)
		case markViolationDesc:
			e.add(field, string(v))
		case markMore:
			more, _ := protowire.ConsumeVarint(v)
			e.more += int(more)
		}
		return true
	}) || e.empty() {
		return nil
	}
	return e
}
