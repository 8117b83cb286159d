package delivery

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/secret"
)

func jobKeyring(t *testing.T, entries ...string) *secret.Keyring {
	t.Helper()
	k, err := secret.ParseKeyring(joinEntries(entries))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func joinEntries(entries []string) string {
	s := ""
	for i, e := range entries {
		if i > 0 {
			s += ","
		}
		s += e
	}
	return s
}

func keyEntry(kid string, fill byte) string {
	return kid + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, secret.KeySize))
}

// seedJob is the renderer's job for the seed's action_lifecycle example.
func seedJob() Job {
	return Job{
		DeliveryID: "dlv_1", AccountID: "brand-a", EndpointID: "ep_1", EventID: "evt_1", EventType: "action_lifecycle",
		Method: "GET", URL: "https://brand.example/postback?action=123&status=approved",
		Headers: []Header{{Name: "X-Action", Value: "123"}}, ContentType: "",
		Created: time.Unix(1_700_000_000, 0).UTC(),
	}
}

func TestATaggedJobVerifiesAndSurvivesCopiesAndRetries(t *testing.T) {
	k := jobKeyring(t, keyEntry("j1", 1))
	job := seedJob()
	if err := job.Authenticate(k); err != nil {
		t.Fatal(err)
	}
	b, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var decoded Job
	if err := decoded.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	// What the retry service and the sender change as a delivery moves on.
	decoded.Attempt, decoded.Sent, decoded.LastStatus, decoded.LastError = 3, 3, 503, "Service Unavailable"
	decoded.Slot, decoded.Scheduled = time.Now(), time.Now()
	if err := decoded.Authentic(k); err != nil {
		t.Fatalf("a decoded retry of a tagged job: %v", err)
	}
	rotated := jobKeyring(t, keyEntry("j2", 2), keyEntry("j1", 1))
	if err := decoded.Authentic(rotated); err != nil {
		t.Fatalf("after rotation, with the old key kept second: %v", err)
	}
}

func TestAForgedOrAlteredJobDoesNotVerify(t *testing.T) {
	k := jobKeyring(t, keyEntry("j1", 1))
	for _, tc := range []struct {
		name  string
		alter func(j *Job)
	}{
		{"the URL points elsewhere", func(j *Job) { j.URL = "http://127.0.0.1:9/steal" }},
		{"another account", func(j *Job) { j.AccountID = "brand-b" }},
		{"another endpoint", func(j *Job) { j.EndpointID = "ep_2" }},
		{"another delivery", func(j *Job) { j.DeliveryID = "dlv_2" }},
		{"the method", func(j *Job) { j.Method = "POST" }},
		{"the body", func(j *Job) { j.Body = []byte(`{"forged":true}`) }},
		{"a header value", func(j *Job) { j.Headers = []Header{{Name: "X-Action", Value: "999"}} }},
		{"the tag removed", func(j *Job) { j.MAC, j.MACKey = "", "" }},
		{"a key id the keyring lacks", func(j *Job) { j.MACKey = "j9" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := seedJob()
			if err := job.Authenticate(k); err != nil {
				t.Fatal(err)
			}
			tc.alter(&job)
			if err := job.Authentic(k); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
		})
	}
	t.Run("tagged under another key", func(t *testing.T) {
		job := seedJob()
		if err := job.Authenticate(jobKeyring(t, keyEntry("j1", 9))); err != nil {
			t.Fatal(err)
		}
		if err := job.Authentic(k); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
	})
}

// BenchmarkJobAuthentication: what a tag costs the renderer (Authenticate)
// and the sender (Authentic), next to the job's own encoding and decoding,
// on the burst benchmark's first send (~1 KB body).
func BenchmarkJobAuthentication(b *testing.B) {
	k, err := secret.ParseKeyring(keyEntry("j1", 1))
	if err != nil {
		b.Fatal(err)
	}
	job := burstJob()
	if err := job.Authenticate(k); err != nil {
		b.Fatal(err)
	}
	bin, err := job.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func() error
	}{
		{"baseline/marshal", func() error { _, err := job.MarshalBinary(); return err }},
		{"baseline/unmarshal", func() error { var j Job; return j.UnmarshalBinary(bin) }},
		{"authenticate", func() error { return job.Authenticate(k) }},
		{"authentic", func() error { return job.Authentic(k) }},
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
