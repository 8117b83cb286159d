package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// token is the operator token the standalone is started with.
const token = "bench-history-operator-token"

// callTimeout bounds every gRPC call.
const callTimeout = 10 * time.Second

// pageSize is the delivery log's page in the list queries.
const pageSize = 50

// warmups are the calls of each query made (and checked) before the
// measured ones.
const warmups = 3

type client struct {
	conn       *grpc.ClientConn
	deliveries postbackv1.DeliveryServiceClient
	endpoints  postbackv1.EndpointServiceClient
	events     postbackv1.EventServiceClient
}

func dial(addr string) (*client, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, deliveries: postbackv1.NewDeliveryServiceClient(conn),
		endpoints: postbackv1.NewEndpointServiceClient(conn), events: postbackv1.NewEventServiceClient(conn)}, nil
}

// call is a context for one call: the operator token, callTimeout.
func call(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), cancel
}

// Latency is one query's figures over its samples, in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	// NA says why the query was not measured (nothing to ask for).
	NA string `json:"not_measured,omitempty"`
	// Note qualifies the figures (e.g. the answers were empty pages).
	Note string `json:"note,omitempty"`
}

func summarize(d []time.Duration) *Latency {
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	// Nearest rank: the smallest value with at least q of the samples at
	// or below it.
	at := func(q float64) time.Duration { return d[max(0, int(math.Ceil(q*float64(len(d))))-1)] }
	return &Latency{Samples: len(d), P50: ms(at(0.50)), P99: ms(at(0.99)), Max: ms(d[len(d)-1])}
}

// The queries, in the report's order.
var queryNames = []string{"list", "endpoint", "status", "range", "event", "page100", "get", "attempts"}

var queryTitles = map[string]string{
	"list":     "ListDeliveries, account only, page of 50 newest first",
	"endpoint": "ListDeliveries, endpoint filter (a random one of the 10)",
	"status":   "ListDeliveries, status filter (FAILED)",
	"range":    "ListDeliveries, time range (a random 1-day window)",
	"event":    "ListDeliveries, event filter (a sampled event)",
	"page100":  "ListDeliveries, the 100th page of 50 by its cursor",
	"get":      "GetDelivery of a sampled id",
	"attempts": "ListAttempts of a sampled id",
}

// query is one measured call: it returns how long the RPC took and an
// error when it failed or its answer was wrong.
type query func(ctx context.Context) (time.Duration, error)

// measureQueries runs each query warmups times and then samples times,
// checking every answer against the model, and returns the latencies. A
// wrong answer ends the run: no figure is given for a wrong answer.
func (c *client) measureQueries(ctx context.Context, m *model, samples int, rng *rand.Rand, label string) (map[string]*Latency, error) {
	m.sort()
	empties := map[string]int{}
	qs, na, notes, err := c.queries(ctx, m, rng, empties)
	if err != nil {
		return nil, err
	}
	out := map[string]*Latency{}
	for _, name := range queryNames {
		if reason, ok := na[name]; ok {
			out[name] = &Latency{NA: reason}
			progress("%s: %s: not measured: %s", label, name, reason)
			continue
		}
		q := qs[name]
		d := make([]time.Duration, 0, samples)
		for i := range warmups + samples {
			if i == warmups {
				empties[name] = 0 // count the measured calls only
			}
			took, err := q(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s (%s), call %d: %w", name, queryTitles[name], i+1, err)
			}
			if i >= warmups {
				d = append(d, took)
			}
		}
		out[name] = summarize(d)
		if k := empties[name]; k > 0 {
			notes[name] = joinNotes(notes[name], fmt.Sprintf("%d of the %d answers were empty pages", k, samples))
		}
		out[name].Note = notes[name]
		var note string
		if notes[name] != "" {
			note = "; " + notes[name]
		}
		progress("%s: %-8s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms  (%d calls, answers checked%s)",
			label, name, out[name].P50, out[name].P99, out[name].Max, samples, note)
	}
	return out, nil
}

func micros(ts *timestamppb.Timestamp) int64 { return ts.AsTime().UnixMicro() }

// checkPage checks a page of the account's deliveries: newest first by
// (create time, id), every one of the account and passing keep, and their
// create times those the model says the page holds.
func checkPage(ds []*postbackv1.Delivery, want []int64, keep func(*postbackv1.Delivery) error) error {
	for i, d := range ds {
		if d.AccountId != account {
			return fmt.Errorf("delivery %s of account %q in a list of account %q", d.Id, d.AccountId, account)
		}
		if keep != nil {
			if err := keep(d); err != nil {
				return err
			}
		}
		if i > 0 {
			p := ds[i-1]
			pc, c := micros(p.CreateTime), micros(d.CreateTime)
			if c > pc || c == pc && d.Id >= p.Id {
				return fmt.Errorf("not newest first: %s (%d) after %s (%d)", d.Id, c, p.Id, pc)
			}
		}
	}
	if len(ds) != len(want) {
		return fmt.Errorf("%d deliveries on the page, want %d", len(ds), len(want))
	}
	for i, d := range ds {
		if c := micros(d.CreateTime); c != want[i] {
			return fmt.Errorf("delivery %d of the page (%s) was created at %s, want %s", i, d.Id,
				time.UnixMicro(c).UTC().Format(time.RFC3339Nano), time.UnixMicro(want[i]).UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// queries builds the queries, or says why one cannot run, and notes what
// qualifies a query's figures.
// empties counts, by query, the calls whose right answer was an empty page.
func (c *client) queries(ctx context.Context, m *model, rng *rand.Rand, empties map[string]int) (qs map[string]query, na, notes map[string]string, err error) {
	qs, na, notes = map[string]query{}, map[string]string{}, map[string]string{}
	want := func(name string, w []int64) []int64 {
		if len(w) == 0 {
			empties[name]++
		}
		return w
	}
	list := func(ctx context.Context, req *postbackv1.ListDeliveriesRequest) (*postbackv1.ListDeliveriesResponse, time.Duration, error) {
		cctx, cancel := call(ctx)
		defer cancel()
		t0 := time.Now()
		res, err := c.deliveries.ListDeliveries(cctx, req)
		took := time.Since(t0)
		if err != nil {
			return nil, took, fmt.Errorf("ListDeliveries(%v): %w", req, err)
		}
		return res, took, nil
	}

	qs["list"] = func(ctx context.Context) (time.Duration, error) {
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: pageSize})
		if err != nil {
			return took, err
		}
		return took, checkPage(res.Deliveries, want("list", page(m.all, 0, pageSize)), nil)
	}

	// The endpoint filter picks one of the fill's endpoints that hold
	// deliveries (none do at stage 0: then the burst's endpoint).
	var eps []string
	for _, ep := range m.endpoints {
		if len(m.byEndpoint[ep]) > 0 {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		notes["endpoint"] = "the fill's endpoints hold nothing yet: the burst's endpoint"
		for ep := range m.byEndpoint {
			eps = append(eps, ep)
		}
		slices.Sort(eps)
	}
	if len(eps) == 0 {
		na["endpoint"] = "no endpoint holds deliveries"
	}
	qs["endpoint"] = func(ctx context.Context) (time.Duration, error) {
		ep := eps[rng.IntN(len(eps))]
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, EndpointId: ep, PageSize: pageSize})
		if err != nil {
			return took, err
		}
		return took, checkPage(res.Deliveries, want("endpoint", page(m.byEndpoint[ep], 0, pageSize)), func(d *postbackv1.Delivery) error {
			if d.EndpointId != ep {
				return fmt.Errorf("delivery %s of endpoint %s in a list of endpoint %s", d.Id, d.EndpointId, ep)
			}
			return nil
		})
	}

	qs["status"] = func(ctx context.Context) (time.Duration, error) {
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, Status: stFailed, PageSize: pageSize})
		if err != nil {
			return took, err
		}
		return took, checkPage(res.Deliveries, want("status", page(m.byStatus[stFailed], 0, pageSize)), func(d *postbackv1.Delivery) error {
			if d.Status != stFailed {
				return fmt.Errorf("delivery %s is %s in a list of FAILED", d.Id, d.Status)
			}
			return nil
		})
	}

	now := time.Now()
	qs["range"] = func(ctx context.Context) (time.Duration, error) {
		// A day starting anywhere from 29 days to 1 day ago.
		start := now.Add(-fillSpan + time.Duration(rng.Int64N(int64(fillSpan-24*time.Hour)))).Truncate(time.Microsecond)
		end := start.Add(24 * time.Hour)
		s, e := start.UnixMicro(), end.UnixMicro()
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, StartTime: timestamppb.New(start),
			EndTime: timestamppb.New(end), PageSize: pageSize})
		if err != nil {
			return took, err
		}
		return took, checkPage(res.Deliveries, want("range", page(window(m.all, s, e), 0, pageSize)), func(d *postbackv1.Delivery) error {
			if c := micros(d.CreateTime); c < s || c >= e {
				return fmt.Errorf("delivery %s created at %d, outside [%d, %d)", d.Id, c, s, e)
			}
			return nil
		})
	}

	if len(m.res) == 0 {
		for _, q := range []string{"event", "get", "attempts"} {
			na[q] = "the history holds no delivery to ask for"
		}
	}
	pick := func() sample { return m.res[rng.IntN(len(m.res))] }
	qs["event"] = func(ctx context.Context) (time.Duration, error) {
		s := pick()
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, EventId: s.Event, PageSize: pageSize})
		if err != nil {
			return took, err
		}
		if len(res.Deliveries) != 1 || res.Deliveries[0].Id != s.ID || res.Deliveries[0].EventId != s.Event {
			var got []string
			for _, d := range res.Deliveries {
				got = append(got, d.Id)
			}
			return took, fmt.Errorf("event %s: got deliveries %v, want exactly %s", s.Event, got, s.ID)
		}
		return took, nil
	}

	qs["get"] = func(ctx context.Context) (time.Duration, error) {
		s := pick()
		cctx, cancel := call(ctx)
		defer cancel()
		t0 := time.Now()
		d, err := c.deliveries.GetDelivery(cctx, &postbackv1.GetDeliveryRequest{Id: s.ID})
		took := time.Since(t0)
		if err != nil {
			return took, fmt.Errorf("GetDelivery(%s): %w", s.ID, err)
		}
		if d.Id != s.ID || d.AccountId != account || d.EndpointId != s.Endpoint || d.EventId != s.Event || micros(d.CreateTime) != s.Created {
			return took, fmt.Errorf("GetDelivery(%s) answered %s (account %s, endpoint %s, event %s, created %d), want endpoint %s, event %s, created %d",
				s.ID, d.Id, d.AccountId, d.EndpointId, d.EventId, micros(d.CreateTime), s.Endpoint, s.Event, s.Created)
		}
		return took, nil
	}

	qs["attempts"] = func(ctx context.Context) (time.Duration, error) {
		s := pick()
		cctx, cancel := call(ctx)
		defer cancel()
		t0 := time.Now()
		res, err := c.deliveries.ListAttempts(cctx, &postbackv1.ListAttemptsRequest{DeliveryId: s.ID})
		took := time.Since(t0)
		if err != nil {
			return took, fmt.Errorf("ListAttempts(%s): %w", s.ID, err)
		}
		if len(res.Attempts) != s.Attempts {
			return took, fmt.Errorf("ListAttempts(%s): %d attempts, want %d", s.ID, len(res.Attempts), s.Attempts)
		}
		for i, a := range res.Attempts {
			if a.DeliveryId != s.ID || a.Number != int32(i) {
				return took, fmt.Errorf("ListAttempts(%s): attempt %d is number %d of %s", s.ID, i, a.Number, a.DeliveryId)
			}
		}
		return took, nil
	}

	// The 100th page: walk the first 99 once (checking each) for its token.
	const pages = 99
	if m.total() <= pages*pageSize {
		na["page100"] = fmt.Sprintf("the account holds %d deliveries: no 100th page of %d", m.total(), pageSize)
		return qs, na, notes, nil
	}
	var tok string
	var last *postbackv1.Delivery
	for p := range pages {
		res, _, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: pageSize, PageToken: tok})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("page100: walking to page 100, page %d: %w", p+1, err)
		}
		if err := checkPage(res.Deliveries, page(m.all, p*pageSize, pageSize), nil); err != nil {
			return nil, nil, nil, fmt.Errorf("page100: walking to page 100, page %d: %w", p+1, err)
		}
		if res.NextPageToken == "" {
			return nil, nil, nil, fmt.Errorf("page100: page %d has no next page token, but the account holds %d deliveries", p+1, m.total())
		}
		tok, last = res.NextPageToken, res.Deliveries[len(res.Deliveries)-1]
	}
	lastC := micros(last.CreateTime)
	qs["page100"] = func(ctx context.Context) (time.Duration, error) {
		res, took, err := list(ctx, &postbackv1.ListDeliveriesRequest{AccountId: account, PageSize: pageSize, PageToken: tok})
		if err != nil {
			return took, err
		}
		return took, checkPage(res.Deliveries, page(m.all, pages*pageSize, pageSize), func(d *postbackv1.Delivery) error {
			if c := micros(d.CreateTime); c > lastC || c == lastC && d.Id >= last.Id {
				return fmt.Errorf("delivery %s on page 100 is not older than page 99's last, %s", d.Id, last.Id)
			}
			return nil
		})
	}
	return qs, na, notes, nil
}

// joinNotes joins the non-empty notes.
func joinNotes(notes ...string) string {
	var kept []string
	for _, n := range notes {
		if n != "" {
			kept = append(kept, n)
		}
	}
	return strings.Join(kept, "; ")
}
