package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"
)

// readSource reads a file, or standard input for "-".
func (a *app) readSource(what, path string) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, usageErrorf("%s: read standard input: %v", what, err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("%s: %v", what, err)
	}
	return b, nil
}

// sourceName names an input in messages.
func sourceName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// looksLikeJSON reports whether b starts as a JSON object or array.
func looksLikeJSON(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// docToJSON turns a YAML or JSON document into JSON.
func docToJSON(b []byte) ([]byte, error) {
	if looksLikeJSON(b) {
		return b, nil
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if v == nil {
		return nil, errors.New("empty document")
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonable converts what yaml.v3 decodes into what encoding/json encodes.
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range x {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case float64:
		if x != x || x > 1e308 || x < -1e308 { // NaN, ±Inf
			return nil, fmt.Errorf("%v is not a number JSON can carry", x)
		}
	}
	return v, nil
}

var (
	protoPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]+`)
	protoLine   = regexp.MustCompile(`^\(line \d+:\d+\):[\s\x{00a0}]*`)
)

// protoError is a protojson error for a person: without the "proto:"
// prefix, and without the position when it is one of converted YAML.
func protoError(err error, keepPosition bool) string {
	msg := protoPrefix.ReplaceAllString(err.Error(), "")
	if !keepPosition {
		msg = protoLine.ReplaceAllString(msg, "")
	}
	return strings.ReplaceAll(msg, "\u00a0", " ")
}

// unmarshalDoc decodes a YAML or JSON document into m (the message's field
// names or their JSON names) and returns the top-level field names it set
// (proto names), in the document's order.
func unmarshalDoc(what string, b []byte, m proto.Message) ([]string, error) {
	js, err := docToJSON(b)
	if err != nil {
		return nil, usageErrorf("%s: %v", what, err)
	}
	js, err = normalizeEnums(js, m.ProtoReflect().Descriptor())
	if err != nil {
		return nil, usageErrorf("%s: %v", what, err)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, m); err != nil {
		return nil, usageErrorf("%s: %s", what, protoError(err, false))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, usageErrorf("%s: want an object: %v", what, err)
	}
	fields := m.ProtoReflect().Descriptor().Fields()
	var names []string
	for k := range top {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd != nil {
			names = append(names, string(fd.Name()))
		}
	}
	return names, nil
}

// parseData parses event data: a JSON object, "@file" or "-" (standard
// input). what names the flag in messages.
func (a *app) parseData(what, arg string) (*structpb.Struct, error) {
	b := []byte(arg)
	if arg == "-" || strings.HasPrefix(arg, "@") {
		var err error
		if b, err = a.readSource(what, strings.TrimPrefix(arg, "@")); err != nil {
			return nil, err
		}
	}
	return parseStruct(what, b)
}

// parseStruct parses a JSON object into a Struct with a message naming
// what and the position of a syntax error.
func parseStruct(what string, b []byte) (*structpb.Struct, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, usageErrorf("%s: %s", what, jsonError(b, err))
	}
	if dec.More() {
		return nil, usageErrorf("%s: more than one JSON value", what)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, usageErrorf("%s: want a JSON object ({...}), got %s", what, jsonKind(v))
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, usageErrorf("%s: %s", what, protoError(err, true))
	}
	return s, nil
}

// jsonError is a JSON decoding error with its line and column.
func jsonError(b []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(b, se.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + err.Error()
}

func position(b []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off-1 && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// parseTime parses a time flag: RFC 3339, a date (UTC midnight), or a
// duration ago ("90m", "2h", "7d" for days).
func parseTime(flag, s string, now time.Time) (*timestamppb.Timestamp, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return timestamppb.New(t), nil
		}
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(d, 64); err == nil && n >= 0 {
			return timestamppb.New(now.Add(-time.Duration(n * 24 * float64(time.Hour)))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return timestamppb.New(now.Add(-d)), nil
	}
	return nil, usageErrorf("--%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (90m, 2h, 7d)", flag, s)
}

// normalizeEnums lets documents give enum values short ("POST", "form")
// as well as in full ("HTTP_METHOD_POST"), and names the field and the
// values allowed when one is unknown.
func normalizeEnums(js []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New(jsonError(js, err))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object of %s fields, got %s", md.Name(), jsonKind(v))
	}
	if err := normalizeMessage(obj, md, ""); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

func normalizeMessage(obj map[string]any, md protoreflect.MessageDescriptor, path string) error {
	fields := md.Fields()
	for k, val := range obj {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(k))
		}
		if fd == nil {
			continue // protojson names it
		}
		name := path + string(fd.Name())
		fix := func(x any, name string) (any, error) {
			switch fd.Kind() {
			case protoreflect.EnumKind:
				s, ok := x.(string)
				if !ok {
					return x, nil
				}
				return enumValue(fd.Enum(), s, name)
			case protoreflect.MessageKind:
				sub, ok := x.(map[string]any)
				if ok && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
					return sub, normalizeMessage(sub, fd.Message(), name+".")
				}
			}
			return x, nil
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i, x := range list {
				y, err := fix(x, fmt.Sprintf("%s[%d]", name, i))
				if err != nil {
					return err
				}
				list[i] = y
			}
			continue
		}
		y, err := fix(val, name)
		if err != nil {
			return err
		}
		obj[k] = y
	}
	return nil
}

// enumValue finds s among ed's values, in full or without the type's
// prefix, in any case.
func enumValue(ed protoreflect.EnumDescriptor, s, name string) (string, error) {
	values := ed.Values()
	prefix := ""
	if values.Len() > 0 {
		prefix = strings.TrimSuffix(string(values.Get(0).Name()), "UNSPECIFIED")
	}
	u := strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(s)), "-", "_")
	for _, cand := range []string{u, prefix + u} {
		if v := values.ByName(protoreflect.Name(cand)); v != nil {
			return cand, nil
		}
	}
	var allowed []string
	for i := 1; i < values.Len(); i++ {
		allowed = append(allowed, strings.TrimPrefix(string(values.Get(i).Name()), prefix))
	}
	return "", fmt.Errorf("%s: unknown value %q (want %s)", name, s, strings.Join(allowed, ", "))
}
