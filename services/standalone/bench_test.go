package standalone

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// BenchmarkPipeline pushes b.N action_lifecycle events (the seed's sample)
// through PublishBatch to one unlimited endpoint and waits for every
// postback; run with -cpuprofile to see where a delivery's CPU goes.
func BenchmarkPipeline(b *testing.B) {
	h, rc, data := pipeline(b)
	ctx := context.Background()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		req := &postbackv1.PublishBatchRequest{}
		for ; sent < b.N && len(req.Events) < 100; sent++ {
			req.Events = append(req.Events, &postbackv1.PublishRequest{AccountId: "bench", EventType: "action_lifecycle", Data: data})
		}
		if _, err := h.events.PublishBatch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	waitDelivered(b, rc)
}

// BenchmarkPipelineUnary is the same through unary Publish, 64 calls at a
// time.
func BenchmarkPipelineUnary(b *testing.B) {
	h, rc, data := pipeline(b)
	ctx := context.Background()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "bench", EventType: "action_lifecycle", Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitDelivered(b, rc)
}

func pipeline(b *testing.B) (*harness, *receiver, *structpb.Struct) {
	h := start(b, "", nil)
	rc := newReceiver(b)
	if _, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "bench", EventType: "action_lifecycle", Url: rc.URL + "/pb?a={ActionId}",
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: lifecycleTemplate}}); err != nil {
		b.Fatal(err)
	}
	data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionId": "ACT-1", "Payout": 10.5,
		"items": []any{map[string]any{"sku": "A", "qty": 1, "amt": 2.5}, map[string]any{"sku": "B", "qty": 2, "amt": 5}}})
	return h, rc, data
}

func waitDelivered(b *testing.B, rc *receiver) {
	deadline := time.Now().Add(5 * time.Minute)
	for rc.count() < b.N && time.Now().Before(deadline) { // (copying every request each poll was ~9% of the CPU)
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	if n := rc.count(); n < b.N {
		b.Fatalf("%d of %d delivered", n, b.N)
	}
}
