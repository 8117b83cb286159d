package stream

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/delivery"
)

// fakeMsg is a jetstream.Msg with data and headers only.
type fakeMsg struct {
	jetstream.Msg
	data   []byte
	header nats.Header
}

func (m *fakeMsg) Data() []byte         { return m.data }
func (m *fakeMsg) Headers() nats.Header { return m.header }

// A job message carries the record's revision in a header, whichever
// encoding its body has (the binary format, or JSON written before it).
func TestAJobMessageReadsItsRevisionFromItsHeaderInEitherEncoding(t *testing.T) {
	want := delivery.Job{DeliveryID: "dlv_1", AccountID: "acc", EndpointID: "ep_1", Method: "POST", URL: "http://127.0.0.1/",
		Body: []byte(`{"a":1}`), Sent: 2}
	binary, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	oldJSON, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"binary message": binary, "JSON message": oldJSON} {
		t.Run(name, func(t *testing.T) {
			job, err := DecodeJob(&fakeMsg{data: body, header: nats.Header{RevisionHeader: []string{"7"}}})
			if err != nil {
				t.Fatal(err)
			}
			if job.Revision != 7 {
				t.Errorf("Revision = %d, want the header's 7", job.Revision)
			}
			job.Revision = 0
			if job.DeliveryID != want.DeliveryID || job.URL != want.URL || string(job.Body) != string(want.Body) || job.Sent != want.Sent {
				t.Errorf("job = %+v, want %+v", job, want)
			}
		})
	}
}

// The Queued mark travels in a header, both ways.
func TestAQueuedJobIsMarkedInItsHeaders(t *testing.T) {
	for _, c := range []struct {
		name   string
		job    delivery.Job
		header string
		queued bool
	}{
		{"the renderer's first send", delivery.Job{DeliveryID: "dlv_1", Queued: true}, "none", true},
		{"a job with a record", delivery.Job{DeliveryID: "dlv_1", Revision: 3}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			body, err := c.job.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			m := NewJobMsg(context.Background(), "deliveries.1.acc.ep_1.dlv_1", &c.job, body, "")
			if got := m.Header.Get(QueuedHeader); got != c.header {
				t.Fatalf("%s header = %q, want %q", QueuedHeader, got, c.header)
			}
			job, err := DecodeJob(&fakeMsg{data: m.Data, header: m.Header})
			if err != nil || job.Queued != c.queued || job.Revision != c.job.Revision {
				t.Fatalf("DecodeJob = %+v, %v; want Queued %v, Revision %d", job, err, c.queued, c.job.Revision)
			}
		})
	}
}
