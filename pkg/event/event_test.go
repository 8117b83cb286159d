package event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTypesAreTheSeedsSixThenOperationalEventsInStableOrder(t *testing.T) {
	want := []string{"action_lifecycle", "action_inquiry", "action_clearing", "tracking_value_request", "job_completed", "publisher_application", "operational_event"}
	var got []string
	for _, typ := range Types() {
		got = append(got, typ.Name)
		if typ.Description == "" {
			t.Errorf("%s has no description", typ.Name)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, name := range want {
		if typ, ok := Lookup(name); !ok || typ.Name != name {
			t.Errorf("Lookup(%q) = %v, %v", name, typ, ok)
		}
	}
	if _, ok := Lookup("action_unknown"); ok {
		t.Error("Lookup of an unknown type succeeded")
	}
}

func TestCatalogueHasEverySeedDataPoint(t *testing.T) {
	// Counts of top-level data points in the seed's examples.
	tests := []struct {
		typ      string
		topLevel int
		items    bool
	}{
		{"action_lifecycle", 63, true},
		{"action_inquiry", 22, false},
		{"action_clearing", 10, false},
		{"tracking_value_request", 10, true},
		{"job_completed", 12, false},
		{"publisher_application", 17, false},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			typ, _ := Lookup(tt.typ)
			top, item := 0, 0
			seen := map[string]bool{}
			for i, dp := range typ.DataPoints {
				if dp.Description == "" {
					t.Errorf("%s has no description", dp.Name)
				}
				if dp.Item {
					item++
					continue
				}
				if item > 0 {
					t.Errorf("top-level %s (#%d) after item fields", dp.Name, i)
				}
				if seen[dp.Name] {
					t.Errorf("%s twice", dp.Name)
				}
				seen[dp.Name] = true
				top++
			}
			if top != tt.topLevel {
				t.Errorf("%d top-level data points, want %d", top, tt.topLevel)
			}
			if typ.HasItems() != tt.items {
				t.Errorf("HasItems() = %v, want %v", typ.HasItems(), tt.items)
			}
			wantItems := 0
			if tt.items {
				wantItems = 7
			}
			if item != wantItems {
				t.Errorf("%d item fields, want %d", item, wantItems)
			}
		})
	}
}

func TestDataPointTypesFollowTheSeedExamples(t *testing.T) {
	tests := []struct {
		typ, name string
		want      DataPointType
	}{
		{"action_lifecycle", "CampaignId", Integer},
		{"action_lifecycle", "Payout", Decimal},
		{"action_lifecycle", "DeltaPayout", Decimal},
		{"action_lifecycle", "EventDate", DateTime},
		{"action_lifecycle", "Date1", Date},
		{"action_lifecycle", "Money1", Decimal},
		{"action_lifecycle", "Numeric1", Integer},
		{"action_lifecycle", "CallerId", String},      // null in the seed: a phone number
		{"action_lifecycle", "iosAdTracking", String}, // "1" quoted in the seed
		{"action_lifecycle", "CustomerPostCode", String},
		{"action_inquiry", "Id", Integer},
		{"action_inquiry", "FinalPayout", Decimal},
		{"action_inquiry", "ResolutionDate", DateTime}, // null in the seed: "The date the inquiry was decided"
		{"action_inquiry", "RejectReason", String},
		{"action_clearing", "LedgerDate", DateTime},
		{"tracking_value_request", "Amount", Decimal},
		{"job_completed", "RecordsProcessed", Integer},
		{"publisher_application", "ProgramId", String}, // "9876" quoted in the seed
		{"publisher_application", "PastRelationship", Boolean},
	}
	for _, tt := range tests {
		typ, _ := Lookup(tt.typ)
		dp, ok := typ.Field(tt.name)
		if !ok || dp.Type != tt.want || dp.Item {
			t.Errorf("%s.%s = %+v, %v; want type %v", tt.typ, tt.name, dp, ok, tt.want)
		}
	}
}

func TestItemFields(t *testing.T) {
	want := map[string]DataPointType{"sku": String, "amt": Decimal, "cat": String, "qty": Integer, "cartamt": Decimal, "rbt": String /* quoted in the seed: \"rbt\":\"{i.rbt}\" */, "name": String}
	for _, name := range []string{"action_lifecycle", "tracking_value_request"} {
		typ, _ := Lookup(name)
		for f, ft := range want {
			dp, ok := typ.ItemField(f)
			if !ok || dp.Type != ft || !dp.Item {
				t.Errorf("%s ItemField(%q) = %+v, %v", name, f, dp, ok)
			}
			if _, ok := typ.Field(f); ok {
				t.Errorf("%s Field(%q) found an item field", name, f)
			}
		}
		if _, ok := typ.Field("items"); ok {
			t.Errorf("%s Field(items) found", name)
		}
	}
	jc, _ := Lookup("job_completed")
	if _, ok := jc.ItemField("sku"); ok {
		t.Error("job_completed has an item field")
	}
	if jc.ItemsIndex() != -1 {
		t.Errorf("job_completed ItemsIndex = %d", jc.ItemsIndex())
	}
	al, _ := Lookup("action_lifecycle")
	if got := al.DataPoints[al.ItemsIndex()].Name; got != "EventDate" {
		t.Errorf("action_lifecycle items sit before %s, want EventDate (as in the seed)", got)
	}
}

func TestDataPointTypeString(t *testing.T) {
	got := []string{String.String(), Integer.String(), Decimal.String(), Boolean.String(), DateTime.String(), Date.String()}
	want := []string{"string", "integer", "decimal", "boolean", "date-time", "date"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestSampleIsTheSeedExampleAndValid(t *testing.T) {
	for _, typ := range Types() {
		t.Run(typ.Name, func(t *testing.T) {
			s := typ.Sample()
			if err := typ.Validate(s); err != nil {
				t.Fatalf("sample does not validate: %v", err)
			}
			top := 0
			for _, dp := range typ.DataPoints {
				if dp.Item {
					continue
				}
				top++
				if _, ok := s[dp.Name]; !ok {
					t.Errorf("sample lacks %s", dp.Name)
				}
			}
			wantLen := top
			if typ.HasItems() {
				wantLen++
				items, ok := s["items"].([]any)
				if !ok || len(items) != 2 {
					t.Fatalf("items = %#v, want 2 items", s["items"])
				}
				for _, it := range items {
					if len(it.(map[string]any)) != 7 {
						t.Errorf("item %v does not carry all 7 fields", it)
					}
				}
			}
			if len(s) != wantLen {
				t.Errorf("sample has %d keys, want %d", len(s), wantLen)
			}
		})
	}
	al, _ := Lookup("action_lifecycle")
	s := al.Sample()
	if s["CampaignId"] != int64(9876) || s["Payout"] != 10.50 || s["CallerId"] != nil || s["Date1"] != "2026-04-08" {
		t.Errorf("sample values differ from the seed: %v %v %v %v", s["CampaignId"], s["Payout"], s["CallerId"], s["Date1"])
	}
	// A fresh map every time: changing one sample leaves the next alone.
	s["CampaignId"] = "changed"
	s["items"].([]any)[0].(map[string]any)["sku"] = "changed"
	s2 := al.Sample()
	if s2["CampaignId"] != int64(9876) || s2["items"].([]any)[0].(map[string]any)["sku"] != "SKU-1001" {
		t.Error("Sample shares state between calls")
	}
}

// decode parses JSON the two ways event data arrives: as float64 (what
// structpb.Struct.AsMap gives) and as json.Number.
func decode(t *testing.T, src string) []map[string]any {
	t.Helper()
	var plain map[string]any
	if err := json.Unmarshal([]byte(src), &plain); err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(src))
	d.UseNumber()
	var num map[string]any
	if err := d.Decode(&num); err != nil {
		t.Fatal(err)
	}
	return []map[string]any{plain, num}
}

func TestValidateAcceptsWellTypedData(t *testing.T) {
	tests := []struct {
		name, typ, data string
	}{
		{"empty event", "action_lifecycle", `{}`},
		{"integral floats for integers", "action_lifecycle", `{"CampaignId": 9876, "AdId": 44332.0, "Numeric1": 1e3}`},
		{"integers for decimals", "action_lifecycle", `{"Payout": 10, "DeltaPayout": -5}`},
		{"nulls everywhere", "action_lifecycle", `{"CampaignId": null, "Payout": null, "EventDate": null, "Date1": null, "items": null}`},
		{"date-time with offset and fraction", "action_lifecycle", `{"EventDate": "2026-04-08T09:00:00.123+02:00"}`},
		{"items with nulls and partial fields", "action_lifecycle", `{"items": [{"sku": "A", "qty": 2}, {"amt": null}]}`},
		{"empty items", "tracking_value_request", `{"items": []}`},
		{"booleans", "publisher_application", `{"PastRelationship": false, "MarketplaceApproved": true}`},
		{"quoted ids are strings", "publisher_application", `{"ProgramId": "9876"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, _ := Lookup(tt.typ)
			for _, data := range decode(t, tt.data) {
				if err := typ.Validate(data); err != nil {
					t.Errorf("Validate(%s) = %v", tt.data, err)
				}
			}
		})
	}
	// Go values as a caller might build them.
	al, _ := Lookup("action_lifecycle")
	goData := map[string]any{
		"CampaignId": int(9876), "AdId": int32(1), "ActionTrackerId": uint64(7), "Payout": float32(10.5),
		"EventDate": time.Now(), "Date1": time.Now(),
		"items": []map[string]any{{"qty": int64(3)}},
	}
	if err := al.Validate(goData); err != nil {
		t.Errorf("Go-typed data: %v", err)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	tests := []struct {
		name, typ, data, want string
	}{
		{
			"unknown data point, wrong type and bad item field together",
			"action_lifecycle",
			`{"Foo": 1, "CampaignId": "abc", "items": [{"qty": 1}, {"qty": 1.5}]}`,
			`data.Foo: unknown data point; data.CampaignId: want integer, got string "abc"; data.items[1].qty: want integer, got 1.5`,
		},
		{
			"several unknown data points sorted by name",
			"action_clearing",
			`{"zeta": 1, "Alpha": 2, "CampaignId": 1}`,
			`data.Alpha: unknown data point; data.zeta: unknown data point`,
		},
		{
			"wrong types in catalogue order",
			"action_lifecycle",
			`{"Date1": "08/04/2026", "Payout": "10.50", "EventDate": "2026-04-08 09:00:00", "CampaignName": 5, "Numeric1": true}`,
			`data.CampaignName: want string, got 5; data.Payout: want decimal, got string "10.50"; data.EventDate: want date-time (RFC 3339), got string "2026-04-08 09:00:00"; data.Date1: want date (YYYY-MM-DD), got string "08/04/2026"; data.Numeric1: want integer, got boolean true`,
		},
		{
			"boolean given as a string",
			"publisher_application",
			`{"PastRelationship": "false", "ProgramId": 9876}`,
			`data.ProgramId: want string, got 9876; data.PastRelationship: want boolean, got string "false"`,
		},
		{
			"items on a type without items",
			"job_completed",
			`{"items": [], "JobId": 1}`,
			`data.items: event type job_completed has no items collection`,
		},
		{
			"items not a list",
			"action_lifecycle",
			`{"items": {"sku": "A"}}`,
			`data.items: want a list of objects, got object`,
		},
		{
			"items holding non-objects",
			"tracking_value_request",
			`{"items": [1, "x", null, []]}`,
			`data.items[0]: want object, got 1; data.items[1]: want object, got string "x"; data.items[2]: want object, got null; data.items[3]: want object, got list`,
		},
		{
			"unknown and mistyped item fields",
			"action_lifecycle",
			`{"items": [{"price": 1, "sku": 12, "amt": "x"}, {"cartamt": "1.00", "bogus": null}]}`,
			`data.items[0].price: unknown item field; data.items[0].sku: want string, got 12; data.items[0].amt: want decimal, got string "x"; data.items[1].bogus: unknown item field; data.items[1].cartamt: want decimal, got string "1.00"`,
		},
		{
			"objects and lists as values",
			"action_inquiry",
			`{"Comments": [{"user": "x"}], "OrderId": {"a": 1}}`,
			`data.OrderId: want string, got object; data.Comments: want string, got list`,
		},
		{
			"fractional values for integers",
			"job_completed",
			`{"JobId": 1.5, "AccountId": -12.25}`,
			`data.JobId: want integer, got 1.5; data.AccountId: want integer, got -12.25`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, _ := Lookup(tt.typ)
			for _, data := range decode(t, tt.data) {
				err := typ.Validate(data)
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Validate(%s) = %v, want *ValidationError", tt.data, err)
				}
				if err.Error() != tt.want {
					t.Errorf("Validate(%s)\n got: %s\nwant: %s", tt.data, err, tt.want)
				}
				if n := strings.Count(tt.want, "; ") + 1; len(ve.Problems) != n {
					t.Errorf("%d problems, want %d", len(ve.Problems), n)
				}
			}
		})
	}
}

func TestValidateNumbersFromTheirText(t *testing.T) {
	al, _ := Lookup("action_lifecycle")
	tests := []struct {
		num  string
		typ  string // data point
		okay bool
	}{
		{"9876", "CampaignId", true},
		{"9876.000", "CampaignId", true},
		{"9.876e3", "CampaignId", true},
		{"98760e-1", "CampaignId", true},
		{"98765e-1", "CampaignId", false},
		{"0.5", "CampaignId", false},
		{"123456789012345678901234567890", "CampaignId", true},
		{"1.0000000000000000001", "CampaignId", false}, // float64 would call it integral
		{"-0", "CampaignId", true},
		{"1e400", "Payout", false}, // out of float64's range
		{"10.125", "Payout", true},
		{"abc", "Payout", false},
		{"01", "Payout", false},
		{"1.", "Payout", false},
		{"NaN", "Payout", false},
	}
	for _, tt := range tests {
		err := al.Validate(map[string]any{tt.typ: json.Number(tt.num)})
		if (err == nil) != tt.okay {
			t.Errorf("%s = json.Number(%q): err = %v, want ok=%v", tt.typ, tt.num, err, tt.okay)
		}
	}
}
