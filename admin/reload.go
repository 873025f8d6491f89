package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"sluice/config"
)

// ConfigStatus is the configuration in force, as Status shows it.
type ConfigStatus struct {
	File string `json:"file"` // "" = the embedded defaults
	// Hash is the SHA-256 of the file in force (hex): compare it with
	// `sha256sum FILE` to know whether the daemon runs what is on disk.
	Hash   string    `json:"hash"`
	Loaded time.Time `json:"loaded"`
	// NeedsRestart lists the keys whose value in the file differs from
	// the one running: only a restart applies them.
	NeedsRestart []string      `json:"needs_restart,omitempty"`
	LastReload   *ReloadStatus `json:"last_reload,omitempty"`
}

// ReloadStatus is the outcome of the last reload attempt.
type ReloadStatus struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// ReloadResult is the reply of POST /v1/reload: what the reload changed,
// key by key (secrets redacted), and what it could not.
type ReloadResult struct {
	File         string          `json:"file"`
	Hash         string          `json:"hash"`
	Changed      []config.Change `json:"changed"`
	NeedsRestart []string        `json:"needs_restart,omitempty"`
}

// ErrReloadInvalid marks a reload refused because the file is invalid;
// the daemon runs on the configuration it had.
var ErrReloadInvalid = errors.New("invalid configuration")

// postReload answers POST /v1/reload: 200 with what changed, 422 with
// the error (file, line, key) when the file is refused.
func (s *Server) postReload(w http.ResponseWriter, r *http.Request) {
	if s.o.Reload == nil {
		writeErr(w, http.StatusNotImplemented, "reload is not available")
		return
	}
	res, err := s.o.Reload(r.Context())
	switch {
	case errors.Is(err, ErrReloadInvalid):
		writeErr(w, http.StatusUnprocessableEntity, "%v", err)
	case err != nil:
		s.fail(w, "reload", err)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// Reload asks the daemon to read its configuration file again and apply
// it (the same as SIGHUP).
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	return res, c.do(ctx, http.MethodPost, "/v1/reload", nil, &res)
}
