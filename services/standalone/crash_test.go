package standalone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/broker/brokertest"
	"github.com/postback-dev/postback/pkg/pgtest"
	"github.com/postback-dev/postback/pkg/stream"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Crash tests: kill -9 of each service, and of the whole standalone, with
// work in its hands; what it held must reach the brand, none lost, within
// crashRecoveryBound of the kill.
const (
	// crashEvents is how many events each case owes the brand (events
	// whose publish returned OK).
	crashEvents = 300
	// crashBatch is the size of each PublishBatch call.
	crashBatch = 25
	// crashRecoveryBound is the requirement's bound: the last delivery a
	// killed process held arrives within it of the kill.
	crashRecoveryBound = 15 * time.Second
	// crashSlowAnswer is how long the receiver takes over each request, so
	// that requests are in flight (the sender's share for one endpoint is
	// full) when a process is killed.
	crashSlowAnswer = 200 * time.Millisecond
	// senderInFlight is the most requests a sender has in flight to one
	// endpoint: its default share of its workers, 256/8 (sender.Config's
	// defaults, which every case keeps). A kill -9 can repeat only a
	// request the brand had received whose outcome the killed process had
	// not yet recorded, that is one in flight (or, for a few microseconds,
	// one just answered): duplicates beyond this bound are something other
	// than the at-least-once repeat a crash is allowed.
	senderInFlight = 256 / 8
)

// crashTargets are the services a standalone runs; a victim is one of them
// or "standalone" (the whole binary).
var crashTargets = []string{"gateway", "renderer", "sender", "retry", "historian"}

// TestAKilledProcessLosesNoDeliveryAndItsHeldWorkArrivesWithinSeconds:
// for each service, and for the whole standalone, a separate nats-server
// (file storage) stays up while the victim runs as a child process (the
// other services in an in-process standalone against the same server and
// the same PostgreSQL history; the standalone binary against the same
// nats-server, alone). Events are published while the victim is SIGKILLed
// with work in its hands (at intake for the gateway; for the renderer every
// event it took rendered, its deliveries sent or on their way, and not
// acked; deliveries in flight to a slow receiver for the sender and the
// standalone; failed first attempts being turned into retries for the
// retry service; history entries being written for the history writer)
// and started again a second later. Every delivery owed (an event whose
// publish returned OK) reaches the receiver (lost = 0); the last one the
// victim held arrives within 15 s of the kill; duplicates are reported
// (and may not exceed what can have been in flight); and every delivery
// is listed SUCCEEDED by ListDeliveries, none left PENDING, also once what
// the dead process held has been handed out again and handled (a
// redelivered event must not re-render an ended delivery).
func TestAKilledProcessLosesNoDeliveryAndItsHeldWorkArrivesWithinSeconds(t *testing.T) {
	bins := map[string]string{"nats": binary(t, "nats-server", "scripts/tools", "github.com/nats-io/nats-server/v2", "GOWORK=off")}
	for _, name := range append(slices.Clone(crashTargets), "standalone") {
		bins[name] = binary(t, "postback-"+name, ".", "./services/"+name+"/cmd/postback-"+name)
	}
	pg := pgtest.Start(t)
	cases := []struct{ victim, when string }{
		{"gateway", "at intake: publish calls in flight"},
		{"renderer", "with every event it took rendered, its deliveries sent or in flight, and not acked"},
		{"sender", "mid-delivery: requests in flight to a slow receiver"},
		{"retry", "mid-retry: failed first attempts being scheduled"},
		{"historian", "mid-write: history entries held"},
		{"standalone", "the whole process, everything in its hands"},
	}
	for _, c := range cases {
		t.Run(c.victim, func(t *testing.T) {
			began := time.Now()
			crashCase(t, bins, pg, c.victim, c.when)
			t.Logf("%s: case took %s", c.victim, time.Since(began).Round(100*time.Millisecond))
		})
	}
}

func crashCase(t *testing.T, bins map[string]string, pg *pgtest.Server, victim, when string) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	natsURL, noAckURL := startNATS(t, bins["nats"], dir)
	key, jobKey := newKeyring(t), newKeyring(t)
	retry := victim == "retry"
	a := newLedger(retry)
	rc := newReceiver(t)
	rc.answer = a.answer

	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := []string{"POSTBACK_NATS_URL=" + natsURL, "POSTBACK_SECRET_KEY=" + key, "POSTBACK_JOB_KEY=" + jobKey, "POSTBACK_RETRY_SCHEDULE=1s",
		"POSTBACK_ALLOW_CIDRS=127.0.0.1/32", "POSTBACK_HTTP_ADDR=" + httpAddr, "POSTBACK_DATA_DIR=" + filepath.Join(dir, victim),
		"POSTBACK_LOG_LEVEL=info"}
	grpcAddr := ""
	if victim == "gateway" || victim == "standalone" {
		grpcAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		env = append(env, "POSTBACK_GRPC_ADDR="+grpcAddr, "POSTBACK_INSECURE_NO_AUTH=true")
	}
	logs := []string{filepath.Join(dir, victim+".log")}
	var api *harness
	if victim != "standalone" {
		// The history is PostgreSQL, shared by the in-process services and
		// the victim (the history writer and the gateway each read or write
		// it from either side); the standalone binary keeps its own SQLite.
		url := pg.NewDatabase(t)
		env = append(env, "POSTBACK_HISTORY_URL="+url)
		logs = append(logs, filepath.Join(dir, "standalone.log"))
		h := start(t, filepath.Join(dir, "standalone"), func(c *Config) {
			c.NATSURL = natsURL
			c.HistoryURL = url
			c.SecretKey, c.JobKey = key, jobKey
			c.RetrySchedule = "1s"
			c.Targets = strings.Join(slices.DeleteFunc(slices.Clone(crashTargets), func(s string) bool { return s == victim }), ",")
			c.Logger = fileLogger(t, logs[1])
		})
		if h.events != nil {
			api = h
		}
	}
	dumpLogsOnFailure(t, logs...)
	p := &process{t: t, path: bins[victim], env: env, log: logs[0]}
	// The renderer goes through a message in a millisecond or so, from
	// JetStream's hand-over to its ack, and a kill at a moment the test
	// chooses would land between the two for next to no event. So the
	// renderer that is killed runs as a broker user whose acks of EVENTS
	// the broker refuses (its deliveries are queued, logged and sent as
	// usual; its events are never acked): killed, it is the renderer that
	// died at the worst moment for every event it took, each rendered and
	// not acked. Restarted as an ordinary user, it is handed them all
	// again one ack wait later, when their deliveries have long ended.
	if victim == "renderer" {
		p.env = append(slices.Clone(env), "POSTBACK_NATS_URL="+noAckURL)
	}
	// The retry service too is done with a message within milliseconds,
	// faster than the test can look: it starts with a backlog (a fifth of
	// the deliveries' first attempts failed and waiting to be scheduled),
	// which it pulls at once, and dies while it works through it. The
	// others run from the start.
	late := retry
	if !late {
		p.start()
		waitReady(t, httpAddr)
	}
	if grpcAddr != "" {
		waitTCP(t, grpcAddr)
		api = dialAPI(t, grpcAddr)
	}
	postTo(t, api, rc.URL+"/p?seq={ActionIds}")
	js := brokertest.Connect(t, natsURL)

	pub := &publisher{owed: map[string]owedEvent{}}
	pubDone := make(chan struct{})
	pctx, stopPublishing := context.WithTimeout(ctx, 90*time.Second)
	defer stopPublishing()
	go func() { defer close(pubDone); pub.run(pctx, api, crashEvents) }()

	// The retry service starts once its backlog is there. A victim is
	// killed once a third of the events are in (the retry service: once it
	// has started) and it holds work: for the gateway a publish call in
	// flight, for the others messages JetStream handed it that it has not
	// acked (for the renderer: and some of its deliveries have reached the
	// brand).
	seen := 0
	deadline := time.Now().Add(30 * time.Second)
	for seen == 0 {
		switch {
		case time.Now().After(deadline):
			t.Errorf("%s: never saw work in the victim's hands within 30s", victim)
			seen = -1
		case late && p.cmd == nil:
			if a.failedFirst() >= crashEvents/5 {
				p.start()
			}
		case !late && pub.count() < crashEvents/3:
		case victim == "gateway":
			seen = int(pub.inFlight.Load())
		case victim == "renderer" && a.sent() < crashEvents/6:
		default:
			if n, err := heldBy(ctx, js, victim); err == nil {
				seen = n
			}
		}
		if seen == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	killedAt := time.Now()
	p.kill()
	owedAtKill := pub.count()
	// What the dead process held: its consumers' unacked messages, which
	// nothing acks now (the figure before the kill only chose the moment).
	held, err := heldBy(ctx, js, victim)
	if err != nil {
		t.Errorf("reading the consumers after the kill: %v", err)
	}
	time.Sleep(time.Second)
	p.env = env
	p.start()
	restartedAt := time.Now()
	if victim == "gateway" {
		t.Logf("gateway killed %s: %d publish calls in flight, %d events owed so far; restarted %s later", when, seen, owedAtKill,
			restartedAt.Sub(killedAt).Round(time.Millisecond))
	} else {
		t.Logf("%s killed %s: it held %d unacked messages (%d a moment before), %d events owed so far, %d requests arrived; restarted %s later",
			victim, when, held, seen, owedAtKill, a.sent(), restartedAt.Sub(killedAt).Round(time.Millisecond))
		if held == 0 {
			t.Errorf("%s held no message when it was killed: the case proves nothing", victim)
		}
	}

	select {
	case <-pubDone:
	case <-time.After(90 * time.Second):
		t.Fatalf("publishing did not finish")
	}
	owed := pub.snapshot()
	if len(owed) < crashEvents {
		t.Fatalf("only %d of %d events published (%d failed calls)", len(owed), crashEvents, pub.failedCalls)
	}

	// Every owed delivery arrives (bounded: a minute after the kill).
	arriveBy := killedAt.Add(60 * time.Second)
	for time.Now().Before(arriveBy) && len(a.missing(owed)) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	lost := a.missing(owed)
	ok := a.okTimes()
	var heldLast, last time.Time
	heldEvents := 0
	for tag, e := range owed {
		at, arrived := ok[tag]
		if !arrived {
			continue
		}
		if at.After(last) {
			last = at
		}
		if e.at.Before(killedAt) {
			heldEvents++
			if at.After(heldLast) {
				heldLast = at
			}
		}
	}
	recovery := heldLast.Sub(killedAt)
	if recovery < 0 {
		recovery = 0
	}

	// The delivery log: every owed event has a SUCCEEDED delivery, and no
	// delivery (owed or not) is left in another state. For the history
	// writer this is what it held: it must be stored within the bound.
	listBy := time.Now().Add(30 * time.Second)
	if victim == "historian" {
		listBy = killedAt.Add(60 * time.Second)
	}
	historyDone, summary := waitSucceeded(ctx, api, owed, listBy)
	// And it stays so once what the dead process held has been handed out
	// again and handled (each held message comes back one ack wait after
	// the kill): a redelivered event or change must not undo a delivery's
	// ending. Every consumer empty means the last of it is stored.
	var drained time.Time
	for drainBy := time.Now().Add(60 * time.Second); time.Now().Before(drainBy); time.Sleep(50 * time.Millisecond) {
		if n, err := pendingAll(ctx, js); err == nil && n == 0 {
			drained = time.Now()
			break
		}
	}
	finalDone, finalSummary := waitSucceeded(ctx, api, owed, time.Now().Add(5*time.Second))

	expected := 1
	if retry {
		expected = 2 // the 503 and its retry
	}
	dupes, dupEvents, unowed := a.duplicates(owed, expected)
	t.Logf("%s: owed %d, lost %d, duplicates %d (over %d events; at most %d could have been in flight), "+
		"delivered though their publish call failed %d; held work (%d events published before the kill) arrived %s after the kill, "+
		"the last owed delivery %s after it; every delivery SUCCEEDED in ListDeliveries %s after the kill; "+
		"every consumer empty %s after it",
		victim, len(owed), len(lost), dupes, dupEvents, senderInFlight, unowed, heldEvents, recovery.Round(time.Millisecond),
		max(0, last.Sub(killedAt)).Round(time.Millisecond), since(historyDone, killedAt), since(drained, killedAt))
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Errorf("%s: %d owed deliveries lost (never arrived within 60s of the kill), e.g. %v", victim, len(lost), lost[:min(5, len(lost))])
	}
	if recovery > crashRecoveryBound {
		t.Errorf("%s: the held work arrived %s after the kill, over the %s bound", victim, recovery.Round(time.Millisecond), crashRecoveryBound)
	}
	if dupes > senderInFlight {
		t.Errorf("%s: %d duplicate requests, more than the %d that can have been in flight at the kill", victim, dupes, senderInFlight)
	}
	if drained == (time.Time{}) {
		t.Errorf("%s: the consumers still had work a minute after the kill", victim)
	}
	if historyDone == (time.Time{}) {
		t.Errorf("%s: the delivery log does not list every delivery SUCCEEDED: %s", victim, summary)
	} else if finalDone == (time.Time{}) {
		t.Errorf("%s: the delivery log listed every delivery SUCCEEDED, but no longer does once the held work was handled again: %s", victim, finalSummary)
	}
	// The history writer's held work is history entries, not requests:
	// the delivery log must be whole, and what it held handled, within
	// the bound.
	if victim == "historian" && historyDone != (time.Time{}) && historyDone.Sub(killedAt) > crashRecoveryBound {
		t.Errorf("historian: the delivery log was whole %s after the kill, over the %s bound", since(historyDone, killedAt), crashRecoveryBound)
	}
	if victim == "historian" && drained != (time.Time{}) && drained.Sub(killedAt) > crashRecoveryBound {
		t.Errorf("historian: what the killed writer held was handled %s after the kill, over the %s bound", since(drained, killedAt), crashRecoveryBound)
	}
}

// since is how long after from at was ("never" for a zero at).
func since(at, from time.Time) string {
	if at == (time.Time{}) {
		return "never (within the wait)"
	}
	return at.Sub(from).Round(time.Millisecond).String()
}

// waitSucceeded polls the delivery log until every owed event has a
// SUCCEEDED delivery and no delivery is in another state, or until by; it
// returns when that held (zero if never) and, if not, what was off.
func waitSucceeded(ctx context.Context, api *harness, owed map[string]owedEvent, by time.Time) (time.Time, string) {
	var summary string
	for {
		ds, err := listEvery(ctx, api)
		if err == nil {
			var done bool
			if done, summary = allSucceeded(ds, owed); done {
				return time.Now(), ""
			}
		} else {
			summary = "ListDeliveries: " + err.Error()
		}
		if time.Now().After(by) {
			return time.Time{}, summary
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pendingAll is how many messages the work streams' consumers have not
// handled: handed out and not acked, or not handed out yet.
func pendingAll(ctx context.Context, js jetstream.JetStream) (int, error) {
	n := 0
	for _, name := range []string{stream.EventsStream, stream.DeliveriesStream, stream.SchedulesStream, stream.HistoryStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			n += info.NumAckPending + int(info.NumPending)
		}
		if err := l.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// TestAnIdempotencyKeyHoldsAcrossAKillAndARestart: an event is published
// with an idempotency key; the process that took it (the gateway, or the
// whole standalone with its embedded broker) is SIGKILLed a second later,
// SIGKILLed at once, or stopped cleanly, and started again; the same key
// published again is a duplicate answered with the first event's id, and
// the brand receives one postback for it.
func TestAnIdempotencyKeyHoldsAcrossAKillAndARestart(t *testing.T) {
	bins := map[string]string{
		"gateway":    binary(t, "postback-gateway", ".", "./services/gateway/cmd/postback-gateway"),
		"standalone": binary(t, "postback-standalone", ".", "./services/standalone/cmd/postback-standalone"),
	}
	pg := pgtest.Start(t) // the history the gateway process and the in-process writer share
	cases := []struct {
		name   string
		victim string
		stop   func(p *process, answered time.Time) string
	}{
		{"gateway kill -9 1s after", "gateway", func(p *process, answered time.Time) string {
			time.Sleep(time.Until(answered.Add(time.Second)))
			return killNow(p, answered)
		}},
		{"gateway kill -9 at once", "gateway", killNow},
		{"gateway SIGTERM", "gateway", func(p *process, answered time.Time) string { return p.terminate() }},
		{"standalone kill -9 1s after", "standalone", func(p *process, answered time.Time) string {
			time.Sleep(time.Until(answered.Add(time.Second)))
			return killNow(p, answered)
		}},
	}
	for i, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			rc := newReceiver(t)
			key, jobKey := newKeyring(t), newKeyring(t)
			grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			env := []string{"POSTBACK_GRPC_ADDR=" + grpcAddr, "POSTBACK_HTTP_ADDR=" + httpAddr, "POSTBACK_ALLOW_CIDRS=127.0.0.1/32",
				"POSTBACK_SECRET_KEY=" + key, "POSTBACK_JOB_KEY=" + jobKey, "POSTBACK_DATA_DIR=" + filepath.Join(dir, c.victim), "POSTBACK_INSECURE_NO_AUTH=true"}
			logs := []string{filepath.Join(dir, c.victim+".log")}
			if c.victim == "gateway" {
				url := pg.NewDatabase(t)
				logs = append(logs, filepath.Join(dir, "standalone.log"))
				h := start(t, filepath.Join(dir, "standalone"), func(cfg *Config) {
					cfg.Targets = "renderer,sender,retry,historian"
					cfg.SecretKey, cfg.JobKey = key, jobKey
					cfg.HistoryURL = url
					cfg.Logger = fileLogger(t, logs[1])
				})
				env = append(env, "POSTBACK_NATS_URL="+h.addrs.NATS, "POSTBACK_HISTORY_URL="+url)
			} // the standalone binary runs its embedded broker (and SQLite history): the kill takes them down too
			dumpLogsOnFailure(t, logs...)
			p := &process{t: t, path: bins[c.victim], env: env, log: logs[0]}
			p.start()
			waitReady(t, httpAddr)
			waitTCP(t, grpcAddr)
			api := dialAPI(t, grpcAddr)
			ctx := context.Background()
			if _, err := api.endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
				AccountId: "brand-1", EventType: "publisher_application", Url: rc.URL + "/app", Method: postbackv1.HttpMethod_HTTP_METHOD_POST}}); err != nil {
				t.Fatal(err)
			}
			idem := fmt.Sprintf("app-%d-v1", i)
			publish := func() (*postbackv1.PublishResponse, error) {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				return api.events.Publish(cctx, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "publisher_application",
					Data: sampleData(t, "publisher_application"), IdempotencyKey: idem})
			}
			first, err := publish()
			if err != nil {
				t.Fatal(err)
			}
			answered := time.Now()
			if first.Duplicate {
				t.Fatalf("the first publish of %s is a duplicate: %v", idem, first)
			}
			how := c.stop(p, answered)
			p.start()
			var again *postbackv1.PublishResponse
			eventually(t, 30*time.Second, "the restarted process to answer a publish", func() bool {
				again, err = publish()
				return err == nil
			})
			t.Logf("%s: first %s; %s; restarted; the repeat answered duplicate=%v with %s",
				c.name, first.EventId, how, again.Duplicate, again.EventId)
			if !again.Duplicate || again.EventId != first.EventId {
				t.Errorf("after %s and a restart, the repeat of %s = %v; want a duplicate with the first event's id %s", how, idem, again, first.EventId)
			}

			// One postback: wait for it, then long enough for a repeat to
			// show (a killed standalone's unacked work comes back after one
			// ack wait).
			rc.next(t, 20*time.Second)
			settle := 2 * time.Second
			if c.victim == "standalone" {
				settle = stream.AckWait + 2*time.Second
			}
			time.Sleep(settle)
			if n := rc.count(); n != 1 {
				t.Errorf("the receiver got %d postbacks for the key, want 1", n)
			}
			var ds []*postbackv1.Delivery
			eventually(t, 30*time.Second, "the event's delivery listed SUCCEEDED", func() bool {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				l, err := api.deliveries.ListDeliveries(cctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", EventId: first.EventId})
				if err != nil {
					return false
				}
				ds = l.Deliveries
				return len(ds) > 0 && ds[0].Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
			})
			if len(ds) != 1 {
				t.Errorf("the event has %d deliveries, want 1: %v", len(ds), ds)
			}
			t.Logf("%s: the receiver got %d postback(s) for the key (counted %s after the first arrived); the event has %d delivery(ies), %s",
				c.name, rc.count(), settle, len(ds), ds[0].Status)
		})
	}
}

// killNow SIGKILLs p and says how long after the answer the signal went.
func killNow(p *process, answered time.Time) string {
	after := time.Since(answered)
	p.kill()
	return fmt.Sprintf("killed -9 %s after the answer", after.Round(time.Microsecond))
}

// terminate stops p with SIGTERM and waits for it (20 s, then SIGKILL).
func (p *process) terminate() string {
	p.t.Helper()
	if p.cmd == nil || p.cmd.Process == nil {
		return "not running"
	}
	began := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan *os.ProcessState, 1)
	go func() { st, _ := p.cmd.Process.Wait(); exited <- st }()
	var st *os.ProcessState
	select {
	case st = <-exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		st = <-exited
		p.t.Errorf("%s did not stop within 20s of SIGTERM", filepath.Base(p.path))
	}
	p.cmd = nil
	return fmt.Sprintf("stopped by SIGTERM in %s (%v)", time.Since(began).Round(time.Millisecond), st)
}

// startNATS runs a nats-server child (JetStream, file storage under dir)
// on a free loopback port. It returns the URL of the user every process
// connects as, and of one whose acks of EVENTS messages the server refuses.
func startNATS(t *testing.T, bin, dir string) (url, noAckURL string) {
	t.Helper()
	port := freePort(t)
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`listen: "127.0.0.1:%d"
jetstream { store_dir: %q }
authorization {
  users = [
    { user: "postback", password: "postback" }
    { user: "noack", password: "noack", permissions: { publish: { deny: ["$JS.ACK.EVENTS.>"] } } }
  ]
}
`, port, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, path: bin, log: filepath.Join(dir, "nats.log"), args: []string{"-c", conf}}
	p.start()
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", port))
	return fmt.Sprintf("nats://postback:postback@127.0.0.1:%d", port), fmt.Sprintf("nats://noack:noack@127.0.0.1:%d", port)
}

// newKeyring is a keyring (POSTBACK_SECRET_KEY, POSTBACK_JOB_KEY) every
// process of a case shares.
func newKeyring(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return "k1:" + base64.StdEncoding.EncodeToString(k)
}

// fileLogger logs an in-process standalone to path (the test's own output
// stays readable); dumpLogsOnFailure shows its end when the test fails.
func fileLogger(t *testing.T, path string) *slog.Logger {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewJSONHandler(f, nil))
}

// dumpLogsOnFailure logs the last lines of each log file if the test fails.
func dumpLogsOnFailure(t *testing.T, paths ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, path := range paths {
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last lines of %s:\n%s", filepath.Base(path), strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
}

// waitReady waits for a process's /readyz to answer 200.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	eventually(t, 30*time.Second, addr+"/readyz to answer 200", func() bool {
		r, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

// dialAPI is a harness with gRPC clients of a gateway in a child process;
// it reconnects within a quarter second of the process coming back.
func dialAPI(t *testing.T, addr string) *harness {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: time.Second,
			Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 250 * time.Millisecond}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &harness{conn: conn, events: postbackv1.NewEventServiceClient(conn), endpoints: postbackv1.NewEndpointServiceClient(conn),
		deliveries: postbackv1.NewDeliveryServiceClient(conn), types: postbackv1.NewEventTypeServiceClient(conn)}
}

// heldBy is how many messages the victim's consumers were handed and have
// not acked.
func heldBy(ctx context.Context, js jetstream.JetStream, victim string) (int, error) {
	holds := func(consumer string) bool {
		switch victim {
		case "standalone":
			return true
		case "renderer":
			return strings.HasPrefix(consumer, stream.RendererConsumer)
		case "sender":
			return strings.HasPrefix(consumer, stream.SenderConsumer) // first sends and retries
		case "retry":
			return consumer == stream.RetryConsumer
		case "historian":
			return consumer == stream.HistoryConsumer
		}
		return false
	}
	streams := map[string][]string{ // only the victim's, to look fast
		"renderer":  {stream.EventsStream},
		"sender":    {stream.DeliveriesStream, stream.SchedulesStream},
		"retry":     {stream.DeliveriesStream},
		"historian": {stream.HistoryStream},
	}[victim]
	if victim == "standalone" {
		streams = []string{stream.EventsStream, stream.DeliveriesStream, stream.SchedulesStream, stream.HistoryStream}
	}
	n := 0
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			if holds(info.Name) {
				n += info.NumAckPending
			}
		}
		if err := l.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// owedEvent is an event whose publish returned OK.
type owedEvent struct {
	id string
	at time.Time // when the publish returned
}

// publisher publishes action_clearing events, each tagged (ActionIds
// ACT-<n>, which the endpoint's URL carries), until n are owed; a call
// that fails (the gateway is down) owes none of its events and the next
// call goes on with new tags.
type publisher struct {
	mu          sync.Mutex
	owed        map[string]owedEvent // by tag
	failedCalls int
	inFlight    atomic.Int32
}

func (p *publisher) run(ctx context.Context, api *harness, n int) {
	next := 0
	for ctx.Err() == nil {
		size := min(crashBatch, n-p.count())
		if size <= 0 {
			return
		}
		batch := &postbackv1.PublishBatchRequest{}
		tags := make([]string, size)
		for i := range size {
			tags[i] = fmt.Sprintf("ACT-%d", next)
			next++
			data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": tags[i], "ClearedDate": "2026-04-15T12:00:00Z"})
			batch.Events = append(batch.Events, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: data})
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p.inFlight.Add(1)
		res, err := api.events.PublishBatch(cctx, batch)
		p.inFlight.Add(-1)
		cancel()
		now := time.Now()
		p.mu.Lock()
		if err != nil {
			p.failedCalls++
		} else {
			for i, r := range res.Results {
				if r.Error == nil && i < len(tags) {
					p.owed[tags[i]] = owedEvent{id: r.EventId, at: now}
				}
			}
		}
		p.mu.Unlock()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(25 * time.Millisecond)
		}
	}
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owed)
}

func (p *publisher) snapshot() map[string]owedEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]owedEvent, len(p.owed))
	for k, v := range p.owed {
		out[k] = v
	}
	return out
}

// ledger is the receiver's account of what reached the brand: every
// request by event tag and delivery id, and when each event's postback
// first arrived (a request the receiver answers 200; its headers' arrival
// is the moment). With failFirst, each delivery's first request is
// answered 503 (its retry then succeeds).
type ledger struct {
	mu        sync.Mutex
	failFirst bool
	perDlv    map[string]int       // requests by delivery id
	perTag    map[string]int       // requests by event tag
	ok        map[string]time.Time // tag -> first request answered 200
	failed    int
}

func newLedger(failFirst bool) *ledger {
	return &ledger{failFirst: failFirst, perDlv: map[string]int{}, perTag: map[string]int{}, ok: map[string]time.Time{}}
}

func (a *ledger) answer(_ int, r *http.Request) (int, string) {
	at := time.Now()
	dlv, tag := r.Header.Get("Postback-Delivery-Id"), r.URL.Query().Get("seq")
	a.mu.Lock()
	a.perDlv[dlv]++
	a.perTag[tag]++
	fail := a.failFirst && a.perDlv[dlv] == 1
	if fail {
		a.failed++
	} else if _, seen := a.ok[tag]; !seen {
		a.ok[tag] = at
	}
	a.mu.Unlock()
	if fail {
		time.Sleep(crashSlowAnswer / 2)
		return http.StatusServiceUnavailable, "not yet"
	}
	if !a.failFirst {
		time.Sleep(crashSlowAnswer)
	}
	return http.StatusOK, "OK"
}

// sent is how many requests arrived.
func (a *ledger) sent() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.perDlv {
		n += c
	}
	return n
}

func (a *ledger) failedFirst() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// missing is the owed tags whose postback has not arrived.
func (a *ledger) missing(owed map[string]owedEvent) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for tag := range owed {
		if _, ok := a.ok[tag]; !ok {
			out = append(out, tag)
		}
	}
	return out
}

func (a *ledger) okTimes() map[string]time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]time.Time, len(a.ok))
	for k, v := range a.ok {
		out[k] = v
	}
	return out
}

// duplicates counts requests beyond expected per event, over every event
// that reached the receiver, the events they repeated, and how many
// arrived whose publish call had failed (not owed, not lost either).
func (a *ledger) duplicates(owed map[string]owedEvent, expected int) (dupes, events, unowed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for tag, n := range a.perTag {
		if n > expected {
			dupes += n - expected
			events++
		}
		if _, ok := owed[tag]; !ok {
			unowed++
		}
	}
	return dupes, events, unowed
}

// listEvery pages through brand-1's deliveries.
func listEvery(ctx context.Context, api *harness) ([]*postbackv1.Delivery, error) {
	var out []*postbackv1.Delivery
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := api.deliveries.ListDeliveries(cctx, &postbackv1.ListDeliveriesRequest{AccountId: "brand-1", PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			return nil, err
		}
		out = append(out, l.Deliveries...)
		if l.NextPageToken == "" {
			return out, nil
		}
		token = l.NextPageToken
	}
}

// allSucceeded says whether every owed event has a SUCCEEDED delivery and
// no delivery is in another state, and if not, what is off.
func allSucceeded(ds []*postbackv1.Delivery, owed map[string]owedEvent) (bool, string) {
	byStatus := map[string]int{}
	succeeded := map[string]bool{}
	var odd []string
	for _, d := range ds {
		byStatus[d.Status.String()]++
		if d.Status == postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
			succeeded[d.EventId] = true
		} else if len(odd) < 5 {
			odd = append(odd, fmt.Sprintf("%s (event %s) %s attempts=%d", d.Id, d.EventId, d.Status, d.AttemptCount))
		}
	}
	missing := 0
	for _, e := range owed {
		if !succeeded[e.id] {
			missing++
		}
	}
	if missing == 0 && len(odd) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("%d deliveries listed by status %v; %d owed events without a SUCCEEDED delivery; e.g. %v",
		len(ds), byStatus, missing, odd)
}
