package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"
)

// jsonOptions is the JSON form of every output: the API's field names
// (docs/api.md, the .proto files), every field present, enums by name.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// marshalJSON is m as indented JSON with a stable layout (protojson's own
// whitespace is deliberately unstable).
func marshalJSON(m proto.Message) ([]byte, error) {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// jsonToYAML re-encodes a JSON document as YAML, keeping the field order.
func jsonToYAML(b []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var plain func(n *yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// emit writes m in the chosen format; table draws the table form.
func (a *app) emit(m proto.Message, table func(w io.Writer)) error {
	switch a.set.Output {
	case "json", "yaml":
		b, err := marshalJSON(m)
		if err != nil {
			return err
		}
		if a.set.Output == "yaml" {
			if b, err = jsonToYAML(b); err != nil {
				return err
			}
		}
		_, err = a.stdout.Write(b)
		return err
	default:
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	}
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = cell(fmt.Sprint(c))
	}
	fmt.Fprintln(w, strings.Join(parts, "\t"))
}

// cell keeps a value on one line and one column.
func cell(s string) string {
	s = strings.NewReplacer("\t", " ", "\r", " ", "\n", " ").Replace(s)
	if s == "" {
		return "-"
	}
	return s
}

// field writes "name:  value" lines of a detail view.
func field(w io.Writer, name string, value any) {
	fmt.Fprintf(w, "%s:\t%s\n", name, cell(fmt.Sprint(value)))
}

// ts is a timestamp for a table ("-" when unset).
func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// dur is a duration for a table ("-" when unset).
func dur(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().String()
}

// enumName is an enum value without its type prefix: DELIVERY_STATUS_DEAD -> DEAD.
func enumName(s fmt.Stringer, prefix string) string {
	return strings.TrimPrefix(s.String(), prefix)
}

// truncate shortens s to n runes for a table cell.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
