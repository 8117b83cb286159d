package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// TestLargeTargets checks the latency targets on a store of
// HISTORY_SQLITE_ROWS deliveries (1000000 for the targets: one account,
// 10 endpoints, mixed statuses, 30 days). It is skipped unless the variable
// is set: loading a million rows takes a minute or two. With
// HISTORY_SQLITE_DIR the file is kept there, and a later run measures it
// again without loading.
//
//	HISTORY_SQLITE_ROWS=1000000 go test -run LargeTargets -v -timeout 30m ./history/sqlite/
func TestLargeTargets(t *testing.T) {
	var n int
	if _, err := fmt.Sscan(os.Getenv("HISTORY_SQLITE_ROWS"), &n); err != nil || n <= 0 {
		t.Skip("set HISTORY_SQLITE_ROWS (e.g. 1000000) to run")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	if dir := os.Getenv("HISTORY_SQLITE_DIR"); dir != "" {
		path = filepath.Join(dir, "history.db")
	}
	s := open(t, path)
	defer s.Close()

	const days, endpoints, batch = 30, 10, 10000
	statuses := []postbackv1.DeliveryStatus{ // 60% succeeded, the rest mixed
		succeeded, succeeded, succeeded, succeeded, succeeded, succeeded,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING, postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED,
	}
	job := []byte(strings.Repeat("j", 400))
	span := time.Duration(days) * 24 * time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	loadStart := time.Now()
	if len(s.dayList()) > 0 {
		n = 0 // kept from an earlier run (HISTORY_SQLITE_DIR)
	}
	for b := 0; b < n; b += batch {
		es := make([]history.Entry, 0, batch)
		for i := b; i < min(b+batch, n); i++ {
			created := base.Add(span / time.Duration(n) * time.Duration(i)).Truncate(time.Microsecond)
			d := &postbackv1.Delivery{
				Id: id.New(id.Delivery, created), AccountId: "acc_1", EndpointId: fmt.Sprintf("ep_%02d", rng.IntN(endpoints)),
				EventId: fmt.Sprintf("evt_%08d", i/2), EventType: "conversion", Status: statuses[rng.IntN(len(statuses))],
				AttemptCount: 1, LastStatusCode: 200, LastError: "", Reason: "",
				CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(created.Add(time.Second)),
			}
			a := &postbackv1.Attempt{
				DeliveryId: d.Id, Number: 0, StartTime: timestamppb.New(created), Duration: durationpb.New(42 * time.Millisecond),
				Url:        "https://brand.example/postback?txid=TX-1001&payout=12.50&status=approved",
				StatusCode: 200, ResponseBody: `{"result":"ok"}`, Outcome: postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS,
			}
			es = append(es, history.Entry{Delivery: d, Attempt: a, Job: job, Version: 1})
		}
		if err := s.Append(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	load := time.Since(loadStart)
	if n > 0 {
		t.Logf("loaded %d deliveries in %v (%.0f entries/s)", n, load.Round(time.Millisecond), float64(n)/load.Seconds())
	}
	if fi, err := os.Stat(path); err == nil {
		t.Logf("file %d MiB", fi.Size()>>20)
	}

	// A sample of ids and events, a few from each day.
	var sample, events []string
	for _, day := range s.dayList() {
		rows, err := s.r.QueryContext(ctx, "SELECT id, event_id FROM "+deliveriesTable(day)+" ORDER BY random() LIMIT 40")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, ev string
			if err := rows.Scan(&id, &ev); err != nil {
				t.Fatal(err)
			}
			sample, events = append(sample, id), append(events, ev)
		}
		rows.Close()
	}
	rng.Shuffle(len(sample), func(i, j int) { sample[i], sample[j] = sample[j], sample[i] })
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	measure := func(name string, budget time.Duration, runs int, f func(i int) error) {
		t.Helper()
		lat := make([]time.Duration, runs)
		for i := range runs {
			start := time.Now()
			if err := f(i); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			lat[i] = time.Since(start)
		}
		slices.Sort(lat)
		p50, p99 := lat[runs/2], lat[runs*99/100]
		t.Logf("%-40s p50 %8v p99 %8v", name, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		if budget > 0 && p99 > budget {
			t.Errorf("%s: p99 %v over %v", name, p99, budget)
		}
	}
	failed := postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	dead := postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	mid := base.Add(span / 2)
	queries := []struct {
		name string
		q    history.Query
	}{
		{"account", history.Query{AccountID: "acc_1"}},
		{"every account", history.Query{}},
		{"endpoint", history.Query{AccountID: "acc_1", EndpointID: "ep_03"}},
		{"status", history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{dead}}},
		{"statuses", history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{dead, failed}}},
		{"endpoint and status", history.Query{AccountID: "acc_1", EndpointID: "ep_03", Statuses: []postbackv1.DeliveryStatus{failed}}},
		{"time range", history.Query{AccountID: "acc_1", Start: mid, End: mid.Add(6 * time.Hour)}},
		{"endpoint, dead or failed, range", history.Query{AccountID: "acc_1", EndpointID: "ep_07", Statuses: []postbackv1.DeliveryStatus{dead, failed}, Start: mid, End: mid.Add(48 * time.Hour)}},
	}
	for _, limit := range []int{50, 500} {
		// The targets are for the API's default page (50); the largest
		// page (500) is measured, not held to them.
		budget := 50 * time.Millisecond
		if limit > 50 {
			budget = 0
		}
		for _, c := range queries {
			q := c.q
			q.Limit = limit
			measure(fmt.Sprintf("%s, first page of %d", c.name, limit), budget, 200, func(int) error {
				p, err := s.List(ctx, q)
				if err == nil && len(p.Deliveries) != limit {
					err = fmt.Errorf("page of %d", len(p.Deliveries))
				}
				return err
			})
			// The 100th page: the cursor 99 pages in, asked again and again.
			cur := ""
			for range 99 {
				p, err := s.List(ctx, history.Query{AccountID: q.AccountID, EndpointID: q.EndpointID, Statuses: q.Statuses, Start: q.Start, End: q.End, Limit: limit, Cursor: cur})
				if err != nil {
					t.Fatal(err)
				}
				if cur = p.Next; cur == "" {
					break
				}
			}
			if cur == "" {
				t.Logf("%s: fewer than 100 pages of %d", c.name, limit)
				continue
			}
			q.Cursor = cur
			measure(fmt.Sprintf("%s, 100th page of %d", c.name, limit), budget, 200, func(int) error {
				_, err := s.List(ctx, q)
				return err
			})
		}
	}
	measure("event", 50*time.Millisecond, 500, func(i int) error {
		p, err := s.List(ctx, history.Query{AccountID: "acc_1", EventID: events[i%len(events)], Limit: 50})
		if err == nil && len(p.Deliveries) == 0 {
			err = fmt.Errorf("event %s: none", events[i%len(events)])
		}
		return err
	})
	measure("get", 10*time.Millisecond, 1000, func(i int) error {
		_, err := s.Get(ctx, sample[i%len(sample)])
		return err
	})
	measure("get, an unknown id (every day probed)", 10*time.Millisecond, 200, func(i int) error {
		_, err := s.Get(ctx, "dlv_"+strings.Repeat("0", 10)+sample[i%len(sample)][14:])
		if err == nil {
			return fmt.Errorf("found")
		}
		return nil
	})
	measure("attempts", 10*time.Millisecond, 1000, func(i int) error {
		ats, err := s.Attempts(ctx, sample[i%len(sample)])
		if err == nil && len(ats) != 1 {
			err = fmt.Errorf("%d attempts", len(ats))
		}
		return err
	})
	measure("counts, one endpoint, 24h", 50*time.Millisecond, 100, func(i int) error {
		_, err := s.Counts(ctx, "ep_05", mid, mid.Add(24*time.Hour))
		return err
	})
	if n > 0 { // a kept file keeps its days
		start := time.Now()
		dropped, err := s.Expire(ctx, base.Add(24*time.Hour))
		if err != nil || dropped != 1 {
			t.Errorf("Expire = %d, %v; want 1 day", dropped, err)
		}
		t.Logf("Expire of a day of %d deliveries: %v", n/days, time.Since(start).Round(time.Millisecond))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS") || strings.HasPrefix(line, "VmHWM") {
			t.Logf("%s (Go heap in use %d MiB)", strings.Join(strings.Fields(line), " "), ms.HeapInuse>>20)
		}
	}
}

const succeeded = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
