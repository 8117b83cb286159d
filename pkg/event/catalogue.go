// Package event holds the catalogue of the six postback event types: every
// data point an event may carry, its type and a one-line description, all
// taken from the seed's example payloads (docs/architecture.md, decision
// 1), plus validation of incoming event data against it.
//
// The catalogue is one table per event type (catalogue.go). Each row carries
// the seed's example value, so Sample returns the seed's example event and the
// type of every data point is visibly derived from that example: ids are
// integers, money is decimal, RFC 3339 timestamps are date-time, "2006-01-02"
// strings are dates, true/false are booleans, everything else (including the
// seed's quoted numbers such as publisher_application's "9876") is a string.
// A value shown as null in the seed takes the type its comment implies.
package event

// DataPointType is the type of one data point.
type DataPointType int

// The data point types. String gives the names used in the API and in error
// messages.
const (
	String DataPointType = iota
	Integer
	Decimal
	Boolean
	DateTime
	Date
)

var typeNames = [...]string{
	String:   "string",
	Integer:  "integer",
	Decimal:  "decimal",
	Boolean:  "boolean",
	DateTime: "date-time",
	Date:     "date",
}

// String returns "string", "integer", "decimal", "boolean", "date-time" or
// "date".
func (t DataPointType) String() string {
	if t >= 0 && int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// DataPoint is one data point of an event type.
type DataPoint struct {
	Name        string
	Type        DataPointType
	Description string
	// Item is true for a field of the items collection (sku, amt, ...).
	Item bool
}

// ItemsName is the name of the items collection in event data.
const ItemsName = "items"

// Type is one event type and its catalogue. The values returned by Types and
// Lookup are shared: callers must not modify them.
type Type struct {
	Name        string
	Description string
	// DataPoints lists the top-level data points in the seed's order, then
	// the fields of the items collection (Item=true) for types that have one.
	DataPoints []DataPoint

	fields  map[string]int // top-level name -> index in DataPoints
	items   map[string]int // item field name -> index in DataPoints
	itemsAt int            // number of top-level data points before "items" in the seed, -1 without items
	sample  []any          // the seed's example value per DataPoints index (top-level only)
	samples [][]any        // example items, values per item field in catalogue order
}

// Field returns the top-level data point called name (never an item field).
func (t *Type) Field(name string) (DataPoint, bool) {
	if t.fields != nil {
		i, ok := t.fields[name]
		if !ok {
			return DataPoint{}, false
		}
		return t.DataPoints[i], true
	}
	for _, dp := range t.DataPoints {
		if !dp.Item && dp.Name == name {
			return dp, true
		}
	}
	return DataPoint{}, false
}

// ItemField returns the field of the items collection called name.
func (t *Type) ItemField(name string) (DataPoint, bool) {
	if t.items != nil {
		i, ok := t.items[name]
		if !ok {
			return DataPoint{}, false
		}
		return t.DataPoints[i], true
	}
	for _, dp := range t.DataPoints {
		if dp.Item && dp.Name == name {
			return dp, true
		}
	}
	return DataPoint{}, false
}

// HasItems reports whether events of this type carry an items collection
// (action_lifecycle and tracking_value_request).
func (t *Type) HasItems() bool {
	for _, dp := range t.DataPoints {
		if dp.Item {
			return true
		}
	}
	return false
}

// ItemsIndex returns where the items collection sits among the top-level data
// points in the seed's example: the number of top-level data points before
// it. It is -1 for types without items. Writers of the whole event (the
// default POST payload) use it to keep the seed's order.
func (t *Type) ItemsIndex() int {
	if !t.HasItems() {
		return -1
	}
	if t.fields == nil {
		n := 0
		for _, dp := range t.DataPoints {
			if !dp.Item {
				n++
			}
		}
		return n
	}
	return t.itemsAt
}

// Sample returns the seed's example event for this type as a fresh map the
// caller may modify: integers as int64, decimals as float64, strings, bools
// and nil where the seed shows null. Types with items carry exactly two
// example items ([]any of map[string]any).
func (t *Type) Sample() map[string]any {
	m := make(map[string]any, len(t.DataPoints)+1)
	for i, dp := range t.DataPoints {
		if dp.Item || i >= len(t.sample) {
			continue
		}
		m[dp.Name] = t.sample[i]
	}
	if t.HasItems() {
		var itemFields []DataPoint
		for _, dp := range t.DataPoints {
			if dp.Item {
				itemFields = append(itemFields, dp)
			}
		}
		list := make([]any, 0, len(t.samples))
		for _, values := range t.samples {
			item := make(map[string]any, len(values))
			for j, v := range values {
				if j >= len(itemFields) {
					break
				}
				item[itemFields[j].Name] = v
			}
			list = append(list, item)
		}
		m[ItemsName] = list
	}
	return m
}

var (
	types  []*Type
	byName map[string]*Type
)

// OperationalEvent is the event type of operational events sent to an
// account's own endpoints (Postback publishes them; see pkg/opsevents).
const OperationalEvent = "operational_event"

// Types returns the event types in a stable order: the seed's six
// (action_lifecycle, action_inquiry, action_clearing,
// tracking_value_request, job_completed, publisher_application), then
// operational_event.
func Types() []*Type {
	out := make([]*Type, len(types))
	copy(out, types)
	return out
}

// Lookup returns the event type called name.
func Lookup(name string) (*Type, bool) {
	t, ok := byName[name]
	return t, ok
}

// row is one line of a catalogue table. A row named itemsMarker marks where
// the items collection sits in the seed's example.
type row struct {
	name string
	typ  DataPointType
	ex   any
	desc string
}

const itemsMarker = "\x00items"

func build(name, desc string, rows []row, itemRows []row, exampleItems [][]any) *Type {
	t := &Type{
		Name:        name,
		Description: desc,
		fields:      make(map[string]int),
		items:       make(map[string]int),
		itemsAt:     -1,
	}
	for _, r := range rows {
		if r.name == itemsMarker {
			t.itemsAt = len(t.DataPoints)
			continue
		}
		t.fields[r.name] = len(t.DataPoints)
		t.DataPoints = append(t.DataPoints, DataPoint{Name: r.name, Type: r.typ, Description: r.desc})
		t.sample = append(t.sample, r.ex)
	}
	for _, r := range itemRows {
		t.items[r.name] = len(t.DataPoints)
		t.DataPoints = append(t.DataPoints, DataPoint{Name: r.name, Type: r.typ, Description: r.desc, Item: true})
	}
	for _, it := range exampleItems {
		t.samples = append(t.samples, append([]any(nil), it...))
	}
	return t
}

func init() {
	types = []*Type{
		build("action_lifecycle",
			"An action is tracked, modified or reversed.",
			actionLifecycleRows, itemRows, actionLifecycleItems),
		build("action_inquiry",
			"An action inquiry is created or resolved.",
			actionInquiryRows, nil, nil),
		build("action_clearing",
			"Actions are cleared.",
			actionClearingRows, nil, nil),
		build("tracking_value_request",
			"A tracking value request is created.",
			trackingValueRequestRows, itemRows, trackingValueRequestItems),
		build("job_completed",
			"A Report Export or Click Export job has completed.",
			jobCompletedRows, nil, nil),
		build("publisher_application",
			"A partner submits an application to a program.",
			publisherApplicationRows, nil, nil),
		build(OperationalEvent,
			"Postback's own: an endpoint of the account is failing, was disabled or recovered, or a delivery went dead.",
			operationalEventRows, nil, nil),
	}
	byName = make(map[string]*Type, len(types))
	for _, t := range types {
		byName[t.Name] = t
	}
}
