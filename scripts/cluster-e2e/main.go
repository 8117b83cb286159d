// Command cluster-e2e drives scripts/cluster-e2e.sh against a running local
// cluster (scripts/run-cluster.sh): it starts a receiver on 127.0.0.1,
// creates an endpoint pointing at it, publishes N events with PublishBatch,
// and, while the deliveries flow, SIGKILLs one NATS server (the leader of the
// DELIVERIES stream, the most disruptive one) and one sender. It then waits
// until every event has been delivered and reports what the receiver saw:
// distinct Postback-Delivery-Id headers (delivered), requests beyond the first
// per delivery id (duplicates: at-least-once redeliveries), and the times.
//
// Loopback only. It reads the cluster's addresses, token and PIDs from
// -dir (cluster.env and pids) and kills only PIDs listed there.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func main() {
	dir := flag.String("dir", ".cluster", "the cluster's folder (cluster.env, pids)")
	events := flag.Int("events", 1000, "events to publish")
	batch := flag.Int("batch", 50, "events per PublishBatch")
	pace := flag.Duration("pace", 100*time.Millisecond, "pause between batches")
	killSenderAt := flag.Int("kill-sender-at", 300, "SIGKILL sender-1 after this many events are published (0: never)")
	killNATSAt := flag.Int("kill-nats-at", 600, "SIGKILL the DELIVERIES stream leader after this many events are published (0: never)")
	delay := flag.Duration("receiver-delay", 50*time.Millisecond, "how long the receiver takes to answer (keeps requests in flight when a sender dies)")
	wait := flag.Duration("wait", 4*time.Minute, "how long to wait for every delivery")
	settle := flag.Duration("settle", 3*time.Second, "keep counting after the last delivery, for late duplicates")
	flag.Parse()
	if err := run(*dir, *events, *batch, *pace, *killNATSAt, *killSenderAt, *delay, *wait, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "cluster-e2e: FAIL:", err)
		os.Exit(1)
	}
}

// receiver counts what arrives.
type receiver struct {
	mu         sync.Mutex
	requests   int
	byDelivery map[string]int // delivery id -> requests
	byEvent    map[string]int // ActionIds (one per event) -> distinct delivery ids
	deliveryOf map[string]string
	attempts   map[string]int // Postback-Attempt -> requests
	firstAt    time.Time
	lastNewAt  time.Time
	arrived    chan struct{}
	delay      time.Duration
	start      time.Time
	dupAt      map[int]int // second of the run -> duplicate requests
}

func newReceiver() *receiver {
	return &receiver{byDelivery: map[string]int{}, byEvent: map[string]int{}, deliveryOf: map[string]string{},
		attempts: map[string]int{}, arrived: make(chan struct{}, 1), dupAt: map[int]int{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Postback-Delivery-Id")
	ev := r.URL.Query().Get("a")
	rc.mu.Lock()
	rc.requests++
	rc.attempts[r.Header.Get("Postback-Attempt")]++
	if rc.firstAt.IsZero() {
		rc.firstAt = time.Now()
	}
	if rc.byDelivery[id] == 0 {
		rc.byEvent[ev]++
		rc.deliveryOf[id] = ev
		rc.lastNewAt = time.Now()
	}
	if rc.byDelivery[id] > 0 && !rc.start.IsZero() {
		rc.dupAt[int(time.Since(rc.start).Seconds())]++
	}
	rc.byDelivery[id]++
	rc.mu.Unlock()
	select {
	case rc.arrived <- struct{}{}:
	default:
	}
	time.Sleep(rc.delay)
	fmt.Fprint(w, "OK")
}

// delivered counts the events with the prefix that have at least one delivery.
func (rc *receiver) delivered(prefix string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for ev := range rc.byEvent {
		if strings.HasPrefix(ev, prefix) {
			n++
		}
	}
	return n
}

type cluster struct {
	env  map[string]string
	pids map[string]int
	exe  map[string]string
}

func readCluster(dir string) (*cluster, error) {
	c := &cluster{env: map[string]string{}, pids: map[string]int{}, exe: map[string]string{}}
	f, err := os.Open(filepath.Join(dir, "cluster.env"))
	if err != nil {
		return nil, fmt.Errorf("is the cluster running? %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			c.env[k] = v
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 3 {
			pid, _ := strconv.Atoi(fields[1])
			c.pids[fields[0]] = pid
			c.exe[fields[0]] = fields[2]
		}
	}
	return c, nil
}

// kill SIGKILLs a process of the cluster, after checking the PID still runs
// the binary recorded for it.
func (c *cluster) kill(name string) error {
	pid, ok := c.pids[name]
	if !ok {
		return fmt.Errorf("no process %q in pids", name)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || (exe != c.exe[name] && exe != c.exe[name]+" (deleted)") {
		return fmt.Errorf("%s (PID %d) is not running %s", name, pid, c.exe[name])
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// streamLeader asks the NATS monitoring endpoints which server leads a stream.
func (c *cluster) streamLeader(stream string) (string, error) {
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, k := range []string{"NATS_1_MONITOR", "NATS_2_MONITOR", "NATS_3_MONITOR"} {
		resp, err := client.Get(c.env[k] + "/jsz?streams=true")
		if err != nil {
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				if s.Name == stream && s.Cluster.Leader != "" {
					return s.Cluster.Leader, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no leader found for stream %s", stream)
}

func run(dir string, n, batch int, pace time.Duration, killNATSAt, killSenderAt int, delay, wait, settle time.Duration) error {
	c, err := readCluster(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait+5*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.env["POSTBACK_TOKEN"])

	rc := newReceiver()
	rc.delay = delay
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()

	conn, err := grpc.NewClient(c.env["GATEWAY_GRPC"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	endpoints := postbackv1.NewEndpointServiceClient(conn)
	eventsAPI := postbackv1.NewEventServiceClient(conn)

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	account := "e2e-" + run
	ep, err := endpoints.CreateEndpoint(ctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
		AccountId: account, EventType: "action_clearing",
		Url:    fmt.Sprintf("http://%s/hook?a={ActionIds}", lis.Addr()),
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST,
	}})
	if err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	fmt.Printf("receiver http://%s, endpoint %s (account %s)\n", lis.Addr(), ep.Id, account)

	event := func(action string) *postbackv1.PublishRequest {
		data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": action})
		return &postbackv1.PublishRequest{AccountId: account, EventType: "action_clearing", Data: data,
			IdempotencyKey: run + "-" + action}
	}
	// Warm-up: the renderer sees the new endpoint (a KV watch) before the run.
	warm := time.Now()
	for i := 0; rc.delivered("WARMUP-") == 0; i++ {
		if time.Since(warm) > 30*time.Second {
			return fmt.Errorf("no warm-up postback arrived within 30s")
		}
		if _, err := eventsAPI.Publish(ctx, event(fmt.Sprintf("WARMUP-%d", i))); err != nil {
			fmt.Println("warm-up publish:", err)
		}
		select {
		case <-rc.arrived:
		case <-time.After(time.Second):
		}
	}
	fmt.Printf("warm-up postback arrived after %s\n", time.Since(warm).Round(time.Millisecond))

	// The run.
	start := time.Now()
	rc.mu.Lock()
	rc.start = start
	rc.mu.Unlock()
	var killedNATS, killedSender string
	var killNATSTime, killSenderTime time.Time
	published, republished := 0, 0
	for next := 0; next < n; {
		end := min(next+batch, n)
		pending := make([]*postbackv1.PublishRequest, 0, end-next)
		for i := next; i < end; i++ {
			pending = append(pending, event(fmt.Sprintf("ACT-%d", i)))
		}
		for try := 0; len(pending) > 0; try++ {
			if try == 30 {
				return fmt.Errorf("events %d..%d: still refused after 30 tries", next, end-1)
			}
			if try > 0 {
				republished += len(pending)
				time.Sleep(time.Duration(min(try, 5)) * 200 * time.Millisecond)
			}
			callCtx, cancelCall := context.WithTimeout(ctx, 10*time.Second)
			resp, err := eventsAPI.PublishBatch(callCtx, &postbackv1.PublishBatchRequest{Events: pending})
			cancelCall()
			if err != nil {
				fmt.Printf("  PublishBatch of %d events: %v (again, same idempotency keys)\n", len(pending), err)
				continue
			}
			var again []*postbackv1.PublishRequest
			for i, r := range resp.Results {
				if r.Error != nil {
					again = append(again, pending[i])
				}
			}
			if len(again) > 0 {
				fmt.Printf("  %d of %d events refused (first: %s); again with the same idempotency keys\n",
					len(again), len(pending), resp.Results[0].GetError().GetMessage())
			}
			pending = again
		}
		published, next = end, end
		if killNATSAt > 0 && killedNATS == "" && published >= killNATSAt {
			leader, err := c.streamLeader("DELIVERIES")
			if err != nil {
				return err
			}
			name := "nats-" + strings.TrimPrefix(leader, "n")
			if err := c.kill(name); err != nil {
				return err
			}
			killedNATS, killNATSTime = name, time.Now()
			fmt.Printf("t=%5.1fs published %d, delivered %d: SIGKILL %s (PID %d, leader of DELIVERIES)\n",
				time.Since(start).Seconds(), published, rc.delivered("ACT-"), name, c.pids[name])
		}
		if killSenderAt > 0 && killedSender == "" && published >= killSenderAt {
			if err := c.kill("sender-1"); err != nil {
				return err
			}
			killedSender, killSenderTime = "sender-1", time.Now()
			fmt.Printf("t=%5.1fs published %d, delivered %d: SIGKILL sender-1 (PID %d)\n",
				time.Since(start).Seconds(), published, rc.delivered("ACT-"), c.pids["sender-1"])
		}
		time.Sleep(pace)
	}
	publishTime := time.Since(start)
	fmt.Printf("t=%5.1fs published all %d events (%d re-sent after errors), delivered so far %d\n",
		publishTime.Seconds(), n, republished, rc.delivered("ACT-"))

	// Wait for every event.
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for rc.delivered("ACT-") < n {
		select {
		case <-rc.arrived:
		case <-tick.C:
			fmt.Printf("t=%5.1fs delivered %d/%d\n", time.Since(start).Seconds(), rc.delivered("ACT-"), n)
		case <-time.After(time.Until(deadline)):
		}
		if time.Now().After(deadline) {
			break
		}
	}
	allAt := time.Since(start)
	time.Sleep(settle)

	rc.mu.Lock()
	defer rc.mu.Unlock()
	distinctIDs, dupRequests, extraPerEvent := 0, 0, 0
	for id, k := range rc.byDelivery {
		if strings.HasPrefix(rc.deliveryOf[id], "ACT-") {
			distinctIDs++
			dupRequests += k - 1
		}
	}
	var missing []string
	for i := range n {
		ev := fmt.Sprintf("ACT-%d", i)
		switch k := rc.byEvent[ev]; {
		case k == 0:
			missing = append(missing, ev)
		case k > 1:
			extraPerEvent += k - 1
		}
	}
	attempts := make([]string, 0, len(rc.attempts))
	for a, k := range rc.attempts {
		attempts = append(attempts, fmt.Sprintf("attempt %s: %d", a, k))
	}
	sort.Strings(attempts)
	fmt.Println()
	fmt.Println("=== cluster e2e result")
	fmt.Printf("events published           %d (in batches of %d, %d re-sent after errors)\n", n, batch, republished)
	fmt.Printf("events delivered            %d/%d\n", n-len(missing), n)
	fmt.Printf("distinct delivery ids       %d\n", distinctIDs)
	fmt.Printf("duplicate requests          %d (same Postback-Delivery-Id received again)\n", dupRequests)
	fmt.Printf("events with >1 delivery id  %d\n", extraPerEvent)
	if len(rc.dupAt) > 0 {
		secs := make([]int, 0, len(rc.dupAt))
		for sec := range rc.dupAt {
			secs = append(secs, sec)
		}
		sort.Ints(secs)
		var parts []string
		for _, sec := range secs {
			parts = append(parts, fmt.Sprintf("t=%ds: %d", sec, rc.dupAt[sec]))
		}
		fmt.Printf("duplicates by second        %s\n", strings.Join(parts, ", "))
	}
	fmt.Printf("requests at the receiver    %d incl. warm-up (%s)\n", rc.requests, strings.Join(attempts, ", "))
	fmt.Printf("killed                      %s at t=%.1fs, %s at t=%.1fs (SIGKILL)\n",
		orNone(killedNATS), since(start, killNATSTime), orNone(killedSender), since(start, killSenderTime))
	fmt.Printf("publish time                %.1fs\n", publishTime.Seconds())
	fmt.Printf("all delivered at            t=%.1fs (last new delivery t=%.1fs)\n", allAt.Seconds(), rc.lastNewAt.Sub(start).Seconds())
	if len(missing) > 0 {
		show := missing[:min(len(missing), 10)]
		return fmt.Errorf("%d events never delivered (e.g. %s)", len(missing), strings.Join(show, " "))
	}
	fmt.Println("PASS")
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func since(start, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return t.Sub(start).Seconds()
}
