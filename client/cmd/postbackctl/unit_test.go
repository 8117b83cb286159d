package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
	}{
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"2026-01-02T15:04:05+02:00", time.Date(2026, 1, 2, 13, 4, 5, 0, time.UTC)},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
	}
	for _, c := range cases {
		got, err := parseTime("since", c.in, now)
		if err != nil || !got.AsTime().Equal(c.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", c.in, got.AsTime(), err, c.want)
		}
	}
	for _, bad := range []string{"yesterday", "-5m", "2026-13-01", ""} {
		if _, err := parseTime("since", bad, now); err == nil || !strings.Contains(err.Error(), "--since") {
			t.Errorf("parseTime(%q): want an error naming --since, got %v", bad, err)
		}
	}
}

func TestParseStatusAndEnums(t *testing.T) {
	for in, want := range map[string]postbackv1.DeliveryStatus{
		"dead": postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, "IN-FLIGHT": postbackv1.DeliveryStatus_DELIVERY_STATUS_IN_FLIGHT,
		"DELIVERY_STATUS_CANCELLED": postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED,
	} {
		if got, err := parseStatus("status", in); err != nil || got != want {
			t.Errorf("parseStatus(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"unspecified", "lost", ""} {
		if _, err := parseStatus("status", bad); err == nil {
			t.Errorf("parseStatus(%q): want an error", bad)
		}
	}
	ed := postbackv1.BodyFormat(0).Descriptor()
	for in, want := range map[string]string{"form": "BODY_FORMAT_FORM", "BODY_FORMAT_XML": "BODY_FORMAT_XML", "Text": "BODY_FORMAT_TEXT"} {
		if got, err := enumValue(ed, in, "body_format"); err != nil || got != want {
			t.Errorf("enumValue(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := enumValue(ed, "csv", "body_format"); err == nil || err.Error() != `body_format: unknown value "csv" (want JSON, FORM, XML, TEXT)` {
		t.Errorf("enumValue(csv): %v", err)
	}
}

func TestJSONToYAMLKeepsOrderAndTypes(t *testing.T) {
	got, err := jsonToYAML([]byte(`{"z": "123", "a": 1, "t": "true", "m": "two\nlines", "l": [{"k": null}], "e": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "z: \"123\"\na: 1\nt: \"true\"\nm: |-\n  two\n  lines\nl:\n  - k: null\ne: {}\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestExitCodes(t *testing.T) {
	for c, want := range map[codes.Code]int{
		codes.InvalidArgument: exitUsage, codes.NotFound: exitNotFound, codes.Unauthenticated: exitDenied,
		codes.PermissionDenied: exitDenied, codes.FailedPrecondition: exitError, codes.Unavailable: exitError,
		codes.Internal: exitError, codes.ResourceExhausted: exitError,
	} {
		if got := codeExit(c); got != want {
			t.Errorf("codeExit(%s) = %d, want %d", c, got, want)
		}
	}
	if got := codeText(codes.PermissionDenied); got != "permission denied" {
		t.Errorf("codeText = %q", got)
	}
}
