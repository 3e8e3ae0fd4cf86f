// Package portal is the web portal of pbx2teams: server-rendered HTML pages
// (html/template) for operators, partners and customer admins, with its
// templates and static assets embedded in the binary.
//
// The portal holds no rules of its own. Every read and change goes through
// the service layer (*pbx2teams.Service), which checks permissions, licences
// and input; the portal turns forms into service calls and the service's
// answers (including its errors, field by field) into pages.
package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the portal.
type Options struct {
	// Secure marks cookies Secure; set it when the portal is served over
	// HTTPS (directly or behind a TLS-terminating proxy).
	Secure bool
	// ProductName is shown in the top bar and page titles (default
	// "pbx2teams"); a provider may put its own brand here.
	ProductName string
	// Log receives errors the portal could not show to the user in full.
	// Form values are never logged. Default: slog.Default().
	Log *slog.Logger
	// Sync is the Microsoft 365 engine (connect, Phone App authorization,
	// Sync Now, readiness); nil leaves those out of the Teams services tab.
	Sync *dirsync.Engine
	// SBCBaseFQDN is the provider's SBC domain (e.g. sbc.example.com): the
	// Teams services tab shows each customer's SBC FQDN as its label under
	// it. Empty shows the label alone.
	SBCBaseFQDN string
	// TestCaller places the "Test call" of a Phone App user's page (the
	// B2BUA); nil (calls not enabled on this node) hides the button.
	TestCaller pbx2teams.TestCaller
	// TestCallTimeout bounds one test call, ringing included (default
	// DefaultTestCallTimeout).
	TestCallTimeout time.Duration
}

// DefaultTestCallTimeout bounds a test call from the portal: long enough
// for the user to answer in Teams, short enough that the browser and any
// proxy in front of the portal still wait for the page.
const DefaultTestCallTimeout = 40 * time.Second

// server holds the portal's state: the service, parsed templates and the
// routes.
type server struct {
	svc          *pbx2teams.Service
	opts         Options
	log          *slog.Logger
	pages        map[string]*template.Template
	assetVersion string
	static       http.Handler
}

// New returns the portal's handler. Mount it at "/" of the main mux; the
// paths it answers are /, /signin, /signout, /static/… and /a/{account}/….
func New(svc *pbx2teams.Service, opts Options) http.Handler {
	if opts.ProductName == "" {
		opts.ProductName = "pbx2teams"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.TestCallTimeout <= 0 {
		opts.TestCallTimeout = DefaultTestCallTimeout
	}
	s := &server{svc: svc, opts: opts, log: opts.Log}
	s.parseTemplates()
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic("portal: static assets missing: " + err.Error())
	}
	s.assetVersion = assetVersion(sub)
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/", s.serveStatic)
	mux.HandleFunc("GET /signin", s.signInPage)
	mux.HandleFunc("POST /signin", s.signIn)
	mux.Handle("POST /signout", s.authed(s.signOut))
	mux.Handle("GET /{$}", s.authed(s.home))

	// Every account page: the account is loaded (and checked visible) first.
	acc := func(pattern string, h handler) { mux.Handle(pattern, s.authed(s.withAccount(h, false))) }
	cust := func(pattern string, h handler) { mux.Handle(pattern, s.authed(s.withAccount(h, true))) }

	acc("GET /a/{acc}/{$}", s.accountHome)
	acc("GET /a/{acc}", s.accountHome)
	acc("GET /a/{acc}/accounts", s.accountsPage)
	acc("POST /a/{acc}/accounts", s.accountsCreate)
	acc("GET /a/{acc}/admins", s.adminsPage)
	acc("POST /a/{acc}/admins", s.adminsCreate)
	acc("GET /a/{acc}/apikeys", s.apiKeysPage)
	acc("POST /a/{acc}/apikeys", s.apiKeysCreate)
	acc("POST /a/{acc}/apikeys/{key}/revoke", s.apiKeysRevoke)
	acc("GET /a/{acc}/audit", s.auditPage)

	// Microsoft sends the admin back here after a consent or sign-in; the
	// account is in the (session-bound) state.
	mux.Handle("GET "+dirsync.CallbackPath, s.authed(s.m365Callback))

	// Customer tabs.
	cust("GET /a/{acc}/teams", s.teamsPage)
	// Links, not forms: the portal's CSP (form-action 'self') would stop a
	// form's redirect to Microsoft. Starting a consent changes nothing; the
	// state binds the result to this session.
	cust("GET /a/{acc}/teams/connect", s.m365Connect)
	cust("GET /a/{acc}/teams/phone-app/authorize", s.phoneAppAuthorize)
	cust("GET /a/{acc}/teams/phone-app.zip", s.appPackage)
	cust("POST /a/{acc}/teams/sync", s.syncNow)
	cust("GET /a/{acc}/teams/sync/status", s.syncStatus)
	cust("GET /a/{acc}/teams/groups", s.groupSearch)
	cust("GET /a/{acc}/sync", s.syncHistory)
	cust("GET /a/{acc}/sync/{job}", s.syncJobPage)
	cust("POST /a/{acc}/teams", s.teamsSave)
	cust("GET /a/{acc}/pbx", s.pbxPage)
	cust("POST /a/{acc}/pbx", s.pbxSave)
	cust("GET /a/{acc}/licences", s.licencesPage)
	cust("POST /a/{acc}/licences", s.licencesSave)
	cust("POST /a/{acc}/teams/sbc-label", s.sbcLabelSave)
	cust("GET /a/{acc}/calls", s.callsPage)
	cust("GET /a/{acc}/calls/{call}", s.callPage)
	cust("GET /a/{acc}/users", s.usersPage)
	cust("GET /a/{acc}/users.csv", s.usersExport)
	cust("POST /a/{acc}/users/import", s.usersImport)
	cust("GET /a/{acc}/users/{user}", s.userPage)
	cust("POST /a/{acc}/users/{user}", s.userSave)
	cust("POST /a/{acc}/users/{user}/remove", s.userRemove)
	cust("POST /a/{acc}/users/{user}/test-call", s.userTestCall)

	mux.HandleFunc("/", s.notFoundPage)
	return s.secureHeaders(mux)
}

// assetVersion is a short hash of the static files, appended to their URLs
// so that a new build's CSS and JS are fetched rather than cached ones.
func assetVersion(fsys fs.FS) string {
	h := sha256.New()
	_ = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, path)
			h.Write([]byte(path))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (s *server) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
		s.notFoundPage(w, r)
		return
	}
	if r.URL.Query().Get("v") == s.assetVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	s.static.ServeHTTP(w, r)
}

// contentSecurityPolicy allows only the portal's own scripts, styles and
// images; inline SVG needs no source. Nothing may frame the portal.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// secureHeaders sets the security headers on every response of the portal.
func (s *server) secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if s.opts.Secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// req is what a handler of a signed-in page gets: who is asking, their
// session (for its CSRF token) and, on account pages, the account.
type req struct {
	p    *pbx2teams.Principal
	sess *pbx2teams.Session
	home *pbx2teams.Account // the principal's own account
	acc  *pbx2teams.Account // the account of the page, on /a/{acc}/ pages
}

type handler func(w http.ResponseWriter, r *http.Request, rq *req)

// Request body limits: forms are small; a CSV upload may hold
// pbx2teams.MaxCSVRows rows.
const (
	maxFormBytes   = 256 << 10
	maxUploadBytes = 17 << 20
)

// authed loads the session of the request. Without a valid session a page
// request is sent to the sign-in page. Every POST must carry the session's
// CSRF token and, when the browser says where it comes from, come from the
// portal's own origin.
func (s *server) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		c, _ := r.Cookie(pbx2teams.SessionCookieName)
		var p *pbx2teams.Principal
		var sess *pbx2teams.Session
		err := errors.New("no session")
		if c != nil && c.Value != "" {
			p, sess, err = s.svc.Authenticate(ctx, c.Value)
		}
		if err != nil {
			if code := pbx2teams.ErrorCode(err); code != pbx2teams.EUnauthenticated && c != nil {
				s.log.Error("portal: authenticate", "err", err)
			}
			if c != nil {
				s.clearSessionCookie(w)
			}
			next := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				next = r.Header.Get("Referer")
				if u, err := url.Parse(next); err == nil {
					next = u.RequestURI()
				}
			}
			dest := "/signin"
			if next = localPath(next); next != "" && next != "/" {
				dest += "?next=" + url.QueryEscape(next)
			}
			if c != nil {
				if strings.Contains(dest, "?") {
					dest += "&ended=1"
				} else {
					dest += "?ended=1"
				}
			}
			http.Redirect(w, r, dest, http.StatusSeeOther)
			return
		}
		rq := &req{p: p, sess: sess}
		if r.Method == http.MethodPost {
			limit := int64(maxFormBytes)
			if strings.HasSuffix(r.URL.Path, "/users/import") {
				limit = maxUploadBytes
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if err := parseForm(r); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					s.errorPage(w, r, rq, http.StatusRequestEntityTooLarge, "Too much data",
						"The form or file is larger than this page accepts; nothing was changed. Split a CSV file into files of at most 10,000 rows.")
					return
				}
				s.errorPage(w, r, rq, http.StatusBadRequest, "The form could not be read",
					"Nothing was changed. Go back, reload the page and try again.")
				return
			}
			if !sameOrigin(r) || !validCSRF(r, sess.CSRFToken) {
				s.errorPage(w, r, rq, http.StatusForbidden, "This form has expired or did not come from this portal",
					"Nothing was changed. Go back, reload the page and try again.")
				return
			}
		}
		home, err := s.svc.Account(ctx, p, p.AccountID)
		if err != nil {
			s.fail(w, r, rq, err)
			return
		}
		rq.home = home
		h(w, r, rq)
	})
}

// parseForm reads the body of a POST: a multipart upload (files beyond
// 8 MiB spill to temporary files, which net/http removes afterwards) or a
// URL-encoded form.
func parseForm(r *http.Request) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return r.ParseMultipartForm(8 << 20)
	}
	return r.ParseForm()
}

// withAccount loads the {acc} of the path, visible to the principal; an
// account outside their subtree is not found. Customer-only tabs are not
// found on partner and operator accounts.
func (s *server) withAccount(h handler, customerOnly bool) handler {
	return func(w http.ResponseWriter, r *http.Request, rq *req) {
		acc := rq.home
		if id := r.PathValue("acc"); acc == nil || id != acc.ID {
			var err error
			if acc, err = s.svc.Account(r.Context(), rq.p, id); err != nil {
				s.fail(w, r, rq, err)
				return
			}
		}
		if customerOnly && acc.Kind != pbx2teams.KindCustomer {
			s.notFound(w, r, rq)
			return
		}
		rq.acc = acc
		h(w, r, rq)
	}
}

// sameOrigin refuses a POST that the browser says comes from another site
// (Origin, Sec-Fetch-Site). The CSRF token is the main defence; this is a
// second one. Requests without these headers are left to the token.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // includes "null": an opaque origin is never ours
	}
	return strings.EqualFold(u.Host, r.Host) || strings.EqualFold(u.Host, r.Header.Get("X-Forwarded-Host"))
}

// localPath returns p if it is a path on this site (not "//host" or
// "/\host", which browsers treat as another site), else "".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return ""
	}
	if u, err := url.Parse(p); err != nil || u.Host != "" || u.Scheme != "" {
		return ""
	}
	return p
}

func (s *server) home(w http.ResponseWriter, r *http.Request, rq *req) {
	http.Redirect(w, r, "/a/"+rq.p.AccountID+"/", http.StatusSeeOther)
}

// accountHome sends an account's root to its main tab.
func (s *server) accountHome(w http.ResponseWriter, r *http.Request, rq *req) {
	tab := "accounts"
	if rq.acc.Kind == pbx2teams.KindCustomer {
		tab = "users"
	}
	http.Redirect(w, r, "/a/"+rq.acc.ID+"/"+tab, http.StatusSeeOther)
}

// now is the service's clock, so that pages agree with its rules.
func (s *server) now() time.Time {
	if s.svc.Now != nil {
		return s.svc.Now()
	}
	return time.Now()
}

// statusFor maps a service error code to its HTTP status.
func statusFor(code string) int { return pbx2teams.HTTPStatus(code) }

// errStatus returns the status for err and logs internal errors (their
// cause is never shown to the user).
func (s *server) errStatus(r *http.Request, err error) int {
	code := pbx2teams.ErrorCode(err)
	if code == pbx2teams.EInternal {
		s.log.Error("portal: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return statusFor(code)
}

// fail shows err as a whole page: not found, forbidden, or a generic error.
func (s *server) fail(w http.ResponseWriter, r *http.Request, rq *req, err error) {
	status := s.errStatus(r, err)
	switch status {
	case http.StatusNotFound:
		s.notFound(w, r, rq)
	case http.StatusForbidden:
		s.errorPage(w, r, rq, status, "Not allowed", pbx2teams.ErrorMessage(err))
	default:
		s.errorPage(w, r, rq, status, "Something went wrong", pbx2teams.ErrorMessage(err))
	}
}

func (s *server) notFoundPage(w http.ResponseWriter, r *http.Request) {
	s.notFound(w, r, nil)
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request, rq *req) {
	s.errorPage(w, r, rq, http.StatusNotFound, "Page not found",
		"There is nothing here, or it belongs to an account you cannot see.")
}

type errorData struct {
	Heading, Message string
}

func (s *server) errorPage(w http.ResponseWriter, r *http.Request, rq *req, status int, heading, msg string) {
	pg := &page{Title: heading, Data: errorData{Heading: heading, Message: msg}}
	if rq != nil {
		// Keep the frame (top bar) but not the account's tabs: the page
		// is not one of them.
		rq = &req{p: rq.p, sess: rq.sess, home: rq.home}
	}
	s.render(w, r, rq, status, "error.html", pg)
}

// render executes a page template into a buffer (so that a template error
// never sends half a page) and writes it.
func (s *server) render(w http.ResponseWriter, r *http.Request, rq *req, status int, name string, pg *page) {
	t := s.pages[name]
	if t == nil {
		panic("portal: no template " + name)
	}
	s.frame(r.Context(), rq, pg)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", pg); err != nil {
		s.log.Error("portal: render", "template", name, "err", err)
		http.Error(w, "The page could not be shown; this has been logged.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show account data: never keep them in shared or browser caches.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirect answers a successful POST with a redirect to a page (so that a
// reload does not post again) and an optional notice key for it.
func redirect(w http.ResponseWriter, r *http.Request, path string, done string, extra ...string) {
	if done != "" {
		q := url.Values{"done": {done}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		path += "?" + q.Encode()
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// fieldErrors splits err into a message and per-field reasons (from the
// service's ErrorDetails) for a form to show next to its fields.
func fieldErrors(err error) (string, map[string]string) {
	msg := pbx2teams.ErrorMessage(err)
	var e *pbx2teams.Error
	if !errors.As(err, &e) || len(e.Details) == 0 {
		return msg, nil
	}
	fields := map[string]string{}
	var other []string
	for _, d := range e.Details {
		if d.Field != "" && d.Line == 0 {
			if fields[d.Field] != "" {
				fields[d.Field] += " "
			}
			fields[d.Field] += d.Reason
		} else {
			other = append(other, d.Reason)
		}
	}
	if len(other) > 0 {
		msg += " " + strings.Join(other, " ")
	}
	return msg, fields
}
