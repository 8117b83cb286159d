package event

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Problem is one thing wrong with an event's data. Field is a path such as
// "data.CampaignId" or "data.items[1].qty".
type Problem struct {
	Field   string
	Message string
}

// ValidationError lists every problem Validate found, in a stable order:
// unknown data points first (sorted by name), then wrong values in catalogue
// order, with the items collection at its place in the seed's order.
type ValidationError struct {
	Problems []Problem
}

// Error joins the problems: "data.Foo: unknown data point; data.CampaignId:
// want integer, got string \"abc\"".
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Message)
	}
	return b.String()
}

// Validate checks event data against the catalogue. data is what
// structpb.Struct.AsMap or encoding/json produce: numbers as float64,
// json.Number, int or int64 (any Go integer or float type is accepted),
// strings, bools, nil, and items as []any of map[string]any. null (nil) is
// allowed for every data point. Validate reports every problem at once in a
// *ValidationError: unknown data points, values of the wrong type (an integer
// must be integral, a date-time must parse as RFC 3339, a date as
// 2006-01-02), items on a type without items, items that are not a list of
// objects, and unknown item fields.
func (t *Type) Validate(data map[string]any) error {
	var probs []Problem

	var unknown []string
	for k := range data {
		if k == ItemsName && t.HasItems() {
			continue
		}
		if _, ok := t.Field(k); !ok {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := "unknown data point"
		if k == ItemsName {
			msg = "event type " + t.Name + " has no items collection"
		}
		probs = append(probs, Problem{Field: "data." + k, Message: msg})
	}

	itemsAt := t.ItemsIndex()
	top := 0
	for _, dp := range t.DataPoints {
		if dp.Item {
			continue
		}
		if top == itemsAt {
			probs = t.validateItems(probs, data)
		}
		top++
		if v, ok := data[dp.Name]; ok {
			if msg := checkValue(v, dp.Type); msg != "" {
				probs = append(probs, Problem{Field: "data." + dp.Name, Message: msg})
			}
		}
	}
	if top == itemsAt {
		probs = t.validateItems(probs, data)
	}

	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

func (t *Type) validateItems(probs []Problem, data map[string]any) []Problem {
	v, ok := data[ItemsName]
	if !ok || v == nil {
		return probs
	}
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []map[string]any:
		list = make([]any, len(v))
		for i, m := range v {
			list[i] = m
		}
	default:
		return append(probs, Problem{Field: "data.items", Message: "want a list of objects, got " + describe(v)})
	}
	for i, it := range list {
		path := "data.items[" + strconv.Itoa(i) + "]"
		item, ok := it.(map[string]any)
		if !ok {
			probs = append(probs, Problem{Field: path, Message: "want object, got " + describe(it)})
			continue
		}
		var unknown []string
		for k := range item {
			if _, ok := t.ItemField(k); !ok {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		for _, k := range unknown {
			probs = append(probs, Problem{Field: path + "." + k, Message: "unknown item field"})
		}
		for _, dp := range t.DataPoints {
			if !dp.Item {
				continue
			}
			if v, ok := item[dp.Name]; ok {
				if msg := checkValue(v, dp.Type); msg != "" {
					probs = append(probs, Problem{Field: path + "." + dp.Name, Message: msg})
				}
			}
		}
	}
	return probs
}

// checkValue returns "" when v is acceptable for typ, else the problem.
func checkValue(v any, typ DataPointType) string {
	if v == nil {
		return ""
	}
	switch typ {
	case String:
		if _, ok := v.(string); ok {
			return ""
		}
	case Boolean:
		if _, ok := v.(bool); ok {
			return ""
		}
	case Integer:
		switch n := v.(type) {
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
			return ""
		case float64:
			if !math.IsInf(n, 0) && !math.IsNaN(n) && math.Trunc(n) == n {
				return ""
			}
		case float32:
			f := float64(n)
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Trunc(f) == f {
				return ""
			}
		case json.Number:
			if integral, ok := numberText(string(n)); ok && integral {
				return ""
			}
		}
	case Decimal:
		switch n := v.(type) {
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
			return ""
		case float64:
			if !math.IsInf(n, 0) && !math.IsNaN(n) {
				return ""
			}
		case float32:
			f := float64(n)
			if !math.IsInf(f, 0) && !math.IsNaN(f) {
				return ""
			}
		case json.Number:
			if _, ok := numberText(string(n)); ok {
				return ""
			}
		}
	case DateTime:
		switch s := v.(type) {
		case time.Time:
			return ""
		case string:
			if _, err := time.Parse(time.RFC3339, s); err == nil {
				return ""
			}
			return "want date-time (RFC 3339), got " + describe(v)
		}
	case Date:
		switch s := v.(type) {
		case time.Time:
			return ""
		case string:
			if _, err := time.Parse(time.DateOnly, s); err == nil {
				return ""
			}
			return "want date (YYYY-MM-DD), got " + describe(v)
		}
	}
	return "want " + typ.String() + ", got " + describe(v)
}

// numberText reports whether s is a JSON number (ok) and whether its value is
// integral, judged exactly from the text: "9876", "9876.0" and "9.876e3" are
// integral, "1.5" and "1e-1" are not. A number whose value is too large for a
// float64 is refused (ok=false), as it would be by every float-based reader.
func numberText(s string) (integral, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intDigits := s[intStart:i]
	if len(intDigits) == 0 || (len(intDigits) > 1 && intDigits[0] == '0') {
		return false, false
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[fracStart:i]
		if len(frac) == 0 {
			return false, false
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		e, err := strconv.Atoi(s[i:])
		if err != nil {
			return false, false
		}
		exp = max(e, -100000)
		i = len(s)
	}
	if i != len(s) {
		return false, false
	}
	if f, err := strconv.ParseFloat(s, 64); err != nil || math.IsInf(f, 0) {
		return false, false
	}
	// The value is intDigits.frac * 10^exp: integral when every non-zero
	// fractional digit moves left of the point.
	lastNonZero := -1
	for j := 0; j < len(frac); j++ {
		if frac[j] != '0' {
			lastNonZero = j
		}
	}
	if lastNonZero < 0 {
		// No fraction: integral unless a negative exponent drops non-zero
		// integer digits below the point.
		if exp >= 0 {
			return true, true
		}
		trailingZeros := len(intDigits) - len(strings.TrimRight(intDigits, "0"))
		return strings.Trim(intDigits, "0") == "" || trailingZeros >= -exp, true
	}
	return exp >= lastNonZero+1, true
}

// describe renders a value for "got ..." in a problem message.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if utf8.RuneCountInString(v) > 40 {
			r := []rune(v)
			v = string(r[:40]) + "..."
		}
		return "string " + strconv.Quote(v)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case json.Number:
		if _, ok := numberText(string(v)); ok {
			return string(v)
		}
		return "malformed number " + strconv.Quote(string(v))
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case uint:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case map[string]any:
		return "object"
	case []any, []map[string]any:
		return "list"
	case time.Time:
		return "time " + v.Format(time.RFC3339Nano)
	}
	return "unsupported value"
}

// Accepts reports whether v may be the value of the top-level data point
// name (as Validate judges it) and returns the data point's index in
// DataPoints. The items collection is not a data point here.
func (t *Type) Accepts(name string, v any) (index int, ok bool) {
	i, found := t.fields[name]
	if !found || checkValue(v, t.DataPoints[i].Type) != "" {
		return 0, false
	}
	return i, true
}

// AcceptsItem is Accepts for a field of an item of the items collection.
func (t *Type) AcceptsItem(name string, v any) (index int, ok bool) {
	i, found := t.items[name]
	if !found || checkValue(v, t.DataPoints[i].Type) != "" {
		return 0, false
	}
	return i, true
}
