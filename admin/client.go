package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoDaemon means nothing answers at the admin address: the daemon is
// not running (or runs with another data_dir).
var ErrNoDaemon = errors.New("no sluice daemon")

// APIError is a non-2xx answer of the daemon.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Client talks to the daemon's admin API. It is what the CLI uses; the
// CLI never opens the queue file (the daemon holds its lock).
type Client struct {
	addr  string
	base  string
	token string
	hc    *http.Client
	// hs is hc without the overall deadline: a streamed reply may last
	// as long as its lines keep coming (see streamIdle).
	hs *http.Client
	// maxReply caps a reply read whole (not a streamed one).
	maxReply int64
}

// streamIdle is how long a streamed reply may go without a line before
// the client gives up: a page of a listing or of a bulk action takes far
// less.
const streamIdle = 60 * time.Second

// NewClient returns a client for addr ("unix:PATH" or "host:port").
// token is sent as a bearer token when not empty.
func NewClient(addr, token string) *Client {
	c := &Client{addr: addr, token: token}
	tr := &http.Transport{DisableKeepAlives: true}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://sluice"
	} else {
		c.base = "http://" + addr
	}
	c.hc = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	c.hs = &http.Client{Transport: tr}
	c.maxReply = 64 << 20
	return c
}

// Addr is the address the client was made for, for messages.
func (c *Client) Addr() string { return c.addr }

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if method != http.MethodGet {
		// Every mutating request declares JSON, even a DELETE without a
		// body: the API refuses the others (see requireJSON).
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) send(hc *http.Client, req *http.Request) (*http.Response, error) {
	res, err := hc.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return nil, fmt.Errorf("%w at %s: %w", ErrNoDaemon, c.addr, err)
		}
		return nil, fmt.Errorf("admin %s: %w", c.addr, err)
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		var e apiError
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &APIError{Status: res.StatusCode, Message: e.Error}
	}
	return res, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	res, err := c.send(c.hc, req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return c.decodeWhole(res, out)
}

// decodeWhole reads a reply that is one JSON document, up to maxReply.
func (c *Client) decodeWhole(res *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(res.Body, c.maxReply+1))
	if err != nil {
		return fmt.Errorf("admin %s: %w", c.addr, err)
	}
	if int64(len(b)) > c.maxReply {
		return fmt.Errorf("admin %s: the reply is larger than %d bytes", c.addr, c.maxReply)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin %s: bad reply: %w", c.addr, err)
	}
	return nil
}

var errStreamIdle = errors.New("the daemon sent nothing for too long")

// stream sends a request for a streamed reply and calls fn with each
// line, without a cap on the reply's length and without an overall
// deadline: it gives up only when ctx ends or no line comes for
// streamIdle. whole, when the daemon answers one JSON document instead
// (an older daemon), receives the reply to decode it.
func (c *Client) stream(ctx context.Context, method, path string, body any, fn func(line []byte) error, whole func(*http.Response) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(streamIdle, func() { cancel(errStreamIdle) })
	defer idle.Stop()
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", ndjson)
	res, err := c.send(c.hs, req)
	if err != nil {
		return c.streamErr(ctx, err)
	}
	defer res.Body.Close()
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != ndjson {
		return c.streamErr(ctx, whole(res))
	}
	br := bufio.NewReaderSize(res.Body, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			idle.Reset(streamIdle)
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return c.streamErr(ctx, fmt.Errorf("admin %s: %w", c.addr, err))
		}
	}
}

func (c *Client) streamErr(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errStreamIdle) {
		return fmt.Errorf("admin %s: %w (%v)", c.addr, errStreamIdle, streamIdle)
	}
	return err
}

func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// ListQuery filters Client.List; zero fields match everything.
type ListQuery struct {
	Domain, State, OlderThan string
	// After pages: only messages whose ID sorts after it.
	After string
	Limit int
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// List returns the whole listing (see ListEach).
func (c *Client) List(ctx context.Context, q ListQuery) ([]Message, error) {
	out := []Message{}
	_, err := c.ListEach(ctx, q, func(m Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// ListEach streams the listing, calling fn with each message as it
// arrives, so that a listing of any length needs neither a reply cap
// nor the memory to hold it. It fails when the stream ends without its
// last line (a daemon that stopped half-way).
func (c *Client) ListEach(ctx context.Context, q ListQuery, fn func(Message) error) (ListEnd, error) {
	v := url.Values{}
	for k, s := range map[string]string{"domain": q.Domain, "state": q.State, "older_than": q.OlderThan, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var end *ListEnd
	err := c.stream(ctx, http.MethodGet, "/v1/queue?"+v.Encode(), nil, func(line []byte) error {
		var l ListLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("admin %s: bad reply: %w", c.addr, err)
		}
		switch {
		case l.Error != "":
			return &APIError{Status: http.StatusInternalServerError, Message: l.Error}
		case l.End != nil:
			end = l.End
		case l.Message != nil:
			return fn(*l.Message)
		}
		return nil
	}, func(res *http.Response) error {
		var msgs []Message
		if err := c.decodeWhole(res, &msgs); err != nil {
			return err
		}
		for _, m := range msgs {
			if err := fn(m); err != nil {
				return err
			}
		}
		end = &ListEnd{Messages: len(msgs)}
		return nil
	})
	if err != nil {
		return ListEnd{}, err
	}
	if end == nil {
		return ListEnd{}, fmt.Errorf("admin %s: the listing was cut short (no end line)", c.addr)
	}
	return *end, nil
}

func (c *Client) Show(ctx context.Context, id string) (Message, error) {
	var m Message
	return m, c.do(ctx, http.MethodGet, "/v1/queue/"+url.PathEscape(id), nil, &m)
}

func (c *Client) Summary(ctx context.Context) (Summary, error) {
	var s Summary
	return s, c.do(ctx, http.MethodGet, "/v1/queue/summary", nil, &s)
}

// Flush makes queued mail due now (see FlushProgress).
func (c *Client) Flush(ctx context.Context, req FlushRequest) (Result, error) {
	return c.FlushProgress(ctx, req, nil)
}

// FlushProgress is Flush, calling progress with the running totals
// after each page of the work.
func (c *Client) FlushProgress(ctx context.Context, req FlushRequest, progress func(Result)) (Result, error) {
	return c.bulk(ctx, "/v1/queue/flush", req, progress)
}

// Act runs "hold", "release", "delete" or "bounce" on sel.
func (c *Client) Act(ctx context.Context, action string, sel Selection) (Result, error) {
	return c.ActProgress(ctx, action, sel, nil)
}

// ActProgress is Act, calling progress with the running totals after
// each page of the work.
func (c *Client) ActProgress(ctx context.Context, action string, sel Selection, progress func(Result)) (Result, error) {
	return c.bulk(ctx, "/v1/queue/"+url.PathEscape(action), sel, progress)
}

// bulk runs a bulk action with a streamed reply: it takes as long as the
// work, not a fixed deadline.
func (c *Client) bulk(ctx context.Context, path string, body any, progress func(Result)) (Result, error) {
	var res *Result
	err := c.stream(ctx, http.MethodPost, path, body, func(line []byte) error {
		var l ActionLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("admin %s: bad reply: %w", c.addr, err)
		}
		switch {
		case l.Error != "":
			res = l.Result
			return &APIError{Status: l.Status, Message: l.Error}
		case l.Result != nil:
			res = l.Result
		case l.Progress != nil && progress != nil:
			progress(*l.Progress)
		}
		return nil
	}, func(r *http.Response) error {
		res = &Result{}
		return c.decodeWhole(r, res)
	})
	if err != nil {
		if res != nil {
			return *res, err
		}
		return Result{}, err
	}
	if res == nil {
		return Result{}, fmt.Errorf("admin %s: the reply was cut short (no result line); the action may have stopped half-way", c.addr)
	}
	return *res, nil
}

func (c *Client) Domains(ctx context.Context) (Domains, error) {
	var d Domains
	return d, c.do(ctx, http.MethodGet, "/v1/domains", nil, &d)
}

func (c *Client) Domain(ctx context.Context, name string) (DomainDetail, error) {
	var d DomainDetail
	return d, c.do(ctx, http.MethodGet, "/v1/domains/"+url.PathEscape(name), nil, &d)
}

func (c *Client) SetLimits(ctx context.Context, name string, req LimitsRequest) (Destination, error) {
	var d Destination
	return d, c.do(ctx, http.MethodPut, "/v1/limits/"+url.PathEscape(name), req, &d)
}

func (c *Client) ResetLimits(ctx context.Context, name string) (Destination, error) {
	var d Destination
	return d, c.do(ctx, http.MethodDelete, "/v1/limits/"+url.PathEscape(name), nil, &d)
}

func (c *Client) Suppressions(ctx context.Context) ([]Suppression, error) {
	var out []Suppression
	return out, c.do(ctx, http.MethodGet, "/v1/suppress", nil, &out)
}

func (c *Client) Suppress(ctx context.Context, addr, reason string) error {
	return c.do(ctx, http.MethodPost, "/v1/suppress", Suppression{Addr: addr, Reason: reason}, nil)
}

func (c *Client) Unsuppress(ctx context.Context, addr string) error {
	return c.do(ctx, http.MethodDelete, "/v1/suppress/"+url.PathEscape(addr), nil, nil)
}

func (c *Client) Dashboard(ctx context.Context) (Dashboard, error) {
	var d Dashboard
	return d, c.do(ctx, http.MethodGet, "/v1/dashboard", nil, &d)
}

// Backup asks the daemon for a consistent copy of its queue (POST
// /v1/queue/backup) and returns the stream, a tar archive that
// queue.SaveBackup reads. It has no deadline but ctx's: a big queue
// takes as long as it takes. The caller closes the stream.
func (c *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	req, err := c.request(ctx, http.MethodPost, "/v1/queue/backup", struct{}{})
	if err != nil {
		return nil, err
	}
	res, err := c.send(c.hs, req)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != backupType {
		res.Body.Close()
		return nil, fmt.Errorf("admin %s: the backup reply is %q, not a backup stream (a daemon older than this sluice?)", c.addr, mt)
	}
	return res.Body, nil
}
