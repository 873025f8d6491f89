package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/config"
)

// TestReloadEndpoint: POST /v1/reload runs the daemon's reload and says
// what changed; a refused file is a 422 carrying the error, which the
// client returns; status shows the configuration in force, and the
// public status leaves out its path and the error.
func TestReloadEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fail := false
	cs := ConfigStatus{File: "/etc/sluice/sluice.toml", Hash: "abc123", Loaded: t0}
	srv := New(Options{Queue: f.q, Policy: f.pol, Telemetry: f.tel, Now: f.clk.Now, Logger: quietLog(), Started: t0, HTTPHosts: []string{"example.com"},
		Reload: func(context.Context) (ReloadResult, error) {
			if fail {
				err := fmt.Errorf("%w: /etc/sluice/sluice.toml:7: limits.max_recipients: must be at least 1", ErrReloadInvalid)
				f.tel.OnReload(false)
				cs.LastReload = &ReloadStatus{At: t0, Error: err.Error()}
				return ReloadResult{}, err
			}
			f.tel.OnReload(true)
			return ReloadResult{File: cs.File, Hash: "def456", Changed: []config.Change{{Key: "log.level", Old: `"info"`, New: `"debug"`}},
				NeedsRestart: []string{"listen.smtp"}}, nil
		},
		Config: func() ConfigStatus { return cs },
	})
	ts := httptest.NewServer(srv.APIHandler())
	t.Cleanup(ts.Close)
	c := NewClient(ts.Listener.Addr().String(), "")
	ctx := context.Background()

	res, err := c.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Hash != "def456" || len(res.Changed) != 1 || res.Changed[0].Key != "log.level" || len(res.NeedsRestart) != 1 {
		t.Errorf("reload result: %+v", res)
	}
	fail = true
	_, err = c.Reload(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "sluice.toml:7: limits.max_recipients") {
		t.Errorf("refused reload: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config == nil || st.Config.Hash != "abc123" || st.Config.File == "" || st.Config.LastReload == nil || st.Config.LastReload.Error == "" {
		t.Errorf("status config: %+v", st.Config)
	}
	pub := st.public()
	if pub.Config.File != "" || pub.Config.LastReload.Error != "" || pub.Config.Hash != "abc123" {
		t.Errorf("public status config: %+v", pub.Config)
	}
	body := httptestGet(t, srv.HTTPHandler("127.0.0.1:8025"), "/metrics").Body.String()
	for _, want := range []string{`sluice_config_reloads_total{result="success"} 1`, `sluice_config_reloads_total{result="failure"} 1`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A browser page cannot trigger a reload: the API's cross-site
	// guards apply (a form POST is not JSON).
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/reload", strings.NewReader("x=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form POST to /v1/reload: %d", r.StatusCode)
	}
}
