package client_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/client"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// New does not connect: the first call does. A loopback address is
// plaintext unless WithTLS says otherwise; any other is TLS.
func ExampleNew() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:7070",
		client.WithToken("tok_example"),
		client.WithRetry(5, 200*time.Millisecond, 2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.Conn().Target())
	// Output: 127.0.0.1:7070
}

func ExampleNewIdempotencyKey() {
	key := client.NewIdempotencyKey()
	fmt.Println(strings.HasPrefix(key, "pbk_"), len(key))
	// Output: true 36
}

// Publish sets an idempotency key when the request has none and retries
// Unavailable and back-pressure; the key is kept on the request, so a
// later retry of the same request by the caller cannot double the event.
func ExampleClient_Publish() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:7070", client.WithToken("tok_example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": "ACT-101,ACT-102"})
	req := &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: data}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, req)
	switch status.Code(err) {
	case codes.OK:
		fmt.Println("published", resp.EventId, "duplicate:", resp.Duplicate)
	case codes.InvalidArgument:
		fmt.Println("refused:", status.Convert(err).Message()) // names the field
	default:
		fmt.Println("not published; retry later with key", req.IdempotencyKey, err)
	}
}

// A Publisher batches events; Publish returns a Result at once, and Close
// sends what is pending and waits for the answers.
func ExamplePublisher() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:7070", client.WithToken("tok_example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p := c.NewPublisher(client.PublisherOptions{MaxBatch: 500, Linger: 20 * time.Millisecond})
	var results []*client.Result
	for i := range 1000 {
		data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": fmt.Sprint("ACT-", i)})
		results = append(results, p.Publish(ctx, &postbackv1.PublishRequest{
			AccountId: "brand-1", EventType: "action_clearing", Data: data}))
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		if _, err := r.Wait(ctx); err != nil {
			fmt.Printf("event %d: %v\n", i, err)
		}
	}
}

// EachDelivery walks every page of ListDeliveries.
func ExampleClient_EachDelivery() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:7070", client.WithToken("tok_example"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	dead := 0
	err = c.EachDelivery(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", PageSize: 500},
		func(d *postbackv1.Delivery) error {
			if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD {
				dead++
			}
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dead, "dead deliveries")
}
