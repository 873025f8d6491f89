package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sluice/admin"
	"sluice/config"
	"sluice/events"
	"sluice/policy"
	"sluice/relay/inbound"
	"sluice/relay/outbound"
	"sluice/scheduler"
)

// Reload (SIGHUP, `sluice reload`, POST /v1/reload): read the config
// file again and apply it, all at once or not at all.
//
//  1. Read and check the file as at start-up; a refused file changes
//     nothing, and the error names the file, the line and the key.
//  2. Merge: every restart-only key keeps its running value and is
//     named as "needs restart" (config.Merge; the classes are in
//     config/reload.go).
//  3. Build everything the new configuration needs without touching the
//     running daemon: policy options, the outbound client (routes,
//     smarthost), the acceptance checker (DKIM keys read again), the TLS
//     certificate (read again), the inbound options of every listener,
//     the scheduler's settings. Any failure here refuses the reload.
//  4. Swap: policy first (it may still refuse), then the rest, which
//     cannot fail. New SMTP sessions and new outbound connections use the
//     new configuration; those in flight finish under the one they
//     started with (inbound generations; outbound sessions end after
//     their message). Runtime limits (`limits set`) are policy state and
//     keep winning over the config until `limits reset`.

// reloadNotifier tells the service manager about a reload: systemd
// (Type=notify) wants RELOADING=1 before and READY=1 after, whether the
// reload was applied or refused, since the daemon runs either way.
// internal/sdnotify's Reloading and Ready plug in here; nil is a no-op.
type reloadNotifier struct {
	reloading, ready func() error
}

// configState is the configuration in force and what status says of it.
type configState struct {
	mu   sync.Mutex // one reload at a time
	path string     // --config; "" = the embedded defaults

	// Under mu.
	cfg    *config.Config     // in force (restart-only keys as at start-up)
	status admin.ConfigStatus // what Status shows
	files  map[string]string  // sha256 of the files a load reads (certificate, key, DKIM keys), by key
}

// readConfig reads the config file (or the embedded defaults) and
// returns it with its hash and its bytes (for locating errors).
func readConfig(path string) (*config.Config, string, []byte, error) {
	if path == "" {
		return config.Default(), config.DefaultHash(), nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		_, lerr := config.Load(path) // the same error as at start-up, naming the file once
		if lerr == nil {
			lerr = err
		}
		return nil, "", nil, lerr
	}
	c, err := config.Parse(data, path, filepath.Dir(path))
	if err != nil {
		return nil, "", nil, err
	}
	return c, config.Hash(data), data, nil
}

// fileHashes are the sha256 of the files a configuration reads besides
// itself whose contents a reload picks up (certificate, key, DKIM keys),
// by the key that names them; an unreadable file is left out (the build
// step reports it).
func fileHashes(c *config.Config) map[string]string {
	out := map[string]string{}
	add := func(key, path string) {
		if path == "" {
			return
		}
		if b, err := os.ReadFile(path); err == nil {
			out[key] = config.Hash(b)
		}
	}
	add("tls.cert_file", c.TLS.CertFile)
	add("tls.key_file", c.TLS.KeyFile)
	for i, k := range c.Auth.DKIM {
		add(fmt.Sprintf("auth.dkim[%d].key_file", i+1), k.KeyFile)
	}
	return out
}

// built is what a reload swaps in, built and checked beforehand.
type built struct {
	policy    policy.Options
	outbound  *outbound.Client
	inbound   []inbound.Options
	api       *inbound.Options // listen.api; nil when off
	tls       *tls.Config      // [tls] as read now; nil when unset
	scheduler scheduler.Settings
}

// build makes everything cfg needs without touching the running daemon.
// Its errors name the key at fault; loc turns them into config errors
// located in the file.
func (d *daemon) build(cfg *config.Config, loc func(key string, err error) error) (*built, error) {
	b := &built{policy: policyOptions(cfg, d.queue, d.log)}
	check := b.policy
	check.Store = nil
	if _, err := policy.New(check); err != nil {
		return nil, loc("policy", err)
	}
	var err error
	if b.outbound, err = outbound.New(d.outboundOptions(cfg)); err != nil {
		return nil, loc("delivery", err)
	}
	checker, err := d.newChecker(cfg)
	if err != nil {
		key := "auth"
		if strings.HasPrefix(err.Error(), "lintcheck:") {
			key = "lint"
		}
		for i, k := range cfg.Auth.DKIM {
			if k.KeyFile != "" && strings.Contains(err.Error(), k.KeyFile) {
				key = fmt.Sprintf("auth.dkim[%d].key_file", i+1)
				break
			}
		}
		return nil, loc(key, err)
	}
	var tlsConfig *tls.Config
	if tlsConfig, err = inboundTLS(cfg.TLS); err != nil {
		return nil, loc("tls.cert_file", err)
	}
	if b.inbound, err = d.inboundFor(cfg, tlsConfig, checker); err != nil {
		return nil, loc("tls", err)
	}
	if d.api != nil {
		o, err := d.apiOptions(cfg, checker)
		if err != nil {
			return nil, loc("listen.api", err)
		}
		b.api = &o
	}
	b.tls = tlsConfig
	if err := events.Check(cfg.Events); err != nil {
		return nil, loc("events.file", err)
	}
	b.scheduler = scheduler.OptionsFrom(cfg).Settings()
	if err := b.scheduler.Check(); err != nil {
		return nil, loc("delivery", err)
	}
	return b, nil
}

// swap puts b and cfg in force. Only the policy may still refuse (it is
// first, so nothing has changed then); the rest cannot fail.
func (d *daemon) swap(cfg *config.Config, b *built) error {
	if err := d.policy.Reconfigure(b.policy); err != nil {
		return err
	}
	d.out.set(b.outbound)
	d.inflight.SetMax(int64(cfg.Limits.MaxInflightBytes))
	for i, srv := range d.inbound {
		if err := srv.Reconfigure(b.inbound[i]); err != nil {
			// Never: the options were checked in build.
			d.log.Error("reload: inbound listener kept its configuration", "err", err)
		}
	}
	if b.api != nil {
		if err := d.api.Reconfigure(*b.api); err != nil {
			d.log.Error("reload: the HTTP API kept its configuration", "err", err) // never: checked in build
		}
	}
	if b.tls != nil && d.apiTLSOn {
		// A reload without [tls] keeps the last certificate: the API
		// serves HTTPS until a restart says otherwise.
		d.apiTLS.Store(b.tls)
	}
	if err := d.sched.Reconfigure(b.scheduler); err != nil {
		d.log.Error("reload: delivery settings kept", "err", err) // never: checked in build
	}
	if d.events != nil {
		if err := d.events.Configure(cfg.Events); err != nil {
			d.log.Error("reload: event sinks kept", "err", err) // never: checked by the config layer
		}
	}
	lvl := d.level.Level()
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level)) // validated by the config layer
	d.level.Set(lvl)
	// Limits may have risen: destinations held back are asked about now.
	d.sched.Reconsider()
	return nil
}

// reload reads the config file again and applies it; via says what asked
// ("SIGHUP", "admin API") for the log.
func (d *daemon) reload(via string) (admin.ReloadResult, error) {
	cs := d.conf
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if f := d.notify.reloading; f != nil {
		if err := f(); err != nil {
			d.log.Warn("cannot tell the service manager RELOADING=1", "err", err)
		}
	}
	defer func() {
		if f := d.notify.ready; f != nil {
			if err := f(); err != nil {
				d.log.Warn("cannot tell the service manager READY=1", "err", err)
			}
		}
	}()
	res, err := d.reloadLocked(via)
	now := time.Now().UTC()
	cs.status.LastReload = &admin.ReloadStatus{At: now, OK: err == nil}
	d.tel().OnReload(err == nil)
	if err != nil {
		cs.status.LastReload.Error = err.Error()
		d.log.Error("config reload refused; still running the previous configuration", "via", via, "file", cs.path, "err", err)
		return res, err
	}
	return res, nil
}

func (d *daemon) reloadLocked(via string) (admin.ReloadResult, error) {
	cs := d.conf
	next, hash, data, err := readConfig(cs.path)
	if err != nil {
		return admin.ReloadResult{}, fmt.Errorf("%w: %w", admin.ErrReloadInvalid, err)
	}
	loc := func(key string, err error) error {
		return fmt.Errorf("%w: %w", admin.ErrReloadInvalid, config.Located(cs.path, data, key, err))
	}
	eff, restart := config.Merge(cs.cfg, next)
	b, err := d.build(eff, loc)
	if err != nil {
		return admin.ReloadResult{}, err
	}
	changes := append([]config.Change{}, config.Diff(cs.cfg, eff)...) // [] rather than null in JSON
	files := fileHashes(eff)
	for key, h := range files {
		if old, ok := cs.files[key]; ok && old != h && !changed(changes, key) {
			changes = append(changes, config.Change{Key: key, Old: "(same file)", New: "(contents changed: read again)"})
		}
	}
	if err := d.swap(eff, b); err != nil {
		return admin.ReloadResult{}, fmt.Errorf("%w: %w", admin.ErrReloadInvalid, err)
	}
	cs.cfg, cs.files = eff, files
	d.live.Store(eff)
	cs.status.Hash, cs.status.Loaded, cs.status.NeedsRestart = hash, time.Now().UTC(), restart

	d.log.Info("config reloaded", "via", via, "file", cs.path, "sha256", hash, "changed", len(changes), "needs_restart", len(restart))
	for _, c := range changes {
		d.log.Info("config changed", "key", c.Key, "old", c.Old, "new", c.New)
	}
	for _, k := range restart {
		d.log.Warn("config key changed in the file needs a restart; the running value is kept", "key", k)
	}
	return admin.ReloadResult{File: cs.path, Hash: hash, Changed: changes, NeedsRestart: restart}, nil
}

// changed reports whether changes already name key.
func changed(changes []config.Change, key string) bool {
	for _, c := range changes {
		if c.Key == key || strings.HasPrefix(key, c.Key+"[") || strings.HasPrefix(key, c.Key+".") {
			return true
		}
	}
	return false
}

// configStatus is the configuration in force, for status.
func (d *daemon) configStatus() admin.ConfigStatus {
	d.conf.mu.Lock()
	defer d.conf.mu.Unlock()
	st := d.conf.status
	if st.LastReload != nil {
		lr := *st.LastReload
		st.LastReload = &lr
	}
	return st
}

// reloadAPI is admin's Reload hook.
func (d *daemon) reloadAPI(context.Context) (admin.ReloadResult, error) {
	return d.reload("admin API")
}

// onHUP reloads the configuration on each SIGHUP (operators and
// `systemctl reload` send it; its default action would kill the daemon,
// leaving the admin socket behind and cutting every session).
func (d *daemon) onHUP(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_, _ = d.reload("SIGHUP") // the outcome is logged and counted
		}
	}
}
