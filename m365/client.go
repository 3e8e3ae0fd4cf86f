package m365

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Default endpoints (Microsoft's global cloud).
const (
	DefaultLoginURL = "https://login.microsoftonline.com"
	DefaultGraphURL = "https://graph.microsoft.com"
	// GraphDefaultScope asks for every application permission granted.
	GraphDefaultScope = "https://graph.microsoft.com/.default"
)

// RetryPolicy bounds retries of throttled (429), unavailable (5xx) and
// timed-out requests. Zero fields take the defaults shown.
type RetryPolicy struct {
	MaxAttempts    int           // attempts in all, including the first; default 6
	BaseDelay      time.Duration // first backoff when no Retry-After; default 500 ms
	MaxDelay       time.Duration // cap of one backoff; default 30 s
	MaxWait        time.Duration // cap of all waits of one request; default 3 min
	AttemptTimeout time.Duration // one attempt, body included; default 60 s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 3 * time.Minute
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = 60 * time.Second
	}
	return p
}

// Config configures a Client: one Entra ID app registration (multi-tenant)
// and where Microsoft is.
type Config struct {
	ClientID     string
	ClientSecret string // never logged
	// LoginURL and GraphURL default to Microsoft's global cloud; tests and
	// the sandbox point both at the simulator.
	LoginURL string
	GraphURL string
	// HTTPClient defaults to a client with sane transport timeouts; per
	// attempt deadlines come from Retry.AttemptTimeout.
	HTTPClient *http.Client
	Retry      RetryPolicy
	// RefreshBefore renews a cached app token this long before it expires
	// (capped at half its lifetime); default 5 min.
	RefreshBefore time.Duration
	// ThrottlePriority, if set ("Low" for background sync), is sent as
	// x-ms-throttle-priority.
	ThrottlePriority string
	// Logger gets warnings (retries) and, with Diagnostic, one line per
	// Graph request: method, path, status, duration. Default slog.Default().
	Logger     *slog.Logger
	Diagnostic bool
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Client talks to the identity platform and Graph for one app
// registration, in any number of customer tenants. It caches app-only
// tokens per tenant. Safe for concurrent use.
type Client struct {
	cfg   Config
	retry RetryPolicy
	hc    *http.Client
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	tokens  map[string]cachedToken
	flights map[string]*flight
}

type cachedToken struct {
	token     string
	expires   time.Time
	refreshAt time.Time
}

type flight struct {
	done chan struct{}
	tok  cachedToken
	err  error
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	if cfg.GraphURL == "" {
		cfg.GraphURL = DefaultGraphURL
	}
	cfg.LoginURL = strings.TrimSuffix(cfg.LoginURL, "/")
	cfg.GraphURL = strings.TrimSuffix(cfg.GraphURL, "/")
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	c := &Client{cfg: cfg, retry: cfg.Retry.withDefaults(), hc: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now,
		tokens: map[string]cachedToken{}, flights: map[string]*flight{}}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		tr.ResponseHeaderTimeout = 0 // the attempt deadline covers it
		c.hc = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// ClientID is the app registration's client id.
func (c *Client) ClientID() string { return c.cfg.ClientID }

type diagKey struct{}

// WithDiagnostics makes every Graph and login request made with ctx log a
// line (method, path, status, duration, attempt, request id) to l at Info
// level, e.g. into a diagnostic sync job's log.
func WithDiagnostics(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, diagKey{}, l)
}

func (c *Client) diag(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(diagKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	if c.cfg.Diagnostic {
		return c.log
	}
	return nil
}

// AppToken returns an app-only Graph token for tenantID (a tenant id, not
// "common" or "organizations"), from the cache while it is fresh.
// Concurrent callers for one tenant share a single token request.
func (c *Client) AppToken(ctx context.Context, tenantID string) (string, error) {
	key := strings.ToLower(tenantID)
	c.mu.Lock()
	if t, ok := c.tokens[key]; ok && c.now().Before(t.refreshAt) {
		c.mu.Unlock()
		return t.token, nil
	}
	f := c.flights[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		// The fetch outlives a caller that gives up, so others still get it.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.retry.MaxWait+c.retry.AttemptTimeout)
			defer cancel()
			f.tok, f.err = c.fetchAppToken(fctx, tenantID)
			c.mu.Lock()
			if f.err == nil {
				c.tokens[key] = f.tok
			}
			delete(c.flights, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.tok.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ForgetToken drops the cached app token of a tenant (e.g. after Graph
// rejected it, or after consent changed).
func (c *Client) ForgetToken(tenantID string) {
	c.mu.Lock()
	delete(c.tokens, strings.ToLower(tenantID))
	c.mu.Unlock()
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`

	Error       string `json:"error"`
	Description string `json:"error_description"`
	ErrorCodes  []int  `json:"error_codes"`
}

func (c *Client) fetchAppToken(ctx context.Context, tenantID string) (cachedToken, error) {
	form := url.Values{
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"scope":         {GraphDefaultScope},
		"grant_type":    {"client_credentials"},
	}
	tr, err := c.tokenRequest(ctx, tenantID, form)
	if err != nil {
		return cachedToken{}, err
	}
	now := c.now()
	life := time.Duration(tr.ExpiresIn) * time.Second
	margin := c.cfg.RefreshBefore
	if margin > life/2 {
		margin = life / 2
	}
	return cachedToken{token: tr.AccessToken, expires: now.Add(life), refreshAt: now.Add(life - margin)}, nil
}

// tokenRequest posts a form to the tenant's token endpoint.
func (c *Client) tokenRequest(ctx context.Context, tenant string, form url.Values) (*tokenResponse, error) {
	u := c.cfg.LoginURL + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	res, err := c.send(ctx, &request{method: http.MethodPost, url: u, body: []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded", retryAll: true, login: true})
	if err != nil && res == nil {
		return nil, err
	}
	var tr tokenResponse
	if jerr := json.Unmarshal(res.body, &tr); jerr != nil {
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable,
			Message: fmt.Sprintf("Microsoft sign-in answered %d with a body that is not JSON.", res.status), Err: jerr}
	}
	if res.status != http.StatusOK || tr.AccessToken == "" {
		desc, _, _ := strings.Cut(tr.Description, "\r\n")
		desc, _, _ = strings.Cut(desc, " Trace ID:")
		return nil, tokenErr(&TokenError{Tenant: tenant, Status: res.status, Code: tr.Error,
			AADSTS: aadstsFrom(tr.ErrorCodes, tr.Description), Description: desc})
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 3599
	}
	return &tr, nil
}

// request is one HTTP exchange, retried as the policy allows.
type request struct {
	method      string
	url         string
	body        []byte
	contentType string
	header      http.Header
	bearer      string
	// retryAll: safe to retry on any transient failure (GET, DELETE, token
	// requests); otherwise only 429 and 503, when the server did not act.
	retryAll bool
	login    bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func retryable(status int) bool {
	switch status {
	case 429, 500, 502, 503, 504:
		return true
	}
	return false
}

// retryAfter reads Retry-After (seconds or an HTTP date).
func (c *Client) retryAfter(h http.Header) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(c.now())
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.retry.BaseDelay << uint(attempt-1)
	if d > c.retry.MaxDelay || d <= 0 {
		d = c.retry.MaxDelay
	}
	// jitter in [d/2, d): spreads retries of many workers
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// send performs r with retries. It returns the last response when the
// server answered (even with an error status; err is then a *GraphError
// unless r.login), or err alone when no answer came.
func (c *Client) send(ctx context.Context, r *request) (*response, error) {
	clientReqID := newRequestID()
	path := r.url
	if u, err := url.Parse(r.url); err == nil {
		path = u.Path
	}
	var waited time.Duration
	diag := c.diag(ctx)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.retry.AttemptTimeout)
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(actx, r.method, r.url, body)
		if err != nil {
			cancel()
			return nil, &pbx2teams.Error{Code: pbx2teams.EInternal, Message: "Bad Microsoft request URL.", Err: err}
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		if r.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+r.bearer)
		}
		req.Header.Set("client-request-id", clientReqID)
		req.Header.Set("Accept", "application/json")
		if c.cfg.ThrottlePriority != "" && !r.login {
			req.Header.Set("x-ms-throttle-priority", c.cfg.ThrottlePriority)
		}
		start := time.Now()
		resp, err := c.hc.Do(req)
		var res *response
		if err == nil {
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
			resp.Body.Close()
			if rerr != nil {
				err = rerr
			} else {
				res = &response{status: resp.StatusCode, header: resp.Header, body: b}
			}
		}
		cancel()
		dur := time.Since(start)
		if diag != nil {
			attrs := []any{"method", r.method, "path", logPath(r.url), "duration_ms", dur.Milliseconds(), "attempt", attempt,
				"client_request_id", clientReqID}
			if res != nil {
				attrs = append(attrs, "status", res.status, "request_id", res.header.Get("request-id"))
			} else {
				attrs = append(attrs, "error", err.Error())
			}
			msg := "graph request"
			if r.login {
				msg = "login request"
			}
			diag.Info(msg, attrs...)
		}
		if ctx.Err() != nil {
			return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable, Message: "The Microsoft request was cancelled.", Err: ctx.Err()}
		}
		var wait time.Duration
		switch {
		case res == nil:
			if !r.retryAll {
				return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable,
					Message: fmt.Sprintf("Microsoft did not answer %s %s: %v.", r.method, path, err), Err: err}
			}
			wait = c.backoff(attempt)
		case res.status < 300:
			return res, nil
		case retryable(res.status) && (r.retryAll || res.status == 429 || res.status == 503):
			if ra, ok := c.retryAfter(res.header); ok {
				wait = ra
			} else {
				wait = c.backoff(attempt)
			}
		default:
			return res, c.statusErr(r, res, attempt)
		}
		if attempt >= c.retry.MaxAttempts || waited+wait > c.retry.MaxWait {
			if res == nil {
				return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable,
					Message: fmt.Sprintf("Microsoft did not answer %s %s after %d attempts: %v. Try again later.", r.method, path, attempt, err), Err: err}
			}
			return res, c.statusErr(r, res, attempt)
		}
		c.log.Warn("m365: retrying", "method", r.method, "path", path, "attempt", attempt, "wait", wait,
			"status", statusOf(res), "error", errString(err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable, Message: "The Microsoft request was cancelled.", Err: ctx.Err()}
		}
		waited += wait
	}
}

func statusOf(r *response) int {
	if r == nil {
		return 0
	}
	return r.status
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// logPath is the URL without scheme and host, for logs.
func logPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

// statusErr builds the error of a non-2xx Graph answer; login answers are
// interpreted by the caller from the body.
func (c *Client) statusErr(r *request, res *response, attempts int) error {
	if r.login {
		return errLoginStatus
	}
	ge := &GraphError{Method: r.method, Status: res.status, Attempts: attempts, RequestID: res.header.Get("request-id")}
	if u, err := url.Parse(r.url); err == nil {
		ge.Path = u.Path
	}
	if ra, ok := c.retryAfter(res.header); ok {
		ge.RetryAfter = ra
	}
	if code, msg, inner, ok := graphEnvelope(res.body); ok {
		ge.Code, ge.Message, ge.InnerCode = code, msg, inner
	} else {
		ge.Code, ge.Message = http.StatusText(res.status), "(no Graph error body)"
	}
	return ge
}

// errLoginStatus marks a non-2xx login answer; tokenRequest reads the body.
var errLoginStatus = errors.New("login error status")

// graphEnvelope reads Graph's {"error":{"code","message","innerError"}}.
func graphEnvelope(body []byte) (code, msg, inner string, ok bool) {
	var env struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Code string `json:"code"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error.Code == "" {
		return "", "", "", false
	}
	return env.Error.Code, env.Error.Message, env.Error.InnerError.Code, true
}
