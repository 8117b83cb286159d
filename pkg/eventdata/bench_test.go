package eventdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// benchData is the load generator's event (postback-bench's eventData): a
// ~1 KB action_lifecycle event with 3 items, numbers as float64 as
// structpb's AsMap gives them to the gateway.
func benchData() map[string]any {
	items := []any{}
	for i := range 3 {
		items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%04d", i), "amt": 33.25 + float64(i), "cat": "apparel",
			"qty": float64(i + 1), "cartamt": 99.75, "rbt": 0.0, "name": "Organic cotton tee, size M"})
	}
	return map[string]any{
		"CampaignId": 9876.0, "ActionTrackerId": 12345.0, "MediaPartnerId": 555.0, "CampaignName": "Spring Global Promotion",
		"ActionTrackerName": "Standard Sale Tracker", "MediaPartnerName": "Top Tier Affiliates", "ActionId": "ACT-778899",
		"Status": "APPROVED", "StatusDetail": "Item return - payout adjusted", "Payout": 10.5, "Amount": 100.0,
		"Currency": "USD", "EventDate": "2026-04-08T09:00:00Z", "Oid": "ORD-554433", "PromoCode": "SAVE20",
		"CustomerId": "CUST-12345", "CustomerCity": "San Francisco", "CustomerCountry": "US", "Note": "Partial return processed",
		"Text1": "1775638800000000000", "items": items,
	}
}

func benchJSON(b *testing.B) []byte {
	data, err := json.Marshal(benchData())
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkParse(b *testing.B) {
	data := benchJSON(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEncodingJSON(b *testing.B) {
	data := benchJSON(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	v := benchData()
	b.SetBytes(int64(len(benchJSON(b))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := AppendJSON(nil, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSONEncodingJSON(b *testing.B) {
	v := benchData()
	b.SetBytes(int64(len(benchJSON(b))))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
