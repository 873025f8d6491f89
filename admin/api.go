package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"sluice/cluster"
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
	mux.HandleFunc("POST /v1/queue/backup", s.postBackup)
	mux.HandleFunc("POST /v1/queue/{action}", s.postAction)
	mux.HandleFunc("GET /v1/domains", s.getDomains)
	mux.HandleFunc("GET /v1/cluster", s.getCluster)
	mux.HandleFunc("GET /v1/domains/{name}", s.getDomain)
	mux.HandleFunc("PUT /v1/limits/{name}", s.putLimits)
	mux.HandleFunc("DELETE /v1/limits/{name}", s.deleteLimits)
	mux.HandleFunc("GET /v1/suppress", s.getSuppress)
	mux.HandleFunc("POST /v1/suppress", s.postSuppress)
	mux.HandleFunc("DELETE /v1/suppress/{addr}", s.deleteSuppress)
	mux.HandleFunc("GET /v1/dashboard", s.getDashboard)
	mux.HandleFunc("POST /v1/reload", s.postReload)
	mux.HandleFunc("GET /v1/events", s.getEvents)
	mux.HandleFunc("GET /v1/events/tail", s.getTail)
	mux.HandleFunc("POST /v1/events/replay", s.postReplay)
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
	code := s.statusOf(what, err)
	writeErr(w, code, "%s: %v", what, err)
}

// statusOf is the HTTP status of an error (and logs the internal ones).
func (s *Server) statusOf(what string, err error) int {
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
	case errors.Is(err, errConflict), errors.Is(err, queue.ErrBackupRunning):
		code = http.StatusConflict
	case errors.Is(err, cluster.ErrDown):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusInternalServerError {
		s.log.Error("admin request failed", "what", what, "err", err)
	}
	return code
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

// listPage is how many messages one read transaction of a listing
// takes: a listing of any length is read in short transactions.
const listPage = 256

// listQueue answers GET /v1/queue: the messages matching the filter, in
// ID order, after ?after=ID, at most ?limit=N. It pages through the
// queue's indexes (queue.List) and writes as it reads: a streamed
// ListLine per message with "Accept: application/x-ndjson", else one
// JSON array, written incrementally too.
func (s *Server) listQueue(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := queue.Filter{Domain: q.Get("domain"), State: queue.State(q.Get("state")), After: q.Get("after")}
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
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeErr(w, http.StatusBadRequest, "limit: want a number >= 0, got %q", v)
			return
		}
		limit = n
	}
	out := newListOut(w, wantsStream(r))
	var end ListEnd
	for {
		page := listPage
		if limit > 0 {
			page = min(page, limit-end.Messages+1) // one more: are there more?
		}
		pf := f
		pf.Limit = page
		msgs, err := s.o.Queue.List(pf)
		if err != nil {
			if !out.started() {
				s.fail(w, "list", err)
				return
			}
			out.fail(fmt.Errorf("list: %w", err))
			return
		}
		for i := range msgs {
			if limit > 0 && end.Messages == limit {
				end.More, end.Next = true, f.After
				break
			}
			m := messageOf(&msgs[i], false)
			if err := out.message(&m); err != nil {
				return // the client went away
			}
			end.Messages++
			f.After = msgs[i].ID
		}
		if end.More || len(msgs) < page || r.Context().Err() != nil {
			break
		}
	}
	out.end(end)
}

// listOut writes a listing as it is read: NDJSON lines, or one JSON
// array for clients that did not ask for a stream.
type listOut struct {
	w      http.ResponseWriter
	lw     *lineWriter // nil: a JSON array
	opened bool
}

func newListOut(w http.ResponseWriter, stream bool) *listOut {
	o := &listOut{w: w}
	if stream {
		o.lw = newLineWriter(w)
	}
	return o
}

func (o *listOut) started() bool {
	if o.lw != nil {
		return o.lw.started
	}
	return o.opened
}

func (o *listOut) message(m *Message) error {
	if o.lw != nil {
		return o.lw.line(ListLine{Message: m})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sep := ",\n"
	if !o.opened {
		o.opened = true
		o.w.Header().Set("Content-Type", "application/json")
		o.w.Header().Set("Cache-Control", "no-store")
		o.w.WriteHeader(http.StatusOK)
		sep = "[\n"
	}
	_, err = o.w.Write(append([]byte(sep), b...))
	return err
}

func (o *listOut) end(e ListEnd) {
	switch {
	case o.lw != nil:
		_ = o.lw.line(ListLine{End: &e})
	case !o.opened:
		writeJSON(o.w, http.StatusOK, []Message{})
	default:
		_, _ = o.w.Write([]byte("\n]\n"))
	}
}

// fail ends a listing that has begun: an error line, or, for a JSON
// array, a cut connection (the client then fails on the truncated
// document rather than take a part for the whole).
func (o *listOut) fail(err error) {
	if o.lw != nil {
		_ = o.lw.line(ListLine{Error: err.Error()})
		return
	}
	panic(http.ErrAbortHandler)
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
	s.bulk(w, r, "flush", func(p progressFunc) (Result, error) { return s.flush(r.Context(), req, p) })
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	var sel Selection
	if err := decode(r, &sel); err != nil {
		s.fail(w, action, err)
		return
	}
	s.bulk(w, r, action, func(p progressFunc) (Result, error) { return s.act(r.Context(), action, sel, p) })
}

// bulk runs a bulk action and answers with its result, streaming the
// progress of every page when the client asked for a stream. The action
// stops between pages when the client goes away.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request, what string, run func(progressFunc) (Result, error)) {
	if !wantsStream(r) {
		res, err := run(nil)
		if err != nil {
			s.fail(w, what, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	lw := newLineWriter(w)
	res, err := run(func(p Result) { _ = lw.line(ActionLine{Progress: &p}) })
	switch {
	case err != nil && !lw.started:
		s.fail(w, what, err)
	case err != nil:
		_ = lw.line(ActionLine{Error: fmt.Sprintf("%s: %v", what, err), Status: s.statusOf(what, err), Result: &res})
	default:
		_ = lw.line(ActionLine{Result: &res})
	}
}

func (s *Server) getDomains(w http.ResponseWriter, r *http.Request) {
	d, err := s.domains()
	if err != nil {
		s.fail(w, "domains", err)
		return
	}
	s.clusterShares(r.Context(), d.Destinations)
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) getDomain(w http.ResponseWriter, r *http.Request) {
	name := s.resolveDest(r.PathValue("name"))
	st, ok := s.o.Policy.State(name)
	if !ok {
		writeErr(w, http.StatusNotFound, "no destination %q known (yet): it appears after the first delivery attempt", r.PathValue("name"))
		return
	}
	d := s.destinationOf(st)
	if byDest, err := s.queueByDest(); err == nil {
		d.Open, d.Held = byDest[name].open, byDest[name].held
	}
	one := []Destination{d}
	s.clusterShares(r.Context(), one)
	d = one[0]
	writeJSON(w, http.StatusOK, DomainDetail{
		Destination: d,
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
	reset := s.o.Policy.ResetLimits
	if s.o.Cluster != nil {
		reset = s.o.Cluster.ResetLimits // on every node
	}
	if err := reset(name); err != nil {
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
	d, err := s.dashboard(r.URL.Query().Get("timeline"))
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
	d, err := s.dashboard(r.URL.Query().Get("timeline"))
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "dashboard unavailable")
		s.log.Error("dashboard failed", "err", err)
		return
	}
	writeJSON(w, http.StatusOK, d.public())
}

// ChartBusiest is how many destinations the dashboard charts besides
// the one the operator selects: the busiest in the last hour. The page
// stays readable and the reply small (about 10 KB per destination).
const ChartBusiest = 6

// dashboard is the page's data; selected (may be empty) is the
// destination whose hour is charted whether or not it is among the
// busiest.
func (s *Server) dashboard(selected string) (Dashboard, error) {
	sum, err := s.summary()
	if err != nil {
		return Dashboard{}, err
	}
	doms, err := s.domains()
	if err != nil {
		return Dashboard{}, err
	}
	return Dashboard{Status: s.status(), Summary: sum, Domains: doms, Chart: s.o.Telemetry.History.Chart(),
		Timeline: s.o.Telemetry.Timeline.Chart(ChartBusiest, selected)}, nil
}
