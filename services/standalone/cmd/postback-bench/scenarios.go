package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/render"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The custom JSON template of the burst: the seed's style, a join over items.
const bodyTemplate = `{"campaign_id": {CampaignId}, "tracker": {ActionTrackerId}, "partner": {MediaPartnerId},
 "campaign": "{CampaignName}", "partner_name": "{MediaPartnerName}", "action_id": "{ActionId}",
 "status": "{Status}", "detail": "{StatusDetail}", "payout": {Payout}, "amount": {Amount},
 "currency": "{Currency}", "event_date": "{EventDate}", "order": "{Oid}", "promo": "{PromoCode}",
 "customer": "{CustomerId}", "city": "{CustomerCity}", "country": "{CustomerCountry}", "note": "{Note}",
 "items": [{join(items, i, "\{\"sku\":\"{i.sku}\",\"item_price\":{i.amt},\"category\":\"{i.cat}\",\"quantity\":{i.qty},\"name\":\"{i.name}\"\}")}]}`

// eventData is a ~1 KB action_lifecycle event with 3 items; Text1 carries
// the publish time for the receiver's latency figure.
func eventData(sent time.Time) map[string]any {
	items := []any{}
	for i := range 3 {
		items = append(items, map[string]any{"sku": fmt.Sprintf("SKU-%04d", i), "amt": 33.25 + float64(i), "cat": "apparel",
			"qty": float64(i + 1), "cartamt": 99.75, "rbt": "0.00", "name": "Organic cotton tee, size M"})
	}
	return map[string]any{
		"CampaignId": 9876.0, "ActionTrackerId": 12345.0, "MediaPartnerId": 555.0, "CampaignName": "Spring Global Promotion",
		"ActionTrackerName": "Standard Sale Tracker", "MediaPartnerName": "Top Tier Affiliates", "ActionId": "ACT-778899",
		"Status": "APPROVED", "StatusDetail": "Item return - payout adjusted", "Payout": 10.5, "Amount": 100.0,
		"Currency": "USD", "EventDate": "2026-04-08T09:00:00Z", "Oid": "ORD-554433", "PromoCode": "SAVE20",
		"CustomerId": "CUST-12345", "CustomerCity": "San Francisco", "CustomerCountry": "US", "Note": "Partial return processed",
		"Text1": strconv.FormatInt(sent.UnixNano(), 10), "items": items,
	}
}

type bench struct {
	rc         *receiver
	events     int
	steady     time.Duration
	conn       *grpc.ClientConn
	client     postbackv1.EventServiceClient
	eps        postbackv1.EndpointServiceClient
	deliveries postbackv1.DeliveryServiceClient
	only       string
	repeat     int    // runs of each burst scenario
	shape      string // prefixes receiver tallies, so shapes never share one
	natsURL    string // the deployment's NATS server ("": not known)
	// profile, when set (-profile), is called as a burst starts publishing:
	// it starts CPU profiles of every process and returns a func to call
	// once the burst is over.
	profile func(scenario string) (done func())
	// timeline, when set (-timeline), is the folder each scenario's
	// latency timeline is written to (tally.writeTimeline).
	timeline string
}

// tag is the receiver path and tally of a scenario in the current shape.
func (b *bench) tag(name string) string { return b.shape + "-" + name }

func authed(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// RawResult is the physical reference.
type RawResult struct {
	Requests  int     `json:"requests"`
	PerSecond float64 `json:"per_second"`
	CPUSec    float64 `json:"cpu_seconds_bench_process"`
}

// raw sends the burst's rendered request n times with a plain net/http
// client, 64 at a time, keep-alive.
func (b *bench) raw(ctx context.Context, n int) RawResult {
	compiled, err := render.Compile(render.Spec{EventType: "action_lifecycle", URL: "http://" + b.rc.addr + "/r/raw?t={Text1}",
		Method: render.MethodPost, BodyTemplate: bodyTemplate})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 128, MaxIdleConnsPerHost: 128}}
	var next atomic.Int64
	cpu0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				req, _ := compiled.Render(eventData(time.Now()))
				hr, _ := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
				hr.Header.Set("Content-Type", req.ContentType)
				hr.Header.Set("X-Raw-Id", fmt.Sprintf("%d-%d", w, i))
				resp, err := client.Do(hr)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	return RawResult{Requests: n, PerSecond: float64(n) / took.Seconds(), CPUSec: (selfCPU() - cpu0).Seconds()}
}

// Result is one scenario in one shape.
type Result struct {
	Scenario        string             `json:"scenario"`
	Events          int                `json:"events"`
	Expected        int                `json:"expected_deliveries"`
	Delivered       int                `json:"delivered"`
	Duplicates      int                `json:"duplicates"`
	Lost            int                `json:"lost"`
	AcceptedPerSec  float64            `json:"accepted_per_second"`
	DeliveredPerSec float64            `json:"delivered_per_second"`
	RatioToRaw      float64            `json:"ratio_to_raw"`
	P50, P90, P99   float64            `json:"-"`
	Max             float64            `json:"-"`
	Latency         map[string]float64 `json:"latency_ms"`
	CPUSeconds      map[string]float64 `json:"cpu_seconds"`
	CPUMicrosEach   map[string]float64 `json:"cpu_us_per_delivery"`
	PeakRSSMB       map[string]float64 `json:"peak_rss_mb,omitempty"`
	// P99ToSteady200 is, for a steady 200/s run beside a disturbance, its
	// p99 over steady-200's in the same shape and run (0: not compared).
	P99ToSteady200 float64 `json:"p99_to_steady_200,omitempty"`
	// Run numbers the runs of a repeated scenario (0: not repeated); the
	// runs are followed by a row with their Spread, whose other figures
	// are totals (deliveries) or medians (rates).
	// HistoryLagS is, for a burst, how long after its last delivery the
	// history writer had stored all of it (historylag.go).
	HistoryLagS float64 `json:"history_lag_s,omitempty"`
	// EventMessages is, for a burst, about how many EVENTS messages its
	// events were stored in (event groups: pkg/stream group.go); 0 when
	// not known.
	EventMessages uint64  `json:"event_messages,omitempty"`
	Run           int     `json:"run,omitempty"`
	Spread        *Spread `json:"spread,omitempty"`
	Note          string  `json:"note,omitempty"`
}

func (b *bench) runShape(ctx context.Context, d *deployment, raw RawResult) ([]Result, error) {
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	b.shape = d.shape
	b.conn = conn
	b.client = postbackv1.NewEventServiceClient(conn)
	b.eps = postbackv1.NewEndpointServiceClient(conn)
	b.deliveries = postbackv1.NewDeliveryServiceClient(conn)
	b.natsURL = d.natsURL
	type scenario struct {
		name string
		// run runs the scenario under name: its own name, or one of its
		// own per run when it is repeated (then its accounts and receiver
		// tallies are that run's).
		run func(ctx context.Context, name string) (Result, error)
		// repeated scenarios run b.repeat times.
		repeated bool
		// besideSteady200 scenarios are a steady 200/s beside a
		// disturbance: their p99 is compared with steady-200's.
		besideSteady200 bool
	}
	scenarios := []scenario{
		{name: "burst-batch", run: func(ctx context.Context, n string) (Result, error) { return b.burst(ctx, n, true) }, repeated: true},
		{name: "burst-unary", run: func(ctx context.Context, n string) (Result, error) { return b.burst(ctx, n, false) }, repeated: true},
		{name: "steady-200", run: func(ctx context.Context, n string) (Result, error) {
			return b.steadyRun(ctx, n, "steady-200", 200, nil)
		}},
		{name: "steady-1000", run: func(ctx context.Context, n string) (Result, error) {
			return b.steadyRun(ctx, n, "steady-1000", 1000, nil)
		}},
		{name: "fan-out", run: b.fanout},
		{name: "noisy-neighbour", run: b.noisy, besideSteady200: true},
		{name: "noisy-intake", run: b.noisyIntake, besideSteady200: true},
		{name: "slow-receiver", run: b.slowReceiver, besideSteady200: true},
		{name: "poison", run: b.poison, besideSteady200: true},
	}
	var out []Result
	for _, s := range scenarios {
		if b.only != "" && !strings.Contains(","+b.only+",", ","+s.name+",") {
			continue
		}
		runs := 1
		if s.repeated {
			runs = b.repeat
		}
		var repeats []Result
		for run := 1; run <= runs; run++ {
			name, label := s.name, s.name
			if runs > 1 {
				name, label = fmt.Sprintf("%s-r%d", s.name, run), fmt.Sprintf("%s run %d/%d", s.name, run, runs)
			}
			r, err := b.measure(ctx, d, raw, label, func(ctx context.Context) (Result, error) { return s.run(ctx, name) })
			var skipped *skipError
			if errors.As(err, &skipped) {
				progress("%s: %s: skipped: %s", d.shape, label, skipped.reason)
				continue
			}
			if err != nil {
				return out, fmt.Errorf("%s: %w", label, err)
			}
			r.Scenario = s.name
			if runs > 1 {
				r.Run = run
				repeats = append(repeats, r)
			}
			if s.besideSteady200 {
				compareWithSteady200(&r, out)
				progress("%s: %s: %s", d.shape, label, r.Note)
			}
			out = append(out, r)
		}
		if len(repeats) > 1 {
			sum := summarize(s.name, repeats)
			progress("%s: %s over %d runs: deliver/s %s, ratio to raw %s (min / median / max)",
				d.shape, s.name, sum.Spread.Runs, sum.Spread.DeliveredPerSec.format("%.0f"), sum.Spread.RatioToRaw.format("%.3f"))
			out = append(out, sum)
		}
	}
	return out, nil
}

// skipError says a scenario cannot run in this deployment, and why; the
// bench goes on without it.
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

// measure runs one scenario (label names it in progress lines) and adds
// the figures every scenario has: CPU by process, peak RSS, the ratio to
// the raw reference and the latency map.
func (b *bench) measure(ctx context.Context, d *deployment, raw RawResult, label string, run func(context.Context) (Result, error)) (Result, error) {
	progress("%s: %s", d.shape, label)
	cpu0, self0 := d.cpu(), selfCPU()
	r, err := run(ctx)
	if err != nil {
		return r, err
	}
	cpu1, self1 := d.cpu(), selfCPU()
	r.CPUSeconds, r.CPUMicrosEach = map[string]float64{}, map[string]float64{}
	for name, c := range cpu1 {
		r.CPUSeconds[name] = (c - cpu0[name]).Seconds()
	}
	r.CPUSeconds["bench (load + receiver)"] = (self1 - self0).Seconds()
	for name, c := range r.CPUSeconds {
		if r.Delivered > 0 {
			r.CPUMicrosEach[name] = c * 1e6 / float64(r.Delivered)
		}
	}
	r.PeakRSSMB = map[string]float64{}
	for _, p := range d.procs {
		r.PeakRSSMB[p.name] = float64(p.peakRSS()) / (1 << 20)
	}
	if raw.PerSecond > 0 {
		r.RatioToRaw = r.DeliveredPerSec / raw.PerSecond
	}
	r.Latency = map[string]float64{"p50": r.P50, "p90": r.P90, "p99": r.P99, "max": r.Max}
	progress("%s: %s: %d/%d delivered, %.0f/s (%.3f of raw), p50 %.1f ms, p99 %.1f ms, max %.1f ms, dupes %d, lost %d",
		d.shape, label, r.Delivered, r.Expected, r.DeliveredPerSec, r.RatioToRaw, r.P50, r.P99, r.Max, r.Duplicates, r.Lost)
	return r, nil
}

// compareWithSteady200 gives r's p99 as a multiple of steady-200's in the
// same shape and run (earlier holds it if it ran): the same 200/s to an
// endpoint of its own, without the disturbance beside it.
func compareWithSteady200(r *Result, earlier []Result) {
	if r.Delivered == 0 {
		r.Note = joinNotes("none of the steady traffic was delivered within its wait: no p99", r.Note)
		return
	}
	var of string
	if r.Lost > 0 {
		of = fmt.Sprintf(" (of the %d delivered within the wait)", r.Delivered)
	}
	for _, x := range earlier {
		if x.Scenario == "steady-200" && x.P99 > 0 {
			r.P99ToSteady200 = r.P99 / x.P99
			r.Note = joinNotes(fmt.Sprintf("p99 %.1f ms%s, %.2f× steady-200's %.1f ms", r.P99, of, r.P99ToSteady200, x.P99), r.Note)
			return
		}
	}
	r.Note = joinNotes(fmt.Sprintf("p99 %.1f ms%s (steady-200 did not run: nothing to compare it with)", r.P99, of), r.Note)
}

// joinNotes joins the non-empty notes of a result.
func joinNotes(notes ...string) string {
	var kept []string
	for _, n := range notes {
		if n != "" {
			kept = append(kept, n)
		}
	}
	return strings.Join(kept, "; ")
}

// endpoint creates one unlimited (or limited) endpoint posting to the
// receiver under /r/<tag>.
func (b *bench) endpoint(ctx context.Context, account, tag string, rate float64) error {
	_, err := b.eps.CreateEndpoint(authed(ctx), &postbackv1.CreateEndpointRequest{Endpoint: b.endpointTo(account, answerOK, tag, rate)})
	return err
}

// endpointTo is an endpoint of account posting the burst's event to the
// receiver under /<behaviour>/<tag> (see the receiver's behaviours).
func (b *bench) endpointTo(account, behaviour, tag string, rate float64) *postbackv1.Endpoint {
	return &postbackv1.Endpoint{AccountId: account, EventType: "action_lifecycle",
		Url:    "http://" + b.rc.addr + "/" + behaviour + "/" + b.tag(tag) + "?t={Text1}",
		Method: postbackv1.HttpMethod_HTTP_METHOD_POST, BodyTemplate: bodyTemplate, MaxRequestsPerSecond: rate}
}

// request is one burst event published at sent. Every event carries the
// same data but its publish time (Text1), so the values are built once and
// shared (read-only) by every request; each request gets its own top-level
// field map. Building a fresh structpb tree per event made the load
// generator spend CPU that the pipeline it measures shares on this machine.
func request(account string, sent time.Time) *postbackv1.PublishRequest {
	fields := make(map[string]*structpb.Value, len(sharedEvent.Fields))
	for k, v := range sharedEvent.Fields {
		fields[k] = v
	}
	fields["Text1"] = structpb.NewStringValue(strconv.FormatInt(sent.UnixNano(), 10))
	return &postbackv1.PublishRequest{AccountId: account, EventType: "action_lifecycle", Data: &structpb.Struct{Fields: fields}}
}

var sharedEvent = func() *structpb.Struct {
	s, err := structpb.NewStruct(eventData(time.Time{}))
	if err != nil {
		panic(err)
	}
	return s
}()

// wait blocks until the tally has want distinct deliveries or the deadline.
func wait(ctx context.Context, t *tally, want int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d, _, _ := t.counts(); d >= want {
			return
		}
		select {
		case <-t.arrived:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *bench) finish(name string, t *tally, events, expected int, began, accepted time.Time) Result {
	distinct, _, dupes := t.counts()
	r := Result{Scenario: name, Events: events, Expected: expected, Delivered: distinct, Duplicates: dupes, Lost: expected - distinct}
	r.AcceptedPerSec = float64(events) / accepted.Sub(began).Seconds()
	t.mu.Lock()
	last := t.last
	t.mu.Unlock()
	if distinct > 0 {
		r.DeliveredPerSec = float64(distinct) / last.Sub(began).Seconds()
	}
	if b.timeline != "" {
		if err := t.writeTimeline(filepath.Join(b.timeline, b.tag(name)+".txt")); err != nil {
			progress("%s: timeline: %v", name, err)
		}
	}
	p50, p90, p99, mx := t.percentiles()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.P50, r.P90, r.P99, r.Max = ms(p50), ms(p90), ms(p99), ms(mx)
	return r
}

// burst publishes b.events as fast as the gateway accepts them: batches of
// 100 from 8 clients, or unary calls 64 at a time.
func (b *bench) burst(ctx context.Context, name string, batch bool) (Result, error) {
	account := "bench-" + name
	if err := b.endpoint(ctx, account, name, 0); err != nil {
		return Result{}, err
	}
	t := b.rc.tally(b.tag(name))
	var next atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	workers, per := 64, 1
	if batch {
		workers, per = 8, 100
	}
	if b.profile != nil {
		done := b.profile(name)
		defer done()
	}
	seq0 := b.eventsSeq(ctx)
	began := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := next.Add(int64(per)) - int64(per)
				if from >= int64(b.events) || ctx.Err() != nil {
					return
				}
				n := min(per, b.events-int(from))
				var err error
				if batch {
					var res *postbackv1.PublishBatchResponse
					res, err = b.publishBatch(authed(ctx), account, n, time.Now())
					for _, r := range res.GetResults() {
						if r.Error != nil && err == nil {
							err = fmt.Errorf("%s", r.Error.Message)
						}
					}
				} else {
					err = b.publish(authed(ctx), account, time.Now())
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Now()
	if errs.Load() > 0 {
		return Result{}, fmt.Errorf("%d publish calls failed, first: %v", errs.Load(), firstErr.Load())
	}
	seq1 := b.eventsSeq(ctx)
	wait(ctx, t, b.events, 90*time.Second)
	r := b.finish(name, t, b.events, b.events, began, accepted)
	if seq0 > 0 && seq1 > seq0 {
		r.EventMessages = seq1 - seq0
		progress("%s: %d events stored in about %d EVENTS messages (%.1f events a message)", name, b.events, r.EventMessages, float64(b.events)/float64(r.EventMessages))
	}
	if r.Lost > 0 {
		progress("%s: %d postbacks did not arrive; JetStream now: %s; the account's deliveries: %s", name, r.Lost, b.whereabouts(ctx), b.unfinished(ctx, account))
	}
	t.mu.Lock()
	last := t.last
	t.mu.Unlock()
	r.HistoryLagS = b.historyLag(ctx, last)
	return r, nil
}

// steadyRun publishes at rate per second for b.steady with unary calls.
func (b *bench) steadyRun(ctx context.Context, name, tag string, rate int, setup func() error) (Result, error) {
	account := "bench-" + tag
	if err := b.endpoint(ctx, account, tag, 0); err != nil && !strings.Contains(err.Error(), "exists") {
		return Result{}, err
	}
	if setup != nil {
		if err := setup(); err != nil {
			return Result{}, err
		}
	}
	t := b.rc.tally(b.tag(tag))
	total := int(float64(rate) * b.steady.Seconds())
	interval := time.Second / time.Duration(rate)
	began := time.Now()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var errs atomic.Int64
	for i := range total {
		due := began.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := b.publish(authed(ctx), account, time.Now()); err != nil {
				errs.Add(1)
			}
		}()
	}
	wg.Wait()
	accepted := time.Now()
	if errs.Load() > 0 {
		return Result{}, fmt.Errorf("%d publish calls failed", errs.Load())
	}
	wait(ctx, t, total, 30*time.Second)
	return b.finish(name, t, total, total, began, accepted), nil
}

// fanout: 1,000 endpoints across 100 accounts (10 each), 2,000 events
// spread over the accounts: 20,000 deliveries.
func (b *bench) fanout(ctx context.Context, name string) (Result, error) {
	const accounts, perAccount, events = 100, 10, 2000
	for a := range accounts {
		for range perAccount {
			if err := b.endpoint(ctx, fmt.Sprintf("fan-%03d", a), name, 0); err != nil {
				return Result{}, err
			}
		}
	}
	t := b.rc.tally(b.tag(name))
	began := time.Now()
	var wg sync.WaitGroup
	var errs atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < events/100; i += 8 {
				req := &postbackv1.PublishBatchRequest{}
				now := time.Now()
				for k := range 100 {
					req.Events = append(req.Events, request(fmt.Sprintf("fan-%03d", (i*100+k)%accounts), now))
				}
				if _, err := b.client.PublishBatch(authed(ctx), req); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Now()
	if errs.Load() > 0 {
		return Result{}, fmt.Errorf("%d publish calls failed", errs.Load())
	}
	wait(ctx, t, events*perAccount, 90*time.Second)
	return b.finish(name, t, events, events*perAccount, began, accepted), nil
}

// noisyBacklog is the 1/s endpoint's backlog in the noisy scenarios.
const noisyBacklog = 5000

// noisy: a 1/s endpoint gets a 5,000 backlog, then a steady 200/s runs to
// another endpoint; its p99 is compared with steady-200 without the noise.
// The quiet traffic starts once the backlog is a backlog: rendered and
// deferred to its slots. Taking the backlog in is noisy-intake's subject.
func (b *bench) noisy(ctx context.Context, name string) (Result, error) {
	const kind = "noisy"
	last, err := b.publishBacklog(ctx, kind)
	if err != nil {
		return Result{}, err
	}
	began := time.Now()
	if err := b.takenIn(ctx, "bench-"+kind, last, 60*time.Second); err != nil {
		return Result{}, err
	}
	progress("%s: the backlog was taken in after %s", name, time.Since(began).Round(10*time.Millisecond))
	return b.noisyQuiet(ctx, name, kind)
}

// noisyIntake: the steady 200/s runs first and, two seconds in, the 1/s
// endpoint's 5,000 events arrive at once; the steady traffic's p99 is
// compared with steady-200's (target: at most 2×, max 50 ms). Taking the
// backlog in (rendering it and deferring every job to its slot) is a
// second of both cores' work: the renderer runs at most its share of
// handlers for it while the steady account's events flow (stream.Pool).
// With -profile, the profiles are taken from the moment the backlog is
// published.
func (b *bench) noisyIntake(ctx context.Context, name string) (Result, error) {
	published := make(chan error, 1)
	go func() {
		select {
		case <-ctx.Done():
			published <- ctx.Err()
			return
		case <-time.After(2 * time.Second):
		}
		if b.profile != nil {
			done := b.profile(name)
			defer done()
		}
		_, err := b.publishBacklog(ctx, "intake")
		if err == nil {
			progress("%s: the backlog is published", name)
		}
		published <- err
	}()
	r, err := b.noisyQuiet(ctx, name, "intake")
	if perr := <-published; err == nil {
		err = perr
	}
	return r, err
}

// publishBacklog publishes the backlog of a noisy scenario (each has its
// own accounts, "bench-<kind>" for the 1/s endpoint and
// "bench-<kind>-quiet" for the steady one) and returns its last event's id.
func (b *bench) publishBacklog(ctx context.Context, kind string) (string, error) {
	if err := b.endpoint(ctx, "bench-"+kind, kind+"-slow", 1); err != nil {
		return "", err
	}
	// Encoded by the bench itself, as the bursts are: building and
	// marshalling 5,000 structpb trees took the bench's CPU (the steady
	// traffic's receiver is in the same process) in the very moment whose
	// effect on the steady traffic is measured.
	var last string
	for i := 0; i < noisyBacklog; i += 500 {
		res, err := b.publishBatch(authed(ctx), "bench-"+kind, 500, time.Now())
		if err != nil {
			return "", fmt.Errorf("publish the backlog: %w", err)
		}
		for _, r := range res.Results {
			if r.Error != nil {
				return "", fmt.Errorf("publish the backlog: %s", r.Error.Message)
			}
		}
		last = res.Results[len(res.Results)-1].EventId
	}
	return last, nil
}

// noisyQuiet runs a noisy scenario's steady 200/s beside its backlog.
func (b *bench) noisyQuiet(ctx context.Context, name, kind string) (Result, error) {
	r, err := b.steadyRun(ctx, name, kind+"-quiet", 200, nil)
	slow, _, _ := b.rc.tally(b.tag(kind + "-slow")).counts()
	r.Note = fmt.Sprintf("the 1/s endpoint delivered %d of its backlog meanwhile", slow)
	return r, err
}

// takenIn waits until the delivery of the backlog's last event and the
// account's 500 newest deliveries all wait for their slot (a next attempt
// time) or are done: the renderer and the sender have reached the end of
// the backlog.
func (b *bench) takenIn(ctx context.Context, account, lastEvent string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		l, err := b.deliveries.ListDeliveries(authed(ctx), &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: 500})
		if err != nil {
			return err
		}
		lastOne, err := b.deliveries.ListDeliveries(authed(ctx), &postbackv1.ListDeliveriesRequest{AccountId: account, EventId: lastEvent})
		if err != nil {
			return err
		}
		waiting := len(l.Deliveries) > 0 && len(lastOne.Deliveries) == 1
		for _, d := range append(l.Deliveries, lastOne.Deliveries...) {
			if d.NextAttemptTime == nil && d.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				waiting = false
			}
		}
		if waiting {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the backlog was not taken in within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func printReport(w io.Writer, r Report) {
	fmt.Fprintf(w, "\nPostback bench %s (commit %s, %d cores, %s GB, %s)\n", r.Date, r.Commit, r.Machine.Cores, r.Machine.MemoryGB, r.Elapsed)
	if r.Raw.PerSecond > 0 { // not measured when receiver-pacing runs alone
		fmt.Fprintf(w, "raw net/http reference: %.0f requests/s\n", r.Raw.PerSecond)
		fmt.Fprintf(w, "bare pipeline reference: %.0f delivered/s (%.2f of raw)\n", r.Bare.DeliveredPerSec, r.Bare.RatioToRaw)
	}
	printPacing(w, r.Pacing)
	for _, shape := range []string{"standalone", "multi-process"} {
		results, ok := r.Shapes[shape]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n%s\n%-16s %8s %6s %6s %9s %9s %6s %8s %8s %8s %8s  %s\n", shape, "scenario", "delivered", "dupes", "lost",
			"accept/s", "deliver/s", "ratio", "p50 ms", "p90 ms", "p99 ms", "max ms", "cpu µs/delivery by process; peak RSS MB")
		for _, x := range results {
			if x.Spread != nil {
				fmt.Fprintf(w, "%-16s %8d %6d %6d %9s  deliver/s %s, ratio %s (min / median / max)\n", x.label(), x.Delivered, x.Duplicates, x.Lost,
					"", x.Spread.DeliveredPerSec.format("%.0f"), x.Spread.RatioToRaw.format("%.3f"))
				continue
			}
			var cpu []string
			for name, us := range x.CPUMicrosEach {
				cpu = append(cpu, fmt.Sprintf("%s=%.0f", name, us))
			}
			var rss []string
			for name, mb := range x.PeakRSSMB {
				if mb > 0 {
					rss = append(rss, fmt.Sprintf("%s=%.0f", name, mb))
				}
			}
			sort.Strings(cpu)
			sort.Strings(rss)
			fmt.Fprintf(w, "%-16s %8d %6d %6d %9.0f %9.0f %6.3f %8.1f %8.1f %8.1f %8.1f  %s; %s\n", x.label(), x.Delivered, x.Duplicates, x.Lost,
				x.AcceptedPerSec, x.DeliveredPerSec, x.RatioToRaw, x.P50, x.P90, x.P99, x.Max, strings.Join(cpu, " "), strings.Join(rss, " "))
		}
		for _, x := range results {
			if x.Note != "" {
				fmt.Fprintf(w, "  %s: %s\n", x.label(), x.Note)
			}
		}
	}
}

func appendMarkdown(path string, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s — commit %s — %d cores, %s GB (%s)\n\n", r.Date[:10], r.Commit, r.Machine.Cores, r.Machine.MemoryGB, r.Elapsed)
	fmt.Fprintf(&b, "Raw net/http reference: %.0f requests/s. Bare pipeline reference: %.0f delivered/s (%.2f of raw).\n\n",
		r.Raw.PerSecond, r.Bare.DeliveredPerSec, r.Bare.RatioToRaw)
	b.WriteString("| shape | scenario | delivered | dupes | lost | deliver/s | ratio to raw | p50 ms | p99 ms | max ms | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	var notes []string
	for _, shape := range []string{"standalone", "multi-process"} {
		for _, x := range r.Shapes[shape] {
			if x.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s, %s: %s\n", shape, x.label(), x.Note))
			}
			if x.Spread != nil {
				fmt.Fprintf(&b, "| %s | %s (min / median / max) | %d/%d | %d | %d | %s | %s | | | | |\n", shape, x.label(), x.Delivered, x.Expected,
					x.Duplicates, x.Lost, x.Spread.DeliveredPerSec.format("%.0f"), x.Spread.RatioToRaw.format("%.3f"))
				continue
			}
			var rss float64
			for _, v := range x.PeakRSSMB {
				rss = max(rss, v)
			}
			fmt.Fprintf(&b, "| %s | %s | %d/%d | %d | %d | %.0f | %.3f | %.1f | %.1f | %.1f | %.0f |\n", shape, x.label(), x.Delivered, x.Expected,
				x.Duplicates, x.Lost, x.DeliveredPerSec, x.RatioToRaw, x.P50, x.P99, x.Max, rss)
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			b.WriteString(n)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(b.String())
	return err
}
