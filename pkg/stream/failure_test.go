package stream

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/delivery"
)

func TestAFailureReadsBackAsItWasWritten(t *testing.T) {
	job := delivery.Job{DeliveryID: "dlv_1", AccountID: "brand-1", EndpointID: "ep_1", EventID: "evt_1", EventType: "action_clearing",
		Method: "POST", URL: "http://127.0.0.1:9/hook", Body: []byte(`{"ActionIds":"ACT-101"}`), ContentType: "application/json",
		Attempt: 2, Sent: 2, Created: time.Unix(2000, 0).UTC()}
	cases := []struct {
		name string
		f    Failure
	}{
		{"a 503 with its end", Failure{Job: job, StatusCode: 503, Error: "503 Service Unavailable", End: time.Unix(3000, 123).UTC()}},
		{"a transport error, no status, no end", Failure{Job: job, Error: "dial tcp 127.0.0.1:9: connection refused"}},
		{"an error in any script", Failure{Job: job, StatusCode: 500, Error: "réponse: 服务器错误"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := EncodeFailure(&c.f)
			if err != nil {
				t.Fatal(err)
			}
			var got Failure
			if err := DecodeFailure(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.f) {
				t.Errorf("read back %+v, want %+v", got, c.f)
			}
		})
	}
}

// Failures written by earlier versions (JSON) still read; junk does not.
func TestAFailureOfAnEarlierVersionStillReadsAndJunkDoesNot(t *testing.T) {
	old := Failure{Job: delivery.Job{DeliveryID: "dlv_2", Body: []byte("a=1")}, StatusCode: 502, Error: "bad gateway"}
	b, err := json.Marshal(&old)
	if err != nil {
		t.Fatal(err)
	}
	var got Failure
	if err := DecodeFailure(b, &got); err != nil || got.Job.DeliveryID != "dlv_2" || string(got.Job.Body) != "a=1" || got.StatusCode != 502 {
		t.Fatalf("earlier JSON failure read as %+v, %v", got, err)
	}
	for _, junk := range [][]byte{nil, []byte("x"), {failureFormat}, {failureFormat, 0xff}, {failureFormat, 1, 0, 200, 'e'}} {
		if err := DecodeFailure(junk, &got); err == nil {
			t.Errorf("%q read as a failure", junk)
		}
	}
}

// The binary form is about the job's size: a 780 KiB body fits a 1 MiB
// message, where its JSON (base64) did not.
func TestALargeBodysFailureFitsAMessage(t *testing.T) {
	f := Failure{Job: delivery.Job{DeliveryID: "dlv_3", Body: []byte(strings.Repeat("x", 780<<10))}, StatusCode: 503}
	b, err := EncodeFailure(&f)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(&f)
	if len(b) > 1<<20-16<<10 || len(j) <= 1<<20 {
		t.Errorf("binary %d bytes, JSON %d bytes; want the binary within a 1 MiB message less headroom, as the JSON was not", len(b), len(j))
	}
}
