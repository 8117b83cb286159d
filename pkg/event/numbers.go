package event

import (
	"encoding/json"
	"strings"
)

// NumbersFromStrings takes a decimal or integer data point whose value is
// a JSON string holding a number of that type as that number, in place, so
// it is validated and rendered by its type: many producers carry money and
// counts as strings ("10.50", "3"). A decimal takes any JSON number's text
// and keeps it as written (10.50 stays 10.50); an integer takes whole-number
// digits only ("3", "-12", not "3.0" or "3e0"). Any other string (" 3",
// "3 USD", "", "NaN") stays a string, which Validate then refuses, naming
// the field. The items collection's fields are taken the same way.
func (t *Type) NumbersFromStrings(data map[string]any) {
	for k, v := range data {
		if s, ok := v.(string); ok {
			if dp, ok := t.Field(k); ok {
				if n, ok := numberFromString(s, dp.Type); ok {
					data[k] = n
				}
			}
		}
	}
	items, _ := data[ItemsName].([]any)
	if !t.HasItems() {
		return
	}
	for _, it := range items {
		item, _ := it.(map[string]any)
		for k, v := range item {
			if s, ok := v.(string); ok {
				if dp, ok := t.ItemField(k); ok {
					if n, ok := numberFromString(s, dp.Type); ok {
						item[k] = n
					}
				}
			}
		}
	}
}

// numberFromString is s as a number of typ, when it holds one.
func numberFromString(s string, typ DataPointType) (json.Number, bool) {
	switch typ {
	case Decimal:
		if _, ok := numberText(s); ok {
			return json.Number(s), true
		}
	case Integer:
		if integral, ok := numberText(s); ok && integral && !strings.ContainsAny(s, ".eE") {
			return json.Number(s), true
		}
	}
	return "", false
}
