package stream

import "testing"

// Message ids are the wire: an older version still running dedupes
// against them, so each kind keeps its form exactly.
func TestEachKindOfMessageIDKeepsItsForm(t *testing.T) {
	const dlv = "dlv_01JQ0000000000000000000000"
	for _, c := range []struct {
		name, got, want string
	}{
		{"the renderer's first send", FirstSendID(dlv), "job:" + dlv + ":0"},
		{"a failed attempt", FailureID(dlv, 3), "fail:" + dlv + ":3"},
		{"a retry's schedule", RetryID(dlv, 3), "retry:" + dlv + ":3"},
		{"a deferral to a limiter slot", SlotID(dlv, 0, 1775638800123456789, 42), "slotrev:" + dlv + ":0:1775638800123456789:42"},
		{"a deferral to a place in flight", BusyID(dlv, 1, 1775638800000000000), "busy:" + dlv + ":1:1775638800000000000"},
		{"a resend", ResendID(dlv, 2, 5), "manual:" + dlv + ":2:5"},
		{"an attempt moved to ATTEMPTS", AttemptID(dlv, 4, 36*36), "att:" + dlv + ":4:100"},
		{"a dead letter", DeadLetterID("EVENTS", 17), "dead:EVENTS:17"},
		{"a history change set aside", SetAsideID(dlv, 1775638800000001), "aside:" + dlv + ":1775638800000001"},
	} {
		if c.got != c.want {
			t.Errorf("%s: id %q, want %q", c.name, c.got, c.want)
		}
	}
}
