package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOperationsGuideListsEveryKey: the reload table of
// docs/operations.md, which operators read to know whether a change needs
// `systemctl reload` or a restart, names every key of the schema once, in
// the column of its class here (reloadClasses). A key added, removed or
// reclassed without the guide fails this test.
func TestOperationsGuideListsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "<!-- reload-keys")
	end := strings.Index(doc, "<!-- /reload-keys -->")
	if start < 0 || end < start {
		t.Fatal("docs/operations.md: no <!-- reload-keys --> ... <!-- /reload-keys --> table")
	}
	key := regexp.MustCompile("`([a-z_.]+)`")
	listed := map[string]ReloadClass{}
	for _, line := range strings.Split(doc[start:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 5 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "section" {
			continue
		}
		for col, class := range map[int]ReloadClass{2: Reloadable, 3: RestartOnly} {
			for _, m := range key.FindAllStringSubmatch(cells[col], -1) {
				if _, dup := listed[m[1]]; dup {
					t.Errorf("%s is listed twice", m[1])
				}
				listed[m[1]] = class
			}
		}
	}
	for _, k := range Keys() {
		got, ok := listed[k]
		switch {
		case !ok:
			t.Errorf("%s (%v) is not in the table of docs/operations.md", k, ClassOf(k))
		case got != ClassOf(k):
			t.Errorf("%s is listed as %v, but it is %v", k, got, ClassOf(k))
		}
		delete(listed, k)
	}
	for k := range listed {
		t.Errorf("%s is in the table of docs/operations.md but not a config key", k)
	}
}
