package standalone

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/postback-dev/postback/pkg/pgtest"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// TestAKilledHistoryWriterAndARestartedStoreLoseAndDuplicateNothing: a
// burst of 20,000 events goes out while the history writer (a separate
// process) is SIGKILLed and started again and PostgreSQL is stopped and
// started again. Sending goes on throughout; afterwards every delivery is
// in the history once, SUCCEEDED, with exactly one attempt.
func TestAKilledHistoryWriterAndARestartedStoreLoseAndDuplicateNothing(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	pg := pgtest.Start(t)
	url := pg.NewDatabase(t)
	dir := t.TempDir()
	h := start(t, dir, func(c *Config) {
		c.HistoryURL = url
		c.Targets = "gateway,renderer,sender,retry" // the writer runs as its own process
	})
	writerBin := binary(t, "postback-historian", ".", "./services/historian/cmd/postback-historian")
	writer := &process{t: t, path: writerBin, log: filepath.Join(dir, "historian.log"),
		env: []string{"POSTBACK_NATS_URL=" + h.addrs.NATS, "POSTBACK_HISTORY_URL=" + url, "POSTBACK_HTTP_ADDR=127.0.0.1:0"}}
	writer.start()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(writer.log)
			t.Logf("history writer's log:\n%s", b)
		}
	})

	var mu sync.Mutex
	var arrivals []time.Time
	rc := newReceiver(t)
	rc.answer = func(int, *http.Request) (int, string) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		return 200, "OK"
	}
	postTo(t, h, rc.URL)
	ctx := context.Background()
	publish := func(from, to int) {
		for i := from; i < to; i += 500 {
			b := &postbackv1.PublishBatchRequest{}
			for j := i; j < min(i+500, to); j++ {
				data, _ := structpb.NewStruct(map[string]any{"CampaignId": 9876, "ActionIds": fmt.Sprintf("ACT-%d", j), "ClearedDate": "2026-04-15T12:00:00Z"})
				b.Events = append(b.Events, &postbackv1.PublishRequest{AccountId: "brand-1", EventType: "action_clearing", Data: data})
			}
			if _, err := h.events.PublishBatch(ctx, b); err != nil {
				t.Fatalf("PublishBatch: %v", err)
			}
		}
	}
	arrived := func() int { mu.Lock(); defer mu.Unlock(); return len(arrivals) }
	publish(0, n/2)
	eventually(t, 60*time.Second, "a quarter of the burst delivered", func() bool { return arrived() >= n/4 })
	writer.kill() // kill -9 mid-batch
	publish(n/2, n)
	eventually(t, 60*time.Second, "half of the burst delivered", func() bool { return arrived() >= n/2 })
	pg.Stop()
	writer.start() // comes back to a store that is down
	eventually(t, 60*time.Second, "three quarters of the burst delivered", func() bool { return arrived() >= 3*n/4 })
	pg.Restart()
	// Bounded generously: CI runs other packages' tests beside this one,
	// and an endpoint's share of the sender narrows while it is slow.
	for deadline := time.Now().Add(5 * time.Minute); arrived() < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d postbacks delivered 5 minutes after PostgreSQL came back", arrived(), n)
		}
	}

	// The history catches up: every delivery once, SUCCEEDED, one attempt.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, distinct, succeeded, attempts int
	eventually(t, 120*time.Second, "every delivery SUCCEEDED in the history", func() bool {
		err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE status = $1) FROM deliveries WHERE account_id = 'brand-1'`,
			int(postbackv1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED)).Scan(&rows, &distinct, &succeeded)
		return err == nil && succeeded >= n
	})
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM attempts`).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n || succeeded != n || attempts != n {
		t.Fatalf("history holds %d rows (%d distinct, %d SUCCEEDED) and %d attempts; want %d of each", rows, distinct, succeeded, attempts, n)
	}
	if got := arrived(); got != n {
		t.Errorf("receiver got %d requests, want %d (sent once each)", got, n)
	}
	// The longest pause in sending, for the record (not a pass mark: this
	// machine is shared).
	mu.Lock()
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(arrivals); i++ {
		gap = max(gap, arrivals[i].Sub(arrivals[i-1]))
	}
	mu.Unlock()
	t.Logf("%d postbacks in %s; longest pause between two sends %s", n, arrivals[len(arrivals)-1].Sub(arrivals[0]).Round(time.Millisecond), gap.Round(time.Millisecond))
}
