package outcome

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in     string
		kind   kind
		str    string
		errSub string
	}{
		{in: "", kind: unset, str: ""},
		{in: "200", kind: status, str: "200"},
		{in: "100", kind: status, str: "100"},
		{in: "599", kind: status, str: "599"},
		{in: "2xx", kind: class, str: "2xx"},
		{in: "5XX", kind: class, str: "5xx"},
		{in: "OK", kind: text, str: "OK"},
		{in: "ERROR", kind: text, str: "ERROR"},
		{in: "2000", kind: text, str: "2000"},
		{in: "20", kind: text, str: "20"},
		{in: " 200", kind: text, str: " 200"},
		{in: "2x", kind: text, str: "2x"},
		{in: "2xxx", kind: text, str: "2xxx"},
		{in: "x2x", kind: text, str: "x2x"},
		{in: `{"ok":true}`, kind: text, str: `{"ok":true}`},
		{in: "099", errSub: "100-599"},
		{in: "600", errSub: "100-599"},
		{in: "999", errSub: "100-599"},
		{in: "0xx", errSub: "1xx-5xx"},
		{in: "6xx", errSub: "1xx-5xx"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRule(tc.in)
			if tc.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) || !strings.Contains(err.Error(), tc.in) {
					t.Fatalf("ParseRule(%q) error = %v, want one naming %q and %q", tc.in, err, tc.in, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tc.in, err)
			}
			if r.kind != tc.kind || r.String() != tc.str || r.IsSet() != (tc.kind != unset) {
				t.Fatalf("ParseRule(%q) = kind %d %q set=%v, want kind %d %q", tc.in, r.kind, r.String(), r.IsSet(), tc.kind, tc.str)
			}
		})
	}
}

func TestZeroRuleIsNotSet(t *testing.T) {
	var r Rule
	if r.IsSet() || r.String() != "" || r.Match(200, []byte("anything")) {
		t.Fatal("zero Rule behaves as set")
	}
}

func TestClassify(t *testing.T) {
	big := append(bytes.Repeat([]byte("a"), MaxBody), []byte("ERROR OK")...)
	edge := append(bytes.Repeat([]byte("a"), MaxBody-2), []byte("OK")...) // ends exactly at the limit
	straddle := append(bytes.Repeat([]byte("a"), MaxBody-1), []byte("OK")...)
	for _, tc := range []struct {
		name             string
		status           int
		body             []byte
		success, failure string
		want             bool
		reason           string
	}{
		// Neither rule: 2xx decides.
		{"no rules 200", 200, nil, "", "", true, "status 200 is 2xx"},
		{"no rules 204", 204, nil, "", "", true, "status 204 is 2xx"},
		{"no rules 299", 299, nil, "", "", true, "status 299 is 2xx"},
		{"no rules 301 (redirects are not followed)", 301, nil, "", "", false, "status 301 is not 2xx"},
		{"no rules 404", 404, nil, "", "", false, "status 404 is not 2xx"},
		{"no rules 503", 503, nil, "", "", false, "status 503 is not 2xx"},
		{"no rules 199", 199, nil, "", "", false, "status 199 is not 2xx"},

		// Error Response text.
		{"error text matched on 200 is a failure", 200, []byte("ERROR"), "", "ERROR", false, `response matched Error Response "ERROR"`},
		{"error text is a substring match", 200, []byte(`{"result":"ERROR: bad id"}`), "", "ERROR", false, `response matched Error Response "ERROR"`},
		{"error text is case-sensitive", 200, []byte("error"), "", "ERROR", true, "status 200 is 2xx"},
		{"error text not matched falls back to 2xx", 200, []byte("fine"), "", "ERROR", true, "status 200 is 2xx"},
		{"error text not matched on 500 is still not 2xx", 500, []byte("fine"), "", "ERROR", false, "status 500 is not 2xx"},

		// Error Response status and class.
		{"error status 500 matched", 500, nil, "", "500", false, `status 500 matched Error Response "500"`},
		{"error status 500 not matched by 502", 502, nil, "", "500", false, "status 502 is not 2xx"},
		{"error status 500 not matched on 200", 200, nil, "", "500", true, "status 200 is 2xx"},
		{"error class 2xx fails a 200", 200, nil, "", "2xx", false, `status 200 matched Error Response "2xx"`},

		// Success Response text.
		{"success text on 500 is a success", 500, []byte("OK"), "OK", "", true, `response matched Success Response "OK"`},
		{"success text not found", 200, []byte("nope"), "OK", "", false, `Success Response "OK" not found in response`},
		{"success text empty body", 200, nil, "OK", "", false, `Success Response "OK" not found in response`},
		{"success text is case-sensitive", 200, []byte("ok"), "OK", "", false, `Success Response "OK" not found in response`},

		// Success Response status and class.
		{"success status 201 on 201", 201, nil, "201", "", true, `status 201 matched Success Response "201"`},
		{"success status 201 on 200", 200, nil, "201", "", false, `status 200 does not match Success Response "201"`},
		{"success class 2xx on 299", 299, nil, "2xx", "", true, `status 299 matched Success Response "2xx"`},
		{"success class 2xx on 503", 503, nil, "2xx", "", false, `status 503 does not match Success Response "2xx"`},
		{"success class 4xx on 404", 404, nil, "4xx", "", true, `status 404 matched Success Response "4xx"`},

		// Both set: the Error Response wins.
		{"both match: error wins", 200, []byte("OK ERROR"), "OK", "ERROR", false, `response matched Error Response "ERROR"`},
		{"success matches, error does not", 200, []byte("OK"), "OK", "ERROR", true, `response matched Success Response "OK"`},
		{"neither matches", 200, []byte("meh"), "OK", "ERROR", false, `Success Response "OK" not found in response`},
		{"error status beats success text", 500, []byte("OK"), "OK", "5xx", false, `status 500 matched Error Response "5xx"`},

		// Only the first MaxBody bytes are matched.
		{"text beyond 64 KiB is not matched (error)", 200, big, "", "ERROR", true, "status 200 is 2xx"},
		{"text beyond 64 KiB is not matched (success)", 200, big, "OK", "", false, `Success Response "OK" not found in response`},
		{"text ending exactly at 64 KiB is matched", 200, edge, "OK", "", true, `response matched Success Response "OK"`},
		{"text straddling 64 KiB is not matched", 200, straddle, "OK", "", false, `Success Response "OK" not found in response`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.status, tc.body, MustParseRule(tc.success), MustParseRule(tc.failure))
			if got.Success != tc.want || got.Reason != tc.reason {
				t.Fatalf("Classify(%d, %.20q, success %q, error %q) = %+v, want {Success:%v Reason:%s}",
					tc.status, tc.body, tc.success, tc.failure, got, tc.want, tc.reason)
			}
		})
	}
}

func TestMustParseRulePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustParseRule(\"600\") did not panic")
		}
	}()
	MustParseRule("600")
}
