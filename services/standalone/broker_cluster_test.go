package standalone

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/auth/authtest"
	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/pgtest"
	"github.com/postback-dev/postback/pkg/secret"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// lockedCluster starts three clustered nats-servers, each configured as
// production is: its node settings plus the shipped deploy/nats/auth.conf,
// the passwords in the environment. It returns the client URLs (no
// credentials) and each user's password.
func lockedCluster(t *testing.T) (urls []string, passwords map[string]string) {
	t.Helper()
	shipped, err := os.ReadFile("../../deploy/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	passwords = map[string]string{}
	for _, u := range broker.Users {
		passwords[u] = "cluster-pw-" + u + "-" + fmt.Sprint(time.Now().UnixNano())
		t.Setenv(broker.PasswordVar(u), passwords[u])
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), shipped, 0o600); err != nil {
		t.Fatal(err)
	}
	// The ports are picked free and then let go, so another test running
	// alongside may take one before its node binds it; a cluster whose
	// nodes do not all come up is stopped and started again on new ports.
	for attempt := 1; ; attempt++ {
		var servers []*server.Server
		urls, servers = startCluster(t, dir, distinctFreePorts(t, 6))
		ready := true
		for _, s := range servers {
			ready = ready && s.ReadyForConnections(15*time.Second)
		}
		if ready {
			break
		}
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
		if attempt == 3 {
			t.Fatal("a NATS node is not ready after 15s, three times")
		}
		t.Logf("a NATS node did not come up (attempt %d): starting the cluster again on other ports", attempt)
	}
	// JetStream is usable once the three nodes agree on a meta leader.
	admin := withUser(urls, broker.AdminUser, passwords[broker.AdminUser])
	eventually(t, 30*time.Second, "a JetStream meta leader", func() bool {
		nc, err := nats.Connect(admin)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})
	return urls, passwords
}

// startCluster starts three clustered nodes on ports (three client ports,
// then three route ports) with their configuration files in dir.
func startCluster(t *testing.T, dir string, ports []int) (urls []string, servers []*server.Server) {
	t.Helper()
	client, routes := ports[:3], ports[3:]
	for i := range 3 {
		var peers []string
		for j := range 3 {
			if j != i {
				peers = append(peers, fmt.Sprintf("nats://127.0.0.1:%d", routes[j]))
			}
		}
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		body := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster { name: postback-test, listen: 127.0.0.1:%d, routes: [%s] }
include "auth.conf"
`, i+1, client[i], filepath.Join(dir, fmt.Sprintf("js%d-%d", i+1, client[i])), routes[i], strings.Join(peers, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, startConfigured(t, conf))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	return urls, servers
}

// distinctFreePorts is n ports free a moment ago, no two the same.
func distinctFreePorts(t *testing.T, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		if p := freePort(t); !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}

// startConfigured starts a nats-server from the configuration file conf, as
// the nats-server binary would, until the test ends.
func startConfigured(t *testing.T, conf string) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// withUser is the comma-separated server list with user's credentials on
// each URL.
func withUser(urls []string, user, password string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		u, _ := url.Parse(s)
		u.User = url.UserPassword(user, password)
		out[i] = u.String()
	}
	return strings.Join(out, ",")
}

// On a three-node cluster locked with the shipped configuration, every
// service runs as its own NATS user (each as a process of its own target),
// postbacks flow, a client without credentials is refused, and a forged job
// published with the renderer's password is dead-lettered, unsent.
func TestOnALockedNATSClusterEachServiceIsItsOwnUserAndAForgedJobIsRefused(t *testing.T) {
	urls, passwords := lockedCluster(t)
	t.Run("a client without credentials is refused", func(t *testing.T) {
		nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatal("connected to the cluster without credentials")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("err = %v, want an authorization violation", err)
		}
	})

	history := pgtest.Start(t).NewDatabase(t)
	secretKey, jobKeyEntry := mustGenerateKey(t), mustGenerateKey(t)
	var gw *harness
	logs := &logBuffer{}
	for _, target := range []string{"historian", "retry", "sender", "renderer", "gateway"} {
		h := start(t, "", func(c *Config) {
			withLogs(logs)(c)
			c.Targets = target
			c.NATSURL = withUser(urls, target, passwords[target])
			c.Replicas = 3
			c.HistoryURL = history
			c.SecretKey, c.JobKey = secretKey, jobKeyEntry
		})
		if target == "gateway" {
			gw = h
		}
	}

	brand, attacker := newReceiver(t), newReceiver(t)
	victim := victimEndpoint(t, gw, brand)
	admin := brokertest.Connect(t, withUser(urls, broker.AdminUser, passwords[broker.AdminUser]))
	f := &forgery{h: gw, victim: victim, attacker: attacker, admin: admin}

	if _, err := gw.events.Publish(context.Background(), &postbackv1.PublishRequest{AccountId: "brand-a", EventType: "action_lifecycle",
		Data: sampleData(t, "action_lifecycle")}); err != nil {
		t.Fatal(err)
	}
	got := brand.next(t, 30*time.Second)
	if got.Header.Get("Authorization") != brandSecret || got.Header.Get("webhook-signature") == "" {
		t.Fatalf("the brand's postback: Authorization %q, signature %q", got.Header.Get("Authorization"), got.Header.Get("webhook-signature"))
	}
	eventually(t, 30*time.Second, "the delivery listed SUCCEEDED", func() bool {
		d, err := gw.deliveries.GetDelivery(context.Background(), &postbackv1.GetDeliveryRequest{Id: got.Header.Get("Postback-Delivery-Id")})
		return err == nil && d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	})

	renderer := connectAs(t, strings.Join(urls, ","), broker.RendererUser, passwords[broker.RendererUser])
	dlv := f.forge(t, renderer, nil)
	if reason := f.deadLettered(t, dlv); !strings.Contains(reason, "not authenticated") {
		t.Fatalf("dead letter reason %q, want it to say the job is not authenticated", reason)
	}
	if n := attacker.count(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}

	// Control: tagged with the real job key, the same forgery is sent.
	jobKey, err := secret.ParseKeyring(jobKeyEntry)
	if err != nil {
		t.Fatal(err)
	}
	f.forge(t, renderer, jobKey)
	if stolen := attacker.next(t, 30*time.Second); stolen.Header.Get("Authorization") != brandSecret {
		t.Fatalf("control: the forged job arrived without the secret (%q)", stolen.Header.Get("Authorization"))
	}
	// No service ever needed more than its user may do.
	if strings.Contains(strings.ToLower(logs.String()), "permissions violation") {
		t.Fatalf("a service hit a permissions violation:\n%s", violations(logs.String()))
	}
}

// violations are the log lines that report a permissions violation.
func violations(logs string) string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(strings.ToLower(line), "permissions violation") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Over TLS: a NATS server with a certificate from a private CA, a
// standalone that trusts that CA (POSTBACK_NATS_CA) and connects with its
// own user over tls://. Without the CA the connection is refused.
func TestNATSOverTLSWithAPrivateCA(t *testing.T) {
	ca := authtest.NewCA(t, "nats")
	pair := ca.Server(t, "127.0.0.1")
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "tls.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`listen: 127.0.0.1:%d
jetstream { store_dir: %q }
tls { cert_file: %q, key_file: %q }
authorization { users = [ { user: "postback", password: "tls-test-pw" } ] }
`, port, filepath.Join(dir, "js"), pair.CertFile, pair.KeyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startConfigured(t, conf)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the TLS NATS server is not ready")
	}
	natsURL := fmt.Sprintf("tls://postback:tls-test-pw@127.0.0.1:%d", port)

	t.Run("without the CA the server's certificate is refused", func(t *testing.T) {
		nc, err := nats.Connect(natsURL, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatal("connected without trusting the private CA")
		}
	})
	h := start(t, "", func(c *Config) {
		c.NATSURL = natsURL
		c.NATSCA = ca.File
	})
	rc := newReceiver(t)
	postTo(t, h, rc.URL)
	publishClearing(t, h)
	rc.next(t, 15*time.Second)
}
