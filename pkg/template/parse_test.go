package template

import (
	"errors"
	"reflect"
	"testing"

	"github.com/postback-dev/postback/pkg/event"
)

func mustType(t testing.TB, name string) *event.Type {
	t.Helper()
	typ, ok := event.Lookup(name)
	if !ok {
		t.Fatalf("no event type %s", name)
	}
	return typ
}

func render(t *testing.T, src, typ string, data map[string]any, f Format) string {
	t.Helper()
	tpl, err := Parse(src, mustType(t, typ))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return string(tpl.Append(nil, data, f))
}

func TestBracesThatDoNotOpenAMacroAreLiteral(t *testing.T) {
	data := map[string]any{"CampaignId": 9876.0, "Payout": 10.5, "Note": "hi",
		"items": []any{map[string]any{"sku": "A1", "qty": 2.0}, map[string]any{"sku": "B2", "qty": 1.0}}}
	tests := []struct {
		name, src, want string
	}{
		{"plain text", "hello", "hello"},
		{"one macro", "{CampaignId}", "9876"},
		{"JSON object needs no escaping", `{"campaign_id": "{CampaignId}", "payout": {Payout}}`, `{"campaign_id": "9876", "payout": 10.50}`},
		{"the brief's JSON body with a join",
			`{"campaign_id": "{CampaignId}", "items": [{join(items, i, "\{\"sku\":\"{i.sku}\"\}")}]}`,
			`{"campaign_id": "9876", "items": [{"sku":"A1"},{"sku":"B2"}]}`},
		{"brace before a digit, space, quote or brace", `{1} { x} {"a"} {{Note}} {`, `{1} { x} {"a"} {hi} {`},
		{"closing braces alone", "}}", "}}"},
		{"escaped braces and quotes", `\{Note\} \"{Note}\"`, `{Note} "hi"`},
		{"other backslashes are literal", `a\b\\n\`, `a\b\\n\`},
		{"a doubled backslash before a quote", `\\"`, `\"`},
		{"join with a separator", `{join(items, i, "{i.sku}", ";")}`, `A1;B2`},
		{"join separator with escapes and braces", `{join(items, it, "{it.sku}", "\"\}{")}`, `A1"}{B2`},
		{"join with whitespace and newlines between arguments", "{join(\n  items ,\n\ti ,\r\n \"{i.sku}x{i.qty}\" , \"|\"\n)}", `A1x2|B2x1`},
		{"top-level data point inside a join", `{join(items, i, "{CampaignId}-{i.sku}")}`, `9876-A1,9876-B2`},
		{"empty inner template", `[{join(items, i, "")}]`, `[,]`},
		{"empty template", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := render(t, tt.src, "action_lifecycle", data, Text); got != tt.want {
				t.Errorf("render(%q)\n got %q\nwant %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestSeedJoinBlockParsesAsWritten(t *testing.T) {
	// The items line of the seed's action_lifecycle example, verbatim
	// (including the trailing space after "i,").
	src := "[{join(items, i, \n" +
		"  \"\\{\\\"sku\\\":\\\"{i.sku}\\\",\n" +
		"  \\\"item_price\\\":{i.amt},\n" +
		"  \\\"category\\\":\\\"{i.cat}\\\",\n" +
		"  \\\"quantity\\\":{i.qty},\n" +
		"  \\\"cartamt\\\":{i.cartamt},\n" +
		"  \\\"rbt\\\":\\\"{i.rbt}\\\",\n" +
		"  \\\"name\\\":\\\"{i.name}\\\"\\}\")}]"
	typ := mustType(t, "action_lifecycle")
	got := render(t, src, typ.Name, typ.Sample(), JSON)
	want := `[{"sku":"SKU-1001",
  "item_price":60.00,
  "category":"Footwear",
  "quantity":1,
  "cartamt":60.00,
  "rbt":"0.00",
  "name":"Trail Runner 2"},{"sku":"SKU-2002",
  "item_price":20.00,
  "category":"Accessories",
  "quantity":2,
  "cartamt":40.00,
  "rbt":"5.00",
  "name":"Merino Socks"}]`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseErrorsPointAtTheFault(t *testing.T) {
	tests := []struct {
		name, typ, src string
		line, col      int
		msg            string
	}{
		{"unterminated macro at end", "action_lifecycle", `id={CampaignId`, 1, 4,
			`unterminated macro: missing "}" after {CampaignId`},
		{"macro closed by something else", "action_lifecycle", `{"a": "{Campaign Id}"}`, 1, 17,
			`expected "}" to close {Campaign, found ' '`},
		{"unknown data point", "action_lifecycle", `{"campaign_id":"{Foo}"}`, 1, 17,
			`unknown data point "Foo" for event type action_lifecycle`},
		{"unknown data point on a later line", "action_clearing", "{\n  \"a\": \"{CampaignId}\",\n\t\"b\": {Payout}\n}", 3, 7,
			`unknown data point "Payout" for event type action_clearing`},
		{"columns count characters, not bytes", "action_lifecycle", `é日本{Nope}`, 1, 4,
			`unknown data point "Nope" for event type action_lifecycle`},
		{"data point names are case-sensitive", "action_lifecycle", `{campaignId}`, 1, 1,
			`unknown data point "campaignId" for event type action_lifecycle`},
		{"items used as a data point", "action_lifecycle", `x {items}`, 1, 3,
			`items is a collection: render it with {join(items, i, "...")}`},
		{"items on a type without items", "job_completed", `{items}`, 1, 1,
			`unknown data point "items" for event type job_completed`},
		{"unknown item field", "action_lifecycle", "[{join(items, i,\n  \"{i.sku}-{i.price}\")}]", 2, 12,
			`unknown item field "price" for event type action_lifecycle`},
		{"item field outside a join", "action_lifecycle", `sku={i.sku}`, 1, 5,
			`item field {i.sku} used outside a join`},
		{"unknown join variable", "tracking_value_request", `{join(items, i, "{x.sku}")}`, 1, 18,
			`unknown join variable "x" in {x.sku}: the join's variable is "i"`},
		{"missing item field name", "tracking_value_request", `{join(items, i, "{i.}")}`, 1, 21,
			`missing item field name after "i."`},
		{"join over something other than items", "action_lifecycle", `{join(Oid, i, "{i.sku}")}`, 1, 7,
			`join works only over items, not "Oid"`},
		{"join on a type without items", "action_clearing", "ids=\n{join(items, i, \"x\")}", 2, 7,
			`event type action_clearing has no items collection to join`},
		{"join without a collection", "action_lifecycle", `{join("x")}`, 1, 7,
			`bad join syntax: expected items as the first argument, found '"'`},
		{"join missing the comma after items", "action_lifecycle", `{join(items i, "x")}`, 1, 13,
			`bad join syntax: expected "," after items, found 'i'`},
		{"join missing the variable", "action_lifecycle", `{join(items, "x")}`, 1, 14,
			`bad join syntax: expected a variable name such as i, found '"'`},
		{"join template not quoted", "action_lifecycle", "{join(items, i,\n   {i.sku})}", 2, 4,
			`bad join syntax: expected a quoted template, found '{'`},
		{"join with a third argument that is not a string", "action_lifecycle", `{join(items, i, "x", ;)}`, 1, 22,
			`bad join syntax: expected a quoted separator, found ';'`},
		{"join with too many arguments", "action_lifecycle", `{join(items, i, "x", ";", "y")}`, 1, 25,
			`bad join syntax: expected ")", found ','`},
		{"join not closed by a brace", "action_lifecycle", `{join(items, i, "x") done`, 1, 22,
			`bad join syntax: expected "}" after ")", found 'd'`},
		{"join cut short", "action_lifecycle", `a {join(items, i, "x"`, 1, 3,
			`unterminated macro: {join( is not closed`},
		{"nested join", "action_lifecycle", `{join(items, i, "{join(items, j, \"x\")}")}`, 1, 18,
			`join cannot be nested inside a join`},
		{"unterminated inner template", "action_lifecycle", "{join(items, i,\n  \"\\{\\\"sku\\\":\\\"{i.sku}\\\"\\})}", 2, 3,
			`unterminated string: missing closing "`},
		{"unterminated separator", "action_lifecycle", `{join(items, i, "x", "; )}`, 1, 22,
			`unterminated string: missing closing "`},
		{"error inside a multi-line inner template", "action_lifecycle", "{join(items, i, \"\n\\{\n  \\\"q\\\": {i.qty},\n  \\\"c\\\": {i.cost}\n\\}\")}", 4, 10,
			`unknown item field "cost" for event type action_lifecycle`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.src, mustType(t, tt.typ))
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Parse(%q) = %v, want *Error", tt.src, err)
			}
			want := Error{Line: tt.line, Column: tt.col, Message: tt.msg}
			if *te != want {
				t.Errorf("Parse(%q)\n got %q\nwant %q", tt.src, te.Error(), want.Error())
			}
		})
	}
}

func TestParseWithoutAnEventTypeFails(t *testing.T) {
	if _, err := Parse("{CampaignId}", nil); err == nil {
		t.Error("Parse with a nil event type succeeded")
	}
}

func TestErrorMessageFormat(t *testing.T) {
	e := &Error{Line: 3, Column: 7, Message: "boom"}
	if e.Error() != "line 3, column 7: boom" {
		t.Errorf("Error() = %q", e.Error())
	}
}

func TestFieldsAndLiteral(t *testing.T) {
	typ := mustType(t, "action_lifecycle")
	tpl, err := Parse(`{Oid}/{CampaignId}/{Oid}{join(items, i, "{i.sku}{Payout}")}`, typ)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tpl.Fields(), []string{"Oid", "CampaignId", "items", "Payout"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Fields() = %v, want %v", got, want)
	}
	if _, ok := tpl.Literal(); ok {
		t.Error("Literal() true for a template with macros")
	}
	if tpl.Source() == "" || tpl.EventType() != typ {
		t.Error("Source or EventType lost")
	}
	lit, err := Parse(`Bearer \{token\}`, typ)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := lit.Literal(); !ok || s != "Bearer {token}" {
		t.Errorf("Literal() = %q, %v", s, ok)
	}
	if s, ok := (&Template{}).Literal(); !ok || s != "" {
		t.Errorf("empty Literal() = %q, %v", s, ok)
	}
}

func TestRenderToleratesAnyData(t *testing.T) {
	typ := mustType(t, "action_lifecycle")
	tpl, err := Parse(`{CampaignId}|{Payout}|{Note}|{EventDate}|{join(items, i, "{i.sku}:{i.qty}")}`, typ)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data map[string]any
		want string
	}{
		{"nil data", nil, "||||"},
		{"nulls", map[string]any{"CampaignId": nil, "Payout": nil, "items": nil}, "||||"},
		{"items not a list", map[string]any{"items": "x"}, "||||"},
		{"items holding non-objects", map[string]any{"items": []any{1, nil, map[string]any{"sku": "A"}}}, "||||:,:,A:"},
		{"items as Go maps", map[string]any{"items": []map[string]any{{"sku": "A", "qty": 2}}}, "||||A:2"},
		{"unexpected value types render empty", map[string]any{"CampaignId": []any{1}, "Payout": map[string]any{}, "Note": struct{}{}}, "||||"},
		{"wrong types render as they are", map[string]any{"CampaignId": "abc", "Payout": true, "Note": 1.5}, "abc|true|1.5||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tpl.Append(nil, tt.data, Text)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
