package template

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// bytesAllocated is how many bytes f allocates (the heap's total, so the
// test must not run in parallel with others).
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// AppendLimited renders exactly what Append does while it fits, and stops
// with a *TooLongError as soon as the output would pass the limit, leaving
// what it wrote a prefix of the whole.
func TestAppendLimitedStopsAsSoonAsTheOutputPassesTheLimit(t *testing.T) {
	items := []any{map[string]any{"sku": "A1", "qty": 2.0}, map[string]any{"sku": "B2", "qty": 1.0}}
	data := map[string]any{"Note": strings.Repeat("n", 100), "CampaignId": 9876.0, "Payout": 1e-300, "items": items}
	tests := []struct {
		name, src string
		limit     int
		fits      bool
	}{
		{"literal within", "hello", 5, true},
		{"literal past", "hello", 4, false},
		{"string value exactly at the limit", "{Note}", 100, true},
		{"string value past: not copied", "{Note}", 99, false},
		{"a literal after a value that fits", `{Note}!`, 100, false},
		{"number past", "{CampaignId}", 3, false},
		{"a decimal that renders three hundred digits", "{Payout}", 100, false},
		{"join within", `{join(items, i, "{i.sku}:{i.qty}")}`, len("A1:2,B2:1"), true},
		{"join past at its separator", `{join(items, i, "{i.sku}:{i.qty}")}`, len("A1:2"), false},
		{"join past in its second item", `{join(items, i, "{i.sku}:{i.qty}")}`, len("A1:2,B2"), false},
		{"zero limit", "x", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := Parse(tt.src, mustType(t, "action_lifecycle"))
			if err != nil {
				t.Fatal(err)
			}
			whole := string(tpl.Append([]byte("pre:"), data, Text))
			got, err := tpl.AppendLimited([]byte("pre:"), data, Text, tt.limit)
			var tooLong *TooLongError
			switch {
			case tt.fits && err != nil:
				t.Fatalf("AppendLimited(%d) = %v, want %q", tt.limit, err, whole)
			case tt.fits && string(got) != whole:
				t.Fatalf("AppendLimited(%d) = %q, want %q", tt.limit, got, whole)
			case !tt.fits && (!errors.As(err, &tooLong) || tooLong.Limit != tt.limit):
				t.Fatalf("AppendLimited(%d) = %q, %v; want a TooLongError of %d (the whole is %d bytes)", tt.limit, got, err, tt.limit, len(whole)-4)
			case !tt.fits && !strings.HasPrefix(whole, string(got)):
				t.Fatalf("stopped at %q, not a prefix of %q", got, whole)
			}
		})
	}
}

// A template of 2,500 joins over 1,000 items renders hundreds of megabytes
// unbounded; with a limit it stops there, having allocated about twice the
// limit.
func TestAppendLimitedOfThousandsOfJoinsAllocatesAboutTheLimit(t *testing.T) {
	tpl, err := Parse(strings.Repeat(`{join(items, i,"{i.sku}")}`, 2500), mustType(t, "action_lifecycle"))
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 1000)
	for i := range items {
		items[i] = map[string]any{"sku": "SKU-12345678"}
	}
	data := map[string]any{"items": items}
	const limit = 1 << 20
	allocated := bytesAllocated(func() {
		if _, err := tpl.AppendLimited(nil, data, Text, limit); err == nil {
			t.Error("no error past the limit")
		}
	})
	if allocated > 3*limit {
		t.Fatalf("allocated %d bytes for a limit of %d", allocated, limit)
	}
}

func TestShapeCountsTheTemplatesOwnTextAndEachValuesUses(t *testing.T) {
	tests := []struct {
		name, src string
		items     int
		want      Shape
	}{
		{"literal only", "hello", 1000, Shape{Fixed: 5, Uses: map[string]int64{}}},
		{"each value once", "a{ActionId}b{CampaignId}", 1000, Shape{Fixed: 2, Uses: map[string]int64{"ActionId": 1, "CampaignId": 1}}},
		{"a value used twice", "{ActionId}/{ActionId}", 1000, Shape{Fixed: 1, Uses: map[string]int64{"ActionId": 2}}},
		{"a join: its text per item, separators between", `[{join(items, i, "<{i.sku}>", "; ")}]`, 1000,
			Shape{Fixed: 2 + 1000*2 + 999*2, Uses: map[string]int64{"items.sku": 1}}},
		{"a top-level data point inside a join: once per item", `{join(items, i, "{CampaignId}{i.sku}{i.sku}")}`, 10,
			Shape{Fixed: 9, Uses: map[string]int64{"CampaignId": 10, "items.sku": 2}}},
		{"joins add up", strings.Repeat(`{join(items, i, "{i.sku}")}`, 3), 1000,
			Shape{Fixed: 3 * 999, Uses: map[string]int64{"items.sku": 3}}},
		{"no items: a join writes nothing", `x{join(items, i, "{i.sku}")}`, 0, Shape{Fixed: 1, Uses: map[string]int64{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl, err := Parse(tt.src, mustType(t, "action_lifecycle"))
			if err != nil {
				t.Fatal(err)
			}
			if got := tpl.Shape(tt.items); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Shape(%d) = %+v, want %+v", tt.items, got, tt.want)
			}
		})
	}
}

// A bounded render escapes a long value a piece at a time; the pieces
// together are exactly what Append writes, in every format, whatever
// characters (or invalid bytes) sit at the cuts.
func TestAppendLimitedEscapesALongValueExactlyAsAppendDoes(t *testing.T) {
	tpl, err := Parse("<{Note}>", mustType(t, "action_lifecycle"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"é\u2028&<\"\x01 a'", "\xe2\x80", "\xff", "€", "\U0001F600x"} {
		for _, shift := range []int{0, 1, 2, 3} {
			note := strings.Repeat("x", shift) + strings.Repeat(pattern, 3*escapeChunk/len(pattern))
			data := map[string]any{"Note": note}
			for _, f := range []Format{Text, URL, JSON, Form, XML} {
				want := tpl.Append(nil, data, f)
				got, err := tpl.AppendLimited(nil, data, f, len(want))
				if err != nil || string(got) != string(want) {
					t.Fatalf("%q shifted %d in %s: AppendLimited = %v, and differs from Append: %v", pattern, shift, f, err, string(got) != string(want))
				}
				if _, err := tpl.AppendLimited(nil, data, f, len(want)-1); err == nil {
					t.Fatalf("%q in %s: one byte short of the whole rendered", pattern, f)
				}
			}
		}
	}
}
