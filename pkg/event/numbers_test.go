package event

import (
	"encoding/json"
	"testing"
)

func TestDecimalsAndIntegersSentAsStringsAreTakenAsNumbers(t *testing.T) {
	lifecycle, ok := Lookup("action_lifecycle")
	if !ok {
		t.Fatal("action_lifecycle not in the catalogue")
	}
	cases := []struct {
		name  string
		field string
		in    any
		want  any // json.Number when taken as a number, else the value unchanged
	}{
		{"a decimal with cents", "Amount", "10.50", json.Number("10.50")},
		{"a whole decimal", "Amount", "100", json.Number("100")},
		{"a negative decimal", "Amount", "-2.5", json.Number("-2.5")},
		{"a decimal with an exponent", "Amount", "1.5e2", json.Number("1.5e2")},
		{"an integer", "CampaignId", "9876", json.Number("9876")},
		{"a negative integer", "CampaignId", "-3", json.Number("-3")},
		{"an integer written with a point stays a string", "CampaignId", "3.0", "3.0"},
		{"an integer with an exponent stays a string", "CampaignId", "3e0", "3e0"},
		{"a decimal with spaces stays a string", "Amount", " 10.50", " 10.50"},
		{"a decimal with a currency stays a string", "Amount", "10.50 USD", "10.50 USD"},
		{"an empty string stays a string", "Amount", "", ""},
		{"NaN stays a string", "Amount", "NaN", "NaN"},
		{"a leading zero is not JSON", "CampaignId", "007", "007"},
		{"a string data point stays a string", "ActionId", "12345", "12345"},
		{"a number stays the number", "Amount", 10.5, 10.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := map[string]any{c.field: c.in}
			lifecycle.NumbersFromStrings(data)
			if data[c.field] != c.want {
				t.Errorf("%s %#v became %#v, want %#v", c.field, c.in, data[c.field], c.want)
			}
		})
	}
}

// The seed's items template quotes rbt like sku, cat and name: it is a
// string data point, and a producer's "5.00" stays a string; qty and amt
// sent as strings are taken as their numbers.
func TestItemFieldsSentAsStringsAreTakenByTheirType(t *testing.T) {
	lifecycle, _ := Lookup("action_lifecycle")
	data := map[string]any{ItemsName: []any{
		map[string]any{"sku": "SKU-1001", "amt": "60.00", "qty": "2", "cartamt": "120.00", "rbt": "5.00", "name": "Trail Runner 2"},
	}}
	lifecycle.NumbersFromStrings(data)
	item := data[ItemsName].([]any)[0].(map[string]any)
	want := map[string]any{"sku": "SKU-1001", "amt": json.Number("60.00"), "qty": json.Number("2"), "cartamt": json.Number("120.00"), "rbt": "5.00", "name": "Trail Runner 2"}
	for k, w := range want {
		if item[k] != w {
			t.Errorf("items[0].%s = %#v, want %#v", k, item[k], w)
		}
	}
	if err := lifecycle.Validate(data); err != nil {
		t.Errorf("the item does not validate: %v", err)
	}
	if err := lifecycle.Validate(map[string]any{ItemsName: []any{map[string]any{"rbt": 5.0}}}); err == nil {
		t.Error("a number for the string data point rbt validated")
	}
}
