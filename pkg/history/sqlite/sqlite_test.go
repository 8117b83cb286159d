package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/history/historytest"
	"github.com/postback-dev/postback/pkg/id"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		return open(t, filepath.Join(t.TempDir(), "history.db"))
	})
}

var base = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// entries makes n deliveries of one account over 10 endpoints, spread over
// days days from base, each with one attempt.
func entries(n, days int, tag string) []history.Entry {
	return entriesFrom(base, time.Duration(days)*24*time.Hour, n, tag)
}

// entriesFrom makes n deliveries created evenly over [from, from+span).
func entriesFrom(from time.Time, span time.Duration, n int, tag string) []history.Entry {
	statuses := []postbackv1.DeliveryStatus{
		postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_RETRYING,
	}
	es := make([]history.Entry, n)
	for i := range n {
		created := from.Add(span / time.Duration(n) * time.Duration(i)).Truncate(time.Microsecond)
		d := &postbackv1.Delivery{
			Id: id.New(id.Delivery, created), AccountId: "acc_1", EndpointId: fmt.Sprintf("ep_%d", i%10),
			EventId: fmt.Sprintf("evt_%s_%d", tag, i/3), EventType: "conversion", Status: statuses[i%len(statuses)],
			AttemptCount: 1, LastStatusCode: 200,
			CreateTime: timestamppb.New(created), UpdateTime: timestamppb.New(created.Add(time.Second)),
		}
		a := &postbackv1.Attempt{
			DeliveryId: d.Id, Number: 0, StartTime: timestamppb.New(created), StatusCode: 200,
			Url: "https://brand.example/postback?txid=TX-1001&payout=12.50&status=approved", ResponseBody: `{"result":"ok"}`,
		}
		es[i] = history.Entry{Delivery: d, Attempt: a, Job: []byte("job:" + d.Id), Version: 1}
	}
	return es
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	s := open(t, path)
	es := entries(300, 3, "reopen")
	if err := s.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	defer s.Close()
	for _, e := range []history.Entry{es[0], es[150], es[299]} {
		r, err := s.Get(ctx, e.Delivery.Id)
		if err != nil {
			t.Fatalf("Get after reopen: %v", err)
		}
		if !proto.Equal(r.Delivery, e.Delivery) || string(r.Job) != string(e.Job) || r.Version != 1 {
			t.Errorf("Get after reopen = %v %q %d, want %v", r.Delivery, r.Job, r.Version, e.Delivery)
		}
		ats, err := s.Attempts(ctx, e.Delivery.Id)
		if err != nil || len(ats) != 1 || !proto.Equal(ats[0], e.Attempt) {
			t.Errorf("Attempts after reopen = %v, %v", ats, err)
		}
	}
	n := 0
	for cur := ""; ; {
		p, err := s.List(ctx, history.Query{AccountID: "acc_1", Limit: 64, Cursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Deliveries)
		if cur = p.Next; cur == "" {
			break
		}
	}
	if n != len(es) {
		t.Errorf("listed %d after reopen, want %d", n, len(es))
	}
	// The days are known again: Expire finds and drops them, and another
	// reopen sees them gone.
	if dropped, err := s.Expire(ctx, base.Add(24*time.Hour)); err != nil || dropped != 1 {
		t.Errorf("Expire after reopen = %d, %v; want 1 day", dropped, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if _, err := s.Get(ctx, es[0].Delivery.Id); err == nil {
		t.Errorf("an expired delivery is back after reopen")
	}
	if got := s.dayList(); len(got) != 2 {
		t.Errorf("days after reopen %v, want 2", got)
	}
}

func TestListDuringLargeAppendIsNotBusy(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "history.db"))
	defer s.Close()
	if err := s.Append(ctx, entries(500, 2, "seed")); err != nil {
		t.Fatal(err)
	}
	big := entries(30000, 2, "big")
	done := make(chan error, 1)
	var appending atomic.Bool
	appending.Store(true)
	go func() {
		err := s.Append(ctx, big)
		appending.Store(false)
		done <- err
	}()
	lists, during := 0, 0
	for appending.Load() || lists == 0 {
		for _, q := range []history.Query{
			{AccountID: "acc_1", Limit: 50},
			{AccountID: "acc_1", EndpointID: "ep_3", Statuses: []postbackv1.DeliveryStatus{postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD, postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED}, Limit: 50},
		} {
			start := time.Now()
			p, err := s.List(ctx, q)
			if err != nil {
				t.Fatalf("List while appending: %v", err)
			}
			if len(p.Deliveries) == 0 {
				t.Fatalf("List while appending found nothing")
			}
			if appending.Load() {
				during++
				if el := time.Since(start); el > 2*time.Second {
					t.Errorf("List took %v while appending", el)
				}
			}
			lists++
		}
		if _, err := s.Get(ctx, big[0].Delivery.Id); err != nil && !isNotFound(err) { // not found until the batch commits
			t.Fatalf("Get while appending: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if during == 0 {
		t.Log("no List ran while the append was in progress (machine too fast?)")
	}
	t.Logf("%d lists, %d during the append", lists, during)
	if _, err := s.Get(ctx, big[len(big)-1].Delivery.Id); err != nil {
		t.Fatal(err)
	}
}

func isNotFound(err error) bool { return errors.Is(err, history.ErrNotFound) }

// BenchmarkAppend10000 appends batches of 10,000 entries, each a new
// delivery with an attempt, as the writer sees them: batch after batch of
// deliveries created a moment after the last batch's ("scattered": each
// batch spread over 30 days, the worst placement).
func BenchmarkAppend10000(b *testing.B) {
	for _, scattered := range []bool{false, true} {
		b.Run(fmt.Sprintf("scattered=%v", scattered), func(b *testing.B) {
			ctx := context.Background()
			s := open(b, filepath.Join(b.TempDir(), "history.db"))
			defer s.Close()
			for i := range b.N {
				b.StopTimer()
				es := entriesFrom(base.Add(time.Duration(i)*10*time.Minute), 10*time.Minute, 10000, fmt.Sprint(i))
				if scattered {
					es = entriesFrom(base, 30*24*time.Hour, 10000, fmt.Sprint(i))
				}
				b.StartTimer()
				if err := s.Append(ctx, es); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

func TestReadsDuringExpireDoNotFail(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "history.db"))
	defer s.Close()
	es := entries(2000, 10, "expire")
	if err := s.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.List(ctx, history.Query{AccountID: "acc_1", EventID: es[i%len(es)].Delivery.EventId, Limit: 10}); err != nil {
				errs <- err
				return
			}
			if _, err := s.Get(ctx, es[i%len(es)].Delivery.Id); err != nil && !isNotFound(err) {
				errs <- err
				return
			}
			if _, err := s.Counts(ctx, "ep_1", time.Time{}, time.Time{}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for d := 1; d <= 10; d++ {
		time.Sleep(20 * time.Millisecond)
		if n, err := s.Expire(ctx, base.Add(time.Duration(d)*24*time.Hour)); err != nil || n != 1 {
			t.Fatalf("Expire day %d = %d, %v", d, n, err)
		}
	}
	close(stop)
	for err := range errs {
		t.Fatalf("read during Expire: %v", err)
	}
}

// The gateway reads the file a history writer in another process writes:
// the days that writer makes and drops are seen without re-opening.
func TestAReaderSeesTheDaysAnotherProcessWritesAndDrops(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	writer, reader := open(t, path), open(t, path)
	defer writer.Close()
	defer reader.Close()
	count := func() int {
		t.Helper()
		p, err := reader.List(ctx, history.Query{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Deliveries)
	}
	if n := count(); n != 0 {
		t.Fatalf("empty file lists %d", n)
	}
	es := entries(30, 3, "x")
	if err := writer.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 30 {
		t.Fatalf("reader lists %d of the 30 the writer stored in 3 new days", n)
	}
	if _, err := reader.Get(ctx, es[0].Delivery.Id); err != nil {
		t.Fatalf("reader Get: %v", err)
	}
	if _, err := writer.Expire(ctx, base.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 10 {
		t.Fatalf("after the writer dropped 2 of 3 days the reader lists %d, want 10", n)
	}
}
