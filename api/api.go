// Package api serves the pbx2teams REST API under /api/v1: JSON over the one
// service layer (pbx2teams.Service), so every request gets the same
// permission checks, licence rules and audit as the portal.
//
// Callers authenticate with an API key ("Authorization: Bearer p2t_…") or
// with the portal's session cookie; with the cookie, unsafe methods must carry
// the session's CSRF token in the X-CSRF-Token header. Every error is a JSON
// object {"code", "message", "details"} with an HTTP status that follows the
// code (see statusFor). The OpenAPI 3.1 description is served, without
// authentication, at /api/v1/openapi.json.
package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/secrets"
)

// Prefix is the path under which the handler serves. Mount the handler on
// Prefix+"/" without stripping it.
const Prefix = "/api/v1"

// Options tune the API handler; the zero value gives sensible defaults.
type Options struct {
	// Log receives one line per request and the causes of internal errors.
	// Request bodies are never logged. Default: slog.Default().
	Log *slog.Logger
	// MaxBodyBytes bounds JSON request bodies (default 1 MiB).
	MaxBodyBytes int64
	// MaxCSVBytes bounds CSV uploads (default 16 MiB, room for
	// pbx2teams.MaxCSVRows rows).
	MaxCSVBytes int64
	// RateLimit is the sustained requests per second allowed per credential
	// (API key or session); 0 means 50, a negative value turns limiting off.
	RateLimit float64
	// RateBurst is how many requests a credential may make at once before
	// RateLimit applies (default 200).
	RateBurst int
	// Version is reported in the OpenAPI document's info.version.
	Version string
	// Sync is the Microsoft 365 sync engine behind the /teams/sync,
	// /teams/groups, readiness and /teams/phone-app.zip endpoints. When nil
	// (Microsoft 365 not configured on this node) those endpoints answer
	// 503 with code unavailable and a message saying so; every other
	// endpoint works as usual.
	Sync *dirsync.Engine
	// SBCBaseFQDN is the provider's SBC domain (e.g. sbc.example.com); the
	// Teams settings then report each customer's SBC FQDN
	// (label.SBCBaseFQDN) as sbc_fqdn. Empty leaves it out.
	SBCBaseFQDN string
	// TestCaller places the test calls of POST .../users/{uid}/test-call
	// (the B2BUA). When nil (calls not enabled on this node) that endpoint
	// answers 503 with code unavailable.
	TestCaller pbx2teams.TestCaller
	// TestCallTimeout bounds one test call, ringing included (default
	// DefaultTestCallTimeout).
	TestCallTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxCSVBytes <= 0 {
		o.MaxCSVBytes = 16 << 20
	}
	if o.RateLimit == 0 {
		o.RateLimit = 50
	}
	if o.RateBurst <= 0 {
		o.RateBurst = 200
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	if o.TestCallTimeout <= 0 {
		o.TestCallTimeout = DefaultTestCallTimeout
	}
}

// server holds what every handler needs.
type server struct {
	svc     *pbx2teams.Service
	opts    Options
	log     *slog.Logger
	limiter *rateLimiter
	spec    []byte // the OpenAPI document, rendered once
}

// handlerFunc is an endpoint: it writes its response on success and returns
// an error otherwise, which the wrapper turns into the JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *pbx2teams.Principal) error

// route is one endpoint of the API. The route table is the only way an
// endpoint is registered, and the tests walk it (OpenAPI coverage,
// permission matrix), so a new endpoint cannot be left out of either.
type route struct {
	method  string
	path    string // full pattern path, e.g. /api/v1/accounts/{id}
	public  bool   // served without authentication
	handler handlerFunc
}

// routes returns the route table.
func (s *server) routes() []route {
	a := Prefix + "/accounts/{id}"
	return []route{
		{method: "GET", path: Prefix + "/openapi.json", public: true, handler: s.openAPI},
		{method: "GET", path: Prefix + "/me", handler: s.me},
		{method: "GET", path: Prefix + "/accounts", handler: s.listAccounts},
		{method: "POST", path: Prefix + "/accounts", handler: s.createAccount},
		{method: "GET", path: a, handler: s.getAccount},
		{method: "GET", path: a + "/children", handler: s.listChildren},
		{method: "GET", path: a + "/admins", handler: s.listAdmins},
		{method: "POST", path: a + "/admins", handler: s.createAdmin},
		{method: "GET", path: a + "/licences", handler: s.listLicences},
		{method: "PUT", path: a + "/licences/{sku}", handler: s.putLicence},
		{method: "GET", path: a + "/pbx", handler: s.getPBX},
		{method: "PUT", path: a + "/pbx", handler: s.putPBX},
		{method: "GET", path: a + "/teams", handler: s.getTeams},
		{method: "PATCH", path: a + "/teams", handler: s.patchTeams},
		{method: "GET", path: a + "/users", handler: s.listUsers},
		{method: "GET", path: a + "/users/{uid}", handler: s.getUser},
		{method: "PUT", path: a + "/users/{uid}/config", handler: s.putUserConfig},
		{method: "DELETE", path: a + "/users/{uid}/config", handler: s.deleteUserConfig},
		{method: "POST", path: a + "/users/{uid}/test-call", handler: s.testCall},
		{method: "GET", path: a + "/users.csv", handler: s.exportCSV},
		{method: "POST", path: a + "/users.csv", handler: s.importCSV},
		{method: "GET", path: a + "/calls", handler: s.listCalls},
		{method: "GET", path: a + "/calls/{call}", handler: s.getCall},
		{method: "GET", path: a + "/calls/{call}/trace", handler: s.getCallTrace},
		{method: "GET", path: a + "/audit", handler: s.listAudit},
		{method: "GET", path: a + "/apikeys", handler: s.listAPIKeys},
		{method: "POST", path: a + "/apikeys", handler: s.createAPIKey},
		{method: "DELETE", path: a + "/apikeys/{kid}", handler: s.revokeAPIKey},
		{method: "GET", path: a + "/users/{uid}/readiness", handler: s.userReadiness},
		{method: "GET", path: a + "/teams/readiness", handler: s.tenantReadiness},
		{method: "GET", path: a + "/teams/groups", handler: s.searchGroups},
		{method: "GET", path: a + "/teams/phone-app.zip", handler: s.phoneAppPackage},
		{method: "GET", path: a + "/teams/sync/status", handler: s.syncStatus},
		{method: "GET", path: a + "/teams/sync/jobs", handler: s.listSyncJobs},
		{method: "GET", path: a + "/teams/sync/jobs/{job}", handler: s.getSyncJob},
		// Last, so that the permission matrix's legitimate sync (which
		// rewrites the customer's directory) runs after the other calls.
		{method: "POST", path: a + "/teams/sync", handler: s.startSync},
	}
}

// New returns the API handler. It serves paths under /api/v1 (mount it at
// "/api/v1/" without stripping the prefix).
func New(svc *pbx2teams.Service, opts Options) http.Handler {
	opts.defaults()
	s := &server{svc: svc, opts: opts, log: opts.Log, limiter: newRateLimiter(opts.RateLimit, opts.RateBurst)}
	spec, err := renderSpec(opts.Version)
	if err != nil {
		panic("api: OpenAPI document does not render: " + err.Error()) // a programming error
	}
	s.spec = spec

	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A known path with another method gets a JSON 405 naming the methods
	// it has; anything else under the prefix gets a JSON 404.
	for path, methods := range allowed {
		if contains(methods, "GET") {
			methods = append(methods, "HEAD")
		}
		sort.Strings(methods)
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, &statusError{status: http.StatusMethodNotAllowed,
				err: pbx2teams.Errorf(pbx2teams.EInvalid, "%s is not allowed on %s; use %s.", r.Method, path, allow)})
		})
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &statusError{status: http.StatusNotFound,
			err: pbx2teams.Errorf(pbx2teams.ENotFound, "There is no API endpoint %s; see %s/openapi.json for the endpoints.", r.URL.Path, Prefix)})
	})
	return s.logRequests(mux)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type ctxKey int

const (
	requestIDKey ctxKey = iota + 1
	csrfKey             // the session's CSRF token, for GET /me
)

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
}

// statusRecorder remembers the status written, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests gives each request an ID, common headers and one log line. It
// logs the path without the query and never the body: bodies can carry SIP
// and admin passwords.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := secrets.NewToken("")[:16]
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		h := w.Header()
		h.Set("X-Request-ID", id)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api: panic", "request_id", id, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, fmt.Errorf("panic: %v", v))
				}
			}
			s.log.Info("api request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"status", rec.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
		}()
		next.ServeHTTP(rec, r)
	})
}

// wrap authenticates (unless the route is public), applies the rate limit
// and turns the handler's error into a JSON error response.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *pbx2teams.Principal
		if !rt.public {
			var csrf string
			var err error
			if p, csrf, err = s.authenticate(r); err != nil {
				s.writeError(w, r, err)
				return
			}
			if csrf != "" {
				r = r.WithContext(context.WithValue(r.Context(), csrfKey, csrf))
			}
			if wait := s.limiter.take(principalKey(p), time.Now()); wait > 0 {
				s.writeError(w, r, &statusError{status: http.StatusTooManyRequests, retryAfter: wait,
					err: pbx2teams.Errorf(pbx2teams.ERateLimited, "Too many requests with this credential; slow down and retry after %d seconds.", retrySeconds(wait))})
				return
			}
		}
		if err := rt.handler(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func principalKey(p *pbx2teams.Principal) string {
	if p.APIKeyID != "" {
		return "k:" + p.APIKeyID
	}
	return "a:" + p.AdminID
}

// authenticate finds the caller: an API key in the Authorization header, or
// the portal session cookie, whose CSRF token unsafe methods must echo.
func (s *server) authenticate(r *http.Request) (p *pbx2teams.Principal, csrf string, err error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, key, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
			return nil, "", pbx2teams.Errorf(pbx2teams.EUnauthenticated, "Send the API key as \"Authorization: Bearer p2t_…\".")
		}
		p, err := s.svc.AuthenticateAPIKey(ctx, strings.TrimSpace(key))
		return p, "", err
	}
	c, err := r.Cookie(pbx2teams.SessionCookieName)
	if err != nil || c.Value == "" {
		return nil, "", pbx2teams.Errorf(pbx2teams.EUnauthenticated, "Authenticate with \"Authorization: Bearer p2t_…\" (create an API key in the portal) or a portal session.")
	}
	p, sess, err := s.svc.Authenticate(ctx, c.Value)
	if err != nil {
		return nil, "", err
	}
	if !safeMethod(r.Method) {
		got := r.Header.Get(pbx2teams.CSRFHeaderName)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 {
			return nil, "", &statusError{status: http.StatusForbidden, err: pbx2teams.Errorf(pbx2teams.EForbidden,
				"A request signed in with the portal session must carry the session's CSRF token in the %s header (GET %s/me returns it).",
				pbx2teams.CSRFHeaderName, Prefix)}
		}
	}
	return p, sess.CSRFToken, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
