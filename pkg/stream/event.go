package stream

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/postback-dev/postback/pkg/event"
	"github.com/postback-dev/postback/pkg/eventdata"
	"github.com/postback-dev/postback/pkg/id"
)

// EncodeEvent writes e as json.Marshal(e) does, byte for byte (the data with
// eventdata.AppendJSON), without reflection: the gateway encodes every event
// it accepts.
func EncodeEvent(e *Event) ([]byte, error) {
	b, err := appendEventHead(make([]byte, 0, 1024), e)
	if err != nil {
		return nil, err
	}
	if b, err = eventdata.AppendJSON(b, e.Data); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// EncodeEventData is EncodeEvent with the data already encoded as a JSON
// object (e.Data is not read): what the gateway's transcoding fast path
// gives (eventdata.AppendStructWireJSON).
func EncodeEventData(e *Event, data []byte) ([]byte, error) {
	b, err := appendEventHead(make([]byte, 0, len(data)+160), e)
	if err != nil {
		return nil, err
	}
	b = append(b, data...)
	return append(b, '}'), nil
}

// appendEventHead appends the event's fields up to the data's value.
func appendEventHead(b []byte, e *Event) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = eventdata.AppendString(b, e.ID)
	b = append(b, `,"account_id":`...)
	b = eventdata.AppendString(b, e.AccountID)
	b = append(b, `,"event_type":`...)
	b = eventdata.AppendString(b, e.Type)
	b = append(b, `,"time":"`...)
	b, err := e.Time.AppendText(b)
	if err != nil {
		_, err = e.Time.MarshalJSON() // its error, as json.Marshal reports it
		return nil, &json.MarshalerError{Type: reflect.TypeFor[time.Time](), Err: err}
	}
	return append(b, `","data":`...), nil
}

// DecodeEvent reads an event message as a json.Decoder with UseNumber reads
// it into an Event (what the renderer did before), without reflection: data
// numbers are json.Number; keys match the fields case-insensitively, the last
// of repeated keys wins and unknown keys are ignored; a null field keeps its
// value (so a null event is the zero Event), except that a null data is a nil
// map; repeated data objects merge; the time is read by time.Time's
// UnmarshalJSON. A field of the wrong type is an error, and, unlike a
// Decoder, so is anything after the event.
func DecodeEvent(b []byte) (Event, error) {
	var ev Event
	if isEventNull(b) {
		return ev, nil
	}
	err := eventdata.ParseObject(b, func(key string, v any, raw []byte) error {
		switch eventField(key) {
		case "id":
			return setEventString(&ev.ID, "id", v)
		case "account_id":
			return setEventString(&ev.AccountID, "account_id", v)
		case "event_type":
			return setEventString(&ev.Type, "event_type", v)
		case "time":
			return ev.Time.UnmarshalJSON(raw)
		case "data":
			switch v := v.(type) {
			case nil:
				ev.Data = nil
			case map[string]any:
				if ev.Data == nil {
					ev.Data = v
				} else {
					maps.Copy(ev.Data, v)
				}
			default:
				return errors.New("event data: want an object, got " + eventValueKind(v))
			}
		}
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// eventFields are Event's JSON names.
var eventFields = [...]string{"id", "account_id", "event_type", "time", "data"}

// eventField returns the field name key stands for ("" for none): the one
// it equals, else the one it equals under Unicode case folding, as
// encoding/json matches keys to fields.
func eventField(key string) string {
	for _, f := range eventFields {
		if key == f {
			return f
		}
	}
	for _, f := range eventFields {
		if strings.EqualFold(key, f) {
			return f
		}
	}
	return ""
}

func setEventString(dst *string, field string, v any) error {
	switch v := v.(type) {
	case string:
		*dst = v
	case nil:
	default:
		return errors.New("event " + field + ": want a string, got " + eventValueKind(v))
	}
	return nil
}

func eventValueKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case string:
		return "string"
	}
	return "null"
}

// isEventNull reports whether b is the JSON null, with optional whitespace.
func isEventNull(b []byte) bool {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return string(b) == "null"
}

// Check says why an event can never be rendered (a PoisonError), or nil:
// an event without a well-formed account, of no known type, or without an
// id or a time. (The gateway publishes none such; junk published straight
// onto events.> can be.)
func (e *Event) Check() error {
	switch _, known := event.Lookup(e.Type); {
	case !id.ValidAccount(e.AccountID):
		return Poison("the event has no well-formed account_id (got %q)", clip(e.AccountID))
	case !known:
		return Poison("the event has no known event_type (got %q)", clip(e.Type))
	case e.ID == "":
		return Poison("the event has no id")
	case e.Time.IsZero():
		return Poison("the event has no time")
	}
	return nil
}

// clip bounds a value quoted in a reason.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
