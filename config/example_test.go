package config

import (
	"os"
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
