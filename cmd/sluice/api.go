package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"sluice/config"
	"sluice/relay/httpapi"
	"sluice/relay/inbound"
)

// The HTTP injection API (listen.api) runs the acceptance path of an
// inbound.Server that serves no SMTP listener: Submit is its way in.
// Its options are the SMTP listeners' (acceptOptions), so a reload
// reconfigures it with them; its TLS certificate is the [tls] one, read
// again by each reload like the SMTP listeners'.

// apiOptions are the acceptance options of listen.api for cfg.
func (d *daemon) apiOptions(cfg *config.Config, checker inbound.Checker) (inbound.Options, error) {
	o, err := d.acceptOptions(cfg, checker)
	if err != nil {
		return o, err
	}
	o.RequireAuth = true // every request carries a user's token
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("listen.api: %w", err)
	}
	return o, nil
}

// buildAPI makes the acceptance server of listen.api when it is on.
func (d *daemon) buildAPI(tlsConfig *tls.Config) error {
	if d.cfg.Listen.API == "" {
		return nil
	}
	o, err := d.apiOptions(d.cfg, d.checker)
	if err != nil {
		return err
	}
	if d.api, err = inbound.New(o); err != nil {
		return fmt.Errorf("listen.api: %w", err)
	}
	d.apiTLSOn = tlsConfig != nil
	if tlsConfig != nil {
		d.apiTLS.Store(tlsConfig)
	}
	return nil
}

// serveAPI serves the API on l (HTTPS when [tls] was set at start-up)
// and returns the server, or nil when listen.api is off.
func (d *daemon) serveAPI(l net.Listener) *http.Server {
	if l == nil || d.api == nil {
		return nil
	}
	cfg := d.cfg
	srv := &http.Server{
		Handler: httpapi.Handler(httpapi.Options{Submit: d.api, TLS: d.apiTLSOn, Logger: d.log}),
		// A slow client holds a connection, not a budget: its body is
		// read under the in-flight reservation only once it came whole
		// within the read timeout.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Duration(cfg.Limits.DataTimeout),
		WriteTimeout:      time.Duration(cfg.Limits.DataTimeout) + time.Minute,
		IdleTimeout:       time.Duration(cfg.Limits.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	// Connections beyond limits.max_connections (as at start-up) wait in
	// the kernel's backlog until one closes: a flood of clients cannot
	// take every descriptor of the process.
	l = netutil.LimitListener(l, cfg.Limits.MaxConnections)
	if d.apiTLSOn {
		// Each handshake takes the certificate in force: a reload that
		// read a renewed one applies to the next connection.
		l = tls.NewListener(l, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return d.apiTLS.Load(), nil
			},
		})
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("listener stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	scheme := "http"
	if d.apiTLSOn {
		scheme = "https"
	}
	d.log.Info("HTTP API listening", "addr", l.Addr().String(), "scheme", scheme)
	return srv
}

// stopAPI lets requests in flight finish (their messages are being
// committed) until ctx is done.
func stopAPI(ctx context.Context, srv *http.Server) {
	if srv == nil {
		return
	}
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}
