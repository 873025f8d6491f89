package admin

import (
	"context"
	"errors"
	"net/http"

	"sluice/cluster"
	"sluice/policy"
)

// Cluster is what the admin surface asks of the node's cluster
// membership (issue 15); *cluster.Node implements it. nil in Options:
// cluster mode is off.
type Cluster interface {
	NodeID() string
	Status(ctx context.Context) cluster.Status
	Shares(ctx context.Context, dests []string) (map[string]cluster.Share, error)
	SetLimits(dest string, l policy.Limits) error
	ResetLimits(dest string) error
	ClusterAlarm() (cluster.Alarm, bool)
	Stats() cluster.Stats
}

var _ Cluster = (*cluster.Node)(nil)

// errNoCluster answers GET /v1/cluster when cluster mode is off.
var errNoCluster = errors.New("cluster mode is off ([cluster] redis is empty)")

// ClusterShare is a destination's sessions across the cluster, as
// `sluice domains` shows them.
type ClusterShare struct {
	Level    int            `json:"level"`    // the cluster's concurrency level
	Sessions int            `json:"sessions"` // session leases held, all nodes
	ByNode   map[string]int `json:"by_node"`  // leases per node
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	if s.o.Cluster == nil {
		writeErr(w, http.StatusNotFound, "%v", errNoCluster)
		return
	}
	writeJSON(w, http.StatusOK, s.o.Cluster.Status(r.Context()))
}

// clusterShares adds each destination's cluster-wide sessions to ds (one
// Redis round trip; nothing when Redis is down: the node's own view is
// what it uses then).
func (s *Server) clusterShares(ctx context.Context, ds []Destination) {
	if s.o.Cluster == nil || len(ds) == 0 {
		return
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	sh, err := s.o.Cluster.Shares(ctx, names)
	if err != nil {
		return
	}
	for i := range ds {
		if c, ok := sh[ds[i].Name]; ok {
			ds[i].Cluster = &ClusterShare{Level: c.Level, Sessions: c.Leases, ByNode: c.ByNode}
		}
	}
}

// ClusterStatus is GET /v1/cluster.
func (c *Client) ClusterStatus(ctx context.Context) (cluster.Status, error) {
	var st cluster.Status
	return st, c.do(ctx, http.MethodGet, "/v1/cluster", nil, &st)
}
