package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDecodeErrors checks that every decoding error names file, line and key.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
	}{
		{"unknown top-level", "hostname = \"a\"\nhostnam = \"b\"\n", `sluice.toml:2: unknown key "hostnam"`},
		{"unknown nested", "[listen]\n\nsmpt = \"x\"\n", `sluice.toml:3: unknown key "listen.smpt"`},
		{"unknown dotted", "listen.smpt = \"x\"\n", `sluice.toml:1: unknown key "listen.smpt"`},
		{"unknown table", "[lisen]\nsmtp = \"x\"\n", `sluice.toml:1: unknown key "lisen"`},
		{"unknown in array of tables", "[[policy.rule]]\nmatch = \"x\"\nclass = \"throttle\"\n\n[[policy.rule]]\nmatch = \"y\"\nclas = \"throttle\"\n", `sluice.toml:7: unknown key "policy.rule.clas"`},
		{"unknown in smarthost", "[delivery.smarthost]\npassword = \"x\"\n", `sluice.toml:2: unknown key "delivery.smarthost.password"`},
		{"bad duration", "\n\n\n\n\n\n[policy]\nretry_base = \"1x\"\n", `sluice.toml:8: policy.retry_base: invalid duration "1x"`},
		{"bad duration in array", "[[policy.rule]]\nmatch = \"x\"\nclass = \"suspend\"\nfor = \"2 h\"\n", `sluice.toml:4: policy.rule.for: invalid duration "2 h"`},
		{"bad size", "[limits]\nmax_message_size = \"25XB\"\n", `sluice.toml:2: limits.max_message_size: invalid size "25XB"`},
		{"bad rate", "[limits]\nper_client_rate = \"100/d\"\n", `sluice.toml:2: limits.per_client_rate: invalid rate "100/d": unit must be s, m or h`},
		{"wrong type", "[policy]\nmax_concurrency = \"20\"\n", `sluice.toml:2: policy.max_concurrency: wrong type: a string where int is expected`},
		{"duration as number", "[queue]\nretention = 7\n", `sluice.toml:2: queue.retention: must be a quoted string such as "5m"`},
		{"percent as number", "[lint]\nwarn_budget = 3\n", `sluice.toml:2: lint.warn_budget: must be a quoted string such as "3%"`},
		{"percent without sign", "[lint]\nwarn_budget = \"3\"\n", `sluice.toml:2: lint.warn_budget: invalid percentage "3"`},
		{"rate as number", "[[policy.destination]]\nmatch = \"x\"\nrate = 5\n", `sluice.toml:3: policy.destination.rate:`},
		{"duration as number inline", "policy.rule = [{match = \"x\", class = \"suspend\", for = 7200}]\n", `sluice.toml:1: policy.rule.for: must be a quoted string such as "5m"`},
		{"negative size", "[limits]\nmax_message_size = -1\n", `sluice.toml:2: limits.max_message_size: must be positive`},
		{"in-flight budget below one message", "[limits]\nmax_message_size = \"25MB\"\nmax_inflight_bytes = \"10MB\"\n", `sluice.toml:3: limits.max_inflight_bytes: 10485760 bytes is below limits.max_message_size`},
		{"memory limit too low", "memory_limit = \"16MB\"\n", `sluice.toml:1: memory_limit: 16777216 bytes is too low`},
		{"syntax", "[listen\n", "sluice.toml:1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc), "sluice.toml", "")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %q\nwant prefix %q", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Line == 0 {
				t.Fatalf("error %v is not a located *Error", err)
			}
		})
	}
}

// TestValidationErrors checks semantic errors: each names its key, and its
// line where the key is written in the file.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, want string
	}{
		{"min > max concurrency", "[policy]\nmax_concurrency = 2\nmin_concurrency = 3\n", `sluice.toml:3: policy.min_concurrency: 3 exceeds policy.max_concurrency (2)`},
		{"bad CIDR", "[access]\nnetworks = [\"10.0.0.0/8\", \"10.0.0.300/8\"]\n", `sluice.toml:2: access.networks[2]: invalid CIDR "10.0.0.300/8"`},
		{"tls mode", "[delivery]\ntls = \"always\"\n", `sluice.toml:2: delivery.tls: invalid value "always"`},
		{"route tls", "[[delivery.route]]\ndomain = \"a.test\"\nhost = \"h:25\"\n[[delivery.route]]\ndomain = \"b.test\"\nhost = \"h:25\"\ntls = \"maybe\"\n", `sluice.toml:7: delivery.route[2].tls: invalid value "maybe"`},
		{"tls_policy mode", "[[delivery.tls_policy]]\ndomain = \"bank.test\"\nmode = \"strict\"\n", `sluice.toml:3: delivery.tls_policy[1].mode: invalid value "strict"`},
		{"tls_policy domain", "[[delivery.tls_policy]]\ndomain = \"a@b\"\nmode = \"verify\"\n", `sluice.toml:2: delivery.tls_policy[1].domain: invalid domain "a@b"`},
		{"tls_policy duplicate", "[[delivery.tls_policy]]\ndomain = \"bank.test\"\nmode = \"verify\"\n[[delivery.tls_policy]]\ndomain = \"Bank.TEST.\"\nmode = \"dane\"\n", `sluice.toml:5: delivery.tls_policy[2].domain: duplicate tls_policy for "Bank.TEST."`},
		{"tls_policy mta-sts when off", "[delivery]\nmta_sts = false\n[[delivery.tls_policy]]\ndomain = \"bank.test\"\nmode = \"mta-sts\"\n", `sluice.toml:5: delivery.tls_policy[1].mode: mta-sts needs delivery.mta_sts = true`},
		{"tls_policy dane without dnssec", "[[delivery.tls_policy]]\ndomain = \"bank.test\"\nmode = \"dane\"\n", `sluice.toml:3: delivery.tls_policy[1].mode: dane needs delivery.resolver_dnssec = true`},
		{"route dane without dnssec", "[[delivery.route]]\ndomain = \"a.test\"\nhost = \"h:25\"\ntls = \"dane\"\n", `sluice.toml:4: delivery.route[1].tls: dane needs delivery.resolver_dnssec = true`},
		{"tls mta-sts when off", "[delivery]\nmta_sts = false\ntls = \"mta-sts\"\n", `sluice.toml:3: delivery.tls: mta-sts needs delivery.mta_sts = true`},
		{"tlsrpt enabled bare", "[tlsrpt]\nenabled = true\n", `sluice.toml:1: tlsrpt.organization_name: required when tlsrpt.enabled = true`},
		{"tlsrpt contact", "[tlsrpt]\nenabled = true\norganization_name = \"Ex\"\nfrom = \"r@example.com\"\ncontact_info = \"mailto:postmaster@example.com\"\n", `sluice.toml:5: tlsrpt.contact_info: want a plain address`},
		{"tlsrpt from", "[tlsrpt]\nenabled = true\norganization_name = \"Ex\"\ncontact_info = \"postmaster@example.com\"\nfrom = \"Reports <r@example.com>\"\n", `sluice.toml:5: tlsrpt.from: want a plain address`},
		{"tlsrpt submitter", "[tlsrpt]\nenabled = true\norganization_name = \"Ex\"\ncontact_info = \"postmaster@example.com\"\nfrom = \"r@example.com\"\nsubmitter = \"mx.example.com\"\n", `sluice.toml:6: tlsrpt.submitter: "mx.example.com" must be the domain of tlsrpt.contact_info, "example.com" (RFC 8460 §5.3)`},
		{"tlsrpt interval", "[tlsrpt]\ninterval = \"5h\"\n", `sluice.toml:2: tlsrpt.interval: must be between 1h and 24h and divide 24h`},
		{"tlsrpt control chars", "[tlsrpt]\norganization_name = \"Ex\\r\\nBcc: x@y\"\n", `sluice.toml:2: tlsrpt.organization_name: must not contain control characters`},
		{"mta_sts_port off loopback", "[delivery]\nmta_sts_port = 8443\n", `sluice.toml:2: delivery.mta_sts_port: 8443 needs delivery.resolver on loopback`},
		{"mta_sts_port range", "[delivery]\nresolver = \"127.0.0.1:53\"\nmta_sts_port = 0\n", `sluice.toml:3: delivery.mta_sts_port: must be a port number, not 0`},
		{"ca_file missing", "[delivery]\nca_file = \"nope.pem\"\n", `sluice.toml:2: delivery.ca_file:`},
		{"ca_file not PEM", "[delivery]\nca_file = \"/dev/null\"\n", `sluice.toml:2: delivery.ca_file: no PEM certificate in /dev/null`},
		{"route host", "[[delivery.route]]\ndomain = \"a.test\"\nhost = \"nohost\"\n", `sluice.toml:3: delivery.route[1].host: invalid address "nohost"`},
		{"unknown class", "[[policy.rule]]\nmatch = \"x\"\nclass = \"slow\"\n", `sluice.toml:3: policy.rule[1].class: invalid value "slow"`},
		{"bad regexp", "[[policy.rule]]\nmatch = \"a(\"\nclass = \"throttle\"\n", `sluice.toml:2: policy.rule[1].match: invalid regexp`},
		{"suspend without for", "[[policy.rule]]\nmatch = \"x\"\nclass = \"suspend\"\n", `sluice.toml:1: policy.rule[1].for: required for class "suspend"`},
		{"scope on non-throttle", "[[policy.rule]]\nmatch = \"x\"\nclass = \"greylist\"\nscope = \"rate\"\n", `sluice.toml:4: policy.rule[1].scope: only applies to class "throttle"`},
		{"bad scope", "[[policy.rule]]\nmatch = \"x\"\nclass = \"throttle\"\nscope = \"all\"\n", `sluice.toml:4: policy.rule[1].scope: invalid value "all"`},
		{"webhook url", "[[events.webhook]]\nurl = \"ftp://x/\"\nsecret_file = \"/dev/null\"\n", `sluice.toml:2: events.webhook[1].url: scheme "ftp"`},
		{"webhook event type", "[[events.webhook]]\nurl = \"https://x/\"\nsecret_file = \"/dev/null\"\nevents = [\"opened\"]\n", `sluice.toml:4: events.webhook[1].events: invalid value "opened"`},
		{"webhook without secret", "[[events.webhook]]\nurl = \"https://x/\"\n", `sluice.toml:1: events.webhook[1].secret_file: required`},
		{"webhook batch", "[[events.webhook]]\nurl = \"https://x/\"\nsecret_file = \"/dev/null\"\nbatch = 20000\n", `sluice.toml:4: events.webhook[1].batch: must be between 1 and 10000`},
		{"events cap", "[events]\nmax_bytes = \"1KB\"\n", `sluice.toml:2: events.max_bytes:`},
		{"cluster redis scheme", "[cluster]\nredis = \"http://u:hunter2@r:6379\"\n", `sluice.toml:2: cluster.redis: not a redis:// or rediss:// URL with a host`},
		{"cluster node_id", "[cluster]\nredis = \"redis://r:6379\"\nnode_id = \"a/b\"\n", `sluice.toml:3: cluster.node_id: "a/b": no slash or space`},
		{"cluster prefix", "[cluster]\nredis = \"redis://r:6379\"\nprefix = \"\"\n", `sluice.toml:3: cluster.prefix: must not be empty`},
		{"cluster heartbeat", "[cluster]\nredis = \"rediss://r:6379/2\"\nlease_ttl = \"3s\"\nheartbeat = \"2s\"\n", `sluice.toml:4: cluster.heartbeat: 2s is more than half of lease_ttl 3s`},
		{"log level", "[log]\nlevel = \"verbose\"\n", `sluice.toml:2: log.level: invalid value "verbose"`},
		{"group_by", "policy.group_by = \"ip\"\n", `sluice.toml:1: policy.group_by: invalid value "ip"`},
		{"auth mode", "[auth]\nmode = \"strict\"\n", `sluice.toml:2: auth.mode: invalid value "strict"`},
		{"lint mode", "[lint]\nmode = \"block\"\n", `sluice.toml:2: lint.mode: invalid value "block"`},
		{"lint disabled ID", "[lint]\ndisabled = [\"subject-caps\", \"subject-shouting\"]\n", `sluice.toml:2: lint.disabled[2]: unknown finding ID "subject-shouting" (want one of `},
		{"lint shortener URL", "[lint]\nshorteners = [\"https://go.example/\"]\n", `sluice.toml:2: lint.shorteners[1]: invalid domain "https://go.example/": want a domain name, not a URL`},
		{"lint bulk_per_day", "[lint]\nbulk_per_day = 0\n", `sluice.toml:2: lint.bulk_per_day: must be at least 1, not 0`},
		{"lint warn_interval", "[lint]\nwarn_interval = \"0s\"\n", `sluice.toml:2: lint.warn_interval: must be a positive duration`},
		{"lint max_bytes", "[lint]\nmax_bytes = \"100\"\n", `sluice.toml:2: lint.max_bytes: must be at least 1KB`},
		{"lint warn_budget over 100", "[lint]\nwarn_budget = \"150%\"\n", `sluice.toml:2: lint.warn_budget: must be from 0% to 100% of the machine's CPU, not 150%`},
		{"enforce without outbound ips", "[auth]\nmode = \"enforce\"\n", `sluice.toml:2: auth.mode: "enforce" needs delivery.outbound_ips: SPF cannot be judged on a guessed address; set delivery.outbound_ips`},
		{"outbound ip", "[delivery]\noutbound_ips = [\"192.0.2.300\"]\n", `sluice.toml:2: delivery.outbound_ips[1]: invalid IP address`},
		{"plain password", "[[access.user]]\nname = \"a\"\npassword_hash = \"hunter2\"\n", `sluice.toml:3: access.user[1].password_hash: not a bcrypt hash`},
		{"api token not sha256", "[[access.user]]\nname = \"a\"\napi_token_hash = \"md5:abc\"\n", `sluice.toml:3: access.user[1].api_token_hash: "md5:abc": want "sha256:" and 64 hex digits`},
		{"api token short", "[[access.user]]\nname = \"a\"\napi_token_hash = \"sha256:abcd\"\n", `sluice.toml:3: access.user[1].api_token_hash: "sha256:abcd": want 64 hex digits`},
		{"api token shared", "[[access.user]]\nname = \"a\"\napi_token_hash = \"sha256:abababababababababababababababababababababababababababababababab\"\n[[access.user]]\nname = \"b\"\napi_token_hash = \"sha256:abababababababababababababababababababababababababababababababab\"\n", `sluice.toml:6: access.user[2].api_token_hash: the same token as user "a"`},
		{"no password nor token", "[[access.user]]\nname = \"a\"\n", `sluice.toml:1: access.user[1].password_hash: a user needs password_hash (SMTP AUTH), api_token_hash (HTTP API) or both`},
		{"api off loopback without tls", "[listen]\napi = \"0.0.0.0:8443\"\n", `sluice.toml:2: listen.api: "0.0.0.0:8443" is not a loopback address: needs [tls]`},
		{"api overlaps smtp", "[listen]\napi = \"127.0.0.1:2525\"\n", `sluice.toml:2: listen.api: "127.0.0.1:2525" overlaps listen.smtp`},
		{"truncated bcrypt", "[[access.user]]\nname = \"a\"\npassword_hash = \"$2a$10$abc\"\n", `sluice.toml:3: access.user[1].password_hash: malformed bcrypt hash`},
		{"tls half set", "[tls]\ncert_file = \"c.pem\"\n", `sluice.toml:2: tls.cert_file: cert_file and key_file must be set together`},
		{"tls file missing", "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n", `sluice.toml:2: tls.cert_file:`},
		{"line too short", "[limits]\nmax_line_length = 500\n", `sluice.toml:2: limits.max_line_length: must be at least 1000`},
		{"negative delay warning", "[delivery]\ndelay_warning = \"-1h\"\n", `sluice.toml:2: delivery.delay_warning: invalid duration "-1h": negative`},
		{"delay warning after expiry", "[delivery]\nmax_queue_lifetime = \"1d\"\ndelay_warning = \"2d\"\n", `sluice.toml:3: delivery.delay_warning: must be shorter than delivery.max_queue_lifetime (1d)`},
		{"resolver by name", "[delivery]\nresolver = \"dns.example:53\"\n", `sluice.toml:2: delivery.resolver: invalid resolver "dns.example:53": want ip:port`},
		{"resolver without port", "[delivery]\nresolver = \"127.0.0.1\"\n", `sluice.toml:2: delivery.resolver: invalid resolver "127.0.0.1"`},
		{"resolver port 0", "[delivery]\nresolver = \"127.0.0.1:0\"\n", `sluice.toml:2: delivery.resolver: invalid resolver`},
		{"DNSSEC trusted across a network", "[delivery]\nresolver = \"192.0.2.53:53\"\nresolver_dnssec = true\n", `sluice.toml:3: delivery.resolver_dnssec: needs delivery.resolver to name a validating resolver on loopback`},
		{"DNSSEC from resolv.conf", "[delivery]\nresolver_dnssec = true\n", `sluice.toml:2: delivery.resolver_dnssec: needs delivery.resolver`},
		{"no resolver concurrency", "[delivery]\nresolver_concurrency = 0\n", `sluice.toml:2: delivery.resolver_concurrency: must be at least 1, not 0`},
		{"no TTL floor", "[delivery]\nresolver_min_ttl = \"0s\"\n", `sluice.toml:2: delivery.resolver_min_ttl: must be a positive duration`},
		{"TTL ceiling below floor", "[delivery]\nresolver_min_ttl = \"1m\"\nresolver_max_ttl = \"30s\"\n", `sluice.toml:3: delivery.resolver_max_ttl: 30s is below delivery.resolver_min_ttl (1m)`},
		{"zero timeout", "[delivery]\ndial_timeout = \"0s\"\n", `sluice.toml:2: delivery.dial_timeout: must be a positive duration`},
		{"retry_max below base", "[policy]\nretry_base = \"1h\"\nretry_max = \"1m\"\n", `sluice.toml:3: policy.retry_max:`},
		{"alarm share", "[policy]\nalarm_share = 1.5\n", `sluice.toml:2: policy.alarm_share:`},
		{"duplicate destination", "[[policy.destination]]\nmatch = \"gmail.com\"\nmax_concurrency = 5\n[[policy.destination]]\nmatch = \"Gmail.COM.\"\nrate = \"1/s\"\n", `sluice.toml:5: policy.destination[2].match: duplicate destination "Gmail.COM."`},
		{"no outbound sessions", "[delivery]\nmax_sessions = 0\n", `sluice.toml:2: delivery.max_sessions: must be at least 1, not 0`},
		{"no auth failures allowed", "[access]\nauth_failures = 0\n", `sluice.toml:2: access.auth_failures: must be at least 1, not 0`},
		{"min_rate unlimited", "[policy]\nmin_rate = \"\"\n", `sluice.toml:2: policy.min_rate: must be a rate`},
		{"provider suffix", "[[policy.provider]]\nname = \"p\"\nsuffixes = [\".\"]\n", `sluice.toml:3: policy.provider[1].suffixes[1]: invalid host suffix`},
		{"dkim key missing", "[[auth.dkim]]\ndomain = \"example.com\"\nselector = \"s\"\nkey_file = \"nope.key\"\n", `sluice.toml:4: auth.dkim[1].key_file:`},
		{"username without password", "[delivery.smarthost]\nhost = \"h:587\"\nusername = \"u\"\n", `sluice.toml:1: delivery.smarthost.password_file: required when username is set`},
		{"password file unreadable", "[delivery.smarthost]\nhost = \"h:587\"\nusername = \"u\"\npassword_file = \"missing\"\n", `sluice.toml:4: delivery.smarthost.password_file: cannot read`},
		{"submissions without tls", "[listen]\nsubmissions = \"0.0.0.0:465\"\n", `sluice.toml:2: listen.submissions: implicit TLS needs`},
		{"bad listen", "[listen]\nsmtp = \"2525\"\n", `sluice.toml:2: listen.smtp: invalid address "2525"`},
		{"empty admin socket", "[listen]\nadmin = \"unix:\"\n", `sluice.toml:2: listen.admin: empty socket path`},
		{"admin tcp without token", "[listen]\nadmin = \"127.0.0.1:8026\"\n", `sluice.toml:2: listen.admin: a TCP admin address needs listen.admin_token_file (loopback included)`},
		{"http host with scheme", "[listen]\nhttp_hosts = [\"http://relay.example.com\"]\n", `sluice.toml:2: listen.http_hosts[1]: invalid host "http://relay.example.com"`},
		{"http host wildcard", "[listen]\nhttp_hosts = [\"*.example.com\"]\n", `sluice.toml:2: listen.http_hosts[1]: invalid host`},
		{"CIDR with host bits", "[access]\nnetworks = [\"127.0.0.0/8\",\n  \"10.0.0.1/8\"]\n", `sluice.toml:2: access.networks[2]: "10.0.0.1/8" has host bits set: did you mean "10.0.0.0/8" (the network) or "10.0.0.1/32" (the one host)?`},
		{"IPv6 CIDR with host bits", "[access]\nnetworks = [\"2001:db8::1/64\"]\n", `sluice.toml:2: access.networks[1]: "2001:db8::1/64" has host bits set: did you mean "2001:db8::/64"`},
		{"submission without tls", "[listen]\nsubmission = \"0.0.0.0:587\"\n", `sluice.toml:2: listen.submission: needs [tls] cert_file and key_file`},
		{"http on the smtp port", "[listen]\nsmtp = \"127.0.0.1:2525\"\nhttp = \"127.0.0.1:2525\"\n", `sluice.toml:3: listen.http: "127.0.0.1:2525" overlaps listen.smtp`},
		{"http on a wildcard smtp port", "[listen]\nsmtp = \"0.0.0.0:2525\"\nhttp = \"127.0.0.1:2525\"\n", `sluice.toml:3: listen.http: "127.0.0.1:2525" overlaps listen.smtp`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.doc), "sluice.toml", t.TempDir())
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %q\nwant prefix %q", err, tt.want)
			}
		})
	}
}

// TestLoadMissingFile names the file once, without a package prefix
// (the CLI adds "sluice config: ").
func TestLoadMissingFileMessage(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(p)
	if want := p + ": cannot read: no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant   %s", err, want)
	}
}

func TestValidationReportsAllErrors(t *testing.T) {
	t.Parallel()
	doc := "[log]\nlevel = \"x\"\nformat = \"y\"\n"
	_, err := Parse([]byte(doc), filepath.Join("etc", "s.toml"), "")
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"etc/s.toml:2: log.level", "etc/s.toml:3: log.format"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestValidConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc string }{
		{"empty", ""},
		{"size as bare integer", "[limits]\nmax_message_size = 1048576\n"},
		{"no in-flight bound, no memory limit", "memory_limit = \"0\"\n[limits]\nmax_inflight_bytes = \"0\"\n"},
		{"comments only", "# nothing\n"},
		{"admin tcp with token", "[listen]\nadmin = \"127.0.0.1:8026\"\nadmin_token_file = \"t\"\n"},
		{"http hosts", "[listen]\nhttp_hosts = [\"relay.example.com\", \"dash.example:443\", \"192.0.2.1\", \"[2001:db8::1]:8025\"]\n"},
		{"host CIDR and network CIDR", "[access]\nnetworks = [\"10.0.0.0/8\", \"192.0.2.7/32\", \"::1/128\"]\n"},
		{"same port on two hosts", "[listen]\nsmtp = \"127.0.0.1:2525\"\nhttp = \"127.0.0.2:2525\"\n"},
		{"enforce with ips", "[delivery]\noutbound_ips = [\"192.0.2.1\", \"2001:db8::1\"]\n[auth]\nmode = \"enforce\"\n"},
		{"user", "[[access.user]]\nname = \"app\"\npassword_hash = \"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\nallowed_from = [\"example.com\"]\n"},
		{"api user", "[listen]\napi = \"127.0.0.1:8026\"\n[[access.user]]\nname = \"app\"\napi_token_hash = \"sha256:abababababababababababababababababababababababababababababababab\"\n"},
		{"api localhost", "[listen]\napi = \"localhost:8026\"\n"},
		{"password and token", "[[access.user]]\nname = \"app\"\npassword_hash = \"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\"\napi_token_hash = \"sha256:abababababababababababababababababababababababababababababababab\"\n"},
		{"destination and provider", "[[policy.destination]]\nmatch = \"gmail.com\"\nmax_concurrency = 5\nrate = \"10/s\"\n[[policy.provider]]\nname = \"ex\"\nsuffixes = [\".mx.example.net\"]\n"},
		{"resolver", "[delivery]\nresolver = \"[::1]:5353\"\nresolver_concurrency = 1\nresolver_min_ttl = \"1s\"\nresolver_max_ttl = \"1s\"\n"},
		{"inline array of tables", "policy.rule = [{match = \"RL0000\", class = \"throttle\", scope = \"rate\"}]\n"},
		{"events file and webhook", "[events]\nfile = \"-\"\nmax_bytes = \"1MB\"\n[[events.webhook]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"t\"\nevents = [\"delivered\", \"bounced\"]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "t"), []byte("token\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Parse([]byte(tt.doc), "ok.toml", dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}
