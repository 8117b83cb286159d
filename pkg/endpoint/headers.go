package endpoint

import (
	"fmt"
	"net/http"
	"strings"
)

// reservedHeaders are the request headers an endpoint may not configure,
// each with the reason: the sender sets them itself (a configured value
// would be overwritten or dropped without a word), or it cannot do what
// they ask. Keys are canonical header names.
var reservedHeaders = map[string]string{
	// net/http writes these from the request itself and ignores a header
	// of the name.
	"Host":              "the sender sets it from the URL",
	"Content-Length":    "the sender sets it from the body it sends",
	"Transfer-Encoding": "the sender frames the body itself (Content-Length)",
	"Trailer":           "the sender sends no trailers",
	// Hop-by-hop (RFC 9110, section 7.6.1): they concern one connection,
	// which the sender manages (pooled, kept alive, never upgraded).
	"Connection":       "a hop-by-hop header: the sender manages its connections",
	"Keep-Alive":       "a hop-by-hop header: the sender manages its connections",
	"Proxy-Connection": "a hop-by-hop header: the sender manages its connections",
	"Te":               "a hop-by-hop header: the sender manages its connections",
	"Upgrade":          "a hop-by-hop header: a postback never switches protocols",
	// The sender uses no proxy and never waits for 100 Continue.
	"Proxy-Authorization": "the sender connects to the endpoint directly, never through a proxy",
	"Expect":              "the sender sends the body at once and never waits for 100 Continue",
	// The sender reads answers as they come: the response rules could not
	// read a compressed one.
	"Accept-Encoding": "the sender does not decompress answers, which the response rules read as they come",
	// Set on every postback, over any configured value.
	"Content-Type": "the sender sets it from body_format",
	"User-Agent":   "the sender sets it (Postback/<version>)",
	// The Standard Webhooks headers, set when signing_secret is.
	"Webhook-Id":        "the sender sets it to sign the postback (signing_secret)",
	"Webhook-Timestamp": "the sender sets it to sign the postback (signing_secret)",
	"Webhook-Signature": "the sender sets it to sign the postback (signing_secret)",
}

// reservedPrefix starts the names of the headers Postback sets on every
// postback (Postback-Delivery-Id, Postback-Attempt, Postback-Event-Type)
// and of any it may add.
const reservedPrefix = "postback-"

// ReservedHeader tells why an endpoint may not configure a header of this
// name (any case), or "" when it may.
func ReservedHeader(name string) string {
	if why, ok := reservedHeaders[http.CanonicalHeaderKey(name)]; ok {
		return why
	}
	if len(name) >= len(reservedPrefix) && strings.EqualFold(name[:len(reservedPrefix)], reservedPrefix) {
		return "the Postback-* headers are Postback's own (Postback-Delivery-Id, Postback-Attempt, Postback-Event-Type)"
	}
	return ""
}

// ReservedHeaderMessage is the refusal of a reserved header name: it names
// the header and tells why.
func ReservedHeaderMessage(name, why string) string {
	return fmt.Sprintf("%q cannot be configured: %s", name, why)
}
