package main

import (
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sluice/internal/fakemx"
	"sluice/internal/redistest"
	"sluice/queue"
)

// TestProofCluster: two built relays in cluster mode ([cluster] against a
// real redis-server) deliver their own mail to one fake MX that takes 2
// sessions and 25 messages a second, under a destination limit of 2
// sessions and 20/s: the fleet keeps to it as one sender. Redis is
// killed mid-delivery and restarted empty: each node falls back to its
// share (1 session, 10/s), logs it once, rejoins, and every message is
// delivered exactly once with the receiver's limits kept throughout (no
// storm on either transition).
func TestProofCluster(t *testing.T) {
	srv := redistest.Start(t)
	mx := startFakeMX(t, fakemx.Options{MaxSessions: 2, RatePerWindow: 25})
	const each = 40
	type node struct {
		cfg, smtp, dir, http string
		p                    *relayProc
	}
	var nodes []*node
	for i := range 2 {
		dir := t.TempDir()
		addr, httpAddr := freeAddr(t), freeAddr(t)
		extra := routeTo("dest.test", mx.Addr()) + fmt.Sprintf(`
[[policy.destination]]
match = "dest.test"
max_concurrency = 2
rate = "20/s"

[cluster]
redis = %q
node_id = "node%d"
prefix = "proof:%s:"
lease_ttl = "3s"
heartbeat = "500ms"
`, srv.URL(), i+1, t.Name())
		cfg := writeConfig(t, dir, addr, extra)
		writeConfigRaw(t, cfg, strings.Replace(readFile(t, cfg), `http = ""`, fmt.Sprintf("http = %q", httpAddr), 1))
		nodes = append(nodes, &node{cfg: cfg, smtp: addr, dir: dir, http: httpAddr, p: startRelay(t, cfg, addr)})
	}
	for i, n := range nodes {
		for j := range each {
			msg := fmt.Sprintf("Subject: c\r\nMessage-ID: <n%d-%d@proof.test>\r\n\r\nhello\r\n", i+1, j)
			if err := smtp.SendMail(n.smtp, nil, "app@src.test", []string{fmt.Sprintf("u%d@dest.test", j)}, []byte(msg)); err != nil {
				t.Fatalf("node %d message %d: %v", i+1, j, err)
			}
		}
	}
	eventually(t, 30*time.Second, "a quarter delivered", func() bool { return mx.Stats().Delivered >= each/2 })
	srv.Stop()
	eventually(t, 10*time.Second, "both nodes in fallback", func() bool {
		for _, n := range nodes {
			if !strings.Contains(relayLog(n.cfg), "falling back to local state") {
				return false
			}
		}
		return true
	})
	srv.Start()
	eventually(t, 60*time.Second, "every message delivered", func() bool { return mx.Stats().Delivered >= 2*each })
	for _, n := range nodes {
		eventually(t, 10*time.Second, "rejoin logged", func() bool {
			return strings.Contains(relayLog(n.cfg), "Redis reachable again")
		})
	}
	// The operator surface: both nodes listed by either, the fleet's
	// sessions by node in `domains`, `limits set` on one node in force
	// on the other, and the node label on the cluster's metrics.
	out, code := cli(t, "cluster", "status", "--config", nodes[1].cfg)
	if code != 0 || !strings.Contains(out, "node1") || !strings.Contains(out, "node2 (this node)") || len(regexp.MustCompile(`(?m)^node\d.* live `).FindAllString(out, -1)) != 2 {
		t.Errorf("cluster status: exit %d\n%s", code, out)
	}
	if out, code := cli(t, "limits", "set", "dest.test", "--max-concurrency", "1", "--config", nodes[0].cfg); code != 0 {
		t.Fatalf("limits set: exit %d\n%s", code, out)
	}
	eventually(t, 10*time.Second, "the limit in force on node 2", func() bool {
		out, _ := cli(t, "domains", "show", "dest.test", "--json", "--config", nodes[1].cfg)
		return strings.Contains(out, `"max_concurrency": 1,`)
	})
	if out, code := cli(t, "domains", "--config", nodes[1].cfg); code != 0 || !strings.Contains(out, "cluster-wide sessions") {
		t.Errorf("domains: exit %d\n%s", code, out)
	}
	metrics := httpGet(t, "http://"+nodes[0].http+"/metrics")
	for _, want := range []string{`sluice_cluster_redis_up{node="node1"} 1`, `sluice_cluster_live_nodes{node="node1"} 2`, `sluice_cluster_fallbacks_total{node="node1"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	st := mx.Stats()
	t.Logf("fake MX: delivered %d, duplicates %d, max concurrent %d, session refusals %d, rate refusals %d",
		st.Delivered, st.Duplicates, st.MaxConcurrent, st.SessionRefusals, st.RateRefusals)
	if st.Delivered != 2*each || st.Duplicates != 0 {
		t.Fatalf("delivered %d (duplicates %d), want %d exactly once", st.Delivered, st.Duplicates, 2*each)
	}
	if st.MaxConcurrent > 2 || st.SessionRefusals > 0 {
		t.Errorf("the fleet opened %d sessions at once (%d refused): the destination takes 2", st.MaxConcurrent, st.SessionRefusals)
	}
	if st.RateRefusals > 2 {
		t.Errorf("%d rate refusals: the fleet went over 25/s", st.RateRefusals)
	}
	for i, n := range nodes {
		log := relayLog(n.cfg)
		if c := strings.Count(log, "falling back to local state"); c != 1 {
			t.Errorf("node %d logged the fallback %d times, want once", i+1, c)
		}
		if strings.Contains(log, "hunter2") {
			t.Errorf("node %d logged a secret", i+1)
		}
		n.p.stop(t)
		if c := queueCounts(t, filepath.Join(n.dir, "data")); c[queue.StateSent] != each {
			t.Errorf("node %d: %d sent in its queue, want %d", i+1, c[queue.StateSent], each)
		}
		if _, err := os.Stat(filepath.Join(n.dir, "data", "cluster-nodes")); err != nil {
			t.Errorf("node %d: the live node count was not kept: %v", i+1, err)
		}
	}
}
