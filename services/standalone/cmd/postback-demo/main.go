// Command postback-demo walks through one postback against a running
// Postback (make run): it starts a receiver on 127.0.0.1, creates an endpoint
// pointing at it, publishes the seed's action_lifecycle example event, and
// prints the request as the brand's server receives it, then the delivery's
// state. Loopback traffic only; it stops by itself.
//
//	POSTBACK_ALLOW_CIDRS=127.0.0.1/32 make run     # terminal 1
//	make demo                                     # terminal 2
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/event"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func main() {
	addr := flag.String("grpc-addr", envOr("POSTBACK_GRPC_ADDR", "127.0.0.1:7070"), "Postback gRPC address")
	token := flag.String("token", os.Getenv("POSTBACK_TOKEN"), "API token (when POSTBACK_TOKENS is set on the server)")
	flag.Parse()
	if err := run(*addr, *token); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func run(addr, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
		got <- r
		fmt.Fprint(w, "OK")
	})}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()
	fmt.Printf("receiver listening on http://%s/postback\n", lis.Addr())

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	endpoints := postbackv1.NewEndpointServiceClient(conn)
	events := postbackv1.NewEventServiceClient(conn)
	deliveries := postbackv1.NewDeliveryServiceClient(conn)

	ep, err := endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "demo-brand", EventType: "action_lifecycle",
		Url:    fmt.Sprintf("http://%s/postback?action={ActionId}&status={Status}", lis.Addr()),
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
	}})
	if err != nil {
		return fmt.Errorf("create endpoint (is `make run` up, with POSTBACK_ALLOW_CIDRS=127.0.0.1/32?): %w", err)
	}
	fmt.Printf("created endpoint %s\n", ep.Id)
	defer func() { // a demo leaves nothing behind: a later one would deliver to this vanished receiver too
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if token != "" { // a fresh context: the call's own token again
			dctx = metadata.AppendToOutgoingContext(dctx, "authorization", "Bearer "+token)
		}
		if _, err := endpoints.DeleteEndpoint(dctx, &postbackv1.DeleteEndpointRequest{Id: ep.Id}); err != nil {
			fmt.Printf("could not delete endpoint %s: %v\n", ep.Id, err)
			return
		}
		fmt.Printf("deleted endpoint %s\n", ep.Id)
	}()
	typ, _ := event.Lookup("action_lifecycle")
	data, err := structpb.NewStruct(typ.Sample())
	if err != nil {
		return err
	}
	pub, err := events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "demo-brand", EventType: "action_lifecycle", Data: data})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Printf("published event %s\n\n", pub.EventId)
	var r *http.Request
	var body []byte
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for r == nil {
		select {
		case body = <-bodies:
			r = <-got
		case <-tick.C:
			// The server knows at once when the postback cannot go (the
			// network guard, a bad URL): say why instead of waiting.
			if why := notSent(ctx, deliveries, pub.EventId); why != "" {
				return fmt.Errorf("the postback was not sent: %s", why)
			}
		case <-ctx.Done():
			return fmt.Errorf("no postback arrived within 30s (is POSTBACK_ALLOW_CIDRS=127.0.0.1/32 set for make run?)")
		}
	}
	fmt.Printf("the brand received:\n%s %s\n", r.Method, r.URL.RequestURI())
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Printf("%s: %s\n", k, r.Header.Get(k))
	}
	fmt.Printf("\n%s\n\n", body)
	dlvID := r.Header.Get("Postback-Delivery-Id")
	for range 50 {
		d, err := deliveries.GetDelivery(ctx, &postbackv1.GetDeliveryRequest{Id: dlvID})
		if err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			fmt.Printf("delivery: %s\n", protojson.Format(d))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("delivery %s did not reach SUCCEEDED", dlvID)
}

// notSent is why the event's delivery has failed or waits for a retry
// ("" while it is on its way).
func notSent(ctx context.Context, deliveries postbackv1.DeliveryServiceClient, eventID string) string {
	l, err := deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{AccountId: "demo-brand", EventId: eventID, PageSize: 1})
	if err != nil || len(l.Deliveries) == 0 {
		return ""
	}
	d := l.Deliveries[0]
	switch d.Status {
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED:
		return fmt.Sprintf("delivery %s is %s: %s", d.Id, d.Status, firstOf(d.Reason, d.LastError))
	case postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING:
		return fmt.Sprintf("delivery %s failed and waits for a retry: %s", d.Id, firstOf(d.LastError, d.Reason))
	}
	return ""
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return "no reason recorded"
}
