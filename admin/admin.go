// Package admin is the operator surface of a running sluice daemon: the
// versioned JSON API (/v1/...) that the `sluice` CLI talks to, over a
// unix socket (mode 0600) or, with a bearer token, over TCP; the
// Prometheus metrics; and the embedded, read-only dashboard.
//
// Promises: the daemon owns the bbolt file, so every operator read and
// change goes through this API and the queue's own transactions; nothing
// here opens the queue file. Every handler is safe to run concurrently
// with delivery. The HTTP listener (listen.http) is read-only: it serves
// /metrics, /readyz, the dashboard and its data, and no action.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"sluice/policy"
	"sluice/queue"
	"sluice/relay/lintcheck"
)

// Options configure a Server.
type Options struct {
	Queue     *queue.Queue
	Policy    *policy.Policy
	Telemetry *Telemetry // nil: no metrics, empty chart
	// Kick wakes the scheduler after a flush or release (nil = none).
	Kick func()
	// Held reports the leases the scheduler still uses
	// (scheduler.Holds); `flush --force` returns every other lease to
	// the queue at once instead of waiting for it to expire (nil: no
	// lease is returned).
	Held     func(id string, rcpt int) bool
	Hostname string // Reporting-MTA of operator bounces
	Version  string
	Started  time.Time
	// Ready reports why the daemon cannot take mail yet, or nil. It adds
	// to the built-in check that the queue answers.
	Ready func() error
	// Token, when not empty, is required as "Authorization: Bearer" on
	// every API request (read it with APIToken). ListenAPI refuses a TCP
	// address without one.
	Token string
	// HTTPHosts are the extra Host names the read-only HTTP listener
	// answers to (listen.http_hosts); see HTTPHandler.
	HTTPHosts []string
	// Reload reads the configuration file again and applies it (POST
	// /v1/reload, `sluice reload`); an error wrapping ErrReloadInvalid
	// means the file was refused and nothing changed. nil: no reload.
	Reload func(ctx context.Context) (ReloadResult, error)
	// Config reports the configuration in force, for Status (nil: none).
	Config func() ConfigStatus
	// Events runs the event sinks (nil: no events API).
	Events EventsControl
	// Lint reports the content lint findings per sender domain over the
	// last day (lintcheck.Tally.Report, issue 16), shown by `sluice
	// domains` and the dashboard; nil: lint is not wired.
	Lint func() lintcheck.Report
	// Cluster is the node's cluster membership (nil: cluster mode off):
	// `limits set` applies cluster-wide, `domains` shows each node's
	// share, GET /v1/cluster lists the nodes.
	Cluster Cluster
	Now     func() time.Time
	Logger  *slog.Logger
}

// Server serves the API and the read-only HTTP surface.
type Server struct {
	o       Options
	log     *slog.Logger
	apiAddr string // the TCP address ListenAPI bound, for the Origin check
	// bq is the queue as the operator bounce sees it: o.Queue, or a
	// test's wrapper that interleaves a delivery.
	bq bounceQueue
	// tailMu serializes a tail's event lines and heartbeats.
	tailMu sync.Mutex
}

// New returns a server; nothing listens until ListenAPI.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Telemetry == nil {
		o.Telemetry = NewTelemetry(TelemetryOptions{Queue: o.Queue, Policy: o.Policy, Now: o.Now, Logger: o.Logger})
	}
	if o.Started.IsZero() {
		o.Started = o.Now()
	}
	return &Server{o: o, log: o.Logger, bq: o.Queue}
}

// ErrInsecureAdmin is returned for a TCP admin address without a token
// file. Loopback is no exception: every local user, and every web page
// the operator's browser opens, can reach 127.0.0.1.
var ErrInsecureAdmin = errors.New("a TCP admin address needs listen.admin_token_file (loopback included; a unix socket needs none)")

// APIToken checks the admin address and reads the bearer token it needs,
// without binding anything: `sluice config check` and `sluice serve` call
// it alike, so that the check refuses what the daemon would. addr is
// "unix:PATH" (no token: the socket's mode is the guard) or "host:port",
// which needs tokenFile.
func APIToken(addr, tokenFile string) (string, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "", checkSocketPath(path)
	}
	if tokenFile == "" {
		return "", fmt.Errorf("%w (listen.admin = %q)", ErrInsecureAdmin, addr)
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", tokenFile)
	}
	return tok, nil
}

// maxSocketPath is the room in sockaddr_un.sun_path (108 bytes on Linux,
// with the terminating NUL): a longer path fails only at bind.
const maxSocketPath = 107

func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes long; a unix socket path holds at most %d", path, len(path), maxSocketPath)
	}
	return nil
}

// ListenAPI opens the admin API listener. addr is "unix:PATH" (the socket
// is created mode 0600, replacing a stale one but never a live one: see
// ErrSocketInUse) or "host:port", which needs Options.Token.
func (s *Server) ListenAPI(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if err := checkSocketPath(path); err != nil {
			return nil, err
		}
		return listenUnix(path)
	}
	if s.o.Token == "" {
		return nil, fmt.Errorf("%w (listen.admin = %q)", ErrInsecureAdmin, addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.apiAddr = l.Addr().String()
	return l, nil
}

// ErrSocketInUse is returned when another process answers on the admin
// socket path: most likely a second daemon configured with the same
// listen.admin. Taking the path over would cut the first daemon off from
// its operators, and deleting it on exit would do so for good.
var ErrSocketInUse = errors.New("admin socket is in use by another running daemon")

func listenUnix(path string) (net.Listener, error) {
	// A socket left by a crashed daemon would make Listen fail; one that
	// still answers belongs to a live daemon and is left alone.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; not replacing it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s (two daemons configured with the same listen.admin?)", ErrSocketInUse, path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("admin socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	// The socket is chmod'ed right after creation. The short window is
	// harmless: data_dir is created 0700, so nobody else can reach it.
	// (A umask would be process-wide and race with other file creation.)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	if err := os.Chmod(path, 0o600); err != nil {
		ul.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ul.Close()
		return nil, err
	}
	// Go would unlink the path on Close whatever is there by then; we
	// unlink it only while it is still the socket we made.
	ul.SetUnlinkOnClose(false)
	return &ownSocket{UnixListener: ul, path: path, fi: fi}, nil
}

// ownSocket is a unix listener that, on Close, removes its path only if
// the path still names the socket it created (same inode), so that a
// daemon never deletes a socket that another process made there since.
type ownSocket struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (o *ownSocket) Close() error {
	err := o.UnixListener.Close()
	o.once.Do(func() {
		if fi, err := os.Lstat(o.path); err == nil && os.SameFile(fi, o.fi) {
			os.Remove(o.path)
		}
	})
	return err
}

// APIHandler is the /v1 API behind its guards: no foreign Origin, the
// token when one is set, and JSON bodies only on mutating requests.
func (s *Server) APIHandler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return s.guardAPI(requireJSON(mux))
}

// HTTPHandler is the read-only listen.http surface: /metrics, /readyz,
// the dashboard at / and its data at /v1/dashboard, without addresses.
// bound is the listener's address: with Options.HTTPHosts, it says which
// Host headers are served (see hostGuard).
func (s *Server) HTTPHandler(bound string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.o.Telemetry.Handler())
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/dashboard", s.getPublicDashboard)
	mux.Handle("GET /", dashboardFiles())
	return hostGuard(bound, s.o.HTTPHosts, mux)
}

// Serve runs an http.Server with h on l until Shutdown; it returns
// the server so the caller can shut it down.
func Serve(l net.Listener, h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return srv
}
