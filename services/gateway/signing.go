package gateway

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/endpoint"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const expireField = "endpoint.previous_signing_secret_expire_time"

// refuseReservedHeaders lists every configured header the sender sets
// itself or cannot honour (endpoint.ReservedHeader), naming each
// endpoint.headers[i].name.
func refuseReservedHeaders(bad *badRequest, headers []*postbackv1.Header) {
	for i, h := range headers {
		if why := endpoint.ReservedHeader(h.GetName()); why != "" {
			bad.add(fmt.Sprintf("endpoint.headers[%d].name", i), endpoint.ReservedHeaderMessage(h.GetName(), why))
		}
	}
}

// clearPreviousSecret makes e hold no previous signing secret.
func clearPreviousSecret(e *postbackv1.Endpoint) {
	e.PreviousSigningSecret, e.PreviousSigningSecretExpireTime = "", nil
}

// rotateSigningSecret settles the previous signing secret of e, an update
// of old with the request's fields (paths) applied, at now:
//
//   - signing_secret changed (a new value, not its masked form nor the same
//     secret again) and previous_signing_secret_expire_time given and
//     ahead: the replaced secret keeps signing until then (a rotation). A
//     previous secret of an earlier rotation is dropped: at most two sign.
//   - signing_secret changed otherwise (no time, or one already past, or
//     the secret removed): the new one alone signs at once.
//   - only the expire time given: it moves the end of a running overlap;
//     unset or past ends it now. Given ahead with nothing to keep, it is
//     refused.
//
// A previous secret whose time has passed is dropped from the stored
// endpoint. previous_signing_secret itself is never taken from a request.
func (s *Server) rotateSigningSecret(e, old, in *postbackv1.Endpoint, paths []string, now time.Time) error {
	expireGiven := false
	for _, p := range paths {
		if p == "previous_signing_secret_expire_time" {
			expireGiven = true
		}
	}
	var until time.Time // zero: no overlap
	if t := in.GetPreviousSigningSecretExpireTime(); expireGiven && t != nil {
		if err := t.CheckValid(); err != nil {
			return invalid(expireField, "not a valid time")
		}
		if t.AsTime().After(now.Add(endpoint.MaxSigningSecretOverlap)) {
			return invalid(expireField, "at most %s after now (the replaced secret signs at most 30 days)", endpoint.MaxSigningSecretOverlap)
		}
		if t.AsTime().After(now) {
			until = t.AsTime()
		}
	}
	// The same secret sent again in clear is no change.
	if e.SigningSecret != old.SigningSecret && old.SigningSecret != "" {
		if clear, err := endpoint.OpenValue(old, old.SigningSecret, s.keyring); err == nil && clear == e.SigningSecret {
			e.SigningSecret = old.SigningSecret
		}
	}
	running := endpoint.PreviousSecretActive(old, now)
	switch {
	case e.SigningSecret != old.SigningSecret:
		clearPreviousSecret(e)
		if !until.IsZero() && old.SigningSecret != "" && e.SigningSecret != "" {
			e.PreviousSigningSecret = old.SigningSecret // sealed, as stored
			e.PreviousSigningSecretExpireTime = timestamppb.New(until)
		}
	case expireGiven && !until.IsZero():
		if !running {
			return invalid(expireField, "no previous signing secret to keep: a rotation sets one, when signing_secret changes in the same request")
		}
		e.PreviousSigningSecretExpireTime = timestamppb.New(until)
	case expireGiven:
		clearPreviousSecret(e)
	}
	if !endpoint.PreviousSecretActive(e, now) {
		clearPreviousSecret(e)
	}
	return nil
}
