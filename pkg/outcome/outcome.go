// Package outcome decides whether a postback landed, from the brand's own
// Success Response and Error Response rules (docs/architecture.md, decision 6).
//
// A rule is one of:
//
//   - a status: exactly three digits, 100-599 ("200");
//   - a status class: a digit 1-5 followed by "xx" ("2xx"; "2XX" is read the
//     same way);
//   - text: anything else, matched as a case-sensitive substring of the first
//     MaxBody bytes of the response body ("OK", "\"status\":\"ok\"").
//
// Order (transport errors are failures before Classify is ever called):
//
//  1. the Error Response matches          -> failure
//  2. a Success Response is set           -> success only if it matches
//  3. neither set (or Error set, no match) -> success only for 2xx
//
// Rules are strings end to end (the API and the endpoint record keep what
// the brand typed); ParseRule is where their meaning is decided, once.
package outcome

import (
	"bytes"
	"fmt"
	"strconv"
)

// MaxBody is how much of a response body is matched: only its first 64 KiB.
// Callers read at most that (io.LimitReader) and Classify ignores the rest.
const MaxBody = 64 << 10

type kind uint8

const (
	unset kind = iota
	status
	class
	text
)

// Rule is a parsed Success or Error Response. The zero value is "not set".
type Rule struct {
	kind kind
	code int    // status: the code; class: the leading digit
	text string // text: the needle
}

// ParseRule parses a rule as typed by the brand: "" is not set, three digits
// a status (100-599), a digit and "xx" a class (1xx-5xx), anything else text.
// A string that looks like a status or class but is out of range is an error
// rather than text, so a typo like "600" is refused, not matched in bodies.
func ParseRule(s string) (Rule, error) {
	switch {
	case s == "":
		return Rule{}, nil
	case len(s) == 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]):
		code, _ := strconv.Atoi(s)
		if code < 100 || code > 599 {
			return Rule{}, fmt.Errorf("response rule %q: status must be 100-599", s)
		}
		return Rule{kind: status, code: code}, nil
	case len(s) == 3 && isDigit(s[0]) && (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X'):
		d := int(s[0] - '0')
		if d < 1 || d > 5 {
			return Rule{}, fmt.Errorf("response rule %q: status class must be 1xx-5xx", s)
		}
		return Rule{kind: class, code: d}, nil
	}
	return Rule{kind: text, text: s}, nil
}

// MustParseRule is ParseRule for constants in code and tests; it panics on error.
func MustParseRule(s string) Rule {
	r, err := ParseRule(s)
	if err != nil {
		panic(err)
	}
	return r
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// IsSet reports whether the rule was given.
func (r Rule) IsSet() bool { return r.kind != unset }

// IsText reports whether the rule matches the body rather than the status.
func (r Rule) IsText() bool { return r.kind == text }

// String is the rule in its canonical typed form ("" when not set; a class
// is always lower-case "2xx").
func (r Rule) String() string {
	switch r.kind {
	case status:
		return strconv.Itoa(r.code)
	case class:
		return strconv.Itoa(r.code) + "xx"
	case text:
		return r.text
	}
	return ""
}

// Match reports whether a response matches the rule: the status for a status
// or class rule, the first MaxBody bytes of body for a text rule. An unset
// rule matches nothing.
func (r Rule) Match(code int, body []byte) bool {
	switch r.kind {
	case status:
		return code == r.code
	case class:
		return code/100 == r.code
	case text:
		if len(body) > MaxBody {
			body = body[:MaxBody]
		}
		return bytes.Contains(body, []byte(r.text))
	}
	return false
}

// Result is a classification with a reason a person understands.
type Result struct {
	Success bool
	Reason  string
}

// Classify decides a response's outcome (see the package comment for the
// order). status is the HTTP status; body is the response body, of which only
// the first MaxBody bytes are looked at.
func Classify(status int, body []byte, success, failure Rule) Result {
	if failure.IsSet() && failure.Match(status, body) {
		return Result{Success: false, Reason: matched(failure, status, "Error Response")}
	}
	if success.IsSet() {
		if success.Match(status, body) {
			return Result{Success: true, Reason: matched(success, status, "Success Response")}
		}
		if success.IsText() {
			return Result{Success: false, Reason: fmt.Sprintf("Success Response %q not found in response", success.String())}
		}
		return Result{Success: false, Reason: fmt.Sprintf("status %d does not match Success Response %q", status, success.String())}
	}
	if status >= 200 && status <= 299 {
		return Result{Success: true, Reason: fmt.Sprintf("status %d is 2xx", status)}
	}
	return Result{Success: false, Reason: fmt.Sprintf("status %d is not 2xx", status)}
}

func matched(r Rule, status int, name string) string {
	if r.IsText() {
		return fmt.Sprintf("response matched %s %q", name, r.String())
	}
	return fmt.Sprintf("status %d matched %s %q", status, name, r.String())
}
