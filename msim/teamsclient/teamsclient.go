// Package teamsclient is the sandbox's stand-in for the Microsoft Teams
// client: a web page where a person (or a browser test) picks a simulated
// Teams user, sees that user's calls from the Teams simulator with Answer,
// Decline and Hang up buttons, and opens the Phone App tab in an iframe, as
// Teams hosts a personal tab.
//
// The page is the host side of the TeamsJS messages the tab uses (package
// phoneapp documents the client side): it answers "initialize" with the
// frame context "content" and client type "web", "getContext" with the
// legacy flat context (tid, userObjectId, userPrincipalName, loginHint,
// theme), and "authentication.getAuthToken" with [true, token], the token
// minted by the Graph simulator for the chosen user with the tab app's
// audience (msim.Sim.MintUserToken), or [false, reason]. Messages are
// answered only when they come from the tab's iframe.
//
// Mount it under /_msim/teams/ in `serve --sandbox` (BasePath); nothing
// here checks who is asking, so it must never be mounted in production.
//
//	GET  {base}                          pick a user
//	GET  {base}client?upn=               the client page for that user
//	GET  {base}api/context?upn=          {tid, userObjectId, userPrincipalName, ...}
//	POST {base}api/token?upn=            {"token"}
//	GET  {base}api/calls?upn=            {"calls": [...]}
//	POST {base}api/calls/{id}/{action}?upn=   action: answer, decline, hangup
package teamsclient

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams/msim"
)

//go:embed static
var staticFiles embed.FS

// TokenMinter issues Teams SSO tokens; *msim.Sim implements it.
type TokenMinter interface {
	MintUserToken(o msim.UserTokenOptions) (string, error)
}

// Call is one of a simulated Teams user's calls as the page shows it.
type Call struct {
	ID string `json:"id"`
	// Inbound is true when the call rings the Teams user.
	Inbound bool `json:"inbound"`
	// Federated calls came through the federation edge (Phone App calls).
	Federated  bool      `json:"federated"`
	State      string    `json:"state"` // ringing, dialing, active, held, ended
	RemoteName string    `json:"remote_name,omitempty"`
	RemoteUser string    `json:"remote_user,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	EndReason  string    `json:"end_reason,omitempty"`
	// Audio packets received and sent by the user's Teams endpoint.
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
}

// Phones are the simulated Teams users' endpoints (the Teams simulator).
type Phones interface {
	// Calls lists the user's calls, ringing or established.
	Calls(upn string) ([]Call, error)
	// Answer answers a ringing inbound call.
	Answer(ctx context.Context, upn, callID string) error
	// Decline refuses a ringing inbound call.
	Decline(ctx context.Context, upn, callID string) error
	// Hangup ends a call in any state.
	Hangup(ctx context.Context, upn, callID string) error
}

// User is an entry of the user picker.
type User struct {
	UPN  string `json:"upn"`
	Name string `json:"name"`
}

// Config wires the page.
type Config struct {
	// BasePath is the mount point with a trailing slash (default
	// "/_msim/teams/"); the handler expects full request paths.
	BasePath string
	// Identity mints the SSO tokens (required).
	Identity TokenMinter
	// Audience of the tokens: the tab app's Application ID URI or client
	// id, as the service's SSOValidator expects (required).
	Audience string
	// TabURL is the Phone App tab's address, absolute or a path on this
	// server (default "/phone/").
	TabURL string
	// Phones gives the users' calls; without it the calls panel says so.
	Phones Phones
	// Users lists users for the picker (optional; any UPN can be typed).
	Users func() []User
	// Theme is what getContext reports at first ("default", "dark" or
	// "contrast"); the page's theme menu changes it and tells the tab
	// with a themeChange message, as Teams does.
	Theme  string
	Logger *slog.Logger
}

type handler struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages *template.Template
	files fs.FS
	csp   string
}

// New returns the sandbox Teams client handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Identity == nil || cfg.Audience == "" {
		return nil, errors.New("teamsclient: Identity and Audience are required")
	}
	if cfg.BasePath == "" {
		cfg.BasePath = "/_msim/teams/"
	}
	if !strings.HasPrefix(cfg.BasePath, "/") || !strings.HasSuffix(cfg.BasePath, "/") {
		return nil, fmt.Errorf("teamsclient: base path %q must start and end with /", cfg.BasePath)
	}
	if cfg.TabURL == "" {
		cfg.TabURL = "/phone/"
	}
	tab, err := url.Parse(cfg.TabURL)
	if err != nil || (tab.Host == "" && !strings.HasPrefix(cfg.TabURL, "/")) {
		return nil, fmt.Errorf("teamsclient: tab URL %q is neither absolute nor a path", cfg.TabURL)
	}
	if cfg.Theme == "" {
		cfg.Theme = "default"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	files, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	pages, err := template.ParseFS(files, "*.html")
	if err != nil {
		return nil, err
	}
	frame := "'self'"
	if tab.Host != "" {
		frame = tab.Scheme + "://" + tab.Host
	}
	h := &handler{cfg: cfg, log: log, mux: http.NewServeMux(), pages: pages, files: files,
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
			"frame-src " + frame + "; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"}
	b := cfg.BasePath
	h.mux.HandleFunc("GET "+b+"{$}", h.picker)
	h.mux.HandleFunc("GET "+b+"client", h.client)
	h.mux.HandleFunc("GET "+b+"host.js", h.static("host.js"))
	h.mux.HandleFunc("GET "+b+"client.css", h.static("client.css"))
	h.mux.HandleFunc("GET "+b+"api/context", h.context)
	h.mux.HandleFunc("POST "+b+"api/token", h.token)
	h.mux.HandleFunc("GET "+b+"api/calls", h.calls)
	h.mux.HandleFunc("POST "+b+"api/calls/{id}/{action}", h.act)
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", h.csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) static(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.ServeFileFS(w, r, h.files, name) }
}

func (h *handler) users() []User {
	if h.cfg.Users == nil {
		return nil
	}
	us := h.cfg.Users()
	sort.Slice(us, func(i, j int) bool { return us[i].UPN < us[j].UPN })
	return us
}

func (h *handler) picker(w http.ResponseWriter, r *http.Request) {
	h.render(w, "picker.html", map[string]any{"Users": h.users(), "Base": h.cfg.BasePath})
}

func (h *handler) client(w http.ResponseWriter, r *http.Request) {
	upn := strings.TrimSpace(r.URL.Query().Get("upn"))
	if upn == "" {
		http.Redirect(w, r, h.cfg.BasePath, http.StatusSeeOther)
		return
	}
	data := map[string]any{"UPN": upn, "Base": h.cfg.BasePath, "Tab": h.cfg.TabURL, "Phones": h.cfg.Phones != nil, "Theme": h.cfg.Theme}
	// Resolve the user now so that a typo shows at once, not inside the tab.
	if _, err := h.claims(upn); err != nil {
		data["Error"] = err.Error()
	}
	h.render(w, "client.html", data)
}

func (h *handler) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := h.pages.ExecuteTemplate(w, name, data); err != nil {
		h.log.Error("teamsclient: render", "page", name, "err", err)
	}
}

// mint issues a token for upn in the tenant that owns its domain.
func (h *handler) mint(upn string) (string, error) {
	tenant := ""
	if i := strings.LastIndexByte(upn, '@'); i > 0 {
		tenant = upn[i+1:]
	}
	tok, err := h.cfg.Identity.MintUserToken(msim.UserTokenOptions{Tenant: tenant, User: upn, Audience: h.cfg.Audience})
	if err != nil {
		return "", fmt.Errorf("no simulated Teams user %s: %v", upn, err)
	}
	return tok, nil
}

// claims returns the claims of a token minted for upn (our own token, so
// the payload is read without checking the signature).
func (h *handler) claims(upn string) (map[string]any, error) {
	tok, err := h.mint(upn)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("the simulator minted a malformed token")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}

func (h *handler) context(w http.ResponseWriter, r *http.Request) {
	upn := r.URL.Query().Get("upn")
	c, err := h.claims(upn)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	str := func(k string) string { s, _ := c[k].(string); return s }
	writeJSON(w, 200, map[string]string{
		"tid": str("tid"), "userObjectId": str("oid"), "userPrincipalName": str("preferred_username"),
		"loginHint": str("preferred_username"), "userDisplayName": str("name"), "theme": h.cfg.Theme,
		"locale": "en-gb", "hostClientType": "web", "frameContext": "content", "entityId": "dialler",
	})
}

func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	tok, err := h.mint(r.URL.Query().Get("upn"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, 200, map[string]string{"token": tok})
}

func (h *handler) calls(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Phones == nil {
		writeJSON(w, 200, map[string]any{"calls": []Call{}})
		return
	}
	cs, err := h.cfg.Phones.Calls(r.URL.Query().Get("upn"))
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if cs == nil {
		cs = []Call{}
	}
	writeJSON(w, 200, map[string]any{"calls": cs})
}

func (h *handler) act(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Phones == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no Teams simulator is attached"})
		return
	}
	upn, id := r.URL.Query().Get("upn"), r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var err error
	switch r.PathValue("action") {
	case "answer":
		err = h.cfg.Phones.Answer(ctx, upn, id)
	case "decline":
		err = h.cfg.Phones.Decline(ctx, upn, id)
	case "hangup":
		err = h.cfg.Phones.Hangup(ctx, upn, id)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown action"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
