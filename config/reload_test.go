package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestEveryKeyIsClassified walks the Config types by their TOML tags and
// compares every key with the reload table: a key added without saying
// whether a reload applies it fails here until it is classified in
// reloadClasses (config/reload.go), and an entry for a key that no
// longer exists fails too.
func TestEveryKeyIsClassified(t *testing.T) {
	t.Parallel()
	keys := Keys()
	if len(keys) < 50 {
		t.Fatalf("walked only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		switch reloadClasses[k] {
		case Reloadable, RestartOnly:
		default:
			t.Errorf("config key %q is neither reloadable nor restart-only: class it in reloadClasses (config/reload.go)", k)
		}
	}
	for k := range reloadClasses {
		if !slices.Contains(keys, k) {
			t.Errorf("reloadClasses names %q, which is not a config key", k)
		}
	}
	// The keys of one array of tables are replaced together: they must
	// agree.
	for _, u := range units() {
		if !u.array {
			continue
		}
		classes := map[ReloadClass]bool{}
		for _, k := range keys {
			if strings.HasPrefix(k, u.key+".") {
				classes[reloadClasses[k]] = true
			}
		}
		if len(classes) != 1 {
			t.Errorf("the keys of [[%s]] mix reload classes: %v", u.key, classes)
		}
	}
	// A field TOML never sets is read from another key, which its
	// `reload` tag names.
	for f, src := range HiddenFields() {
		if src == "" || ClassOf(src) == Unclassified {
			t.Errorf("hidden field %s needs a reload tag naming the classified key it is read from (got %q)", f, src)
		}
	}
}

// TestReloadClassesOfTheIssue pins the classes issue 12 names.
func TestReloadClassesOfTheIssue(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]ReloadClass{
		"access.networks": Reloadable, "limits.max_connections": Reloadable,
		"delivery.route[1].host": Reloadable, "delivery.smarthost.host": Reloadable,
		"policy.destination[3].rate": Reloadable, "policy.rule.match": Reloadable, "policy.retry_base": Reloadable,
		"auth.mode": Reloadable, "auth.dkim.key_file": Reloadable, "log.level": Reloadable,
		"tls.cert_file": Reloadable, "tls.key_file": Reloadable,
		"listen.smtp": RestartOnly, "listen.admin": RestartOnly, "data_dir": RestartOnly,
		"policy.group_by": RestartOnly, "policy.provider.name": RestartOnly,
	} {
		if got := ClassOf(key); got != want {
			t.Errorf("%s: %v, want %v", key, got, want)
		}
	}
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "sluice.toml", "/etc/sluice")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMergeKeepsRestartOnlyKeys(t *testing.T) {
	t.Parallel()
	cur := mustParse(t, `
data_dir = "/var/lib/a"
[listen]
smtp = "127.0.0.1:2525"
[policy]
group_by = "mx"
max_concurrency = 20
[[policy.provider]]
name = "p1"
suffixes = [".p1.test"]
[limits]
max_recipients = 100
`)
	next := mustParse(t, `
data_dir = "/var/lib/b"
[listen]
smtp = "127.0.0.1:2626"
[policy]
group_by = "domain"
max_concurrency = 5
[[policy.provider]]
name = "p2"
suffixes = [".p2.test"]
[limits]
max_recipients = 7
`)
	eff, restart := Merge(cur, next)
	if want := []string{"data_dir", "listen.smtp", "policy.group_by", "policy.provider"}; !slices.Equal(restart, want) {
		t.Errorf("needs restart: %v, want %v", restart, want)
	}
	if eff.DataDir != "/var/lib/a" || eff.Listen.SMTP != "127.0.0.1:2525" || eff.Policy.GroupBy != "mx" ||
		len(eff.Policy.Providers) != 1 || eff.Policy.Providers[0].Name != "p1" {
		t.Errorf("restart-only keys not kept: %+v %+v", eff.Listen, eff.Policy)
	}
	if eff.Policy.MaxConcurrency != 5 || eff.Limits.MaxRecipients != 7 {
		t.Errorf("reloadable keys not taken: max_concurrency %d, max_recipients %d", eff.Policy.MaxConcurrency, eff.Limits.MaxRecipients)
	}
	if cur.Limits.MaxRecipients != 100 || next.DataDir != "/var/lib/b" {
		t.Error("Merge modified its arguments")
	}
	if _, restart := Merge(cur, cur); len(restart) != 0 {
		t.Errorf("an unchanged file needs a restart: %v", restart)
	}
}

func TestDiffKeyByKeyAndRedacted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := dir + "/pw"
	writeFile(t, pw, "first")
	a := mustParse(t, `
[log]
level = "info"
[[access.user]]
name = "app"
password_hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
[[delivery.route]]
domain = "a.test"
host = "127.0.0.1:25"
[delivery.smarthost]
host = "smart.test:587"
password_file = "`+pw+`"
`)
	writeFile(t, pw, "second")
	b := mustParse(t, `
[log]
level = "debug"
[[access.user]]
name = "app"
password_hash = "$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z1rmL7CdC7lYqGn5a2ZJb/2G"
[[delivery.route]]
domain = "a.test"
host = "127.0.0.1:26"
[[delivery.route]]
domain = "b.test"
host = "127.0.0.1:27"
[delivery.smarthost]
host = "smart.test:587"
password_file = "`+pw+`"
`)
	got := map[string]Change{}
	for _, c := range Diff(a, b) {
		got[c.Key] = c
	}
	if c := got["log.level"]; c.Old != `"info"` || c.New != `"debug"` {
		t.Errorf("log.level: %+v", c)
	}
	if c, ok := got["access.user[1].password_hash"]; !ok || c.Old != "REDACTED" || c.New != "REDACTED" {
		t.Errorf("a changed password hash is named and redacted: %+v (all: %v)", c, got)
	}
	if c, ok := got["delivery.route"]; !ok || !strings.Contains(c.New, `"b.test"`) || !strings.Contains(c.Old, `127.0.0.1:25`) {
		t.Errorf("routes added: %+v", c)
	}
	if c, ok := got["delivery.smarthost.password_file"]; !ok || strings.Contains(c.Old+c.New, "first") || strings.Contains(c.Old+c.New, "second") {
		t.Errorf("smarthost password: %+v", c)
	}
	for _, c := range got {
		for _, secret := range []string{"$2a$", "first", "second"} {
			if strings.Contains(c.Old+c.New, secret) {
				t.Errorf("secret %q in %v", secret, c)
			}
		}
	}
	if len(got) != 4 {
		t.Errorf("changes: %v", got)
	}
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("no change, yet %v", d)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
