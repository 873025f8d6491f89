package admin

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
)

// Long replies are streamed, so that no reply size cap and no request
// deadline limits what an operator can list or change: with "Accept:
// application/x-ndjson", GET /v1/queue answers one ListLine per line and
// the bulk actions one ActionLine per page of their work, each line
// flushed as it is written. The daemon reads the queue a page at a time,
// each page in its own short read transaction, and never holds one open
// while it writes to the client. Without that Accept type, the API
// answers one JSON document, as before.

// ndjson is the media type of the streamed replies: one JSON value per
// line.
const ndjson = "application/x-ndjson"

// ListLine is one line of a streamed listing: a message, then a last
// line that says the listing is complete (a stream cut short has none),
// or an error met after the listing began.
type ListLine struct {
	Message *Message `json:"message,omitempty"`
	End     *ListEnd `json:"end,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// ListEnd closes a listing. With a limit, More says whether more
// messages match: the next page starts after Next (`--after`).
type ListEnd struct {
	Messages int    `json:"messages"`
	More     bool   `json:"more,omitempty"`
	Next     string `json:"next,omitempty"`
}

// ActionLine is one line of a streamed bulk action: the running totals
// after each page, then the final result, or an error (with the HTTP
// status it would have had) and what was done before it.
type ActionLine struct {
	Progress *Result `json:"progress,omitempty"`
	Result   *Result `json:"result,omitempty"`
	Error    string  `json:"error,omitempty"`
	Status   int     `json:"status,omitempty"`
}

// wantsStream reports whether the client asked for a streamed reply.
func wantsStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == ndjson {
			return true
		}
	}
	return false
}

// lineWriter writes a streamed reply. The status line goes out with the
// first line; an error before it is still an ordinary error reply.
type lineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	err     error // the first write error: the client went away
}

func newLineWriter(w http.ResponseWriter) *lineWriter {
	return &lineWriter{w: w, rc: http.NewResponseController(w)}
}

func (l *lineWriter) line(v any) error {
	if l.err != nil {
		return l.err
	}
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", ndjson)
		l.w.Header().Set("Cache-Control", "no-store")
		l.w.Header().Set("X-Content-Type-Options", "nosniff")
		l.w.WriteHeader(http.StatusOK)
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.err = err
		return err
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		l.err = err
		return err
	}
	if err := l.rc.Flush(); err != nil {
		l.err = err
	}
	return l.err
}
