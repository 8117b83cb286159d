package delivery

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// fullJob sets every field of Job (TestTheFullJobSetsEveryField keeps it
// so when a field is added).
func fullJob() *Job {
	at := time.Date(2026, 4, 8, 9, 0, 0, 123456789, time.UTC)
	return &Job{
		DeliveryID: "dlv_01JQ0000000000000000000000", AccountID: "brand-1", EndpointID: "ep_01JQ0000000000000000000000",
		EventID: "evt_01JQ0000000000000000000000", EventType: "action_lifecycle", Attempt: 3,
		Created:   at,
		Published: at.Add(-1500 * time.Microsecond).In(time.FixedZone("CEST", 2*3600)), // read back in UTC, the same instant
		Method:    "POST", URL: "https://example.com/hook?t=1&u=%C3%A9",
		Headers:     []Header{{Name: "X-Order", Value: "ORD-554433"}, {Name: "X-Empty", Value: ""}, {Name: "", Value: "nameless"}},
		Body:        []byte("\x00{\"a\":1}\x00\xff\xfe binary\x00"),
		ContentType: "application/json",
		Slot:        at.Add(2*time.Second + 7),
		Scheduled:   at.Add(time.Hour + 999999999),
		Sent:        2, Revision: 42, Queued: true,
		LastStatus: 503, LastError: "503 Service Unavailable: ünïcode and \"quotes\"",
		EndpointVersion: at.Add(-time.Minute).UnixNano(),
		MACKey:          "j1", MAC: "\x00\x01 raw tag bytes \xff",
	}
}

// burstBody is the body the burst benchmark renders (bodyTemplate over
// eventData in cmd/postback-bench): about 1 KB of JSON.
const burstBody = `{"campaign_id": 9876, "tracker": 12345, "partner": 555,
 "campaign": "Spring Global Promotion", "partner_name": "Top Tier Affiliates", "action_id": "ACT-778899",
 "status": "APPROVED", "detail": "Item return - payout adjusted", "payout": 10.5, "amount": 100,
 "currency": "USD", "event_date": "2026-04-08T09:00:00Z", "order": "ORD-554433", "promo": "SAVE20",
 "customer": "CUST-12345", "city": "San Francisco", "country": "US", "note": "Partial return processed",
 "items": [{"sku":"SKU-0000","item_price":33.25,"category":"apparel","quantity":1,"name":"Organic cotton tee, size M"},{"sku":"SKU-0001","item_price":34.25,"category":"apparel","quantity":2,"name":"Organic cotton tee, size M"},{"sku":"SKU-0002","item_price":35.25,"category":"apparel","quantity":3,"name":"Organic cotton tee, size M"}],
 "padding": "the burst's body, as rendered, is about one kilobyte long; this note fills it out to that size"}`

// burstJob is a renderer's first send of the burst benchmark.
func burstJob() *Job {
	now := time.Now()
	return &Job{
		DeliveryID: "dlv_01JQ0000000000000000000000", AccountID: "bench", EndpointID: "ep_01JQ0000000000000000000000",
		EventID: "evt_01JQ0000000000000000000000", EventType: "action_lifecycle", Created: now, Published: now.Add(-time.Millisecond),
		Method: "POST", URL: "http://127.0.0.1:8080/r/burst?t=1775638800000000000",
		Headers:     []Header{{Name: "X-Campaign", Value: "9876"}, {Name: "X-Order", Value: "ORD-554433"}},
		Body:        []byte(burstBody),
		ContentType: "application/json", EndpointVersion: now.Add(-time.Hour).UnixNano(),
	}
}

// normal is a job as it compares after a round trip: times as UTC instants
// without a monotonic reading, no Revision or Queued (headers carry them),
// nil for an empty body or header list.
func normal(j Job) Job {
	for _, t := range []*time.Time{&j.Created, &j.Published, &j.Slot, &j.Scheduled} {
		*t = t.UTC()
	}
	if len(j.Body) == 0 {
		j.Body = nil
	}
	if len(j.Headers) == 0 {
		j.Headers = nil
	}
	j.Revision, j.Queued = 0, false
	return j
}

func sameJob(t *testing.T, got, want *Job) {
	t.Helper()
	if g, w := normal(*got), normal(*want); !reflect.DeepEqual(g, w) {
		t.Fatalf("job differs after the round trip:\n got %+v\nwant %+v", g, w)
	}
}

func TestTheFullJobSetsEveryField(t *testing.T) {
	v := reflect.ValueOf(*fullJob())
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("fullJob leaves %s zero: set it, and give it a field number in job.go", v.Type().Field(i).Name)
		}
	}
}

func TestJobsRoundTripThroughTheBinaryFormat(t *testing.T) {
	epoch := time.Unix(0, 0)
	for _, c := range []struct {
		name string
		job  *Job
	}{
		{"every field set, with a binary body and times with nanoseconds", fullJob()},
		{"a minimal job", &Job{DeliveryID: "dlv_1"}},
		{"the zero job", &Job{}},
		{"the burst's first send", burstJob()},
		{"times at the Unix epoch are kept, not taken for the zero time", &Job{DeliveryID: "d", Created: epoch, Slot: epoch.In(time.FixedZone("X", -3600))}},
		{"times before 1970 and at the ends of the range", &Job{Created: time.Unix(-86400, 5), Published: minJobTime, Scheduled: maxJobTime}},
		{"negative and large numbers", &Job{Attempt: -1, Sent: 1 << 40, LastStatus: -599, EndpointVersion: -5}},
		{"an empty body reads back as none", &Job{DeliveryID: "d", Body: []byte{}, Headers: []Header{}}},
		{"an empty header is kept", &Job{Headers: []Header{{}}}},
		{"invalid UTF-8 survives", &Job{LastError: "\xff\xfe", Headers: []Header{{Name: "\x80", Value: "\xc3"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.job.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > 0 && b[0] == '{' {
				t.Fatalf("the encoding starts with '{', which reads as JSON")
			}
			if len(b) != c.job.Size() {
				t.Errorf("Size() = %d, encoding is %d bytes", c.job.Size(), len(b))
			}
			got := Job{Revision: 99}
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got.Revision != 0 {
				t.Errorf("Revision = %d after decoding: it is not part of the encoding", got.Revision)
			}
			sameJob(t, &got, c.job)
			for _, ts := range []time.Time{got.Created, got.Published, got.Slot, got.Scheduled} {
				if !ts.IsZero() && ts.Location() != time.UTC {
					t.Errorf("a time reads back in %v, want UTC", ts.Location())
				}
			}
			if appended, _ := c.job.AppendBinary([]byte("prefix")); string(appended) != "prefix"+string(b) {
				t.Errorf("AppendBinary does not append the MarshalBinary bytes")
			}
		})
	}
}

func TestTheZeroTimeIsLeftOutAndReadsBackAsZero(t *testing.T) {
	b, err := (&Job{DeliveryID: "d"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := protowire.AppendString(protowire.AppendTag(nil, jobDeliveryID, protowire.BytesType), "d"); !bytes.Equal(b, want) {
		t.Fatalf("encoding = %x, want only the delivery id %x", b, want)
	}
	var got Job
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !got.Created.IsZero() || !got.Published.IsZero() || !got.Slot.IsZero() || !got.Scheduled.IsZero() {
		t.Fatalf("times = %v %v %v %v, want zero", got.Created, got.Published, got.Slot, got.Scheduled)
	}
}

func TestATimeOutsideUnixNanosecondsIsNotEncoded(t *testing.T) {
	for _, c := range []struct {
		name string
		at   time.Time
	}{
		{"just after the zero time", time.Time{}.Add(time.Second)},
		{"before 1678", minJobTime.Add(-1)},
		{"after 2262", maxJobTime.Add(1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := (&Job{Scheduled: c.at}).MarshalBinary(); err == nil {
				t.Fatalf("encoded %v, which would read back as another instant", c.at)
			}
		})
	}
}

func TestJSONJobsWrittenBeforeTheBinaryFormatStillDecode(t *testing.T) {
	full, err := json.Marshal(fullJob())
	if err != nil {
		t.Fatal(err)
	}
	untagged := fullJob() // no JSON job was ever tagged: the tag is not in the JSON form
	untagged.MACKey, untagged.MAC = "", ""
	for _, c := range []struct {
		name string
		json string
		want *Job
	}{
		{"a full job, as json.Marshal wrote it", string(full), untagged},
		{"a first send, as the renderer wrote it", `{"delivery_id":"dlv_1","account_id":"acc","endpoint_id":"ep_1","event_id":"evt_1",` +
			`"event_type":"order","attempt":0,"created":"2026-04-08T09:00:00.123456789Z","published":"2026-04-08T11:00:00.1+02:00",` +
			`"method":"POST","url":"http://x/","headers":[{"name":"X-A","value":"1"}],"body":"eyJhIjoxfQ==",` +
			`"content_type":"application/json","endpoint_version":1775638800000000000}`,
			&Job{DeliveryID: "dlv_1", AccountID: "acc", EndpointID: "ep_1", EventID: "evt_1", EventType: "order",
				Created: time.Date(2026, 4, 8, 9, 0, 0, 123456789, time.UTC), Published: time.Date(2026, 4, 8, 9, 0, 0, 1e8, time.UTC),
				Method: "POST", URL: "http://x/", Headers: []Header{{Name: "X-A", Value: "1"}}, Body: []byte(`{"a":1}`),
				ContentType: "application/json", EndpointVersion: 1775638800000000000}},
		{"a retry, with the zero created time of old", `{"delivery_id":"dlv_2","attempt":4,"created":"0001-01-01T00:00:00Z",` +
			`"published":"0001-01-01T00:00:00Z","method":"","url":"","scheduled":"2026-04-08T10:00:00Z","sent":3,"last_status":503,"last_error":"busy"}`,
			&Job{DeliveryID: "dlv_2", Attempt: 4, Scheduled: time.Date(2026, 4, 8, 10, 0, 0, 0, time.UTC), Sent: 3, LastStatus: 503, LastError: "busy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Job{Revision: 5}
			if err := UnmarshalJob([]byte(c.json), &got); err != nil {
				t.Fatal(err)
			}
			if got.Revision != 0 {
				t.Errorf("Revision = %d, want 0 (it travels in a header)", got.Revision)
			}
			sameJob(t, &got, c.want)
		})
	}
}

func TestUnknownFieldsAreSkipped(t *testing.T) {
	job := fullJob()
	b, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A header with a field of its own this version does not know.
	header := protowire.AppendString(protowire.AppendTag(nil, headerName, protowire.BytesType), "X-New")
	header = protowire.AppendVarint(protowire.AppendTag(header, 9, protowire.VarintType), 1)
	header = protowire.AppendString(protowire.AppendTag(header, headerValue, protowire.BytesType), "v")
	for _, c := range []struct {
		name   string
		add    func(b []byte) []byte
		header *Header
	}{
		{"a varint", func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, 100, protowire.VarintType), 1<<50)
		}, nil},
		{"a fixed32", func(b []byte) []byte {
			return protowire.AppendFixed32(protowire.AppendTag(b, 101, protowire.Fixed32Type), 7)
		}, nil},
		{"a fixed64", func(b []byte) []byte {
			return protowire.AppendFixed64(protowire.AppendTag(b, 102, protowire.Fixed64Type), 7)
		}, nil},
		{"a length-delimited field", func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, 536870911, protowire.BytesType), []byte("a future field"))
		}, nil},
		{"a group", func(b []byte) []byte {
			b = protowire.AppendTag(b, 104, protowire.StartGroupType)
			b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 3)
			return protowire.AppendTag(b, 104, protowire.EndGroupType)
		}, nil},
		{"a field inside a header", func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, jobHeaders, protowire.BytesType), header)
		}, &Header{Name: "X-New", Value: "v"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, at := range []string{"first", "last"} {
				var in []byte
				if at == "first" {
					in = append(c.add(nil), b...)
				} else {
					in = c.add(append([]byte(nil), b...))
				}
				var got Job
				if err := got.UnmarshalBinary(in); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
				want := *job
				if c.header != nil {
					if at == "first" {
						want.Headers = append([]Header{*c.header}, job.Headers...)
					} else {
						want.Headers = append(append([]Header(nil), job.Headers...), *c.header)
					}
				}
				sameJob(t, &got, &want)
			}
		})
	}
}

func TestMalformedJobsAreErrorsNotPanics(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"nothing", nil},
		{"field number 0", []byte{0x00, 0x01}},
		{"a tag cut short", []byte{0x80}},
		{"a varint of 11 bytes", cat(tag(jobAttempt, protowire.VarintType), bytes.Repeat([]byte{0xff}, 10), []byte{0x01})},
		{"a string longer than what is left", cat(tag(jobDeliveryID, protowire.BytesType), []byte{10, 'a'})},
		{"a length beyond 2^63", cat(tag(jobBody, protowire.BytesType), bytes.Repeat([]byte{0xff}, 9), []byte{0x01})},
		{"a fixed64 cut short", cat(tag(jobCreated, protowire.Fixed64Type), []byte{1, 2, 3})},
		{"a known field with another wire type", cat(tag(jobDeliveryID, protowire.VarintType), []byte{1})},
		{"a time as a varint", cat(tag(jobCreated, protowire.VarintType), []byte{1})},
		{"an end group alone", tag(200, protowire.EndGroupType)},
		{"a group never ended", cat(tag(200, protowire.StartGroupType), tag(1, protowire.VarintType), []byte{1})},
		{"an unknown field cut short", cat(tag(300, protowire.BytesType), []byte{5, 1})},
		{"the reserved wire types", tag(301, 6)},
		{"a header that is not a message", cat(tag(jobHeaders, protowire.BytesType), []byte{2, 0xff, 0xff})},
		{"a header name as a varint", cat(tag(jobHeaders, protowire.BytesType), []byte{2}, tag(headerName, protowire.VarintType), []byte{1})},
		{"JSON cut short", []byte(`{"delivery_id":"d`)},
		{"JSON of another shape", []byte(`{"attempt":"three"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var j Job
			if err := UnmarshalJob(c.in, &j); err == nil {
				t.Fatalf("decoded %x as %+v", c.in, j)
			}
		})
	}
	t.Run("every cut of a full job inside a field", func(t *testing.T) {
		b, err := fullJob().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		boundary := map[int]bool{0: true}
		for rest := b; len(rest) > 0; {
			_, _, n := protowire.ConsumeField(rest)
			rest = rest[n:]
			boundary[len(b)-len(rest)] = true
		}
		for cut := range len(b) {
			var j Job
			err := j.UnmarshalBinary(b[:cut])
			if !boundary[cut] && err == nil {
				t.Errorf("a job cut at byte %d of %d decoded", cut, len(b))
			}
			if boundary[cut] && err != nil {
				t.Errorf("a job cut between fields, at byte %d: %v", cut, err)
			}
		}
	})
}

func FuzzJobUnmarshal(f *testing.F) {
	for _, j := range []*Job{fullJob(), burstJob(), {DeliveryID: "dlv_1"}, {Headers: []Header{{}}}} {
		b, err := j.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		js, _ := json.Marshal(j)
		f.Add(js)
	}
	f.Add([]byte{0x78, 0x01, 0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06}) // field 15; an unknown group
	f.Add([]byte(`{"created":"2262-04-12T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var j Job
		if err := UnmarshalJob(in, &j); err != nil {
			return
		}
		b, err := j.MarshalBinary()
		if err != nil {
			if in[0] == '{' && strings.Contains(err.Error(), "outside the range") {
				return // JSON holds times int64 nanoseconds do not
			}
			t.Fatalf("a decoded job does not encode: %v (%+v)", err, j)
		}
		var again Job
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("the encoding of a decoded job does not decode: %v", err)
		}
		sameJob(t, &again, &j)
		if b2, err := again.MarshalBinary(); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding again gives %x, %v; want %x", b2, err, b)
		}
	})
}

// BenchmarkJobCodec compares the binary format with the JSON it replaces,
// on the burst benchmark's first send (a ~1 KB JSON body, 2 headers).
func BenchmarkJobCodec(b *testing.B) {
	job := burstJob()
	bin, err := job.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	js, err := json.Marshal(job)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("encoded size: binary %d bytes, JSON %d bytes (body %d bytes)", len(bin), len(js), len(job.Body))
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"marshal/binary", func() error { _, err := job.MarshalBinary(); return err }},
		{"marshal/json", func() error { _, err := json.Marshal(job); return err }},
		{"unmarshal/binary", func() error { var j Job; return j.UnmarshalBinary(bin) }},
		{"unmarshal/json", func() error { var j Job; return json.Unmarshal(js, &j) }},
		{"unmarshal/UnmarshalJob-json", func() error { var j Job; return UnmarshalJob(js, &j) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
