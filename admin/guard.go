package admin

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Cross-site defences of the two HTTP surfaces (design notes, "Admin
// security"). A web page the operator visits can make the browser send
// requests to any address the operator can reach, loopback included:
//
//   - a "simple" cross-origin request (GET, or a POST with a form or
//     text/plain body) is sent without a CORS preflight; the page cannot
//     read the answer, but the request has its effect;
//   - with DNS rebinding, a name the attacker controls is re-pointed at
//     127.0.0.1 and the page then reads our answers as same-origin.
//
// The admin API therefore needs the bearer token on every TCP address
// (a browser never has it), refuses any Origin but its own, and takes
// mutating requests only with an application/json body, which no simple
// request can carry (Fetch standard, "CORS-safelisted request-header").
// The read-only HTTP listener serves only Hosts it knows, which defeats
// rebinding (the rebound name arrives in Host).

// guardAPI wraps the API: Origin first (403), then the token (401), then
// the body type of mutating requests (415).
func (s *Server) guardAPI(next http.Handler) http.Handler {
	if s.o.Token != "" {
		next = requireToken(s.o.Token, next)
	}
	own := ownOrigins(s.apiAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !own[strings.ToLower(o)] {
			writeErr(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireJSON refuses a mutating request unless it declares a JSON body
// (RFC 8259 §11: application/json; a charset parameter is tolerated).
// Requests without a body (DELETE) must declare it too: the rule is about
// what a browser can send without a preflight, not about the body.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		default:
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				w.Header().Set("Accept", "application/json")
				writeErr(w, http.StatusUnsupportedMediaType, "a %s request needs Content-Type: application/json", r.Method)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ownOrigins are the origins of a TCP admin address: a browser page
// served from the admin address itself. A unix socket has none.
func ownOrigins(addr string) map[string]bool {
	out := map[string]bool{}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return out
	}
	out["http://"+strings.ToLower(net.JoinHostPort(host, port))] = true
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		out["http://"+net.JoinHostPort("localhost", port)] = true
	}
	return out
}

// hostGuard serves only requests whose Host is the bound address (and
// "localhost" on a loopback bind), an IP literal on a non-loopback bind,
// or a name of listen.http_hosts: a rebound name is none of these.
// Others get 421 Misdirected Request (RFC 9110 §15.5.20).
func hostGuard(bound string, allow []string, next http.Handler) http.Handler {
	bhost, bport, _ := net.SplitHostPort(bound)
	baddr, _ := netip.ParseAddr(bhost)
	loop := baddr.IsValid() && baddr.IsLoopback()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, port := splitHost(r.Host)
		if !hostAllowed(host, port, baddr, bport, loop, allow) {
			writeErr(w, http.StatusMisdirectedRequest, "this Host is not served here (listen.http_hosts lists the names that are)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostAllowed(host, port string, bound netip.Addr, bport string, loop bool, allow []string) bool {
	for _, a := range allow {
		if ah, ap, err := net.SplitHostPort(a); err == nil {
			if h, _ := splitHost(ah); h == host && ap == port {
				return true
			}
		} else if h, _ := splitHost(a); h == host {
			return true // a name without a port: any port (behind a proxy)
		}
	}
	if port != bport || host == "" {
		return false
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case loop:
		return host == "localhost" || (err == nil && ip.Unmap() == bound.Unmap())
	case err == nil:
		// An IP literal cannot be rebound: a page whose origin is our
		// own address is our own page.
		return !bound.IsValid() || bound.IsUnspecified() || ip.Unmap() == bound.Unmap()
	}
	return false
}

// splitHost splits a Host header or an allowlist entry into a lower-case
// host without brackets or trailing dot, and a port ("80" when absent:
// the default port of http).
func splitHost(hp string) (host, port string) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		host, port = strings.Trim(hp, "[]"), "80"
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), port
}
