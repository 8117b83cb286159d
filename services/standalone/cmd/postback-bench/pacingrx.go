package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/postback-dev/postback/pkg/schedule"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// The receiver-pacing scenario (issue 20, item 4): a brand's endpoint
// allows 200 requests/s, but its server serves only 50/s: above that (more
// than limitedRate requests accepted in the last second) it answers 429
// with Retry-After: 1. pacingEvents deliveries are published at once, twice
// in the same deployment: to an endpoint with adaptive pacing turned off
// (adaptive_pacing_disabled), then to one with it on. Reported for each:
// the requests the receiver refused, and the time from the first publish
// to the last delivery accepted (every refused delivery is retried by the
// retry schedule until it gets through).
//
// Its own deployment, per shape: the seed's retry schedule scaled by
// pacingScheduleScale (15 s → 150 ms, 3 min → 1.8 s, 15 min → 9 s, 2 h →
// 72 s, 6 h → 216 s), with its proportions and its 4xx rule (a 429 jumps to
// retry 4) intact. Unscaled, a refused delivery waits at least 3 minutes
// for its retry and the arm without pacing would take hours; scaled, both
// arms end within pacingLimit. Bounded in count and time; loopback only.
const (
	pacingEvents        = 2000
	limitedRate         = 50 // requests the receiver accepts in any second
	pacingEndpointRate  = 200
	pacingScheduleScale = 0.01
	pacingLimit         = 6 * time.Minute // per arm
)

// rateWindow is a rate-limited receiver's state: the accepted requests of
// the last second, and how many it refused.
type rateWindow struct {
	mu       sync.Mutex
	accepted []time.Time
	refused  int
}

// admit reports whether a request arriving at now is accepted, and counts
// a refusal.
func (w *rateWindow) admit(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for i < len(w.accepted) && now.Sub(w.accepted[i]) >= time.Second {
		i++
	}
	w.accepted = w.accepted[i:]
	if len(w.accepted) >= limitedRate {
		w.refused++
		return false
	}
	w.accepted = append(w.accepted, now)
	return true
}

func (w *rateWindow) refusals() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

func (r *receiver) window(scenario string) *rateWindow {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.limited[scenario]
	if !ok {
		w = &rateWindow{}
		r.limited[scenario] = w
	}
	return w
}

// answerLimitedly answers 200 while fewer than limitedRate requests were
// accepted in the last second, else 429 with Retry-After: 1. Only accepted
// requests count as delivered.
func (r *receiver) answerLimitedly(w http.ResponseWriter, t *tally, scenario, id string, sent int64, now time.Time) {
	if !r.window(scenario).admit(now) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, "slow down")
		return
	}
	t.add(id, sent, now)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
}

// PacingArm is one arm of the receiver-pacing scenario.
type PacingArm struct {
	Pacing     bool    `json:"pacing"`
	Deliveries int     `json:"deliveries"`
	Delivered  int     `json:"delivered"`
	Duplicates int     `json:"duplicates"`
	Refused    int     `json:"refused_requests"`
	TookS      float64 `json:"time_to_deliver_all_s"` // to the last accepted request
	Complete   bool    `json:"complete"`              // every delivery arrived within pacingLimit
}

// PacingResult is the receiver-pacing scenario in one shape.
type PacingResult struct {
	Shape         string    `json:"shape"`
	Schedule      string    `json:"retry_schedule"`
	ReceiverRate  int       `json:"receiver_rate"`
	EndpointRate  float64   `json:"endpoint_rate"`
	Off           PacingArm `json:"pacing_off"`
	On            PacingArm `json:"pacing_on"`
	RefusedCut    float64   `json:"refused_cut"` // 1 - refused(on) / refused(off)
	TimeRatio     float64   `json:"time_ratio"`  // took(on) / took(off)
	MeetsRefused  bool      `json:"meets_refused_target"`
	MeetsDuration bool      `json:"meets_time_target"`
}

// receiverPacing runs the scenario in a deployment of its own of shape.
func (b *bench) receiverPacing(ctx context.Context, o options, shape, work string) (PacingResult, error) {
	sched := schedule.Default().Scale(pacingScheduleScale).String()
	env := []string{"POSTBACK_RETRY_SCHEDULE=" + sched}
	dir := filepath.Join(work, "pacing-"+shape)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return PacingResult{}, err
	}
	d, err := startShape(ctx, shape, o.bin, o.redis, dir, false, env...)
	if err != nil {
		return PacingResult{}, err
	}
	defer d.stop()
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return PacingResult{}, err
	}
	defer conn.Close()
	b.shape, b.conn, b.natsURL = d.shape, conn, d.natsURL
	b.client = postbackv1.NewEventServiceClient(conn)
	b.eps = postbackv1.NewEndpointServiceClient(conn)
	b.deliveries = postbackv1.NewDeliveryServiceClient(conn)
	res := PacingResult{Shape: d.shape, Schedule: sched, ReceiverRate: limitedRate, EndpointRate: pacingEndpointRate}
	for _, on := range []bool{false, true} {
		arm, err := b.pacingArm(ctx, on)
		if err != nil {
			return res, err
		}
		if on {
			res.On = arm
		} else {
			res.Off = arm
		}
	}
	if res.Off.Refused > 0 {
		res.RefusedCut = 1 - float64(res.On.Refused)/float64(res.Off.Refused)
	}
	if res.Off.TookS > 0 {
		res.TimeRatio = res.On.TookS / res.Off.TookS
	}
	res.MeetsRefused = res.RefusedCut >= 0.9
	res.MeetsDuration = res.On.Complete && (!res.Off.Complete || res.On.TookS <= res.Off.TookS)
	progress("%s: receiver-pacing: refused %d without pacing, %d with (%.1f%% fewer); all delivered in %.1f s without, %.1f s with (ratio %.2f)",
		d.shape, res.Off.Refused, res.On.Refused, 100*res.RefusedCut, res.Off.TookS, res.On.TookS, res.TimeRatio)
	return res, nil
}

// pacingArm publishes pacingEvents deliveries to a fresh endpoint (pacing
// on or off) and waits for all of them to be accepted.
func (b *bench) pacingArm(ctx context.Context, pacing bool) (PacingArm, error) {
	name := "pacing-off"
	if pacing {
		name = "pacing-on"
	}
	account := "bench-" + name
	ep := b.endpointTo(account, answerLimited, name, pacingEndpointRate)
	ep.AdaptivePacingDisabled = !pacing
	if _, err := b.eps.CreateEndpoint(authed(ctx), &postbackv1.CreateEndpointRequest{Endpoint: ep}); err != nil {
		return PacingArm{}, fmt.Errorf("create the endpoint of %s: %w", account, err)
	}
	t := b.rc.tally(b.tag(name))
	progress("%s: receiver-pacing, %s: %d deliveries to an endpoint allowing %d/s, receiver serving %d/s",
		b.shape, name, pacingEvents, pacingEndpointRate, limitedRate)
	began := time.Now()
	if err := b.publishAll(ctx, account, pacingEvents); err != nil {
		return PacingArm{}, err
	}
	wait(ctx, t, pacingEvents, pacingLimit)
	distinct, _, dupes := t.counts()
	t.mu.Lock()
	last := t.last
	t.mu.Unlock()
	arm := PacingArm{Pacing: pacing, Deliveries: pacingEvents, Delivered: distinct, Duplicates: dupes,
		Refused: b.rc.window(b.tag(name)).refusals(), Complete: distinct >= pacingEvents}
	if !last.IsZero() {
		arm.TookS = last.Sub(began).Seconds()
	}
	progress("%s: receiver-pacing, %s: %d of %d delivered in %.1f s, %d requests refused",
		b.shape, name, distinct, pacingEvents, arm.TookS, arm.Refused)
	return arm, nil
}

// pacingSelected reports whether -scenarios asks for receiver-pacing, and
// whether it asks for nothing else (then the references and the shapes'
// scenarios are not run).
func pacingSelected(only string) (selected, alone bool) {
	if only == "" {
		return true, false
	}
	names := strings.Split(only, ",")
	for _, n := range names {
		if strings.TrimSpace(n) == "receiver-pacing" {
			selected = true
		}
	}
	return selected, selected && len(names) == 1
}

// printPacing prints the receiver-pacing results, one line an arm.
func printPacing(w io.Writer, results []PacingResult) {
	for _, r := range results {
		fmt.Fprintf(w, "\nreceiver-pacing, %s (endpoint %g/s, receiver %d/s, retry schedule %s)\n", r.Shape, r.EndpointRate, r.ReceiverRate, r.Schedule)
		for _, a := range []PacingArm{r.Off, r.On} {
			fmt.Fprintf(w, "  pacing %-3s  delivered %d/%d  refused %5d  all delivered in %6.1f s\n",
				map[bool]string{false: "off", true: "on"}[a.Pacing], a.Delivered, a.Deliveries, a.Refused, a.TookS)
		}
		fmt.Fprintf(w, "  refused %.1f%% fewer (target >= 90%%: %v); time with/without %.2f (target <= 1: %v)\n",
			100*r.RefusedCut, r.MeetsRefused, r.TimeRatio, r.MeetsDuration)
	}
}
