package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"sluice/admin"
	"sluice/cluster"
)

// runCluster: `sluice cluster status`.
func runCluster(args []string, stdout, stderr io.Writer) error {
	var cf cliFlags
	fs := newFlagSet("cluster", "cluster status [--json]\n\nThe nodes sharing this node's Redis ([cluster]): each node's last heartbeat and its age,\nversion and queue size (recipients not finished), whether Redis is up for this node,\nand the sender-wide alarm if a node raised one.", stderr)
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if len(pos) != 1 || pos[0] != "status" {
		fs.Usage()
		return fmt.Errorf("%w: sluice cluster status", errUsage)
	}
	c, ctx, cancel, err := cf.connect()
	if err != nil {
		return err
	}
	defer cancel()
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		return explainErr(c, err)
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	renderCluster(stdout, st, time.Now())
	return nil
}

func renderCluster(w io.Writer, st cluster.Status, now time.Time) {
	up := "up"
	if !st.RedisUp {
		up = "DOWN: local fallback, each destination's limits divided by the live nodes"
	}
	fmt.Fprintf(w, "node %s, Redis %s (%s), %d live node(s)\n", esc(st.Node), esc(st.Redis), up, st.LiveNodes)
	if st.Alarm != nil {
		fmt.Fprintf(w, "ALARM (node %s, since %s): %s\n", esc(st.Alarm.Node), st.Alarm.Since.UTC().Format(time.RFC3339), esc(st.Alarm.Reason))
	}
	tw := table(w)
	fmt.Fprintln(tw, "NODE\tSTATE\tHEARTBEAT\tAGE\tVERSION\tQUEUE")
	for _, n := range st.Nodes {
		state := "live"
		if !n.Live {
			state = "dead"
		}
		name := esc(n.ID)
		if n.Self {
			name += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", name, state, n.LastHeartbeat.UTC().Format(time.RFC3339), n.Age.Round(100*time.Millisecond), esc(orDash(n.Version)), n.QueueSize)
	}
	tw.Flush()
}

// renderClusterShares is the cluster part of `domains`: each
// destination's sessions across the fleet and the share of each node.
func renderClusterShares(w io.Writer, ds []admin.Destination) {
	var rows []admin.Destination
	for _, d := range ds {
		if d.Cluster != nil {
			rows = append(rows, d)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\ncluster-wide sessions (all nodes):")
	tw := table(w)
	fmt.Fprintln(tw, "  DESTINATION\tLEVEL\tSESSIONS\tBY NODE")
	for _, d := range rows {
		nodes := make([]string, 0, len(d.Cluster.ByNode))
		for n := range d.Cluster.ByNode {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		parts := make([]string, len(nodes))
		for i, n := range nodes {
			parts[i] = fmt.Sprintf("%s=%d", esc(n), d.Cluster.ByNode[n])
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", esc(d.Name), d.Cluster.Level, d.Cluster.Sessions, orDash(strings.Join(parts, " ")))
	}
	tw.Flush()
}
