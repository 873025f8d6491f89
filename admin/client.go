package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
}

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
	return c
}

// Addr is the address the client was made for, for messages.
func (c *Client) Addr() string { return c.addr }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		// Every mutating request declares JSON, even a DELETE without a
		// body: the API refuses the others (see requireJSON).
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return fmt.Errorf("%w at %s: %w", ErrNoDaemon, c.addr, err)
		}
		return fmt.Errorf("admin %s: %w", c.addr, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin %s: %w", c.addr, err)
	}
	if res.StatusCode/100 != 2 {
		var e apiError
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &APIError{Status: res.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin %s: bad reply: %w", c.addr, err)
	}
	return nil
}

func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// ListQuery filters Client.List; zero fields match everything.
type ListQuery struct {
	Domain, State, OlderThan string
	Limit                    int
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

func (c *Client) List(ctx context.Context, q ListQuery) ([]Message, error) {
	v := url.Values{}
	for k, s := range map[string]string{"domain": q.Domain, "state": q.State, "older_than": q.OlderThan} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []Message
	return out, c.do(ctx, http.MethodGet, "/v1/queue?"+v.Encode(), nil, &out)
}

func (c *Client) Show(ctx context.Context, id string) (Message, error) {
	var m Message
	return m, c.do(ctx, http.MethodGet, "/v1/queue/"+url.PathEscape(id), nil, &m)
}

func (c *Client) Summary(ctx context.Context) (Summary, error) {
	var s Summary
	return s, c.do(ctx, http.MethodGet, "/v1/queue/summary", nil, &s)
}

func (c *Client) Flush(ctx context.Context, req FlushRequest) (Result, error) {
	var r Result
	return r, c.do(ctx, http.MethodPost, "/v1/queue/flush", req, &r)
}

// Act runs "hold", "release", "delete" or "bounce" on sel.
func (c *Client) Act(ctx context.Context, action string, sel Selection) (Result, error) {
	var r Result
	return r, c.do(ctx, http.MethodPost, "/v1/queue/"+url.PathEscape(action), sel, &r)
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
