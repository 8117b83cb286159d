package gateway

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/postback-dev/postback/pkg/auth"
	"github.com/postback-dev/postback/pkg/health"
	"github.com/postback-dev/postback/pkg/stream"
	"github.com/postback-dev/postback/pkg/stream/streamtest"
)

// The gateway is ready only while it serves gRPC: /readyz (and
// grpc.health) fail while it starts, when it cannot start, and while it
// drains; a load balancer never sends a call to a gateway that is not
// taking them.
func TestTheGatewayIsReadyOnlyWhileItServesGRPC(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	keyring, store := keyringAndStore(t)
	grpcReady := func(p *health.Probes) error { return p.Ready(context.Background())["grpc"] }

	t.Run("a gateway that cannot start is not ready", func(t *testing.T) {
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "nats://" + closed.Addr().String()
		closed.Close() // nothing listens there now
		probes := health.New()
		err = Run(context.Background(), Config{NATSURL: url, Layout: stream.DefaultOptions(), Keyring: keyring, History: store,
			Auth: auth.New(nil, log), Logger: log, Readiness: probes, GRPCAddr: "127.0.0.1:0"})
		if err == nil {
			t.Fatal("Run with no NATS to reach returned no error")
		}
		if grpcReady(probes) == nil {
			t.Fatal("readiness passes for a gateway that never served gRPC")
		}
	})

	t.Run("ready once it serves, not ready once it drains", func(t *testing.T) {
		js := streamtest.JetStream(t)
		probes := health.New()
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		atReady := make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Config{NATS: js.Conn(), Layout: stream.DefaultOptions(), Keyring: keyring, History: store,
				Auth: auth.New(nil, log), Logger: log, Readiness: probes, Listener: lis,
				Ready: func(net.Addr) { atReady <- grpcReady(probes) }})
		}()
		select {
		case err := <-atReady:
			if err != nil {
				t.Fatalf("readiness when the gateway serves: %v", err)
			}
		case err := <-done:
			t.Fatalf("Run ended before serving: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("the gateway did not serve within 20 s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if grpcReady(probes) == nil {
			t.Fatal("readiness passes after the gateway stopped serving")
		}
	})
}
