package main

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The burst load generator sends requests it encoded itself. Every burst
// event carries the same data but its publish time (Text1), so the data's
// protobuf encoding but that one field is made once, and a request is the
// account, the event type, those bytes and a Text1 entry appended to them
// (a Struct's encoding is the concatenation of its map entries, in any
// order). proto.Marshal of the whole ~1 KB Struct tree cost the bench
// process about 15 µs an event, CPU taken from the pipeline it measures on
// the same two cores. What goes on the wire is a PublishRequest like any
// other: TestEncodedRequestsAreTheRequests decodes them and compares.

// encoded is a request message already in protobuf wire format.
type encoded []byte

// encodedCodec sends an encoded request as it is and decodes responses as
// protobuf; its name is "proto", so the call is an ordinary
// application/grpc+proto call to the gateway.
type encodedCodec struct{}

func (encodedCodec) Marshal(v any) ([]byte, error) {
	if e, ok := v.(encoded); ok {
		return e, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (encodedCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }

func (encodedCodec) Name() string { return "proto" }

var sendEncoded = grpc.ForceCodec(encodedCodec{})

// sharedData is the burst event's data without Text1, encoded.
var sharedData = func() []byte {
	fields := make(map[string]*structpb.Value, len(sharedEvent.Fields))
	for k, v := range sharedEvent.Fields {
		if k != "Text1" {
			fields[k] = v
		}
	}
	b, err := proto.Marshal(&structpb.Struct{Fields: fields})
	if err != nil {
		panic(err)
	}
	return b
}()

// appendRequest appends the PublishRequest request(account, sent) is, in
// wire format.
func appendRequest(b []byte, account string, sent time.Time) []byte {
	// Text1's map entry: key (1) and a Value (2) holding string_value (3).
	var ts [20]byte
	text := strconv.AppendInt(ts[:0], sent.UnixNano(), 10)
	value := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), text)
	entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "Text1")
	entry = protowire.AppendBytes(protowire.AppendTag(entry, 2, protowire.BytesType), value)

	b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), account)
	b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), "action_lifecycle")
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	dataLen := len(sharedData) + protowire.SizeTag(1) + protowire.SizeBytes(len(entry))
	b = protowire.AppendVarint(b, uint64(dataLen))
	b = append(b, sharedData...)
	b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), entry)
	return b
}

// encodedBatch is a PublishBatchRequest of n burst events sent at sent.
func encodedBatch(account string, n int, sent time.Time) encoded {
	one := appendRequest(nil, account, sent)
	b := make([]byte, 0, n*(len(one)+4))
	for range n {
		b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), one)
	}
	return b
}

func (b *bench) publish(ctx context.Context, account string, sent time.Time) error {
	return b.conn.Invoke(ctx, postbackv1.EventService_Publish_FullMethodName, encoded(appendRequest(nil, account, sent)),
		new(postbackv1.PublishResponse), sendEncoded)
}

func (b *bench) publishBatch(ctx context.Context, account string, n int, sent time.Time) (*postbackv1.PublishBatchResponse, error) {
	res := new(postbackv1.PublishBatchResponse)
	err := b.conn.Invoke(ctx, postbackv1.EventService_PublishBatch_FullMethodName, encodedBatch(account, n, sent), res, sendEncoded)
	return res, err
}
