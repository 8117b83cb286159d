package config

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/postback-dev/postback/pkg/limiter"
	"github.com/postback-dev/postback/pkg/limiter/limitertest"
	"github.com/postback-dev/postback/pkg/redistest"
)

func TestRedisURLsNameOneServerAClusterOrASentinelsMaster(t *testing.T) {
	cases := []struct {
		url     string
		want    string // the client's type, or "" when refused
		wantErr string
	}{
		{url: "redis://127.0.0.1:6379/2", want: "*redis.Client"},
		{url: "rediss://user:pw@127.0.0.1:6379", want: "*redis.Client"},
		{url: "redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002", want: "*redis.ClusterClient"},
		{url: "rediss+cluster://u:pw@127.0.0.1:7000?dial_timeout=2s", want: "*redis.ClusterClient"},
		{url: "redis+sentinel://127.0.0.1:26379?master_name=postback&addr=127.0.0.1:26380", want: "*redis.Client"},
		{url: "redis+sentinel://127.0.0.1:26379", wantErr: "needs master_name"},
		{url: "127.0.0.1:6379", wantErr: "not a Redis URL"},
		{url: "http://127.0.0.1:6379", wantErr: `unknown scheme "http"`},
		{url: "redis+shard://127.0.0.1:6379", wantErr: `unknown scheme "redis+shard"`},
		{url: "redis://:s3cret-pw@127.0.0.1:6379?bogus_option=1", wantErr: "not a valid redis:// URL"},
		{url: "redis+cluster://:s3cret-pw@127.0.0.1:7000?bogus_option=1", wantErr: "not a valid redis+cluster:// URL"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			client, err := RedisClient(c.url)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if got := fmt.Sprintf("%T", client); got != c.want {
				t.Errorf("client is a %s, want a %s", got, c.want)
			}
		})
	}
}

// limiterAt is the limiter POSTBACK_REDIS_URL=url gives, closed with t.
func limiterAt(t *testing.T, url string) limiter.Limiter {
	t.Helper()
	lim, closeLimiter, err := Config{RedisURL: url}.Limiter(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeLimiter)
	return lim
}

// Sender replicas share one schedule per endpoint through a Redis Cluster
// too: the limiter given a redis+cluster:// URL passes the conformance
// suite on a real 3-node cluster, three replicas share one schedule, and
// the endpoints' keys spread over every node (each key's hash tag keeps an
// endpoint's script on one node).
func TestTheLimiterRunsOnARealRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	limitertest.Run(t, func(t *testing.T) limiter.Limiter { return limiterAt(t, cluster.URL) })
	t.Run("replicas", func(t *testing.T) {
		limitertest.RunReplicas(t, []limiter.Limiter{limiterAt(t, cluster.URL), limiterAt(t, cluster.URL), limiterAt(t, cluster.URL)})
	})
	lim := limiterAt(t, cluster.URL)
	ctx := context.Background()
	for i := range 60 {
		if _, err := lim.Reserve(ctx, fmt.Sprintf("ep_spread_%d", i), limiter.Limits{Rate: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range cluster.Nodes {
		c := redis.NewClient(&redis.Options{Addr: node.Addr})
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil || n == 0 {
			t.Errorf("node %s holds %d keys (%v), want a share of the endpoints", node.Addr, n, err)
		}
	}
}

// ... and through a master that Sentinels watch: the redis+sentinel:// URL
// finds the master by name and the limiter passes the suite against it.
func TestTheLimiterRunsBehindARealRedisSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master)
	limitertest.Run(t, func(t *testing.T) limiter.Limiter { return limiterAt(t, sentinel.URL) })
	c := redis.NewClient(&redis.Options{Addr: master.Addr, DialTimeout: time.Second})
	defer c.Close()
	if n, err := c.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Errorf("the master holds %d keys (%v), want the suite's endpoints", n, err)
	}
}
