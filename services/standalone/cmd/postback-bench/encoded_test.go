package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The hand-encoded burst requests decode to the requests the load generator
// would otherwise marshal.
func TestEncodedRequestsAreTheRequests(t *testing.T) {
	sent := time.Unix(1775638800, 123456789)
	var one postbackv1.PublishRequest
	if err := proto.Unmarshal(appendRequest(nil, "bench-burst", sent), &one); err != nil {
		t.Fatal(err)
	}
	if want := request("bench-burst", sent); !proto.Equal(&one, want) {
		t.Errorf("encoded request decodes to\n%v\nwant\n%v", &one, want)
	}
	var batch postbackv1.PublishBatchRequest
	if err := proto.Unmarshal(encodedBatch("bench-burst", 3, sent), &batch); err != nil {
		t.Fatal(err)
	}
	want := &postbackv1.PublishBatchRequest{}
	for range 3 {
		want.Events = append(want.Events, request("bench-burst", sent))
	}
	if !proto.Equal(&batch, want) {
		t.Errorf("encoded batch decodes to\n%v\nwant\n%v", &batch, want)
	}
	if len(one.Data.Fields) != len(sharedEvent.Fields) || one.Data.Fields["Text1"].GetStringValue() != "1775638800123456789" {
		t.Errorf("Text1 = %v, fields %d of %d", one.Data.Fields["Text1"], len(one.Data.Fields), len(sharedEvent.Fields))
	}
}
