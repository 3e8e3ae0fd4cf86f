package msim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Sim. The zero value is usable.
type Options struct {
	// BaseURL is the externally visible base of the simulator (scheme and
	// host, no trailing slash), used in @odata.nextLink, @odata.context and
	// OpenID metadata. Empty: derived from each request's Host.
	BaseURL string
	// Issuer is the template of v2.0 token issuers; "{tenantid}" is replaced.
	// Default "https://login.microsoftonline.com/{tenantid}/v2.0", the value
	// Microsoft uses, so that validation code is the same for both.
	Issuer string
	// TokenLifetime of access tokens (default 3599 s, as Microsoft answers).
	TokenLifetime time.Duration
	// SigningKey signs tokens; nil generates a 2048-bit RSA key.
	SigningKey *rsa.PrivateKey
	// DeltaPageSize is the number of users per /users/delta page (default 200).
	DeltaPageSize int
	// NoAdminAPI leaves the /_sim/ admin API out of Handler.
	NoAdminAPI bool
	// Logger receives one debug line per request; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// App is an Entra ID app registration known to the simulator (multi-tenant:
// usable in every simulated tenant once an admin consents).
type App struct {
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	DisplayName  string   `json:"displayName"`
	RedirectURIs []string `json:"redirectUris,omitempty"`
	// AnyRedirectURI accepts every redirect_uri (sandbox convenience;
	// Microsoft requires an exact match with a registered URI).
	AnyRedirectURI bool `json:"anyRedirectUri,omitempty"`
	// Roles are the Graph application permissions (app roles) the app
	// requests; app-only tokens carry them once an admin consented.
	Roles []string `json:"roles,omitempty"`
	// Scopes are the Graph delegated permissions the app requests.
	Scopes []string `json:"scopes,omitempty"`
	// IdentifierURIs (Application ID URIs, e.g. api://host/{clientId}).
	IdentifierURIs []string `json:"identifierUris,omitempty"`
}

// Sim is a simulated Microsoft identity platform and Microsoft Graph v1.0
// subset over any number of tenants. It is safe for concurrent use.
type Sim struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	key     *rsa.PrivateKey
	kid     string
	certDER []byte
	pageKey [16]byte // authenticates opaque page and delta tokens

	mu       sync.RWMutex
	tenants  map[string]*tenant // by id and by lower-case domain
	order    []*tenant
	apps     map[string]*App
	codes    map[string]*authCode
	refresh  map[string]*refreshGrant
	verified map[string]*principal // token → checked claims (cache)

	faults faultSet

	statMu sync.Mutex
	stats  Stats
}

// Stats counts what the simulator served; tests use it to observe the
// client (e.g. that concurrent callers shared one token request).
type Stats struct {
	// Requests per route, e.g. "GET /v1.0/users".
	Requests map[string]int `json:"requests"`
	// TokenRequests per "tenant grant_type" (successful or not).
	TokenRequests map[string]int `json:"tokenRequests"`
	// TokensIssued per tenant id.
	TokensIssued map[string]int `json:"tokensIssued"`
	// FaultsFired counts injected faults.
	FaultsFired int `json:"faultsFired"`
}

// New returns an empty simulator: no tenants and no app registrations
// until a fixture is loaded, a tenant generated or an app registered.
func New(opts Options) *Sim {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 3599 * time.Second
	}
	if opts.DeltaPageSize <= 0 {
		opts.DeltaPageSize = 200
	}
	if opts.Issuer == "" {
		opts.Issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"
	}
	opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	s := &Sim{
		opts: opts, log: opts.Logger, now: opts.Now,
		tenants: map[string]*tenant{}, apps: map[string]*App{},
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{},
		verified: map[string]*principal{},
		stats:    Stats{Requests: map[string]int{}, TokenRequests: map[string]int{}, TokensIssued: map[string]int{}},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	_, _ = rand.Read(s.pageKey[:])
	s.initKeys(opts.SigningKey)
	return s
}

// RegisterApp adds or replaces an app registration.
func (s *Sim) RegisterApp(a App) error {
	if _, ok := parseGUID(a.ClientID); !ok {
		return badSpec("app clientId %q must be a GUID", a.ClientID)
	}
	if a.ClientSecret == "" {
		return badSpec("app %s needs a clientSecret", a.ClientID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := a
	s.apps[strings.ToLower(a.ClientID)] = &cp
	return nil
}

func (s *Sim) app(clientID string) *App {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.apps[strings.ToLower(clientID)]
}

// tenant resolves a tenant id or one of its domain names.
func (s *Sim) tenant(key string) *tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tenants[strings.ToLower(key)]
}

// defaultTenant is the tenant that "organizations"/"common" sign-ins land
// in: the first one created.
func (s *Sim) defaultTenant() *tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.order) == 0 {
		return nil
	}
	return s.order[0]
}

func (s *Sim) allTenants() []*tenant {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*tenant(nil), s.order...)
}

func (s *Sim) addTenant(t *tenant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.tenants[t.idStr]; dup {
		return badSpec("tenant %s already exists", t.idStr)
	}
	for _, d := range t.domains {
		if _, dup := s.tenants[strings.ToLower(d.name)]; dup {
			return badSpec("domain %s already belongs to a tenant", d.name)
		}
	}
	s.tenants[t.idStr] = t
	for _, d := range t.domains {
		s.tenants[strings.ToLower(d.name)] = t
	}
	s.order = append(s.order, t)
	return nil
}

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	cp := Stats{Requests: map[string]int{}, TokenRequests: map[string]int{}, TokensIssued: map[string]int{}, FaultsFired: s.stats.FaultsFired}
	for k, v := range s.stats.Requests {
		cp.Requests[k] = v
	}
	for k, v := range s.stats.TokenRequests {
		cp.TokenRequests[k] = v
	}
	for k, v := range s.stats.TokensIssued {
		cp.TokensIssued[k] = v
	}
	return cp
}

// ResetStats zeroes the counters.
func (s *Sim) ResetStats() {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	s.stats = Stats{Requests: map[string]int{}, TokenRequests: map[string]int{}, TokensIssued: map[string]int{}}
}

func (s *Sim) count(m map[string]int, key string) {
	s.statMu.Lock()
	m[key]++
	s.statMu.Unlock()
}

// base returns the externally visible base URL for links in responses.
func (s *Sim) base(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// basePath is the path the simulator is mounted under (from
// Options.BaseURL, e.g. "/_msim"), for links and forms on its own pages.
func (s *Sim) basePath() string {
	u, err := url.Parse(s.opts.BaseURL)
	if s.opts.BaseURL == "" || err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

// Handler serves the login endpoints (/{tenant}/...), Graph (/v1.0/...)
// and, unless disabled, the simulator's admin API (/_sim/...).
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.count(s.stats.Requests, requestKey(r))
	if f, ok := s.faults.take(r); ok {
		s.statMu.Lock()
		s.stats.FaultsFired++
		s.statMu.Unlock()
		if done := s.applyFault(w, r, f); done {
			return
		}
		if f.Malformed {
			rec := &recorder{header: http.Header{}, status: 200}
			s.route(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			body := rec.buf.Bytes()
			// Cut the JSON short and append junk: a decoder must fail.
			cut := len(body) / 2
			w.WriteHeader(rec.status)
			_, _ = w.Write(append(body[:cut:cut], []byte(`,"value":[{"id":`)...))
			return
		}
	}
	s.route(w, r)
	s.log.Debug("msim request", "method", r.Method, "path", r.URL.Path, "duration", time.Since(start))
}

func (s *Sim) route(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "v1.0":
		s.serveGraph(w, r, rest)
	case "_sim":
		if s.opts.NoAdminAPI {
			http.NotFound(w, r)
			return
		}
		s.serveAdmin(w, r, rest)
	case "":
		http.NotFound(w, r)
	default:
		s.serveLogin(w, r, first, rest)
	}
}

// requestKey names a request for Stats.Requests, ids replaced by {id}:
// "GET /v1.0/users/{id}/teamwork/installedApps", "POST /{tenant}/oauth2/v2.0/token".
func requestKey(r *http.Request) string {
	p := strings.Trim(r.URL.Path, "/")
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "v1.0":
		return routeKey(r.Method, strings.Split(strings.Trim(rest, "/"), "/"))
	case "_sim", "":
		return r.Method + " /" + p
	}
	return r.Method + " /{tenant}/" + rest
}

// recorder buffers a response so a fault can corrupt it.
type recorder struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.buf.Write(b) }

// Fault is an injected failure: it affects the next Count requests whose
// path starts with PathPrefix (and whose method is Method, if set), after
// letting Skip matching requests through. Exactly one of Status, Malformed
// and Drop is normally set; Delay may be combined with any, or used alone
// to slow responses down.
type Fault struct {
	PathPrefix string `json:"pathPrefix"`
	Method     string `json:"method,omitempty"`
	Skip       int    `json:"skip,omitempty"`
	Count      int    `json:"count,omitempty"` // default 1
	// Status answers with this HTTP status and a Graph error body
	// (429 TooManyRequests, 500, 503, 504...).
	Status int `json:"status,omitempty"`
	// RetryAfter sets the Retry-After header, in seconds.
	RetryAfter int `json:"retryAfter,omitempty"`
	// DelayMS waits before answering.
	DelayMS int `json:"delayMs,omitempty"`
	// Malformed answers normally but with the JSON body cut in half.
	Malformed bool `json:"malformed,omitempty"`
	// Drop closes the connection without an answer.
	Drop bool `json:"drop,omitempty"`
}

type faultSet struct {
	mu   sync.Mutex
	list []*Fault
}

// InjectFault arms f.
func (s *Sim) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.faults.mu.Lock()
	s.faults.list = append(s.faults.list, &f)
	s.faults.mu.Unlock()
}

// ClearFaults disarms every fault.
func (s *Sim) ClearFaults() {
	s.faults.mu.Lock()
	s.faults.list = nil
	s.faults.mu.Unlock()
}

// Faults returns the armed faults with their remaining counts.
func (s *Sim) Faults() []Fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]Fault, 0, len(s.faults.list))
	for _, f := range s.faults.list {
		out = append(out, *f)
	}
	return out
}

func (fs *faultSet) take(r *http.Request) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.list) == 0 || strings.HasPrefix(r.URL.Path, "/_sim/") {
		return Fault{}, false
	}
	for i, f := range fs.list {
		if !strings.HasPrefix(r.URL.Path, f.PathPrefix) || (f.Method != "" && !strings.EqualFold(f.Method, r.Method)) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			return Fault{}, false
		}
		f.Count--
		fired := *f
		if f.Count <= 0 {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
		}
		return fired, true
	}
	return Fault{}, false
}

// applyFault acts on f; it reports whether the response is complete.
func (s *Sim) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.DelayMS > 0 {
		select {
		case <-time.After(time.Duration(f.DelayMS) * time.Millisecond):
		case <-r.Context().Done():
			return true
		}
	}
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	code, msg := "generalException", "An unexpected error occurred."
	switch f.Status {
	case http.StatusTooManyRequests:
		code, msg = "TooManyRequests", "Too many requests. Please try again later."
	case http.StatusServiceUnavailable:
		code, msg = "serviceNotAvailable", "The service is temporarily unavailable. Please try again later."
	case http.StatusGatewayTimeout:
		code, msg = "GatewayTimeout", "The gateway timed out while waiting for the service."
	case http.StatusBadGateway:
		code, msg = "BadGateway", "The service returned an invalid response."
	}
	if strings.Contains(r.URL.Path, "/oauth2/") {
		s.tokenError(w, f.Status, "temporarily_unavailable", 50196, msg)
		return true
	}
	graphError(w, f.Status, code, msg)
	return true
}

// graphError writes Graph's error envelope.
func graphError(w http.ResponseWriter, status int, code, message string) {
	graphErrorInner(w, status, code, message, nil)
}

func graphErrorInner(w http.ResponseWriter, status int, code, message string, inner map[string]any) {
	reqID := newGUID().String()
	ie := map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID, "client-request-id": reqID}
	for k, v := range inner {
		ie[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", reqID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": message, "innerError": ie}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errText(err error) string {
	return strings.TrimPrefix(err.Error(), errBadSpec.Error()+": ")
}

func init() {
	// guard: field bits must fit below the removal marker
	if fCompanyName >= fRemoved {
		panic(fmt.Sprint("msim: too many user fields"))
	}
}
