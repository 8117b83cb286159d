// Rendering cost against encoding/json. testdata/action_lifecycle.json is
// the seed's action_lifecycle example with every value replaced by its macro
// and the seed's join block for items (the same file as
// render/testdata/templates/action_lifecycle.json).
package template

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// tenItemEvent is the seed's action_lifecycle example with 10 items.
func tenItemEvent(tb testing.TB) map[string]any {
	typ := mustType(tb, "action_lifecycle")
	data := typ.Sample()
	base := data["items"].([]any)
	items := make([]any, 10)
	for i := range items {
		it := map[string]any{}
		for k, v := range base[i%2].(map[string]any) {
			it[k] = v
		}
		it["sku"] = "SKU-" + strconv.Itoa(1001+i)
		items[i] = it
	}
	data["items"] = items
	return data
}

// fullTemplate is the seed's action_lifecycle example with every value
// replaced by its macro, and the seed's join block for the items.
func fullTemplate(tb testing.TB) *Template {
	src, err := os.ReadFile("testdata/action_lifecycle.json")
	if err != nil {
		tb.Fatal(err)
	}
	tpl, err := Parse(string(src), mustType(tb, "action_lifecycle"))
	if err != nil {
		tb.Fatal(err)
	}
	if n := len(tpl.Fields()); n != 64 { // 63 data points and items
		tb.Fatalf("template references %d data points, want every one", n)
	}
	return tpl
}

func TestFullTemplateRendersValidJSON(t *testing.T) {
	out := fullTemplate(t).Append(nil, tenItemEvent(t), JSON)
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if items := got["items"].([]any); len(items) != 10 {
		t.Errorf("%d items", len(items))
	}
}

// sink keeps rendered output alive so the compiler cannot keep it on the stack.
var sink []byte

// BenchmarkRenderActionLifecycle10Items renders into a fresh, unsized buffer
// each time (growing it as needed), as json.Marshal returns a fresh slice.
func BenchmarkRenderActionLifecycle10Items(b *testing.B) {
	tpl := fullTemplate(b)
	data := tenItemEvent(b)
	size := len(tpl.Append(nil, data, JSON))
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		sink = tpl.Append(nil, data, JSON)
	}
	if len(sink) != size {
		b.Fatal("size changed")
	}
}

// BenchmarkRenderActionLifecycle10ItemsReusedBuffer is the same with a
// buffer reused across renders (as a renderer with pooled buffers would).
func BenchmarkRenderActionLifecycle10ItemsReusedBuffer(b *testing.B) {
	tpl := fullTemplate(b)
	data := tenItemEvent(b)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = tpl.Append(buf[:0], data, JSON)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodingJSONActionLifecycle10Items(b *testing.B) {
	data := tenItemEvent(b)
	out, _ := json.Marshal(data)
	b.ReportAllocs()
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		var err error
		if sink, err = json.Marshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
