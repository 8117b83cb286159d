package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/postback-dev/postback/pkg/history"
	"github.com/postback-dev/postback/pkg/history/historytest"
	"github.com/postback-dev/postback/pkg/id"
	"github.com/postback-dev/postback/pkg/pgtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// srv is the package's shared server; each test takes databases of its own.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	s, err := pgtest.StartShared()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func open(t *testing.T, url string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func entry(created time.Time, status postbackv1.DeliveryStatus, version int64) history.Entry {
	d := &postbackv1.Delivery{
		Id: id.New(id.Delivery, created), AccountId: "acc_1", EndpointId: "ep_1", EventId: id.New(id.Event, created),
		EventType: "conversion", Status: status, CreateTime: timestamppb.New(created),
	}
	return history.Entry{
		Delivery: d, Version: version, Job: []byte("job"),
		Attempt: &postbackv1.Attempt{DeliveryId: d.Id, Number: 0, StatusCode: 200},
	}
}

func mustAppend(t *testing.T, s *Store, es ...history.Entry) {
	t.Helper()
	if err := s.Append(context.Background(), es); err != nil {
		t.Fatalf("Append(%d): %v", len(es), err)
	}
}

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) history.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := Open(ctx, srv.NewDatabase(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s // the suite closes it
	})
}

func TestReplicasOpeningAtOnceApplyEachMigrationOnce(t *testing.T) {
	url := srv.NewDatabase(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(context.Background(), url)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d of %d: %v", i, n, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations() = %v, %v", ms, err)
	}
	check := func(when string) {
		t.Helper()
		rows, err := stores[0].pool.Query(context.Background(), "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			Version int32
			N       int64
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ms) {
			t.Fatalf("%s: schema_migrations %v, want the %d migrations once each", when, got, len(ms))
		}
		for i, r := range got {
			if int(r.Version) != ms[i].version || r.N != 1 {
				t.Errorf("%s: schema_migrations has version %d %d times, want %d once", when, r.Version, r.N, ms[i].version)
			}
		}
	}
	check("after concurrent Opens")
	open(t, url) // and a later one applies nothing
	check("after one more Open")
	// Every replica works on the one schema.
	for i, s := range stores {
		mustAppend(t, s, entry(day0.Add(time.Duration(i)*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
	}
	got, err := stores[0].Counts(context.Background(), "ep_1", time.Time{}, time.Time{})
	if err != nil || got[postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED] != n {
		t.Errorf("Counts = %v, %v; want %d succeeded", got, err, n)
	}
}

func TestDayPartitionsAreMadeOnDemandAndDropped(t *testing.T) {
	s := open(t, srv.NewDatabase(t))
	ctx := context.Background()
	mustAppend(t, s,
		entry(day0.Add(time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1),
		entry(day0.Add(25*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1),
		entry(day0.Add(26*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1),
	)
	tables := func() []string {
		t.Helper()
		rows, err := s.pool.Query(ctx, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent IN ('deliveries'::regclass, 'attempts'::regclass) ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	want := []string{"attempts_20261102", "attempts_20261103", "deliveries_20261102", "deliveries_20261103"}
	if got := tables(); !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	// A day ends at midnight: expiring at the end of day 0 drops day 0 only.
	if n, err := s.Expire(ctx, day0.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Expire(end of day 0) = %d, %v; want 1", n, err)
	}
	if got := tables(); !slices.Equal(got, []string{"attempts_20261103", "deliveries_20261103"}) {
		t.Fatalf("partitions after Expire %v", got)
	}
	if n, err := s.Expire(ctx, day0.Add(48*time.Hour-time.Microsecond)); err != nil || n != 0 {
		t.Fatalf("Expire(just before the end of day 1) = %d, %v; want 0", n, err)
	}
}

// A replica's cache of the days that exist goes stale when another replica
// expires a day; its next batch for that day makes the day again.
func TestADayDroppedByAnotherReplicaIsMadeAgain(t *testing.T) {
	url := srv.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	ctx := context.Background()
	mustAppend(t, b, entry(day0.Add(time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
	if n, err := a.Expire(ctx, day0.Add(48*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	e := entry(day0.Add(2*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, 1)
	mustAppend(t, b, e) // b still believes in day 0
	r, err := a.Get(ctx, e.Delivery.Id)
	if err != nil || r.Delivery.Status != postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED {
		t.Fatalf("Get after the day was made again = %v, %v", r, err)
	}
}

// Batches far larger than the 65535 bind parameters a statement may take
// (9 columns a delivery) go in whole.
func TestALargeBatch(t *testing.T) {
	s := open(t, srv.NewDatabase(t))
	ctx := context.Background()
	const n = 8000
	es := make([]history.Entry, 0, n+n/10)
	for i := range n {
		es = append(es, entry(day0.Add(time.Duration(i)*37*time.Second), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
	}
	// Later versions of some of them in the same batch, and repeated attempts.
	for i := 0; i < n; i += 10 {
		e := es[i]
		e.Delivery = proto.Clone(e.Delivery).(*postbackv1.Delivery)
		e.Version = 2
		e.Delivery.Status = postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD
		es = append(es, e)
	}
	mustAppend(t, s, es...)
	got, err := s.Counts(ctx, "ep_1", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[postbackv1.DeliveryStatus]int64{
		postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED: n - n/10,
		postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD:      n / 10,
	}
	if len(got) != len(want) || got[postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED] != want[postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED] ||
		got[postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD] != want[postbackv1.DeliveryStatus_DELIVERY_STATUS_DEAD] {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	var attempts int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM attempts").Scan(&attempts); err != nil || attempts != n {
		t.Errorf("%d attempts stored (%v), want %d", attempts, err, n)
	}
}

func TestStoreWorksAcrossAServerRestart(t *testing.T) {
	pg := pgtest.Start(t) // its own server: the shared one stays up
	s := open(t, pg.NewDatabase(t))
	ctx := context.Background()
	before := entry(day0.Add(time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1)
	mustAppend(t, s, before)

	pg.Stop()
	down := entry(day0.Add(2*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_FAILED, 1)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.Append(actx, []history.Entry{down})
	cancel()
	if err == nil {
		t.Fatal("Append succeeded with PostgreSQL down")
	}
	if !strings.HasPrefix(err.Error(), "history append: ") {
		t.Errorf("error without context: %v", err)
	}
	t.Logf("with PostgreSQL down: %v", err)
	if errors.Is(err, history.ErrRefused) {
		t.Errorf("a server that is down refuses the entry for good (ErrRefused): %v", err)
	}

	pg.Restart()
	// The pool's connections died with the server; it dials new ones. The
	// history writer retries a failed batch, and so does this test, for a
	// bounded time.
	deadline := time.Now().Add(30 * time.Second)
	tries := 0
	for {
		tries++
		err := s.Append(ctx, []history.Entry{down})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append still failing %d tries after Restart: %v", tries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Append after Restart succeeded on try %d", tries)
	for _, e := range []history.Entry{before, down} {
		r, err := s.Get(ctx, e.Delivery.Id)
		if err != nil || r.Delivery.Status != e.Delivery.Status {
			t.Errorf("Get(%s) after Restart = %v, %v", e.Delivery.Id, r, err)
		}
	}
}

// A value a column cannot take is refused for good (ErrRefused): the
// history writer sets that entry aside instead of retrying its batch
// forever. PostgreSQL's text holds no NUL byte.
func TestAValueAColumnCannotTakeIsRefusedForGood(t *testing.T) {
	s := open(t, srv.NewDatabase(t))
	bad := entry(day0.Add(time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1)
	bad.Delivery.EventId = "evt_\x00"
	err := s.Append(context.Background(), []history.Entry{bad})
	if !errors.Is(err, history.ErrRefused) {
		t.Fatalf("Append of a NUL in a text column = %v, want ErrRefused", err)
	}
	t.Logf("refused: %v", err)
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, url := range []string{
		"postgres://postback:s3cr3t-pw@127.0.0.1:1/history?sslmode=disable&connect_timeout=2",
		"postgres://postback:s3cr3t-pw@127.0.0.1:notaport/history",
		"host=127.0.0.1 port=1 user=postback password=s3cr3t-pw dbname=history sslmode=disable connect_timeout=2",
		"host=127.0.0.1 port=x password='s3cr3t-pw",
	} {
		s, err := Open(ctx, url)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

func TestBadLimitAndCursor(t *testing.T) {
	s := open(t, srv.NewDatabase(t))
	if _, err := s.List(context.Background(), history.Query{Limit: 0}); err == nil {
		t.Error("List with limit 0 succeeded")
	}
	_, err := s.List(context.Background(), history.Query{Limit: 5, Cursor: "AQ"})
	if !errors.Is(err, history.ErrBadCursor) {
		t.Errorf("List(bad cursor) = %v, want ErrBadCursor", err)
	}
}

func TestListQueryShapes(t *testing.T) {
	c := &history.Cursor{Created: day0, ID: "dlv_X"}
	sql, args := listQuery(history.Query{AccountID: "acc_1", Statuses: []postbackv1.DeliveryStatus{5, 4, 5}, Limit: 50}, c)
	if !strings.Contains(sql, "(VALUES ($4::smallint), ($5::smallint)) AS s(status) CROSS JOIN LATERAL") || !strings.HasSuffix(sql, "LIMIT 51") ||
		!slices.Equal(args, []any{"acc_1", day0, "dlv_X", int16(4), int16(5)}) {
		t.Errorf("statuses query %q %v", sql, args)
	}
	sql, args = listQuery(history.Query{Limit: 10}, nil)
	if sql != "SELECT created, id, delivery FROM deliveries ORDER BY created DESC, id DESC LIMIT 11" || len(args) != 0 {
		t.Errorf("unfiltered query %q %v", sql, args)
	}
}

// A day that grows is analyzed by the store itself, without waiting for
// autovacuum, and a day that barely grows is not (analyze.go).
func TestADayThatGrowsIsAnalyzedByTheStore(t *testing.T) {
	url := srv.NewDatabase(t)
	s := open(t, url)
	ctx := context.Background()
	var es []history.Entry
	for i := range 2 * analyzeMin {
		es = append(es, entry(day0.Add(time.Duration(i)*time.Second), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
	}
	mustAppend(t, s, es...)
	mustAppend(t, s, entry(day0.Add(48*time.Hour), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
	analyzed := func(table string) bool {
		var n int64
		err := s.pool.QueryRow(ctx, "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&n)
		return err == nil && n > 0
	}
	grown, small := partitionName("deliveries", day0), partitionName("deliveries", day0.Add(48*time.Hour))
	// One ANALYZE names both of the day's tables; PostgreSQL analyzes them
	// one after the other, each in its own transaction, so each is waited for.
	deadline := time.Now().Add(30 * time.Second)
	for _, table := range []string{grown, partitionName("attempts", day0)} {
		for !analyzed(table) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not analyzed 30 s after %d rows went in", table, 2*analyzeMin)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if analyzed(small) {
		t.Errorf("%s, one row, was analyzed", small)
	}
}

// Every day that grew in one batch is analyzed, one after another, with no
// further Append to start the next; and a store opened on days that have
// no statistics at all (filled, then closed before their ANALYZE) analyzes
// them at start.
func TestEveryDayDueIsAnalyzedAndAStoreOpenedOnUnanalyzedDaysAnalyzesThem(t *testing.T) {
	ctx := context.Background()
	analyzed := func(s *Store, table string) bool {
		var n int64
		err := s.pool.QueryRow(ctx, "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&n)
		return err == nil && n > 0
	}
	waitAnalyzed := func(t *testing.T, s *Store, tables ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, table := range tables {
			for !analyzed(s, table) {
				if time.Now().After(deadline) {
					t.Fatalf("%s not analyzed within 30 s", table)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	t.Run("three days grown in one batch", func(t *testing.T) {
		s := open(t, srv.NewDatabase(t))
		var es []history.Entry
		var tables []string
		for d := range 3 {
			day := day0.Add(time.Duration(d) * 24 * time.Hour)
			for i := range analyzeMin {
				es = append(es, entry(day.Add(time.Duration(i)*time.Second), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
			}
			tables = append(tables, partitionName("deliveries", day))
		}
		mustAppend(t, s, es...)
		waitAnalyzed(t, s, tables...)
	})
	t.Run("days left without statistics are analyzed at start", func(t *testing.T) {
		url := srv.NewDatabase(t)
		s := open(t, url)
		var es []history.Entry
		for i := range analyzeMin / 2 { // too few for the store to analyze the day as it grows
			es = append(es, entry(day0.Add(time.Duration(i)*time.Second), postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED, 1))
		}
		mustAppend(t, s, es...)
		table := partitionName("deliveries", day0)
		time.Sleep(200 * time.Millisecond)
		if analyzed(s, table) {
			t.Fatalf("%s was analyzed at %d rows; the test needs it without statistics", table, analyzeMin/2)
		}
		s.Close()
		again := open(t, url)
		waitAnalyzed(t, again, table, partitionName("attempts", day0))
	})
}
