package admin

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// alertRules is the part of a Prometheus rule file the test reads.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	// A metric with its optional matchers: sluice_x{a="b",c!~"d"}.
	selector = regexp.MustCompile(`\b((?:sluice|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	rangeDur = regexp.MustCompile(`\[([^\]]+)\]`)
)

// exported returns every metric the daemon's registry describes, with
// its label names: vectors with no series yet are absent from /metrics
// but not from Describe.
func exported(t *testing.T) map[string][]string {
	t.Helper()
	tel := NewTelemetry(TelemetryOptions{})
	ch := make(chan *prometheus.Desc, 256)
	go func() { tel.reg.Describe(ch); close(ch) }()
	out := map[string][]string{}
	for d := range ch {
		s := d.String()
		m := descName.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("cannot read a name in %s", s)
		}
		var labels []string
		if l := descLabels.FindStringSubmatch(s); l != nil && l[1] != "" {
			for _, n := range strings.Split(l[1], ",") {
				labels = append(labels, strings.Trim(strings.TrimSpace(n), `"`))
			}
		}
		out[m[1]] = labels
	}
	return out
}

// TestAlertRulesNameExportedMetrics: every metric that an expression of
// dist/prometheus/alerts.yml selects is one the binary exports (a
// histogram's _bucket, _sum and _count included), with the labels it
// matches on; every rule has a severity, a summary and valid durations.
// An alert on a renamed metric would never fire, silently. promtool,
// where installed, checks the PromQL itself (test.sh does not install
// Debian's prometheus package, the whole server, for it).
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	const path = "../dist/prometheus/alerts.yml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	metrics := exported(t)
	if _, ok := metrics["sluice_queue_recipients"]; !ok {
		t.Fatalf("the registry's descriptions were not read: %v", metrics)
	}
	seen := map[string]bool{}
	rules := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("rule %q: missing or duplicate alert name", r.Alert)
			}
			seen[r.Alert] = true
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: no summary or description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, m := range rangeDur.FindAllStringSubmatch(r.Expr, -1) {
				if _, err := time.ParseDuration(m[1]); err != nil {
					t.Errorf("%s: range [%s]: %v", r.Alert, m[1], err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			sels := selector.FindAllStringSubmatch(r.Expr, -1)
			if len(sels) == 0 && !strings.Contains(r.Expr, "up{") {
				t.Errorf("%s: selects no metric of sluice's", r.Alert)
			}
			for _, s := range sels {
				name := s[1]
				labels, ok := metrics[name]
				if !ok {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if base, cut := strings.CutSuffix(name, suf); cut {
							if labels, ok = metrics[base]; ok && suf == "_bucket" {
								labels = append(labels, "le")
							}
						}
					}
				}
				if !ok {
					t.Errorf("%s: %s is not exported by sluice", r.Alert, name)
					continue
				}
				for _, lm := range matcher.FindAllStringSubmatch(s[2], -1) {
					if l := lm[1]; l != "job" && l != "instance" && !slices.Contains(labels, l) {
						t.Errorf("%s: %s has no label %q (it has %v)", r.Alert, name, l, labels)
					}
				}
			}
		}
	}
	if rules < 10 {
		t.Errorf("%d rules", rules)
	}
	t.Run("promtool", func(t *testing.T) {
		p, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (Debian package prometheus; test.sh does not install it)")
		}
		if out, err := exec.Command(p, "check", "rules", path).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	})
}
