// Package historytest is the conformance suite every history.Store passes
// (history/postgres and history/sqlite run it from their tests).
//
// newStore is called once per subtest and must return an empty store of its
// own (a fresh database or file): retention drops whole days, so subtests
// sharing one store would see each other's rows go. Times are kept to the
// microsecond; the suite's times are whole microseconds.
package historytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

const (
	pending   = postbackv1.DeliveryStatus_DELIVERY_STATUS_PENDING
	retrying  = postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING
	succeeded = postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED
	failed    = postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED
	dead      = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
	cancelled = postbackv1.DeliveryStatus_DELIVERY_STATUS_CANCELLED
)

// base is the suite's clock: a fixed day, so day boundaries are known.
var base = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// delivery is a delivery as the sender records it (the seed's conversion
// postback to an affiliate's endpoint).
func delivery(account, endpoint, event string, st postbackv1.DeliveryStatus, created time.Time) *postbackv1.Delivery {
	created = created.Truncate(time.Microsecond)
	return &postbackv1.Delivery{
		Id: id.New(id.Delivery, created), AccountId: account, EndpointId: endpoint, EventId: event,
		EventType: "conversion", Status: st, AttemptCount: 1, LastStatusCode: 200,
		CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(created.Add(time.Second)),
	}
}

func attempt(d *postbackv1.Delivery, n int32, code int32) *postbackv1.Attempt {
	start := d.CreateTime.AsTime().Add(time.Duration(n) * time.Minute)
	o := postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_SUCCESS
	if code >= 400 {
		o = postbackv1.AttemptOutcome_ATTEMPT_OUTCOME_FAILURE
	}
	return &postbackv1.Attempt{
		DeliveryId: d.Id, Number: n, StartTime: timestamppb.New(start), Duration: durationpb.New(42 * time.Millisecond),
		Url:        "https://brand.example/postback?txid=TX-1001&payout=12.50&status=approved",
		StatusCode: code, ResponseBody: `{"result":"ok"}`, Outcome: o, Retryable: code >= 500,
	}
}

func entry(d *postbackv1.Delivery, at *postbackv1.Attempt, version int64) history.Entry {
	return history.Entry{Delivery: proto.Clone(d).(*postbackv1.Delivery), Attempt: at, Job: []byte("job:" + d.Id), Version: version}
}

// Run runs the conformance suite.
func Run(t *testing.T, newStore func(t *testing.T) history.Store) {
	ctx := context.Background()
	open := func(t *testing.T) history.Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	appendAll := func(t *testing.T, s history.Store, es ...history.Entry) {
		t.Helper()
		if err := s.Append(ctx, es); err != nil {
			t.Fatalf("Append(%d entries): %v", len(es), err)
		}
	}
	get := func(t *testing.T, s history.Store, id string) *history.Row {
		t.Helper()
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		return r
	}

	t.Run("a delivery appended is read back whole, with its job", func(t *testing.T) {
		s := open(t)
		d := delivery("acc_1", "ep_1", "evt_1", succeeded, base.Add(90*time.Minute))
		d.NextAttemptTime = timestamppb.New(base.Add(2 * time.Hour))
		d.LastError, d.Reason = "connection reset by peer", "all 15 retries failed"
		appendAll(t, s, entry(d, attempt(d, 0, 200), 1))
		r := get(t, s, d.Id)
		if !proto.Equal(r.Delivery, d) {
			t.Errorf("Get = %v\nwant  %v", r.Delivery, d)
		}
		if string(r.Job) != "job:"+d.Id || r.Version != 1 {
			t.Errorf("job %q version %d, want %q 1", r.Job, r.Version, "job:"+d.Id)
		}
	})

	t.Run("a batch holding an entry the store cannot hold is refused (ErrRefused) and applies nothing", func(t *testing.T) {
		s := open(t)
		good := delivery("acc_1", "ep_1", "evt_1", succeeded, base)
		for _, c := range []struct {
			name string
			bad  *postbackv1.Delivery
		}{
			{"no delivery id", &postbackv1.Delivery{AccountId: "acc_1", CreateTime: timestamppb.New(base)}},
			{"no create time", &postbackv1.Delivery{Id: id.New(id.Delivery, base), AccountId: "acc_1"}},
		} {
			err := s.Append(ctx, []history.Entry{entry(good, nil, 1), {Delivery: c.bad, Version: 1}})
			if !errors.Is(err, history.ErrRefused) {
				t.Fatalf("%s: Append = %v, want ErrRefused", c.name, err)
			}
		}
		if _, err := s.Get(ctx, good.Id); !errors.Is(err, history.ErrNotFound) {
			t.Fatalf("the good entry of a refused batch was applied: Get = %v", err)
		}
		appendAll(t, s, entry(good, nil, 1)) // alone it is taken
		get(t, s, good.Id)
	})

	t.Run("an unknown delivery is ErrNotFound", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(ctx, id.New(id.Delivery, base)); !errors.Is(err, history.ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
		ats, err := s.Attempts(ctx, id.New(id.Delivery, base))
		if err != nil || len(ats) != 0 {
			t.Errorf("Attempts(unknown) = %v, %v; want none", ats, err)
		}
	})

	t.Run("a redelivered batch is a no-op: one row, one copy of each attempt", func(t *testing.T) {
		s := open(t)
		d := delivery("acc_1", "ep_1", "evt_1", retrying, base)
		batch := []history.Entry{entry(d, attempt(d, 0, 503), 1)}
		d2 := proto.Clone(d).(*postbackv1.Delivery)
		d2.Status, d2.AttemptCount = succeeded, 2
		batch = append(batch, entry(d2, attempt(d2, 1, 200), 2))
		appendAll(t, s, batch...)
		appendAll(t, s, batch...)
		appendAll(t, s, batch[1])
		if r := get(t, s, d.Id); !proto.Equal(r.Delivery, d2) {
			t.Errorf("after redelivery Get = %v, want %v", r.Delivery, d2)
		}
		ats, err := s.Attempts(ctx, d.Id)
		if err != nil {
			t.Fatal(err)
		}
		if got := numbers(ats); !slices.Equal(got, []int32{0, 1}) {
			t.Errorf("attempts %v, want [0 1]", got)
		}
		page, err := s.List(ctx, history.Query{AccountID: "acc_1", Limit: 10})
		if err != nil || len(page.Deliveries) != 1 {
			t.Errorf("List = %v, %v; want the one delivery", page, err)
		}
	})

	t.Run("a late entry never steps a delivery back; an equal version applies", func(t *testing.T) {
		s := open(t)
		d := delivery("acc_1", "ep_1", "evt_1", succeeded, base)
		old := proto.Clone(d).(*postbackv1.Delivery)
		old.Status = retrying
		appendAll(t, s, entry(d, nil, 5))
		appendAll(t, s, entry(old, nil, 4))
		if r := get(t, s, d.Id); r.Delivery.Status != succeeded || r.Version != 5 {
			t.Errorf("after a late entry: %s version %d, want SUCCEEDED 5", r.Delivery.Status, r.Version)
		}
		again := proto.Clone(d).(*postbackv1.Delivery)
		again.LastError = "rewritten by the same version"
		appendAll(t, s, entry(again, nil, 5))
		if r := get(t, s, d.Id); r.Delivery.LastError != again.LastError {
			t.Errorf("equal version not applied: %q", r.Delivery.LastError)
		}
		// A later version in the same batch as an earlier one wins, in either order.
		e2 := proto.Clone(d).(*postbackv1.Delivery)
		e2.Status = dead
		e1 := proto.Clone(d).(*postbackv1.Delivery)
		e1.Status = retrying
		appendAll(t, s, entry(e2, nil, 7), entry(e1, nil, 6))
		if r := get(t, s, d.Id); r.Delivery.Status != dead {
			t.Errorf("batch with versions 7 then 6: status %s, want DEAD", r.Delivery.Status)
		}
	})

	t.Run("an entry without a job keeps the job the row holds", func(t *testing.T) {
		s := open(t)
		d := delivery("acc_1", "ep_1", "evt_1", retrying, base)
		appendAll(t, s, entry(d, nil, 1))
		e := entry(d, nil, 2)
		e.Job = nil
		e.Delivery.Status = cancelled
		appendAll(t, s, e)
		r := get(t, s, d.Id)
		if string(r.Job) != "job:"+d.Id || r.Delivery.Status != cancelled {
			t.Errorf("job %q status %s, want the first job and CANCELLED", r.Job, r.Delivery.Status)
		}
		never := delivery("acc_1", "ep_1", "evt_2", failed, base)
		ne := entry(never, nil, 1)
		ne.Job = nil
		appendAll(t, s, ne)
		if r := get(t, s, never.Id); r.Job != nil {
			t.Errorf("a delivery that never rendered has job %q, want nil", r.Job)
		}
	})

	t.Run("one batch holding each delivery's life lands as its latest state, with its job and every attempt", func(t *testing.T) {
		// As the writer sees a burst: each delivery queued (with its job),
		// then retried and finished (the finishing entry without a job), all
		// in one batch, interleaved; more deliveries than one statement takes.
		s := open(t)
		var batch, finals []history.Entry
		for i := range 75 {
			d := delivery("acc_1", "ep_1", fmt.Sprintf("evt_%d", i), pending, base.Add(time.Duration(i)*time.Millisecond))
			d.AttemptCount = 0
			batch = append(batch, entry(d, nil, 1))
			r := proto.Clone(d).(*postbackv1.Delivery)
			r.Status, r.AttemptCount = retrying, 1
			batch = append(batch, entry(r, attempt(r, 0, 503), 2))
			f := proto.Clone(d).(*postbackv1.Delivery)
			f.Status, f.AttemptCount = succeeded, 2
			fe := entry(f, attempt(f, 1, 200), 3)
			fe.Job = nil
			finals = append(finals, fe)
		}
		batch = append(batch, finals...)
		appendAll(t, s, batch...)
		for _, fe := range finals {
			r := get(t, s, fe.Delivery.Id)
			if !proto.Equal(r.Delivery, fe.Delivery) || r.Version != 3 || string(r.Job) != "job:"+fe.Delivery.Id {
				t.Fatalf("Get %s = %v version %d job %q; want SUCCEEDED at version 3 with the queued job", fe.Delivery.Id, r.Delivery, r.Version, r.Job)
			}
			ats, err := s.Attempts(ctx, fe.Delivery.Id)
			if err != nil {
				t.Fatal(err)
			}
			if got := numbers(ats); !slices.Equal(got, []int32{0, 1}) {
				t.Fatalf("attempts of %s: %v, want [0 1]", fe.Delivery.Id, got)
			}
		}
		if got := listAll(t, s, history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{succeeded}, Limit: 20}); len(got) != len(finals) {
			t.Errorf("%d SUCCEEDED listed, want %d", len(got), len(finals))
		}
	})

	t.Run("attempts come back oldest first and the first copy of a number stays", func(t *testing.T) {
		s := open(t)
		d := delivery("acc_1", "ep_1", "evt_1", dead, base)
		var es []history.Entry
		for _, n := range []int32{3, 0, 2, 1} {
			es = append(es, entry(d, attempt(d, n, 500+n), int64(n)))
		}
		appendAll(t, s, es...)
		other := attempt(d, 2, 200)
		appendAll(t, s, entry(d, other, 9))
		ats, err := s.Attempts(ctx, d.Id)
		if err != nil {
			t.Fatal(err)
		}
		if got := numbers(ats); !slices.Equal(got, []int32{0, 1, 2, 3}) {
			t.Fatalf("attempts %v, want [0 1 2 3]", got)
		}
		if want := attempt(d, 2, 502); !proto.Equal(ats[2], want) {
			t.Errorf("attempt 2 = %v, want the first copy %v", ats[2], want)
		}
	})

	t.Run("list is newest first and the cursor visits every delivery once", func(t *testing.T) {
		s := open(t)
		ds := fill(t, s, "acc_1", 3, 3, 40) // 120 deliveries over 3 days
		want := newest(ds, func(*postbackv1.Delivery) bool { return true })
		for _, size := range []int{1, 7, 50, 500} {
			got := listAll(t, s, history.Query{AccountID: "acc_1", Limit: size})
			if !slices.Equal(got, want) {
				t.Fatalf("page size %d: %d deliveries %v…, want %d %v…", size, len(got), head(got), len(want), head(want))
			}
		}
	})

	t.Run("list filters by account, endpoint, event, status and time range", func(t *testing.T) {
		s := open(t)
		ds := fill(t, s, "acc_1", 3, 3, 30)
		ds = append(ds, fill(t, s, "acc_2", 2, 2, 10)...)
		mid, end := base.Add(36*time.Hour), base.Add(60*time.Hour)
		ev := ds[17].EventId
		cases := []struct {
			name string
			q    history.Query
			keep func(*postbackv1.Delivery) bool
		}{
			{"account", history.Query{AccountID: "acc_2"}, func(d *postbackv1.Delivery) bool { return d.AccountId == "acc_2" }},
			{"every account", history.Query{}, func(*postbackv1.Delivery) bool { return true }},
			{"endpoint", history.Query{AccountID: "acc_1", EndpointID: "ep_acc_1_1"}, func(d *postbackv1.Delivery) bool { return d.EndpointId == "ep_acc_1_1" }},
			{"event", history.Query{AccountID: "acc_1", EventID: ev}, func(d *postbackv1.Delivery) bool { return d.EventId == ev }},
			{"status", history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{failed}}, func(d *postbackv1.Delivery) bool { return d.AccountId == "acc_1" && d.Status == failed }},
			{"statuses", history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{dead, failed}}, func(d *postbackv1.Delivery) bool {
				return d.AccountId == "acc_1" && (d.Status == dead || d.Status == failed)
			}},
			{"time range", history.Query{AccountID: "acc_1", Start: mid, End: end}, func(d *postbackv1.Delivery) bool {
				c := d.CreateTime.AsTime()
				return d.AccountId == "acc_1" && !c.Before(mid) && c.Before(end)
			}},
			{"start only", history.Query{AccountID: "acc_1", Start: mid}, func(d *postbackv1.Delivery) bool {
				return d.AccountId == "acc_1" && !d.CreateTime.AsTime().Before(mid)
			}},
			{"end only", history.Query{AccountID: "acc_1", End: mid}, func(d *postbackv1.Delivery) bool {
				return d.AccountId == "acc_1" && d.CreateTime.AsTime().Before(mid)
			}},
			{"endpoint, dead or failed, in a range (replay)", history.Query{AccountID: "acc_1", EndpointID: "ep_acc_1_2", Statuses: []postbackv1.DeliveryStatus{dead, failed}, Start: base.Add(12 * time.Hour), End: end},
				func(d *postbackv1.Delivery) bool {
					c := d.CreateTime.AsTime()
					return d.EndpointId == "ep_acc_1_2" && (d.Status == dead || d.Status == failed) && !c.Before(base.Add(12*time.Hour)) && c.Before(end)
				}},
			{"endpoint of another account", history.Query{AccountID: "acc_2", EndpointID: "ep_acc_1_1"}, func(*postbackv1.Delivery) bool { return false }},
		}
		for _, c := range cases {
			for _, size := range []int{3, 500} {
				q := c.q
				q.Limit = size
				got := listAll(t, s, q)
				if want := newest(ds, c.keep); !slices.Equal(got, want) {
					t.Errorf("%s, page size %d: %d deliveries %v…, want %d %v…", c.name, size, len(got), head(got), len(want), head(want))
				}
			}
		}
	})

	t.Run("deliveries created in the same microsecond are ordered by id and none is skipped", func(t *testing.T) {
		s := open(t)
		at := base.Add(time.Hour)
		var ds []*postbackv1.Delivery
		for i := range 25 {
			d := delivery("acc_1", "ep_1", fmt.Sprintf("evt_%d", i), succeeded, at)
			ds = append(ds, d)
			appendAll(t, s, entry(d, nil, 1))
		}
		got := listAll(t, s, history.Query{AccountID: "acc_1", Limit: 4})
		if want := newest(ds, func(*postbackv1.Delivery) bool { return true }); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("a cursor stays correct while writes go on", func(t *testing.T) {
		s := open(t)
		ds := fill(t, s, "acc_1", 1, 2, 30)
		want := newest(ds, func(*postbackv1.Delivery) bool { return true })
		first, err := s.List(ctx, history.Query{AccountID: "acc_1", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		// New deliveries arrive, and earlier ones change status, between pages.
		for i := range 5 {
			d := delivery("acc_1", "ep_acc_1_0", fmt.Sprintf("evt_new_%d", i), pending, base.Add(72*time.Hour))
			appendAll(t, s, entry(d, nil, 1))
		}
		changed := proto.Clone(ds[3]).(*postbackv1.Delivery)
		changed.Status = dead
		appendAll(t, s, entry(changed, nil, 99))
		got := ids(first.Deliveries)
		for cur := first.Next; cur != ""; {
			p, err := s.List(ctx, history.Query{AccountID: "acc_1", Limit: 10, Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			got, cur = append(got, ids(p.Deliveries)...), p.Next
		}
		if !slices.Equal(got, want) {
			t.Errorf("paging while writing: %d deliveries, want the %d there at the start", len(got), len(want))
		}
	})

	t.Run("a cursor it did not hand out is ErrBadCursor", func(t *testing.T) {
		s := open(t)
		for _, c := range []string{"not a cursor", "AA", "%%%"} {
			if _, err := s.List(ctx, history.Query{AccountID: "acc_1", Limit: 5, Cursor: c}); !errors.Is(err, history.ErrBadCursor) {
				t.Errorf("List(cursor %q) = %v, want ErrBadCursor", c, err)
			}
		}
	})

	t.Run("counts per status for an endpoint over a window", func(t *testing.T) {
		s := open(t)
		ds := fill(t, s, "acc_1", 2, 3, 40)
		start, end := base.Add(6*time.Hour), base.Add(50*time.Hour)
		want := map[postbackv1.DeliveryStatus]int64{}
		for _, d := range ds {
			if c := d.CreateTime.AsTime(); d.EndpointId == "ep_acc_1_1" && !c.Before(start) && c.Before(end) {
				want[d.Status]++
			}
		}
		got, err := s.Counts(ctx, "ep_acc_1_1", start, end)
		if err != nil {
			t.Fatal(err)
		}
		if !mapsEqual(got, want) {
			t.Errorf("Counts = %v, want %v", got, want)
		}
		if got, err := s.Counts(ctx, "ep_unknown", start, end); err != nil || len(got) != 0 {
			t.Errorf("Counts(unknown endpoint) = %v, %v; want none", got, err)
		}
	})

	t.Run("retention drops whole days, deliveries and attempts together", func(t *testing.T) {
		s := open(t)
		ds := fill(t, s, "acc_1", 2, 4, 10) // days base .. base+3
		old := delivery("acc_1", "ep_acc_1_0", "evt_old", dead, base.Add(-20*24*time.Hour))
		appendAll(t, s, entry(old, attempt(old, 0, 500), 1))
		ds = append(ds, old)
		// Cut in the middle of day 2: days before it go, day 2 stays whole.
		cut := base.Add(2*24*time.Hour + 13*time.Hour)
		n, err := s.Expire(ctx, cut)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 { // the old day, day 0, day 1
			t.Errorf("Expire dropped %d days, want 3", n)
		}
		keep := func(d *postbackv1.Delivery) bool { return !d.CreateTime.AsTime().Before(base.Add(48 * time.Hour)) }
		if got, want := listAll(t, s, history.Query{AccountID: "acc_1", Limit: 100}), newest(ds, keep); !slices.Equal(got, want) {
			t.Errorf("after Expire: %d deliveries, want %d", len(got), len(want))
		}
		for _, d := range ds {
			_, err := s.Get(ctx, d.Id)
			if keep(d) != (err == nil) {
				t.Errorf("Get(%s created %s) after Expire: %v", d.Id, d.CreateTime.AsTime(), err)
			}
		}
		if ats, err := s.Attempts(ctx, old.Id); err != nil || len(ats) != 0 {
			t.Errorf("attempts of an expired delivery: %v, %v", ats, err)
		}
		if n, err := s.Expire(ctx, cut); err != nil || n != 0 {
			t.Errorf("second Expire = %d, %v; want 0", n, err)
		}
		// A day that was dropped takes new rows again.
		again := delivery("acc_1", "ep_acc_1_0", "evt_again", succeeded, base.Add(time.Hour))
		appendAll(t, s, entry(again, attempt(again, 0, 200), 1))
		get(t, s, again.Id)
	})

	t.Run("concurrent batches all land", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		var all []*postbackv1.Delivery
		var mu sync.Mutex
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range 10 {
					var es []history.Entry
					for i := range 50 {
						d := delivery("acc_1", fmt.Sprintf("ep_%d", w), fmt.Sprintf("evt_%d_%d_%d", w, b, i), succeeded,
							base.Add(time.Duration(w*1000+b*50+i)*time.Second))
						es = append(es, entry(d, attempt(d, 0, 200), 1))
						mu.Lock()
						all = append(all, d)
						mu.Unlock()
					}
					if err := s.Append(ctx, es); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := listAll(t, s, history.Query{AccountID: "acc_1", Limit: 500}); len(got) != len(all) {
			t.Errorf("%d deliveries listed, want %d", len(got), len(all))
		}
	})
}

// fill appends deliveries of account over endpoints and days: perDay per
// day, spread over the day, statuses mixed. It returns them.
func fill(t *testing.T, s history.Store, account string, endpoints, days, perDay int) []*postbackv1.Delivery {
	t.Helper()
	statuses := []postbackv1.DeliveryStatus{succeeded, succeeded, failed, dead, retrying, cancelled, pending}
	var out []*postbackv1.Delivery
	var es []history.Entry
	for day := range days {
		for i := range perDay {
			created := base.Add(time.Duration(day)*24*time.Hour + time.Duration(i)*(24*time.Hour/time.Duration(perDay)) + time.Duration(i)*time.Microsecond)
			d := delivery(account, fmt.Sprintf("ep_%s_%d", account, i%endpoints), fmt.Sprintf("evt_%s_%d_%d", account, day, i/2),
				statuses[(day+i)%len(statuses)], created)
			out = append(out, d)
			es = append(es, entry(d, attempt(d, 0, 200), 1))
		}
	}
	if err := s.Append(context.Background(), es); err != nil {
		t.Fatalf("fill: %v", err)
	}
	return out
}

// newest is the ids of ds that keep, newest first by (create time, id).
func newest(ds []*postbackv1.Delivery, keep func(*postbackv1.Delivery) bool) []string {
	var out []*postbackv1.Delivery
	for _, d := range ds {
		if keep(d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *postbackv1.Delivery) int {
		if c := b.CreateTime.AsTime().Compare(a.CreateTime.AsTime()); c != 0 {
			return c
		}
		switch {
		case a.Id > b.Id:
			return -1
		case a.Id < b.Id:
			return 1
		}
		return 0
	})
	return ids(out)
}

// listAll pages through q and returns the ids in order; it fails on a page
// longer than the limit or a cursor that does not move.
func listAll(t *testing.T, s history.Store, q history.Query) []string {
	t.Helper()
	var got []string
	for range 10000 {
		p, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		if len(p.Deliveries) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(p.Deliveries), q.Limit)
		}
		got = append(got, ids(p.Deliveries)...)
		if p.Next == "" {
			return got
		}
		if p.Next == q.Cursor {
			t.Fatalf("cursor did not move: %q", p.Next)
		}
		q.Cursor = p.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func ids(ds []*postbackv1.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Id
	}
	return out
}

func head(s []string) []string { return s[:min(3, len(s))] }

func numbers(ats []*postbackv1.Attempt) []int32 {
	out := make([]int32, len(ats))
	for i, a := range ats {
		out[i] = a.Number
	}
	return out
}

func mapsEqual(a, b map[postbackv1.DeliveryStatus]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
