package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"sluice/internal/fakemx"
)

// report is the JSON document of -stats and GET /stats.
type report struct {
	Stats    fakemx.Stats      `json:"stats"`
	Greylist fakemx.LagSummary `json:"greylist"` // lag after the greylisting window
}

func newReport(s *fakemx.Server, greylist time.Duration) report {
	st := s.Stats()
	return report{Stats: st, Greylist: st.GreylistLag(greylist)}
}

// serve runs the fake MX until ctx ends or cfg.duration passes. It writes
// the address to stdout once the listener is up, so a script can read one
// line and start sending.
func serve(ctx context.Context, cfg config, stdout io.Writer) error {
	s, err := fakemx.Start(cfg.mx)
	if err != nil {
		return err
	}
	defer s.Close()
	httpLine := ""
	if cfg.httpAddr != "" {
		ln, err := net.Listen("tcp", cfg.httpAddr)
		if err != nil {
			return fmt.Errorf("http listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(newReport(s, cfg.mx.Greylist))
		})
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(ln) }()
		defer hs.Close()
		httpLine = "http " + ln.Addr().String() + "\n"
	}
	// The first line is the SMTP address, whatever else is printed.
	fmt.Fprintf(stdout, "%s\n%s", s.Addr(), httpLine)
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	<-ctx.Done()
	if err := s.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close: %w", err)
	}
	if cfg.statsFile == "" {
		return nil
	}
	return writeJSON(cfg.statsFile, newReport(s, cfg.mx.Greylist))
}

// writeJSON replaces path atomically (temp file, fsync, rename), so a
// script never reads half a report.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stats-*")
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("stats: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("stats: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}
