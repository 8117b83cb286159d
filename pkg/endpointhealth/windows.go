package endpointhealth

import (
	"context"
	"time"

	"github.com/postback-dev/postback/pkg/delivery"
	"github.com/postback-dev/postback/pkg/history"
	postbackv1 "github.com/postback-dev/postback/proto/postback/v1"
)

// Windows fills the health block's counts from the history store: the
// endpoint's deliveries created in the last hour and the last 24 hours,
// by how they stand now (history.Store.Counts, one indexed query each).
func Windows(ctx context.Context, store history.Store, endpointID string, now time.Time) (hour, day *postbackv1.HealthCounts, err error) {
	count := func(d time.Duration) (*postbackv1.HealthCounts, error) {
		n, err := store.Counts(ctx, endpointID, now.Add(-d), now.Add(time.Second))
		if err != nil {
			return nil, err
		}
		return &postbackv1.HealthCounts{Succeeded: n[delivery.Succeeded], Failed: n[delivery.Retrying] + n[delivery.Failed] + n[delivery.Dead]}, nil
	}
	if hour, err = count(time.Hour); err != nil {
		return nil, nil, err
	}
	if day, err = count(24 * time.Hour); err != nil {
		return nil, nil, err
	}
	return hour, day, nil
}
