package phoneapp

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

//go:embed static
var staticFiles embed.FS

// Validator checks a Teams SSO token; *m365.SSOValidator implements it.
type Validator interface {
	Validate(ctx context.Context, token string) (*m365.SSOUser, error)
}

// Users finds the synced user behind a valid SSO token.
type Users interface {
	// PhoneAppUser returns the user whose directory object id is objectID
	// in the customer connected to the Microsoft 365 tenant tenantID, or an
	// ENotFound-coded error when that tenant has no such user. It need not
	// check the user's service type: the handler refuses anyone who is not
	// an active Phone App user.
	PhoneAppUser(ctx context.Context, tenantID, objectID string) (*pbx2teams.User, error)
}

// RecentCalls returns a user's latest calls from the call log, newest
// first, at most limit.
type RecentCalls func(ctx context.Context, accountID, userID string, limit int) ([]pbx2teams.CallRecord, error)

// Contacts answers the tab's contact search.
type Contacts interface {
	// Contacts returns up to limit people matching query (all when query is
	// empty) that u can call: u's own Outlook contacts with a number and
	// the users of u's customer with a number or extension.
	Contacts(ctx context.Context, u *pbx2teams.User, query string, limit int) ([]Contact, error)
}

// Contact is one callable person as the tab lists it.
type Contact struct {
	Name    string `json:"name"`
	Number  string `json:"number"`
	Label   string `json:"label,omitempty"`   // mobile, business, home, extension
	Company string `json:"company,omitempty"` // or job title
	Source  string `json:"source"`            // outlook or directory
}

// Contact sources.
const (
	SourceOutlook   = "outlook"
	SourceDirectory = "directory"
)

// Config wires the handler to the service. Validator, Users and Dialler
// are required; the rest is optional and the tab hides what is missing.
type Config struct {
	// BasePath is where the handler is mounted, with a trailing slash
	// (default "/phone/"). The handler expects full request paths (no
	// http.StripPrefix).
	BasePath string
	// Validator checks the Teams SSO token of every API request.
	Validator Validator
	// Users maps a token's (tid, oid) to the synced user.
	Users Users
	// Dialler is the call control (the B2BUA).
	Dialler pbx2teams.Dialler
	// Registrations gives the line's registration state.
	Registrations pbx2teams.RegistrationStates
	// Recent reads the user's call log.
	Recent RecentCalls
	// Contacts answers contact searches.
	Contacts Contacts
	// FrameAncestors are origins allowed to frame the tab besides Teams'
	// own (e.g. the sandbox's origin, or "'self'").
	FrameAncestors []string
	// HostOrigins are origins whose TeamsJS answers the page accepts
	// besides Teams' own; default the entries of FrameAncestors that are
	// origins.
	HostOrigins []string
	// ProductName is shown in the page title (default "Phone").
	ProductName string
	// RegistrationPoll is how often the event stream looks for a change of
	// the line's registration state (default 3 s).
	RegistrationPoll time.Duration
	// KeepAlive is the interval of comment lines on an idle event stream,
	// so proxies do not close it (default 20 s).
	KeepAlive time.Duration
	// RecentLimit is how many recent calls the tab lists (default 20).
	RecentLimit int
	Logger      *slog.Logger
}

// TeamsFrameAncestors are the origins of the Microsoft hosts (Teams web
// and desktop, Outlook, the Microsoft 365 app; commercial cloud) that may
// frame the tab. teams.js accepts TeamsJS answers from the same origins;
// the list follows the commercial entries of TeamsJS's own valid-origin
// list.
var TeamsFrameAncestors = []string{
	"https://teams.microsoft.com",
	"https://*.teams.microsoft.com",
	"https://*.cloud.microsoft",
	"https://*.office.com",
	"https://outlook.office.com",
	"https://outlook.office365.com",
	"https://*.microsoft365.com",
}

type handler struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	csp   string
	page  *template.Template
	files fs.FS
	hosts string // space-separated host origins for teams.js
}

// New returns the Phone App handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Validator == nil || cfg.Users == nil || cfg.Dialler == nil {
		return nil, errors.New("phoneapp: Validator, Users and Dialler are required")
	}
	if cfg.BasePath == "" {
		cfg.BasePath = "/phone/"
	}
	if !strings.HasPrefix(cfg.BasePath, "/") || !strings.HasSuffix(cfg.BasePath, "/") {
		return nil, fmt.Errorf("phoneapp: base path %q must start and end with /", cfg.BasePath)
	}
	for _, o := range append(append([]string(nil), cfg.FrameAncestors...), cfg.HostOrigins...) {
		if strings.ContainsAny(o, " ;,\"'\r\n") && o != "'self'" {
			return nil, fmt.Errorf("phoneapp: origin %q is not a plain origin", o)
		}
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "Phone"
	}
	if cfg.RegistrationPoll <= 0 {
		cfg.RegistrationPoll = 3 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 20 * time.Second
	}
	if cfg.RecentLimit <= 0 {
		cfg.RecentLimit = 20
	}
	if cfg.HostOrigins == nil {
		for _, o := range cfg.FrameAncestors {
			if strings.Contains(o, "://") {
				cfg.HostOrigins = append(cfg.HostOrigins, o)
			}
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	files, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	page, err := template.ParseFS(files, "index.html")
	if err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, log: log, mux: http.NewServeMux(), page: page, files: files}
	h.csp = contentSecurityPolicy(cfg.FrameAncestors)
	h.hosts = strings.Join(append(append([]string(nil), TeamsFrameAncestors...), cfg.HostOrigins...), " ")

	b := cfg.BasePath
	h.mux.HandleFunc("GET "+b+"{$}", h.index)
	for _, name := range []string{"app.js", "teams.js", "app.css"} {
		h.mux.HandleFunc("GET "+b+name, h.static(name))
	}
	h.mux.HandleFunc("GET "+b+"api/me", h.api(h.me))
	h.mux.HandleFunc("GET "+b+"api/calls", h.api(h.calls))
	h.mux.HandleFunc("POST "+b+"api/calls", h.api(h.dial))
	h.mux.HandleFunc("POST "+b+"api/calls/{id}/hangup", h.api(h.hangup))
	h.mux.HandleFunc("POST "+b+"api/calls/{id}/hold", h.api(h.hold))
	h.mux.HandleFunc("POST "+b+"api/calls/{id}/transfer", h.api(h.transfer))
	h.mux.HandleFunc("POST "+b+"api/calls/{id}/dtmf", h.api(h.dtmf))
	h.mux.HandleFunc("GET "+b+"api/recent", h.api(h.recent))
	h.mux.HandleFunc("GET "+b+"api/contacts", h.api(h.contacts))
	h.mux.HandleFunc("GET "+b+"api/events", h.events)
	h.mux.HandleFunc(b+"api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &pbx2teams.Error{Code: pbx2teams.ENotFound, Message: "No such Phone App request."}, h.log)
	})
	return h, nil
}

// contentSecurityPolicy lets only Teams (and the configured extra origins)
// frame the tab, and the page load nothing but its own files.
func contentSecurityPolicy(extra []string) string {
	anc := append(append([]string(nil), TeamsFrameAncestors...), extra...)
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"font-src 'self'; form-action 'none'; base-uri 'none'; object-src 'none'; frame-ancestors " + strings.Join(anc, " ")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if r.URL.Path+"/" == h.cfg.BasePath {
		http.Redirect(w, r, h.cfg.BasePath, http.StatusMovedPermanently)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	err := h.page.Execute(w, struct {
		Product, Hosts string
	}{h.cfg.ProductName, h.hosts})
	if err != nil {
		h.log.Error("phoneapp: render page", "err", err)
	}
}

func (h *handler) static(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, h.files, name)
	}
}
