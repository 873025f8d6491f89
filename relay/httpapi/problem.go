package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problem is an RFC 9457 problem details object. Type is left out, which
// means "about:blank" (§4.2.1): the title is then the status phrase, and
// the extension member "reason" carries a short stable code for programs
// (the metrics reasons of the SMTP side where one applies). smtp_status
// is the SMTP reply an SMTP client would have had.
type problem struct {
	Status     int    `json:"status"`
	Title      string `json:"title"`
	Detail     string `json:"detail,omitempty"`
	Reason     string `json:"reason"`
	SMTP       string `json:"smtp_status,omitempty"`
	RetryAfter int    `json:"-"` // seconds; the Retry-After header when set
}

// writeProblem writes p as application/problem+json. encoding/json
// escapes <, > and & (and invalid UTF-8), so that nothing a client sent
// can become markup in a viewer of the answer.
func writeProblem(w http.ResponseWriter, p *problem) {
	p.Title = http.StatusText(p.Status)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
