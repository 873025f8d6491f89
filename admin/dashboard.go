package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard is three static files embedded in the binary: no CDN,
// no build step, and it works on an air-gapped host. It polls
// /v1/dashboard (read-only) every few seconds.
//
//go:embed web
var webFiles embed.FS

func dashboardFiles() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embed directive guarantees "web" exists
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Everything is same-origin; the policy also stops a stored reply
		// text from ever running as script.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}
