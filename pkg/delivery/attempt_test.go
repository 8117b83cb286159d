package delivery

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func attempt(number int32, startSec int64, body string) *postbackv1.Attempt {
	return &postbackv1.Attempt{DeliveryId: "dlv_1", Number: number, StartTime: timestamppb.New(time.Unix(startSec, 0)), StatusCode: 200, ResponseBody: body}
}

func TestAttemptsAreTheMovedOnesThenTheRecordsLatestOnce(t *testing.T) {
	a0, a1, a2 := attempt(0, 1, "ERR"), attempt(1, 2, "ERR"), attempt(2, 3, "OK")
	replay := attempt(2, 9, "OK") // a replay repeats a number at a later start
	cases := []struct {
		name  string
		moved []*postbackv1.Attempt
		last  *postbackv1.Attempt
		want  []*postbackv1.Attempt
	}{
		{"never sent", nil, nil, nil},
		{"sent once: only the record holds it", nil, a0, []*postbackv1.Attempt{a0}},
		{"retried: earlier attempts were moved", []*postbackv1.Attempt{a0, a1}, a2, []*postbackv1.Attempt{a0, a1, a2}},
		{"a crash after moving the latest lists it once", []*postbackv1.Attempt{a0, a1}, a1, []*postbackv1.Attempt{a0, a1}},
		{"a replayed attempt with the same number is another attempt", []*postbackv1.Attempt{a0, a1, a2}, replay, []*postbackv1.Attempt{a0, a1, a2, replay}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Attempts(c.moved, c.last)
			if len(got) != len(c.want) {
				t.Fatalf("got %d attempts, want %d", len(got), len(c.want))
			}
			for i := range got {
				if !proto.Equal(got[i], c.want[i]) {
					t.Errorf("attempt %d = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestMergeListsEachAttemptOnceOldestFirst(t *testing.T) {
	a0, a1, a2 := attempt(0, 1, "ERR"), attempt(1, 2, "ERR"), attempt(2, 3, "OK")
	for _, c := range []struct {
		name  string
		lists [][]*postbackv1.Attempt
		want  []*postbackv1.Attempt
	}{
		{"nothing anywhere", nil, nil},
		{"stored and still in the stream: each once", [][]*postbackv1.Attempt{{a0, a1}, {a1, a2}}, []*postbackv1.Attempt{a0, a1, a2}},
		{"the stream's older than the store's", [][]*postbackv1.Attempt{{a2}, {a0, a1}}, []*postbackv1.Attempt{a0, a1, a2}},
		{"only the store (the stream let them go)", [][]*postbackv1.Attempt{{a0, a1}, nil}, []*postbackv1.Attempt{a0, a1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Merge(c.lists...)
			if len(got) != len(c.want) {
				t.Fatalf("got %d attempts, want %d", len(got), len(c.want))
			}
			for i := range got {
				if !proto.Equal(got[i], c.want[i]) {
					t.Errorf("attempt %d = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}
