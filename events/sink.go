package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"sluice/config"
	"sluice/queue"
)

// sink delivers batches of events to one destination.
type sink interface {
	// deliver sends evs (already filtered); nil means the destination
	// has them. It must return when ctx ends.
	deliver(ctx context.Context, evs []queue.Event) error
	close()
}

// Body is the JSON body of a webhook POST: the events of one batch,
// oldest first.
type Body struct {
	Events []queue.Event `json:"events"`
}

// webhook POSTs signed batches to one URL.
type webhook struct {
	cfg    config.Webhook
	client *http.Client
	ua     string
	now    func() time.Time
}

// webhookInflight is how many batches one webhook has in flight at once:
// with a receiver that answers in 50 ms and batches of 100 events, 8
// POSTs carry 16,000 events/s, several times what the relay delivers on
// two CPUs (two or three events per message).
const webhookInflight = 8

func newWebhook(cfg config.Webhook, ua string, now func() time.Time) *webhook {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = webhookInflight
	return &webhook{cfg: cfg, ua: ua, now: now, client: &http.Client{
		Transport: tr,
		// A redirect would send the signed events somewhere the
		// operator did not name: it is a failure, retried like any.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (w *webhook) deliver(ctx context.Context, evs []queue.Event) error {
	body, err := json.Marshal(Body{Events: evs})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.ua)
	req.Header.Set(SignatureHeader, Sign([]byte(w.cfg.Secret), w.now(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	// Drain a little so that the connection is reused; never read an
	// endless reply.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

func (w *webhook) close() { w.client.CloseIdleConnections() }

// redactURLError drops the URL from a client error: it may carry a token
// in its query, and the log names the sink by its safe form anyway.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// SafeURL is u without user info and query, for logs and status.
func SafeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// fileSink appends one JSON line per event to a file, or writes them to
// stdout ("-"), for log shippers.
type fileSink struct {
	mu   sync.Mutex
	path string
	f    *os.File
	w    io.Writer
}

func newFileSink(path string, stdout io.Writer) (*fileSink, error) {
	if path == "-" {
		return &fileSink{path: path, w: stdout}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &fileSink{path: path, f: f, w: f}, nil
}

func (s *fileSink) deliver(_ context.Context, evs []queue.Event) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return err
	}
	if s.f != nil {
		// The cursor moves only after this: a crash re-writes lines,
		// never loses them.
		return s.f.Sync()
	}
	return nil
}

func (s *fileSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
	}
}

// wants reports whether a sink configured for types sends t (empty: all).
func wants(types []string, t string) bool { return len(types) == 0 || slices.Contains(types, t) }
