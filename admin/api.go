package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"sluice/config"
	"sluice/policy"
	"sluice/queue"
)

// routes mounts the /v1 API. Paths are versioned so that an older CLI
// talking to a newer daemon fails loudly rather than misreading.
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/status", s.getStatus)
	mux.HandleFunc("GET /v1/queue", s.listQueue)
	mux.HandleFunc("GET /v1/queue/summary", s.getSummary)
	mux.HandleFunc("GET /v1/queue/{id}", s.showMessage)
	mux.HandleFunc("POST /v1/queue/flush", s.postFlush)
	mux.HandleFunc("POST /v1/queue/{action}", s.postAction)
	mux.HandleFunc("GET /v1/domains", s.getDomains)
	mux.HandleFunc("GET /v1/domains/{name}", s.getDomain)
	mux.HandleFunc("PUT /v1/limits/{name}", s.putLimits)
	mux.HandleFunc("DELETE /v1/limits/{name}", s.deleteLimits)
	mux.HandleFunc("GET /v1/suppress", s.getSuppress)
	mux.HandleFunc("POST /v1/suppress", s.postSuppress)
	mux.HandleFunc("DELETE /v1/suppress/{addr}", s.deleteSuppress)
	mux.HandleFunc("GET /v1/dashboard", s.getDashboard)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// fail maps an internal error to a status: the queue's sentinels keep
// their meaning across the socket.
func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, queue.ErrNoSpace):
		code = http.StatusInsufficientStorage // RFC 4918 §11.5
	case errors.Is(err, queue.ErrUnwritable):
		code = http.StatusServiceUnavailable
	case errors.Is(err, policy.ErrBadLimits), errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, errConflict):
		code = http.StatusConflict
	}
	if code == http.StatusInternalServerError {
		s.log.Error("admin request failed", "what", what, "err", err)
	}
	writeErr(w, code, "%s: %v", what, err)
}

var (
	errBadRequest = errors.New("bad request")
	errConflict   = errors.New("refused")
)

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

// readyz answers 200 only when the daemon can take mail, for load
// balancers and `sluice status`.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	st := s.status().public()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

func (s *Server) listQueue(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := queue.Filter{Domain: q.Get("domain"), State: queue.State(q.Get("state"))}
	if f.State != "" && !f.State.Valid() {
		writeErr(w, http.StatusBadRequest, "unknown state %q (want one of %v)", f.State, queue.AllStates)
		return
	}
	if v := q.Get("older_than"); v != "" {
		d, err := config.ParseDuration(v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "older_than: %v", err)
			return
		}
		f.OlderThan = d.D()
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, http.StatusBadRequest, "limit: want a number >= 0, got %q", v)
			return
		}
		f.Limit = n
	}
	msgs, err := s.o.Queue.List(f)
	if err != nil {
		s.fail(w, "list", err)
		return
	}
	out := make([]Message, 0, len(msgs))
	for i := range msgs {
		m := messageOf(&msgs[i], false)
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) showMessage(w http.ResponseWriter, r *http.Request) {
	m, err := s.o.Queue.Get(r.PathValue("id"))
	if err != nil {
		s.fail(w, "show "+r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, messageOf(m, true))
}

func (s *Server) getSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary()
	if err != nil {
		s.fail(w, "summary", err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) postFlush(w http.ResponseWriter, r *http.Request) {
	var req FlushRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, "flush", err)
		return
	}
	res, err := s.flush(req)
	if err != nil {
		s.fail(w, "flush", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	var sel Selection
	if err := decode(r, &sel); err != nil {
		s.fail(w, action, err)
		return
	}
	res, err := s.act(action, sel)
	if err != nil {
		s.fail(w, action, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) getDomains(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.domains())
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request) {
	name := s.resolveDest(r.PathValue("name"))
	st, ok := s.o.Policy.State(name)
	if !ok {
		writeErr(w, http.StatusNotFound, "no destination %q known (yet): it appears after the first delivery attempt", r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, DomainDetail{
		Destination: s.destinationOf(st),
		Domains:     s.o.Telemetry.History.DomainsOf(name),
		Recent:      s.o.Telemetry.History.Recent(name),
	})
}

func (s *Server) putLimits(w http.ResponseWriter, r *http.Request) {
	var req LimitsRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, "limits", err)
		return
	}
	d, err := s.setLimits(r.PathValue("name"), req)
	if err != nil {
		s.fail(w, "limits", err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteLimits(w http.ResponseWriter, r *http.Request) {
	name := s.resolveDest(r.PathValue("name"))
	if err := s.o.Policy.ResetLimits(name); err != nil {
		s.fail(w, "limits reset", err)
		return
	}
	st, _ := s.o.Policy.State(name)
	s.log.Info("admin: limits reset", "destination", name)
	writeJSON(w, http.StatusOK, s.destinationOf(st))
}

func (s *Server) getSuppress(w http.ResponseWriter, r *http.Request) {
	list, err := s.o.Queue.Suppressions()
	if err != nil {
		s.fail(w, "suppress list", err)
		return
	}
	out := make([]Suppression, 0, len(list))
	for _, x := range list {
		out = append(out, Suppression{Addr: x.Addr, Reason: x.Reason, At: x.At})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) postSuppress(w http.ResponseWriter, r *http.Request) {
	var req Suppression
	if err := decode(r, &req); err != nil {
		s.fail(w, "suppress add", err)
		return
	}
	if req.Reason == "" {
		req.Reason = "added by the operator"
	}
	if strings.TrimSpace(req.Addr) == "" {
		s.fail(w, "suppress add", fmt.Errorf("%w: empty address", errBadRequest))
		return
	}
	// A storage failure keeps its class: a full disk is 507, not the
	// operator's mistake (400).
	if err := s.o.Queue.Suppress(req.Addr, req.Reason); err != nil {
		s.fail(w, "suppress add", err)
		return
	}
	writeJSON(w, http.StatusOK, Result{Changed: 1})
}

func (s *Server) deleteSuppress(w http.ResponseWriter, r *http.Request) {
	found, err := s.o.Queue.Unsuppress(r.PathValue("addr"))
	if err != nil {
		s.fail(w, "suppress remove", err)
		return
	}
	if !found {
		writeErr(w, http.StatusNotFound, "suppress remove: %s is not suppressed", r.PathValue("addr"))
		return
	}
	writeJSON(w, http.StatusOK, Result{Changed: 1})
}

func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.dashboard()
	if err != nil {
		s.fail(w, "dashboard", err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// getPublicDashboard is the dashboard data of the unauthenticated HTTP
// listener: counts and domains only. Reply texts are kept (they say why
// a destination is paused) with every mail address in them cut to its
// domain, since receivers quote the recipient ("550 5.1.1 <jane@…>").
func (s *Server) getPublicDashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.dashboard()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "dashboard unavailable")
		s.log.Error("dashboard failed", "err", err)
		return
	}
	writeJSON(w, http.StatusOK, d.public())
}

func (s *Server) dashboard() (Dashboard, error) {
	sum, err := s.summary()
	if err != nil {
		return Dashboard{}, err
	}
	return Dashboard{Status: s.status(), Summary: sum, Domains: s.domains(), Chart: s.o.Telemetry.History.Chart()}, nil
}
