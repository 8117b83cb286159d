package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a real Redis Cluster of private redis-servers on loopback, each
// a master owning an even share of the 16384 hash slots (no replicas).
type Cluster struct {
	Nodes []*Server
	// URL is POSTBACK_REDIS_URL's cluster form for it:
	// redis+cluster://<first>?addr=<second>&addr=<third>...
	URL string
}

// StartCluster starts n redis-servers in cluster mode, splits the slots
// between them, joins them (CLUSTER MEET) and waits until every node says
// cluster_state:ok. They stop with tb.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{}
	for i := range n {
		dir := filepath.Join(tb.TempDir(), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
		s, err := launch(dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		if err != nil {
			tb.Fatalf("redistest: cluster node %d: %v", i, err)
		}
		s.tb = tb
		tb.Cleanup(s.stop)
		c.Nodes = append(c.Nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	const slots = 16384
	var query []string
	for i, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		lo, hi := i*slots/n, (i+1)*slots/n-1
		err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err()
		if err == nil && i > 0 {
			err = cl.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.Nodes[0].port)).Err()
		}
		cl.Close()
		if err != nil {
			tb.Fatalf("redistest: set up cluster node %s: %v", s.Addr, err)
		}
		if i > 0 {
			query = append(query, "addr="+s.Addr)
		}
	}
	c.URL = "redis+cluster://" + c.Nodes[0].Addr
	if len(query) > 0 {
		c.URL += "?" + strings.Join(query, "&")
	}
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if ctx.Err() != nil {
				cl.Close()
				tb.Fatalf("redistest: cluster node %s not ok within %s: %v\n%s", s.Addr, startTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	return c
}

// Sentinel is a redis-server in sentinel mode watching one master.
type Sentinel struct {
	*Server
	// Master is the name the sentinel knows the master by.
	Master string
	// URL is POSTBACK_REDIS_URL's sentinel form for it:
	// redis+sentinel://<sentinel>?master_name=<Master>
	URL string
}

// StartSentinel starts a sentinel (quorum 1) watching master under the
// name "postback", and waits until it answers for it. It stops with tb.
func StartSentinel(tb testing.TB, master *Server) *Sentinel {
	tb.Helper()
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor postback 127.0.0.1 %d 1\nsentinel down-after-milliseconds postback 2000\n", master.port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	s, err := launch(dir, conf, "--sentinel")
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v", err)
	}
	s.tb = tb
	tb.Cleanup(s.stop)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer sc.Close()
	for {
		addr, err := sc.GetMasterAddrByName(ctx, "postback").Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.port) {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("redistest: sentinel on %s does not know the master within %s: %v", s.Addr, startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Sentinel{Server: s, Master: "postback", URL: "redis+sentinel://" + s.Addr + "?master_name=postback"}
}
