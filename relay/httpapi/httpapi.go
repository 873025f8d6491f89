// Package httpapi is the HTTP injection API (listen.api): POST
// /v1/messages takes a message as JSON, authenticated by a user's API
// token, and hands it to the same acceptance path as SMTP
// (inbound.Server.Submit): size, allowed_from, suppression, the auth
// pre-check and DKIM signing, and the fsync of the queue before the
// "202 Accepted" that carries the message ID. Problems are RFC 9457
// problem details.
//
// It is an admin-like surface, kept out of reach of web pages (design
// notes, "HTTP injection API"): a token in "Authorization: Bearer" on
// every request (no cookies, which a browser would attach by itself), a
// JSON body only (a cross-site form or text/plain POST needs no CORS
// preflight: application/json does, and we answer none), and any request
// with an Origin header refused (no browser has a business here).
package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"sluice/relay/inbound"
)

// Submitter is the acceptance path; *inbound.Server is one.
type Submitter interface {
	TokenUser(token string) (inbound.User, bool)
	MaxMessageSize() int64
	Reserve(n int64) (release func(), err error)
	Submit(ctx context.Context, sub *inbound.Submission) (inbound.Receipt, error)
}

// Options configures New.
type Options struct {
	Submit Submitter
	// TLS: the listener serves HTTPS (the Received: field says so).
	TLS    bool
	Logger *slog.Logger
}

// MaxKeyLength bounds an Idempotency-Key: they are UUIDs in practice.
const MaxKeyLength = 255

// Handler returns the API's http.Handler.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{o: o, proto: "HTTP"}
	if o.TLS {
		h.proto = "HTTPS"
	}
	return h
}

type handler struct {
	o     Options
	proto string
}

// Accepted is the body of a 202.
type Accepted struct {
	ID     string `json:"id"`
	Status string `json:"status"` // "queued"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/messages" {
		writeProblem(w, &problem{Status: http.StatusNotFound, Reason: "not-found", Detail: "the API serves POST /v1/messages"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, &problem{Status: http.StatusMethodNotAllowed, Reason: "method-not-allowed", Detail: "use POST"})
		return
	}
	if r.Header.Get("Origin") != "" {
		writeProblem(w, &problem{Status: http.StatusForbidden, Reason: "cross-origin", Detail: "requests from web pages are refused: call the API from a server"})
		return
	}
	user, ok := h.authenticate(r)
	if !ok {
		// RFC 6750 §3: the challenge, with invalid_token when one came.
		c := `Bearer realm="sluice"`
		if r.Header.Get("Authorization") != "" {
			c += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", c)
		writeProblem(w, &problem{Status: http.StatusUnauthorized, Reason: "unauthorized", Detail: "missing or wrong API token (Authorization: Bearer TOKEN)"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		w.Header().Set("Accept", "application/json")
		writeProblem(w, &problem{Status: http.StatusUnsupportedMediaType, Reason: "unsupported-media-type", Detail: "the body must be Content-Type: application/json"})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if !validKey(key) {
		writeProblem(w, &problem{Status: http.StatusBadRequest, Reason: "bad-idempotency-key", Detail: fmt.Sprintf("Idempotency-Key: 1 to %d printable ASCII characters", MaxKeyLength)})
		return
	}
	h.post(w, r, user, key)
}

func (h *handler) authenticate(r *http.Request) (inbound.User, bool) {
	a := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(a, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") { // RFC 9110 §11.1: the scheme is case-insensitive
		return inbound.User{}, false
	}
	return h.o.Submit.TokenUser(strings.TrimSpace(tok))
}

// validKey: an absent key, or a sf-string's characters (RFC 8941 §3.3.3,
// printable ASCII), quoted or not, of bounded length.
func validKey(k string) bool {
	if k == "" {
		return true
	}
	if len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// bodyLimit is the most a request body may take: a message of the
// maximum size in base64 (4/3) with room for the JSON around it, or
// text and html of that size each. A larger body is 413 unread.
func bodyLimit(maxMsg int64) int64 { return 2*maxMsg + 64<<10 }

func (h *handler) post(w http.ResponseWriter, r *http.Request, user inbound.User, key string) {
	maxMsg := h.o.Submit.MaxMessageSize()
	limit := bodyLimit(maxMsg)
	if r.ContentLength > limit {
		writeProblem(w, tooBig(maxMsg))
		return
	}
	// The body is held in memory: its size is taken from the in-flight
	// budget first (the declared length, else the most it may be), as
	// SMTP's MAIL takes its SIZE.
	reserve := limit
	if r.ContentLength >= 0 {
		reserve = r.ContentLength
	}
	release, err := h.o.Submit.Reserve(reserve)
	if err != nil {
		writeProblem(w, smtpProblem(err, maxMsg))
		return
	}
	defer release()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeProblem(w, tooBig(maxMsg))
		return
	case err != nil:
		h.o.Logger.Info("api: reading the request failed", "client", r.RemoteAddr, "err", err)
		writeProblem(w, &problem{Status: http.StatusBadRequest, Reason: "bad-request", Detail: "the request body could not be read"})
		return
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	// An unknown member is refused: a misspelt "html" must not turn into
	// a message without its body.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, &problem{Status: http.StatusBadRequest, Reason: "bad-json", Detail: jsonDetail(err)})
		return
	}
	if dec.More() {
		writeProblem(w, &problem{Status: http.StatusBadRequest, Reason: "bad-json", Detail: "one JSON object, nothing after it"})
		return
	}
	msg, err := req.Message()
	var inv *invalid
	switch {
	case errors.As(err, &inv):
		writeProblem(w, &problem{Status: http.StatusUnprocessableEntity, Reason: "invalid-message", Detail: inv.detail})
		return
	case err != nil:
		h.o.Logger.Error("api: building the message failed", "err", err)
		writeProblem(w, &problem{Status: http.StatusInternalServerError, Reason: "local-error", Detail: "the message could not be built"})
		return
	}
	if int64(len(msg)) > maxMsg {
		writeProblem(w, tooBig(maxMsg))
		return
	}
	client := netip.Addr{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	rc, err := h.o.Submit.Submit(r.Context(), &inbound.Submission{
		From: req.From, Rcpts: req.To, User: user.Name, Client: client, Protocol: h.proto,
		Message: msg, IdempotencyKey: key, Fingerprint: sha256.Sum256(body),
	})
	if err != nil {
		writeProblem(w, smtpProblem(err, maxMsg))
		return
	}
	if rc.Replayed {
		// As Stripe does: the first answer again, marked as a replay.
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(Accepted{ID: rc.ID, Status: "queued"})
}

// jsonDetail says what is wrong with a body without echoing it: the
// decoder's message names a member or an offset, never a value.
func jsonDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "not JSON at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want a %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return "an empty body: want a JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "not a JSON object of the expected form"
}

func tooBig(maxMsg int64) *problem {
	return &problem{Status: http.StatusRequestEntityTooLarge, Reason: "too-big", SMTP: "552 5.3.4",
		Detail: fmt.Sprintf("the message exceeds limits.max_message_size (%d bytes)", maxMsg)}
}

// smtpProblem maps a refusal of the acceptance path onto HTTP. The SMTP
// reply goes along (smtp_status) so that the client sees the same
// verdict as an SMTP client would.
func smtpProblem(err error, maxMsg int64) *problem {
	if errors.Is(err, inbound.ErrIdempotencyMismatch) {
		// draft-ietf-httpapi-idempotency-key-header §2.7: 422.
		return &problem{Status: http.StatusUnprocessableEntity, Reason: "idempotency-key-reused",
			Detail: "this Idempotency-Key was used for a different request in the last 24 hours"}
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return &problem{Status: http.StatusInternalServerError, Reason: "local-error", Detail: "temporary local problem, try again"}
	}
	p := &problem{Detail: se.Message, SMTP: fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])}
	ec := se.EnhancedCode
	switch {
	case se.Code == 552 || ec == smtp.EnhancedCode{5, 3, 4}:
		return tooBig(maxMsg)
	case se.Code == 535:
		p.Status, p.Reason = http.StatusUnauthorized, "unauthorized"
	case ec == smtp.EnhancedCode{5, 7, 1} && se.Code == 553:
		p.Status, p.Reason = http.StatusForbidden, "sender-not-allowed"
	case se.Code == 550 && ec == smtp.EnhancedCode{5, 1, 1}:
		p.Status, p.Reason = http.StatusUnprocessableEntity, "suppressed"
	case se.Code == 450 && ec == smtp.EnhancedCode{4, 7, 1}:
		p.Status, p.Reason, p.RetryAfter = http.StatusTooManyRequests, "rate-limited", 1
	case ec == smtp.EnhancedCode{4, 5, 3}:
		// A temporary refusal in SMTP (the client sends the rest in
		// another transaction); here the request as a whole is wrong.
		p.Status, p.Reason = http.StatusUnprocessableEntity, "too-many-recipients"
	case se.Code/100 == 4:
		// Space, the in-flight budget, a local error, a temporary auth
		// verdict: the same request may succeed later.
		p.Status, p.Reason, p.RetryAfter = http.StatusServiceUnavailable, "try-again", 60
	default:
		p.Status, p.Reason = http.StatusUnprocessableEntity, "refused"
	}
	return p
}
