package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestExampleDocumentsEveryKey walks the Config type and checks that
// config.example.toml shows every key in its section (commented out for
// arrays of tables, which have no default entries).
func TestExampleDocumentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Map each key line to its section, uncommenting the examples.
	section := ""
	have := map[string]bool{}
	header := regexp.MustCompile(`^#?\s*\[\[?([a-z_.]+)\]\]?`)
	keyRE := regexp.MustCompile(`^#?\s*([a-z_]+)\s*=`)
	for _, line := range strings.Split(string(data), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			section = m[1] + "."
			continue
		}
		if m := keyRE.FindStringSubmatch(line); m != nil {
			have[section+m[1]] = true
		}
	}
	var walk func(rt reflect.Type, prefix string)
	walk = func(rt reflect.Type, prefix string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			name := f.Tag.Get("toml")
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != rateType {
				walk(ft.Elem(), prefix+name+".")
				continue
			}
			if ft.Kind() == reflect.Struct && ft != rateType {
				walk(ft, prefix+name+".")
				continue
			}
			if !have[prefix+name] {
				t.Errorf("config.example.toml does not document %s", prefix+name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

// TestExampleAloneIsTheDefaults decodes config.example.toml by itself,
// without the embedded defaults underneath, and compares every key with
// Default(): the values the example documents are the ones the relay
// uses, and it leaves none out (issue 9 item 21: one source of defaults).
func TestExampleAloneIsTheDefaults(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	got := new(Config)
	if err := decode(data, "config.example.toml", got); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	got.resolvePaths(abs)
	got.inherit()
	for _, d := range diffKeys(reflect.ValueOf(*got), reflect.ValueOf(*Default()), "") {
		t.Errorf("config.example.toml documents %s", d)
	}
}

// diffKeys names, by TOML key, every value that differs between a and b.
func diffKeys(a, b reflect.Value, prefix string) []string {
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name := f.Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		av, bv := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != rateType {
			out = append(out, diffKeys(av, bv, prefix+name+".")...)
			continue
		}
		if !reflect.DeepEqual(av.Interface(), bv.Interface()) {
			out = append(out, fmt.Sprintf("%s%s = %v, but the default is %v", prefix, name, av.Interface(), bv.Interface()))
		}
	}
	return out
}

// documentedZeros names, for every key whose zero (or "0") the example
// documents, the test that shows the relay doing what the comment says
// (issue 9 item 21). A new "0 = ..." in config.example.toml needs an entry
// here and a test.
var documentedZeros = map[string]string{
	"memory_limit":                   "cmd/sluice:TestApplyMemoryLimit",
	"limits.max_inflight_bytes":      "relay/inbound:TestZeroInflightBytesIsNoBound",
	"delivery.connection_idle":       "scheduler:TestConnectionIdleZeroClosesAtOnce",
	"delivery.delay_warning":         "scheduler:TestDelayWarningZeroSendsNone",
	"policy.greylist_margin":         "policy:TestZeroMeansWhatTheConfigSays",
	"policy.initial_concurrency":     "policy:TestZeroMeansWhatTheConfigSays",
	"policy.suppress_after_expiries": "policy:TestZeroMeansWhatTheConfigSays",
}

// TestDocumentedZerosAreTested finds every key whose comment in
// config.example.toml gives a meaning to 0, and checks that it has a
// named test in documentedZeros and that the test exists.
func TestDocumentedZerosAreTested(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	zero := regexp.MustCompile(`(^|[;#]\s*)"?0s?"? = `)
	key := regexp.MustCompile(`^([a-z_]+)\s*=`)
	header := regexp.MustCompile(`^\[([a-z_.]+)\]`)
	section := ""
	found := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			section = m[1] + "."
			continue
		}
		m := key.FindStringSubmatch(line)
		i := strings.Index(line, "#")
		if m == nil || i < 0 || !zero.MatchString(line[i:]) {
			continue
		}
		k := section + m[1]
		found[k] = true
		test, ok := documentedZeros[k]
		if !ok {
			t.Errorf("%s documents a meaning for 0 but names no test in documentedZeros", k)
			continue
		}
		pkg, name, _ := strings.Cut(test, ":")
		files, _ := filepath.Glob(filepath.Join("..", pkg, "*_test.go"))
		have := false
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "func "+name+"(") {
				have = true
				break
			}
		}
		if !have {
			t.Errorf("%s: test %s not found in %s", k, name, pkg)
		}
	}
	for k := range documentedZeros {
		if !found[k] {
			t.Errorf("documentedZeros lists %s, but config.example.toml documents no 0 for it", k)
		}
	}
}
