package config

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// What a reload (SIGHUP, `sluice reload`) may change in a running relay.
// Every key of the schema is in exactly one class; the table below is
// the one place that says which, and TestEveryKeyIsClassified fails
// when a key is added to the Config types without an entry here.
//
// A restart-only key keeps its running value on reload (Merge), and the
// reload names it as "needs restart". The reasons, per key:
//   - listen.*: the sockets are bound once, before anything serves;
//   - hostname: it names the relay in every component built at start-up
//     (greeting, EHLO, DSNs, the admin surface);
//   - data_dir, queue.*: the queue file is open, with its options;
//   - memory_limit, log.format: process-wide settings made at start-up;
//   - policy.group_by, policy.provider.*: they re-key destinations, whose
//     learned state is stored under their names;
//   - delivery.max_sessions, delivery.resolver*: the scheduler's slot
//     count and the shared resolver's pool and cache;
//   - delivery.mta_sts_port: the MTA-STS cache's fetcher, built once
//     (a lab setting, tied to the restart-only resolver);
//   - cluster.*: the node joins its cluster once, under one name.

// ReloadClass says whether a reload applies a key.
type ReloadClass int

// Reload classes.
const (
	Unclassified ReloadClass = iota // not in the table: treated as restart-only
	Reloadable
	RestartOnly
)

func (c ReloadClass) String() string {
	switch c {
	case Reloadable:
		return "reloadable"
	case RestartOnly:
		return "restart-only"
	}
	return "unclassified"
}

const (
	reload  = Reloadable
	restart = RestartOnly
)

// reloadClasses classes every leaf key, dotted, arrays of tables without
// an index. All the keys of one array of tables share a class: the array
// is replaced whole.
var reloadClasses = map[string]ReloadClass{
	"hostname":       restart,
	"data_dir":       restart,
	"shutdown_grace": reload,
	"memory_limit":   restart,

	"log.level":  reload,
	"log.format": restart,

	"listen.smtp":             restart,
	"listen.submission":       restart,
	"listen.submissions":      restart,
	"listen.admin":            restart,
	"listen.admin_token_file": restart,
	"listen.http":             restart,
	"listen.http_hosts":       restart,
	"listen.api":              restart,

	// The certificate and key are read again on every reload: a renewed
	// certificate takes effect for new sessions.
	"tls.cert_file": reload,
	"tls.key_file":  reload,

	"access.networks":           reload,
	"access.auth_failures":      reload,
	"access.user.name":          reload,
	"access.user.password_hash": reload,
	// A new or revoked API token takes effect at the next request.
	"access.user.api_token_hash": reload,
	"access.user.allowed_from":   reload,

	"limits.max_message_size":       reload,
	"limits.max_inflight_bytes":     reload,
	"limits.max_recipients":         reload,
	"limits.max_line_length":        reload,
	"limits.max_connections":        reload,
	"limits.per_client_connections": reload,
	"limits.per_client_rate":        reload,
	"limits.read_timeout":           reload,
	"limits.write_timeout":          reload,
	"limits.idle_timeout":           reload,
	"limits.data_timeout":           reload,
	"limits.allow_address_literals": reload,

	"queue.retention":      restart,
	"queue.min_free_space": restart,
	"queue.lock_timeout":   restart,

	"delivery.outbound_ips":                reload,
	"delivery.tls":                         reload,
	"delivery.port":                        reload,
	"delivery.max_queue_lifetime":          reload,
	"delivery.delay_warning":               reload,
	"delivery.dial_timeout":                reload,
	"delivery.command_timeout":             reload,
	"delivery.data_timeout":                reload,
	"delivery.connection_idle":             reload,
	"delivery.max_messages_per_connection": reload,
	"delivery.max_sessions":                restart,
	"delivery.resolver":                    restart,
	"delivery.resolver_concurrency":        restart,
	"delivery.resolver_min_ttl":            restart,
	"delivery.resolver_max_ttl":            restart,
	"delivery.resolver_dnssec":             restart,
	"delivery.route.domain":                reload,
	"delivery.route.host":                  reload,
	"delivery.route.tls":                   reload,
	"delivery.smarthost.host":              reload,
	"delivery.smarthost.username":          reload,
	"delivery.smarthost.password_file":     reload,
	"delivery.smarthost.tls":               reload,
	"delivery.tls_policy.domain":           reload,
	"delivery.tls_policy.mode":             reload,
	"delivery.ca_file":                     reload,
	"delivery.mta_sts":                     reload,
	"delivery.mta_sts_port":                restart,

	"policy.retry_base":                  reload,
	"policy.retry_max":                   reload,
	"policy.greylist_default":            reload,
	"policy.greylist_margin":             reload,
	"policy.max_hint":                    reload,
	"policy.max_concurrency":             reload,
	"policy.min_concurrency":             reload,
	"policy.initial_concurrency":         reload,
	"policy.rate":                        reload,
	"policy.min_rate":                    reload,
	"policy.group_by":                    restart,
	"policy.decrease_window":             reload,
	"policy.throttle_pause":              reload,
	"policy.increase_after":              reload,
	"policy.alarm_share":                 reload,
	"policy.alarm_window":                reload,
	"policy.alarm_min_destinations":      reload,
	"policy.suppress_on_unknown_user":    reload,
	"policy.suppress_after_expiries":     reload,
	"policy.destination.match":           reload,
	"policy.destination.max_concurrency": reload,
	"policy.destination.rate":            reload,
	"policy.rule.match":                  reload,
	"policy.rule.class":                  reload,
	"policy.rule.for":                    reload,
	"policy.rule.scope":                  reload,
	"policy.provider.name":               restart,
	"policy.provider.suffixes":           restart,

	// The DKIM key files are read again on every reload: rotating a key
	// is a reload.
	"auth.mode":              reload,
	"auth.dns_timeout":       reload,
	"auth.cache_ttl":         reload,
	"auth.resolver_cooldown": reload,
	"auth.dkim.domain":       reload,
	"auth.dkim.selector":     reload,
	"auth.dkim.key_file":     reload,
	"auth.dkim.subdomains":   reload,

	// The lint check is built again at every reload (like auth's); the
	// bulk counter and the findings tally are the daemon's and carry on.
	"lint.mode":          reload,
	"lint.disabled":      reload,
	"lint.shorteners":    reload,
	"lint.bulk_per_day":  reload,
	"lint.warn_interval": reload,
	"lint.max_bytes":     reload,
	// The budget is the daemon's (it carries on across reloads); a
	// reload changes its rate.
	"lint.warn_budget": reload,

	// Sinks are reloadable: adding, changing or removing a webhook (or
	// rotating its secret) is what an operator expects a reload to do.
	// The outbox's retention and cap are read by the queue at every
	// commit, so they reload too.
	"events.retention":           reload,
	"events.max_bytes":           reload,
	"events.file":                reload,
	"events.webhook.url":         reload,
	"events.webhook.secret_file": reload,
	"events.webhook.events":      reload,
	"events.webhook.batch":       reload,
	"events.webhook.timeout":     reload,

	// The Redis connection, the node's identity and the lease timing
	// are set when the node joins: a change is a restart (a node that
	// changed its name or prefix mid-run would leave leases behind).
	"cluster.redis":     restart,
	"cluster.node_id":   restart,
	"cluster.prefix":    restart,
	"cluster.lease_ttl": restart,
	"cluster.heartbeat": restart,

	// TLS-RPT's reporter is built once, at start-up, with the identity
	// it signs its reports with and the period its tally is keyed by:
	// a period changed under a running tally would split a day.
	"tlsrpt.enabled":           restart,
	"tlsrpt.organization_name": restart,
	"tlsrpt.contact_info":      restart,
	"tlsrpt.from":              restart,
	"tlsrpt.submitter":         restart,
	"tlsrpt.interval":          restart,
}

// secretKeys are never printed by Diff, whatever their value.
var secretKeys = map[string]bool{
	"access.user.password_hash": true, // a bcrypt hash is still crackable offline
	"events.webhook.url":        true, // may carry a token in its path or query
	"cluster.redis":             true, // may carry the Redis password
}

// indexRe strips the array indices of a key as errors print it
// ("policy.rule[2].class").
var indexRe = regexp.MustCompile(`\[\d+\]`)

// ClassOf returns the reload class of a dotted key; array indices are
// ignored.
func ClassOf(key string) ReloadClass {
	return reloadClasses[indexRe.ReplaceAllString(key, "")]
}

// Keys lists every leaf key of the schema, dotted, with the keys of the
// arrays of tables under the array's key, in the order of the types.
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := tomlName(f)
			if name == "" || name == "-" {
				continue
			}
			switch ft := f.Type; {
			case isSection(ft):
				walk(ft, prefix+name+".")
			case ft.Kind() == reflect.Slice && isSection(ft.Elem()):
				walk(ft.Elem(), prefix+name+".")
			default:
				out = append(out, prefix+name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// HiddenFields lists the fields that TOML never sets (tag "-"), as
// "key-of-their-table.GoName", with the key their `reload` tag names as
// the source of their value ("" when the tag is missing).
func HiddenFields() map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := tomlName(f)
			if name == "-" {
				out[prefix+f.Name] = derivedKey(f, prefix)
				continue
			}
			if name == "" {
				continue
			}
			switch ft := f.Type; {
			case isSection(ft):
				walk(ft, prefix+name+".")
			case ft.Kind() == reflect.Slice && isSection(ft.Elem()):
				walk(ft.Elem(), prefix+name+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// derivedKey is the key a hidden field's value is read from (its
// `reload` tag names a sibling key), "" when it names none.
func derivedKey(f reflect.StructField, prefix string) string {
	if s := f.Tag.Get("reload"); s != "" {
		return prefix + s
	}
	return ""
}

// isSection reports whether t is a table of the schema, as opposed to a
// value type that happens to be a struct (Rate).
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return false
	}
	return true
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// unit is what Merge and Diff move or compare at once: one value key, or
// a whole array of tables, or a hidden field that follows a key.
type unit struct {
	key   string // dotted
	index []int  // reflect field index path from Config
	array bool   // an array of tables (key is the array's)
	class ReloadClass
	// hidden: a field TOML never sets (the smarthost password read from
	// its file); it follows the class of the key it is read from.
	hidden bool
}

func units() []unit {
	var out []unit
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := tomlName(f)
			idx := append(append([]int(nil), index...), i)
			switch {
			case name == "-":
				src := derivedKey(f, prefix)
				out = append(out, unit{key: src, index: idx, class: ClassOf(src), hidden: true})
				continue
			case name == "":
				continue
			}
			key := prefix + name
			switch ft := f.Type; {
			case isSection(ft):
				walk(ft, key+".", idx)
			case ft.Kind() == reflect.Slice && isSection(ft.Elem()):
				out = append(out, unit{key: key, index: idx, array: true, class: arrayClass(key)})
			default:
				out = append(out, unit{key: key, index: idx, class: ClassOf(key)})
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return out
}

// arrayClass is the class of an array of tables: reloadable only when
// all its keys are (TestEveryKeyIsClassified requires them to agree).
func arrayClass(key string) ReloadClass {
	c := Unclassified
	for k, kc := range reloadClasses {
		if !strings.HasPrefix(k, key+".") {
			continue
		}
		switch {
		case kc != Reloadable:
			return RestartOnly
		default:
			c = Reloadable
		}
	}
	return c
}

// Merge returns the configuration a reload puts in force: next, with
// every key that is not reloadable kept as it is in cur, and the keys so
// kept whose value in next differs (sorted as in the schema): those need
// a restart. cur and next are not modified; the result shares slices
// with them and, like every Config, must not be modified.
func Merge(cur, next *Config) (*Config, []string) {
	eff := *next
	ev, cv, nv := reflect.ValueOf(&eff).Elem(), reflect.ValueOf(cur).Elem(), reflect.ValueOf(next).Elem()
	var restartKeys []string
	for _, u := range units() {
		if u.class == Reloadable {
			continue
		}
		c := cv.FieldByIndex(u.index)
		if !reflect.DeepEqual(c.Interface(), nv.FieldByIndex(u.index).Interface()) && !u.hidden {
			restartKeys = append(restartKeys, u.key)
		}
		ev.FieldByIndex(u.index).Set(c)
	}
	return &eff, restartKeys
}

// Change is one key whose value a reload changes. Old and New are
// rendered as in TOML; secrets read "REDACTED".
type Change struct {
	Key string `json:"key"`
	Old string `json:"old"`
	New string `json:"new"`
}

func (c Change) String() string { return c.Key + ": " + c.Old + " -> " + c.New }

// Diff lists, key by key in the order of the schema, what differs
// between a and b. An array of tables of the same length is compared
// element by element ("delivery.route[2].host", 1-based as in errors);
// otherwise it is shown whole. Secrets never appear: a changed password
// hash reads REDACTED on both sides, and the smarthost password (read
// from its file) is reported as that file's contents having changed.
func Diff(a, b *Config) []Change {
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	var out []Change
	for _, u := range units() {
		x, y := av.FieldByIndex(u.index), bv.FieldByIndex(u.index)
		if reflect.DeepEqual(x.Interface(), y.Interface()) {
			continue
		}
		switch {
		case u.hidden:
			out = append(out, Change{Key: u.key, Old: redacted, New: redacted + " (file contents changed)"})
		case u.array && x.Len() == y.Len():
			for i := range x.Len() {
				out = append(out, diffTable(fmt.Sprintf("%s[%d]", u.key, i+1), u.key, x.Index(i), y.Index(i))...)
			}
		case u.array:
			out = append(out, Change{Key: u.key, Old: renderArray(u.key, x), New: renderArray(u.key, y)})
		default:
			out = append(out, Change{Key: u.key, Old: render(u.key, x), New: render(u.key, y)})
		}
	}
	return out
}

// diffTable compares two elements of an array of tables field by field.
func diffTable(key, schemaKey string, x, y reflect.Value) []Change {
	var out []Change
	t := x.Type()
	for i := range t.NumField() {
		name := tomlName(t.Field(i))
		if name == "" || name == "-" {
			continue
		}
		fx, fy := x.Field(i), y.Field(i)
		if reflect.DeepEqual(fx.Interface(), fy.Interface()) {
			continue
		}
		out = append(out, Change{Key: key + "." + name, Old: render(schemaKey+"."+name, fx), New: render(schemaKey+"."+name, fy)})
	}
	return out
}

// render prints one value as TOML would, or REDACTED for a secret.
func render(key string, v reflect.Value) string {
	if secretKeys[key] {
		return redacted
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err == nil {
			return fmt.Sprintf("%q", b)
		}
	}
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = render(key, v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// renderArray prints an array of tables as inline tables.
func renderArray(key string, v reflect.Value) string {
	parts := make([]string, v.Len())
	for i := range v.Len() {
		e := v.Index(i)
		t := e.Type()
		var kv []string
		for j := range t.NumField() {
			name := tomlName(t.Field(j))
			if name == "" || name == "-" {
				continue
			}
			kv = append(kv, name+" = "+render(key+"."+name, e.Field(j)))
		}
		parts[i] = "{" + strings.Join(kv, ", ") + "}"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
