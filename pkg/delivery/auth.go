package delivery

// Job authentication.
//
// A job says where to send what: the sender adds the endpoint's secret
// headers and its webhook signature to the request a job describes. Anyone
// who can publish on the broker could otherwise queue a job for another
// account's endpoint with their own URL and receive that endpoint's secrets
// (or a valid signature over a body of their choosing). So the renderer tags
// every job it writes with an HMAC-SHA256 under the job key
// (POSTBACK_JOB_KEY), a key that is never on the broker, and the sender
// sends only a job whose tag verifies; one that does not is FAILED, sent
// nowhere.
//
// The tag covers what the job would send and whose it is: the delivery,
// account, endpoint and event ids, the event type, the method, the URL, the
// templated headers, the body and its content type — encoded as the job's
// own binary format of those fields alone, after a label. Not covered: the
// attempt number, times, counters and the previous outcome, which the
// sender and the retry service change as a delivery moves on (a forged
// value there changes when a request goes, never where or what). Copies of
// a job (retries, deferrals, records) keep the tag.

import (
	"errors"
	"fmt"
	"sync"

	"github.com/postback-dev/postback/pkg/secret"
)

// authLabel starts what a job's tag covers: the purpose and its version.
const authLabel = "postback job v1\n"

// ErrUnauthenticated: a job carries no tag, or one that does not verify.
var ErrUnauthenticated = errors.New("the job is not authenticated by Postback's job key")

// authInputs are reusable buffers for authInput.
var authInputs = sync.Pool{New: func() any { return new([]byte) }}

// authInput is what a job's tag covers, in a pooled buffer: call done
// when the bytes are no longer needed.
func (j *Job) authInput() (_ []byte, done func()) {
	covered := Job{
		DeliveryID: j.DeliveryID, AccountID: j.AccountID, EndpointID: j.EndpointID, EventID: j.EventID,
		EventType: j.EventType, Method: j.Method, URL: j.URL, Headers: j.Headers, Body: j.Body, ContentType: j.ContentType,
	}
	buf := authInputs.Get().(*[]byte)
	b, _ := covered.AppendBinary(append((*buf)[:0], authLabel...)) // no times: cannot fail
	return b, func() {
		if cap(b) <= 4<<20 { // keep no outsized buffer
			*buf = b
			authInputs.Put(buf)
		}
	}
}

// Authenticate tags j with the active key of k (sets MACKey and MAC).
func (j *Job) Authenticate(k *secret.Keyring) error {
	in, done := j.authInput()
	defer done()
	kid, tag, err := k.Sum(in)
	if err != nil {
		return fmt.Errorf("authenticate job %s: %w", j.DeliveryID, err)
	}
	j.MACKey, j.MAC = kid, string(tag)
	return nil
}

// Authentic checks j's tag with k; the error wraps ErrUnauthenticated and
// says why (no tag, a key the keyring does not hold, a tag that does not
// match).
func (j *Job) Authentic(k *secret.Keyring) error {
	if j.MAC == "" {
		return fmt.Errorf("%w: it carries no tag (forged, or queued by a version before job authentication)", ErrUnauthenticated)
	}
	in, done := j.authInput()
	defer done()
	if err := k.Verify(j.MACKey, in, []byte(j.MAC)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	return nil
}
