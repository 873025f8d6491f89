package admin

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken checks "Authorization: Bearer TOKEN" (RFC 6750 §2.1) in
// constant time, so that timing does not leak the token.
func requireToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeErr(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}
