package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleEqualsDefault(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data, "config.example.toml", "")
	if err != nil {
		t.Fatalf("config.example.toml does not parse: %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config.example.toml differs from the embedded defaults:\n%s\nvs\n%s", got, want)
	}
}

func TestDefaultValues(t *testing.T) {
	t.Parallel()
	c := Default()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"hostname", c.Hostname, "localhost"},
		{"data_dir", c.DataDir, filepath.Join(wd, "sluice-data")},
		{"admin", c.AdminAddress(), "unix:" + filepath.Join(wd, "sluice-data", "admin.sock")},
		{"smtp", c.Listen.SMTP, "127.0.0.1:2525"},
		{"networks", c.Access.Networks, []string{"127.0.0.0/8", "::1/128"}},
		{"max_message_size", c.Limits.MaxMessageSize, Size(25 << 20)},
		// 40 transactions of 25MB (issue 9 item 6).
		{"max_inflight_bytes", c.Limits.MaxInflightBytes, Size(1 << 30)},
		{"memory_limit", c.MemoryLimit, Size(512 << 20)},
		{"retention", c.Queue.Retention.D(), 7 * 24 * time.Hour},
		{"max_queue_lifetime", c.Delivery.MaxQueueLifetime.D(), 5 * 24 * time.Hour},
		{"delay_warning", c.Delivery.DelayWarning.D(), 4 * time.Hour},
		{"throttle_pause", c.Policy.ThrottlePause.D(), time.Second},
		{"smarthost tls inherits", c.Delivery.Smarthost.TLS, "may"},
		{"rate unlimited", c.Policy.Rate.Unlimited(), true},
		{"min_rate", c.Policy.MinRate.String(), "1/s"},
		{"auth.mode", c.Auth.Mode, "warn"},
		{"lint.mode", c.Lint.Mode, "warn"},
		{"lint.bulk_per_day", c.Lint.BulkPerDay, 5000},
		{"lint.warn_interval", c.Lint.WarnInterval, Duration(time.Minute)},
		{"lint.max_bytes", c.Lint.MaxBytes, Size(1 << 20)},
		{"lint.warn_budget", c.Lint.WarnBudget, Percent(0.02)},
		{"resolver", c.Delivery.Resolver, ""},
		{"resolver_concurrency", c.Delivery.ResolverConcurrency, 100},
		{"resolver_min_ttl", c.Delivery.ResolverMinTTL.D(), 5 * time.Second},
		{"resolver_max_ttl", c.Delivery.ResolverMaxTTL.D(), 24 * time.Hour},
		{"suppress_on_unknown_user", c.Policy.SuppressOnUnknownUser, true},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestOverlay(t *testing.T) {
	t.Parallel()
	doc := `
hostname = "mx.example.com"
[access]
networks = ["10.0.0.0/8"]
[policy]
max_concurrency = 7
throttle_pause = "30s"
[[policy.rule]]
match = 'TSS04'
class = "suspend"
for = "2h"
[[delivery.route]]
domain = "dest.test"
host = "127.0.0.1:2601"
[[delivery.route]]
domain = "other.test"
host = "127.0.0.1:2602"
tls = "none"
`
	c, err := Parse([]byte(doc), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mx.example.com" || c.Policy.MaxConcurrency != 7 || c.Policy.MinConcurrency != 1 {
		t.Errorf("overlay wrong: %+v", c.Policy)
	}
	// A list in the file replaces the default list; it does not append.
	if !reflect.DeepEqual(c.Access.Networks, []string{"10.0.0.0/8"}) {
		t.Errorf("networks = %v", c.Access.Networks)
	}
	if c.Policy.ThrottlePause.D() != 30*time.Second {
		t.Errorf("throttle_pause = %v", c.Policy.ThrottlePause)
	}
	if len(c.Policy.Rules) != 1 || c.Policy.Rules[0].For.D() != 2*time.Hour {
		t.Errorf("rules = %+v", c.Policy.Rules)
	}
	if c.Delivery.Routes[0].TLS != "may" || c.Delivery.Routes[1].TLS != "none" {
		t.Errorf("route tls not inherited: %+v", c.Delivery.Routes)
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem", "dkim.key", "token", "pw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := `
data_dir = "var/data"
[listen]
admin = "unix:run/admin.sock"
admin_token_file = "token"
[tls]
cert_file = "cert.pem"
key_file = "` + filepath.Join(dir, "key.pem") + `"
[delivery.smarthost]
host = "smart.example:587"
username = "u"
password_file = "pw"
[[auth.dkim]]
domain = "example.com"
selector = "s1"
key_file = "dkim.key"
`
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"data_dir", c.DataDir, filepath.Join(dir, "var/data")},
		{"admin", c.AdminAddress(), "unix:" + filepath.Join(dir, "run/admin.sock")},
		{"admin_token_file", c.Listen.AdminTokenFile, filepath.Join(dir, "token")},
		{"cert_file", c.TLS.CertFile, filepath.Join(dir, "cert.pem")},
		{"key_file (absolute kept)", c.TLS.KeyFile, filepath.Join(dir, "key.pem")},
		{"password_file", c.Delivery.Smarthost.PasswordFile, filepath.Join(dir, "pw")},
		{"password", c.Delivery.Smarthost.Password, "s3cret"},
		{"dkim key_file", c.Auth.DKIM[0].KeyFile, filepath.Join(dir, "dkim.key")},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.name, ck.got, ck.want)
		}
	}
	// The password must never be printed.
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v", c.Delivery.Smarthost, c.Delivery.Smarthost, c.Delivery.Smarthost), fmt.Sprintf("%+v", *c)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("secret leaked: %s", s)
		}
	}
	// The default admin socket follows a relative data_dir.
	c2, err := Parse([]byte(`data_dir = "d"`), "x.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c2.AdminAddress(), "unix:"+filepath.Join(dir, "d", "admin.sock"); got != want {
		t.Errorf("AdminAddress() = %q, want %q", got, want)
	}
}

func TestRedactedHidesHashes(t *testing.T) {
	t.Parallel()
	const hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	doc := "[[access.user]]\nname = \"app\"\npassword_hash = \"" + hash + "\"\n"
	c, err := Parse([]byte(doc), "t.toml", "")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.String(); strings.Contains(s, hash) || !strings.Contains(s, "REDACTED") {
		t.Errorf("String() leaks or lacks redaction:\n%s", s)
	}
	if c.Access.Users[0].PasswordHash != hash {
		t.Error("Redacted modified the original")
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// TestThrottlePauseEmptyInheritsRetryBase: the default first throttle
// pause is 1 s (issue 11: a learned limit paces the mail, the pause only
// spaces the refusals); "" still means retry_base.
func TestThrottlePauseEmptyInheritsRetryBase(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("[policy]\nretry_base = \"2m\"\nthrottle_pause = \"\"\n"), "t.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.ThrottlePause.D() != 2*time.Minute {
		t.Errorf("throttle_pause \"\" = %v, want retry_base 2m", c.Policy.ThrottlePause)
	}
	if d := Default(); d.Policy.ThrottlePause.D() != time.Second || d.Policy.GreylistDefault.D() != 10*time.Second {
		t.Errorf("defaults: throttle_pause %v greylist_default %v, want 1s and 10s", d.Policy.ThrottlePause, d.Policy.GreylistDefault)
	}
}

// TestWebhookDefaultsAndSecret: a webhook entry gets the documented
// batch and timeout, its secret is read from secret_file (relative to
// the config file, trailing newline dropped) and never printed.
func TestWebhookDefaultsAndSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("[[events.webhook]]\nurl = \"https://app.test/hook\"\nsecret_file = \"hook.secret\"\n"), "x.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Events.Webhooks[0]
	if w.Batch != DefaultWebhookBatch || w.Timeout != DefaultWebhookTimeout || w.Secret != "s3cret-value" || w.SecretFile != filepath.Join(dir, "hook.secret") {
		t.Fatalf("%+v", w)
	}
	if !c.Events.EventsOn() || Default().Events.EventsOn() {
		t.Fatal("EventsOn")
	}
	if strings.Contains(c.String(), "s3cret") || strings.Contains(fmt.Sprintf("%+v %#v", c.Events, c.Events), "s3cret") {
		t.Fatal("the secret is printed")
	}
	if _, err := Parse([]byte("[[events.webhook]]\nurl = \"https://app.test/hook\"\nsecret_file = \"missing\"\n"), "x.toml", dir); err == nil || !strings.Contains(err.Error(), "events.webhook[1].secret_file: cannot read") {
		t.Fatalf("missing secret: %v", err)
	}
}
