package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const (
	// account is the one account every delivery of the bench belongs to.
	account = "brand-bench"
	// eventType is the type of every event.
	eventType = "action_lifecycle"
	// fillEndpoints are the endpoints the fill spreads deliveries over.
	fillEndpoints = 10
	// fillSpan is how far back the fill's create times go: within the
	// standalone's retention (720h), so nothing is expired at its start.
	fillSpan = 29 * 24 * time.Hour
	// fillBatch is the entries per Append, about what the history writer
	// hands the store.
	fillBatch = 2000
	// reservoirSize is how many deliveries are kept to query by id.
	reservoirSize = 2000
	// progressEvery is how often (in deliveries) the fill says where it is.
	progressEvery = 100_000
)

// Statuses, shortened.
const (
	stPending   = postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	stRetrying  = postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
	stSucceeded = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	stFailed    = postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	stDead      = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	stCancelled = postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
)

// sample is a delivery kept to be asked for by id (GetDelivery,
// ListAttempts) and by event (ListDeliveries with an event filter).
type sample struct {
	ID, Endpoint, Event string
	Created             int64 // unix microseconds
	Attempts            int
}

// model is what the account's history holds, as the bench wrote it (the
// fill) and read it back (the bursts): every delivery's create time, by
// endpoint and by status, to say what each list must answer; and a
// reservoir sample of the deliveries.
type model struct {
	all        []int64 // create times (unix µs); newest first once sorted
	byEndpoint map[string][]int64
	byStatus   map[postbackv1.DeliveryStatus][]int64
	sorted     bool
	endpoints  []string // the fill's endpoints
	res        []sample
	seen       int64 // deliveries offered to the reservoir
	rng        *rand.Rand
}

func newModel(rng *rand.Rand) *model {
	m := &model{byEndpoint: map[string][]int64{}, byStatus: map[postbackv1.DeliveryStatus][]int64{}, rng: rng}
	t := time.Now()
	for range fillEndpoints {
		m.endpoints = append(m.endpoints, id.New(id.Endpoint, t))
	}
	return m
}

func (m *model) total() int { return len(m.all) }

// add records a delivery the history holds.
func (m *model) add(s sample, status postbackv1.DeliveryStatus) {
	m.all = append(m.all, s.Created)
	m.byEndpoint[s.Endpoint] = append(m.byEndpoint[s.Endpoint], s.Created)
	m.byStatus[status] = append(m.byStatus[status], s.Created)
	m.sorted = false
	// Reservoir sampling (algorithm R): every delivery seen so far is in
	// the sample with the same probability.
	m.seen++
	if len(m.res) < reservoirSize {
		m.res = append(m.res, s)
	} else if j := m.rng.Int64N(m.seen); j < reservoirSize {
		m.res[j] = s
	}
}

// sort puts every list newest first, as ListDeliveries returns them.
func (m *model) sort() {
	if m.sorted {
		return
	}
	desc := func(s []int64) {
		slices.Sort(s)
		slices.Reverse(s)
	}
	desc(m.all)
	for _, s := range m.byEndpoint {
		desc(s)
	}
	for _, s := range m.byStatus {
		desc(s)
	}
	m.sorted = true
}

// page is the part of a newest-first list a page at offset of limit holds.
func page(desc []int64, offset, limit int) []int64 {
	if offset >= len(desc) {
		return nil
	}
	return desc[offset:min(len(desc), offset+limit)]
}

// window is the part of a newest-first list created in [start, end).
func window(desc []int64, start, end int64) []int64 {
	i, _ := slices.BinarySearchFunc(desc, end, func(c, t int64) int { // first c < end
		if c >= t {
			return -1
		}
		return 1
	})
	j, _ := slices.BinarySearchFunc(desc, start, func(c, t int64) int { // first c < start
		if c >= t {
			return -1
		}
		return 1
	})
	return desc[i:j]
}

// pickStatus draws a status: 80% SUCCEEDED, 8% FAILED, 6% DEAD, 3%
// RETRYING, 2% CANCELLED, 1% PENDING.
func pickStatus(rng *rand.Rand) postbackv1.DeliveryStatus {
	switch n := rng.IntN(100); {
	case n < 80:
		return stSucceeded
	case n < 88:
		return stFailed
	case n < 94:
		return stDead
	case n < 97:
		return stRetrying
	case n < 99:
		return stCancelled
	default:
		return stPending
	}
}

// attemptsFor is how many attempts a delivery in status st has: 1 for
// SUCCEEDED, 3 for FAILED and DEAD (numbers 0..2), 2 for RETRYING (a retry
// scheduled), 1 for CANCELLED (failed once, then its endpoint went), none
// for PENDING.
func attemptsFor(st postbackv1.DeliveryStatus) int {
	switch st {
	case stSucceeded, stCancelled:
		return 1
	case stFailed, stDead:
		return 3
	case stRetrying:
		return 2
	}
	return 0
}

// retryGap is the time between a fill delivery's attempts.
const retryGap = 30 * time.Second

// makeDelivery builds the entries of one fill delivery created at created
// (whole microseconds) to endpoint ep in status st: one per attempt (one
// with no attempt when it has none), versions rising to the delivery's
// update time in µs, the job (~300 bytes, the stream's job encoding, so the
// gateway can read it back) on the first.
func makeDelivery(created time.Time, ep string, st postbackv1.DeliveryStatus, seq int64) ([]history.Entry, sample, error) {
	dlv := id.New(id.Delivery, created)
	evt := id.New(id.Event, created)
	n := attemptsFor(st)
	url := "https://pb.brand-bench.example/conv?event=" + evt
	job := delivery.Job{DeliveryID: dlv, AccountID: account, EndpointID: ep, EventID: evt, EventType: eventType,
		Created: created, Published: created, Method: "POST", URL: url,
		Body:        []byte(`{"action_id":"ACT-` + strconv.FormatInt(seq, 10) + `","status":"APPROVED","payout":10.5}`),
		ContentType: "application/json"}
	jb, err := job.MarshalBinary()
	if err != nil {
		return nil, sample{}, err
	}
	var code int32
	var lastErr, reason string
	outcome := postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE
	switch st {
	case stSucceeded:
		code, outcome = 200, postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS
	case stFailed:
		lastErr, reason = "dial tcp: lookup pb.brand-bench.example: no such host", "the endpoint's host does not resolve"
	case stDead:
		code, lastErr, reason = 503, "503 Service Unavailable", "every retry failed"
	case stRetrying:
		code, lastErr = 500, "500 Internal Server Error"
	case stCancelled:
		code, lastErr, reason = 500, "500 Internal Server Error", "the endpoint was disabled"
	}
	attempts := make([]*postbackv1.Attempt, n)
	updated := created.Add(3 * time.Millisecond)
	for k := range n {
		start := created.Add(time.Duration(k)*retryGap + 5*time.Millisecond)
		dur := 42 * time.Millisecond
		a := &postbackv1.Attempt{DeliveryId: dlv, Number: int32(k), StartTime: timestamppb.New(start), Duration: durationpb.New(dur),
			Url: url, StatusCode: code, Outcome: outcome, Retryable: st != stFailed, Error: lastErr}
		if code == 200 {
			a.ResponseBody = "OK"
		}
		attempts[k] = a
		updated = start.Add(dur).Truncate(time.Microsecond)
	}
	d := &postbackv1.Delivery{Id: dlv, AccountId: account, EndpointId: ep, EventId: evt, EventType: eventType, Status: st,
		AttemptCount: int32(n), LastStatusCode: code, LastError: lastErr, Reason: reason,
		CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(updated)}
	if st == stRetrying {
		d.NextAttemptTime = timestamppb.New(updated.Add(time.Hour))
	}
	version := updated.UnixMicro()
	var entries []history.Entry
	if n == 0 {
		entries = []history.Entry{{Delivery: d, Job: jb, Version: version}}
	}
	for k, a := range attempts {
		e := history.Entry{Delivery: d, Attempt: a, Version: version - int64(n-1-k)}
		if k == 0 {
			e.Job = jb
		}
		entries = append(entries, e)
	}
	return entries, sample{ID: dlv, Endpoint: ep, Event: evt, Created: created.UnixMicro(), Attempts: n}, nil
}

// fillResult is what a fill did.
type fillResult struct {
	Deliveries int
	Entries    int
	Took       time.Duration
}

// fill appends n deliveries to store, their create times spread evenly over
// the fillSpan before now, in batches of about fillBatch entries, and
// records them in m. Batches are built by one goroutine while the previous
// one is appended.
func fill(ctx context.Context, store history.Store, m *model, n int, label string) (fillResult, error) {
	type batch struct {
		entries []history.Entry
		samples []sample
		status  []postbackv1.DeliveryStatus
	}
	now := time.Now().Truncate(time.Microsecond)
	first := now.Add(-fillSpan)
	step := float64(fillSpan) / float64(n)
	gen := rand.New(rand.NewPCG(m.rng.Uint64(), m.rng.Uint64()))
	batches := make(chan batch, 2)
	genErr := make(chan error, 1)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	base := int64(m.total()) // read here: the loop below adds to m meanwhile
	go func() {
		defer close(batches)
		var b batch
		for i := range n {
			created := first.Add(time.Duration(float64(i)*step + gen.Float64()*step)).Truncate(time.Microsecond)
			if created.After(now) {
				created = now
			}
			st := pickStatus(gen)
			entries, s, err := makeDelivery(created, m.endpoints[gen.IntN(len(m.endpoints))], st, base+int64(i))
			if err != nil {
				genErr <- err
				return
			}
			b.entries = append(b.entries, entries...)
			b.samples = append(b.samples, s)
			b.status = append(b.status, st)
			if len(b.entries) >= fillBatch || i == n-1 {
				select {
				case batches <- b:
				case <-gctx.Done():
					return
				}
				b = batch{entries: make([]history.Entry, 0, fillBatch+4)}
			}
		}
	}()
	var r fillResult
	start := time.Now()
	nextProgress := progressEvery
	for b := range batches {
		actx, acancel := context.WithTimeout(ctx, 2*time.Minute)
		err := store.Append(actx, b.entries)
		acancel()
		if err != nil {
			return r, fmt.Errorf("fill: append %d entries after %d deliveries: %w", len(b.entries), r.Deliveries, err)
		}
		for i, s := range b.samples {
			m.add(s, b.status[i])
		}
		r.Deliveries += len(b.samples)
		r.Entries += len(b.entries)
		if r.Deliveries >= nextProgress {
			el := time.Since(start)
			progress("%s: fill %d/%d deliveries (%d entries) in %s, %.0f deliveries/s", label, r.Deliveries, n, r.Entries,
				el.Round(100*time.Millisecond), float64(r.Deliveries)/el.Seconds())
			nextProgress += progressEvery
		}
	}
	select {
	case err := <-genErr:
		return r, fmt.Errorf("fill: %w", err)
	default:
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.Deliveries != n {
		return r, fmt.Errorf("fill: appended %d deliveries, want %d", r.Deliveries, n)
	}
	r.Took = time.Since(start)
	return r, nil
}

// verifyCounts checks, with the store's own Counts, that it holds what the
// model says: every endpoint's deliveries and every status's, over a range
// wider than any create time written.
func verifyCounts(ctx context.Context, store history.Store, m *model) error {
	now := time.Now()
	start, end := now.Add(-fillSpan-48*time.Hour), now.Add(24*time.Hour)
	byStatus := map[postbackv1.DeliveryStatus]int64{}
	var total int64
	for ep, want := range m.byEndpoint {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		c, err := store.Counts(cctx, ep, start, end)
		cancel()
		if err != nil {
			return fmt.Errorf("counts of %s: %w", ep, err)
		}
		var got int64
		for st, k := range c {
			got += k
			byStatus[st] += k
		}
		if got != int64(len(want)) {
			return fmt.Errorf("the store holds %d deliveries of endpoint %s, the bench wrote %d", got, ep, len(want))
		}
		total += got
	}
	for st, want := range m.byStatus {
		if byStatus[st] != int64(len(want)) {
			return fmt.Errorf("the store holds %d %s deliveries, the bench wrote %d", byStatus[st], st, len(want))
		}
	}
	if total != int64(m.total()) {
		return fmt.Errorf("the store holds %d deliveries, the bench wrote %d", total, m.total())
	}
	return nil
}
