package endpoint

import (
	"time"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// MaxSigningSecretOverlap bounds a signing secret rotation: the replaced
// secret keeps signing at most this long after the rotation.
const MaxSigningSecretOverlap = 30 * 24 * time.Hour

// PreviousSecretActive reports whether the endpoint's previous signing
// secret still signs at now: it is set, and its expire time is set and
// after now. A previous secret without an expire time never signs.
func PreviousSecretActive(e *postbackv1.Endpoint, now time.Time) bool {
	exp := e.GetPreviousSigningSecretExpireTime()
	return e.GetPreviousSigningSecret() != "" && e.GetSigningSecret() != "" &&
		exp != nil && exp.IsValid() && now.Before(exp.AsTime())
}

// SigningSecrets are the secrets that sign a postback sent at now, as the
// endpoint holds them (in clear once opened): none without a signing
// secret; the signing secret, and during a rotation the previous one after
// it until its expire time.
func SigningSecrets(e *postbackv1.Endpoint, now time.Time) []string {
	if e.GetSigningSecret() == "" {
		return nil
	}
	if PreviousSecretActive(e, now) {
		return []string{e.SigningSecret, e.PreviousSigningSecret}
	}
	return []string{e.SigningSecret}
}
