package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/config"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/history/postgres"
	"github.com/postback-dev/postback/pkg/history/sqlite"
	"github.com/postback-dev/postback/pkg/pgtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Bounds of the waits.
const (
	readyLimit     = 3 * time.Minute
	deliveredLimit = 2 * time.Minute
	listedLimit    = 2 * time.Minute
	stopLimit      = 30 * time.Second
	publishBatch   = 100
	publishWorkers = 4
)

// backendRun is one backend's state across its stages.
type backendRun struct {
	o       options
	name    string
	rc      *receiver
	dir     string // the backend's work dir
	data    string // POSTBACK_DATA_DIR
	url     string // POSTBACK_HISTORY_URL ("" for sqlite)
	m       *model
	rng     *rand.Rand
	burstEP string // the endpoint the bursts go to, made at the first stage
}

func runBackend(ctx context.Context, o options, rc *receiver, work, name string, rng *rand.Rand) (BackendResult, error) {
	res := BackendResult{Backend: name}
	b := &backendRun{o: o, name: name, rc: rc, dir: filepath.Join(work, name), rng: rng, m: newModel(rng)}
	b.data = filepath.Join(b.dir, "data")
	if err := os.MkdirAll(b.data, 0o700); err != nil {
		return res, err
	}
	if name == "postgres" {
		progress("%s: starting a private PostgreSQL server (pgtest)", name)
		srv, err := pgtest.StartShared()
		if err != nil {
			return res, err
		}
		defer srv.Close()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		db, err := srv.CreateDatabase(cctx, "bench_history")
		cancel()
		if err != nil {
			return res, err
		}
		b.url = srv.URL(db)
		progress("%s: database %s on %s", name, db, srv.Addr())
	}
	for _, n := range o.stages {
		st, err := b.stage(ctx, n)
		if err != nil {
			return res, fmt.Errorf("stage %d: %w", n, err)
		}
		res.Stages = append(res.Stages, st)
	}
	return res, nil
}

// open opens the store as the standalone does (config.Config.History), but
// directly: the standalone is stopped meanwhile.
func (b *backendRun) open(ctx context.Context) (history.Store, error) {
	if b.url == "" {
		return sqlite.Open(filepath.Join(b.data, config.HistoryFile))
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return postgres.Open(cctx, b.url)
}

func (b *backendRun) stage(ctx context.Context, n int) (StageResult, error) {
	label := fmt.Sprintf("%s N=%d", b.name, n)
	st := StageResult{N: n}

	// 1. The fill, with the standalone stopped.
	store, err := b.open(ctx)
	if err != nil {
		return st, fmt.Errorf("open the store: %w", err)
	}
	if need := n - b.m.total(); need > 0 {
		progress("%s: appending %d deliveries (the history holds %d)", label, need, b.m.total())
		f, err := fill(ctx, store, b.m, need, label)
		if err != nil {
			store.Close()
			return st, err
		}
		st.FillDeliveries, st.FillEntries, st.FillSeconds = f.Deliveries, f.Entries, f.Took.Seconds()
		st.FillPerSecond = float64(f.Deliveries) / f.Took.Seconds()
		progress("%s: filled %d deliveries (%d entries) in %s: %.0f deliveries/s, %.0f entries/s", label, f.Deliveries, f.Entries,
			f.Took.Round(10*time.Millisecond), st.FillPerSecond, float64(f.Entries)/f.Took.Seconds())
	} else if need < 0 {
		progress("%s: the history already holds %d deliveries (earlier bursts): nothing to append", label, b.m.total())
	}
	t0 := time.Now()
	if err := verifyCounts(ctx, store, b.m); err != nil {
		store.Close()
		return st, fmt.Errorf("after the fill: %w", err)
	}
	progress("%s: the store's counts match the %d deliveries written (checked in %s)", label, b.m.total(), time.Since(t0).Round(time.Millisecond))
	if err := store.Close(); err != nil {
		return st, fmt.Errorf("close the store: %w", err)
	}
	st.Held = b.m.total()

	// 2. Start the standalone; ready is from exec to /readyz 200.
	grpcAddr, err := freeAddr()
	if err != nil {
		return st, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return st, err
	}
	env := []string{"POSTBACK_GRPC_ADDR=" + grpcAddr, "POSTBACK_HTTP_ADDR=" + httpAddr, "POSTBACK_DATA_DIR=" + b.data,
		"POSTBACK_HISTORY_URL=" + b.url, "POSTBACK_TOKENS=" + token + "=*", "POSTBACK_ALLOW_CIDRS=127.0.0.1/32",
		"POSTBACK_LOG_LEVEL=warn", "POSTBACK_RETENTION=720h"}
	start := time.Now()
	p, err := startProc("postback-standalone", filepath.Join(b.o.bin, "postback-standalone"), env,
		filepath.Join(b.dir, fmt.Sprintf("standalone-%d.log", n)))
	if err != nil {
		return st, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			took, killed := p.stop(stopLimit)
			st.StopSeconds, st.StopKilled = took.Seconds(), killed
		}
	}
	defer stop()
	if err := waitReady(ctx, p, httpAddr, readyLimit); err != nil {
		return st, err
	}
	st.ReadySeconds = time.Since(start).Seconds()
	// /readyz checks the dependencies (NATS, streams, limiter), not the
	// gateway's listener, which may open a moment later.
	if err := waitTCP(ctx, p, grpcAddr, readyLimit); err != nil {
		return st, err
	}
	st.ServingSeconds = time.Since(start).Seconds()
	progress("%s: standalone ready (/readyz 200) in %.2f s, gRPC accepting after %.2f s, with %d deliveries retained",
		label, st.ReadySeconds, st.ServingSeconds, st.Held)
	if nats, err := diskUsage(filepath.Join(b.data, "jetstream")); err == nil {
		st.NATSMBAtReady = mb(nats)
	}
	c, err := dial(grpcAddr)
	if err != nil {
		return st, err
	}
	defer c.conn.Close()

	// 3. The burst through the real pipeline.
	if err := b.burst(ctx, c, &st, label); err != nil {
		return st, fmt.Errorf("burst: %w", err)
	}
	st.HeldAfterBurst = b.m.total()
	rss, hwm, err := p.memory()
	if err != nil {
		return st, err
	}
	st.RSSMB, st.HWMMB = mb(rss), mb(hwm)
	nats, err := diskUsage(filepath.Join(b.data, "jetstream"))
	if err != nil {
		return st, fmt.Errorf("size of the JetStream dir: %w", err)
	}
	if nats == 0 {
		return st, fmt.Errorf("the JetStream dir %s is empty or missing: the standalone keeps it elsewhere", filepath.Join(b.data, "jetstream"))
	}
	st.NATSMB = mb(nats)
	hist, err := b.historySize(ctx)
	if err != nil {
		return st, fmt.Errorf("size of the history: %w", err)
	}
	st.HistoryMB = mb(hist)
	progress("%s: RSS %.0f MB (high-water %.0f MB), JetStream %.1f MB, history %.1f MB", label, st.RSSMB, st.HWMMB, st.NATSMB, st.HistoryMB)

	// 4. The delivery log's queries.
	st.Queries, err = c.measureQueries(ctx, b.m, b.o.samples, b.rng, label)
	if err != nil {
		return st, err
	}
	if _, hwm, err := p.memory(); err == nil {
		st.HWMAfterQueriesMB = mb(hwm)
	}
	if p.exited() {
		return st, fmt.Errorf("the standalone exited during the stage (%v); its log ends:\n%s", p.err, p.logTail())
	}

	// 5. Stop.
	stop()
	if st.StopKilled {
		progress("%s: warning: the standalone did not stop within %s of SIGTERM and was killed", label, stopLimit)
	} else {
		progress("%s: standalone stopped in %.2f s", label, st.StopSeconds)
	}
	return st, nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// historySize is the history's size on disk: the SQLite file and its WAL,
// or the PostgreSQL database.
func (b *backendRun) historySize(ctx context.Context) (int64, error) {
	if b.url == "" {
		path := filepath.Join(b.data, config.HistoryFile)
		var total int64
		for _, f := range []string{path, path + "-wal"} {
			n, err := diskUsage(f)
			if err != nil {
				return 0, err
			}
			total += n
		}
		if total == 0 {
			return 0, fmt.Errorf("no history file at %s", path)
		}
		return total, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, b.url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(cctx, "SELECT pg_database_size(current_database())").Scan(&n)
	return n, err
}

// burst publishes b.o.burst events for the account (PublishBatch of 100,
// from a few clients) to its burst endpoint (made at the first stage; it
// lives in the data dir's NATS and survives restarts), waits until the
// receiver got them all and until the delivery log lists them all
// SUCCEEDED, and adds them to the model.
func (b *backendRun) burst(ctx context.Context, c *client, st *StageResult, label string) error {
	path := "r/" + b.name
	if b.burstEP == "" {
		cctx, cancel := call(ctx)
		ep, err := c.endpoints.CreateEndpoint(cctx, &postbackv1.CreateEndpointRequest{Endpoint: &postbackv1.Endpoint{
			AccountId: account, EventType: eventType, Url: "http://" + b.rc.addr + "/" + path,
			Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: `{"action_id": "{ActionId}", "note": "{Note}"}`}})
		cancel()
		if err != nil {
			return fmt.Errorf("create the endpoint: %w", err)
		}
		b.burstEP = ep.Id
		progress("%s: endpoint %s posts to the receiver at %s", label, ep.Id, b.rc.addr)
	}
	if b.o.burst == 0 {
		return nil
	}
	baseline := b.rc.distinct(path)
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; i < b.o.burst; i += publishBatch {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range publishWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range next {
				req := &postbackv1.PublishBatchRequest{}
				for i := from; i < min(from+publishBatch, b.o.burst); i++ {
					req.Events = append(req.Events, &postbackv1.PublishRequest{AccountId: account, EventType: eventType,
						Data: &structpb.Struct{Fields: map[string]*structpb.Value{
							"Note": structpb.NewStringValue("stage " + strconv.Itoa(st.N)), "ActionId": structpb.NewStringValue("ACT-" + strconv.Itoa(i))}}})
				}
				cctx, cancel := call(ctx)
				res, err := c.events.PublishBatch(cctx, req)
				cancel()
				if err == nil {
					for _, r := range res.Results {
						if r.Error != nil {
							err = fmt.Errorf("event refused: %s", r.Error.Message)
							break
						}
						if r.Duplicate {
							err = fmt.Errorf("event %s taken for a duplicate", r.EventId)
							break
						}
					}
					if err == nil && len(res.Results) != len(req.Events) {
						err = fmt.Errorf("%d results for %d events", len(res.Results), len(req.Events))
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("publish: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st.BurstPublishSeconds = time.Since(began).Seconds()
	want := baseline + b.o.burst
	if got := b.rc.waitFor(ctx, path, want, deliveredLimit); got < want {
		return fmt.Errorf("the receiver got %d of the %d deliveries within %s", got-baseline, b.o.burst, deliveredLimit)
	}
	st.BurstDeliveredSeconds = time.Since(began).Seconds()
	got, err := b.listed(ctx, c, began, listedLimit)
	if err != nil {
		return err
	}
	st.BurstListedSeconds = time.Since(began).Seconds()
	for _, s := range got {
		b.m.add(s, stSucceeded)
	}
	progress("%s: burst of %d: published in %.2f s, all at the receiver after %.2f s, all listed SUCCEEDED after %.2f s",
		label, b.o.burst, st.BurstPublishSeconds, st.BurstDeliveredSeconds, st.BurstListedSeconds)
	return nil
}

// listed pages through the burst endpoint's deliveries created since began
// until it finds exactly the burst, every one SUCCEEDED, or limit passes.
func (b *backendRun) listed(ctx context.Context, c *client, began time.Time, limit time.Duration) ([]sample, error) {
	deadline := time.Now().Add(limit)
	since := timestamppb.New(began.Add(-time.Millisecond))
	for {
		var got []sample
		succeeded, total := 0, 0
		tok := ""
		for {
			cctx, cancel := call(ctx)
			res, err := c.deliveries.ListDeliveries(cctx, &postbackv1.ListDeliveriesRequest{AccountId: account, EndpointId: b.burstEP,
				StartTime: since, PageSize: 500, PageToken: tok})
			cancel()
			if err != nil {
				return nil, fmt.Errorf("list the burst: %w", err)
			}
			for _, d := range res.Deliveries {
				total++
				if d.Status == stSucceeded {
					succeeded++
				}
				if d.EndpointId != b.burstEP || d.AccountId != account {
					return nil, fmt.Errorf("delivery %s (account %s, endpoint %s) in the list of endpoint %s", d.Id, d.AccountId, d.EndpointId, b.burstEP)
				}
				got = append(got, sample{ID: d.Id, Endpoint: d.EndpointId, Event: d.EventId, Created: micros(d.CreateTime), Attempts: int(d.AttemptCount)})
			}
			if tok = res.NextPageToken; tok == "" {
				break
			}
		}
		if total > b.o.burst {
			return nil, fmt.Errorf("the delivery log lists %d deliveries for a burst of %d events to one endpoint", total, b.o.burst)
		}
		if succeeded == b.o.burst {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %s the delivery log lists %d of the burst's %d deliveries, %d of them SUCCEEDED", limit, total, b.o.burst, succeeded)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
