package stream

import (
	"context"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ListKeys lists a bucket's keys matching a subject filter, server side,
// from the bucket stream's per-subject state: one snapshot, in which a key
// being updated is always present. (The KV key lister watches the bucket
// instead, and misses a key whose only revision is replaced while it lists,
// as delivery records are when their outcome is written.) Keys whose last
// entry is a delete or purge are listed too; reading them gives
// ErrNotFound, which every caller passes over.
func ListKeys(ctx context.Context, st jetstream.Stream, bucket, filter string) ([]string, error) {
	prefix := "$KV." + bucket + "."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subject, prefix))
	}
	slices.Sort(keys)
	return keys, nil
}
