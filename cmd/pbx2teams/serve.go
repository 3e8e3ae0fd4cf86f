package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/api"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/metrics"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/portal"
	"github.com/pbx2teams/pbx2teams/postgres"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

// config is what serve is run with.
type config struct {
	dataDir       string
	httpAddr      string
	database      string
	sandbox       bool
	key           string
	logLevel      string
	secureCookies bool
	adminEmail    string
	publicURL     string
	sipListen     string
	sipAdvertise  string
	regRate       float64

	m365ClientID, m365ClientSecret         string
	phoneAppClientID, phoneAppClientSecret string
	m365LoginURL, m365GraphURL             string
	phoneAppDomain                         string
	m365StateKey                           string

	calls callsConfig
}

func serve(ctx context.Context, args []string) error {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.dataDir, "data", "./data", "data directory (SQLite database, key file)")
	fs.StringVar(&c.httpAddr, "http", "127.0.0.1:8080", "portal and API listen address")
	fs.StringVar(&c.database, "database", "", "database URL: empty for SQLite in the data directory, postgres://… for PostgreSQL")
	fs.BoolVar(&c.sandbox, "sandbox", false, "use the built-in simulated Microsoft 365 tenant instead of Microsoft")
	fs.StringVar(&c.key, "key", "", "SIP password encryption key (64 hex characters); default: generated key file in the data directory")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.secureCookies, "secure-cookies", false, "mark cookies Secure (set when the portal is served over HTTPS)")
	fs.StringVar(&c.adminEmail, "admin-email", "admin@localhost", "email of the operator admin created on first start")
	fs.StringVar(&c.publicURL, "public-url", "", "URL browsers reach the portal at (default http://<--http address>)")
	fs.StringVar(&c.sipListen, "sip-listen", "udp:127.0.0.1:5060,tcp:127.0.0.1:5060", "SIP listeners toward PBXs, comma-separated transport:host:port")
	fs.StringVar(&c.sipAdvertise, "sip-advertise", "", "host put in Contact and Via toward PBXs (default: the listener's host)")
	fs.Float64Var(&c.regRate, "register-rate", 50, "most REGISTER requests per second sent to one PBX")
	fs.StringVar(&c.m365ClientID, "m365-client-id", "", "Entra ID application (client) ID of the sync app registration")
	fs.StringVar(&c.m365ClientSecret, "m365-client-secret", "", "client secret of the sync app registration")
	fs.StringVar(&c.phoneAppClientID, "phoneapp-client-id", "", "application ID of the Phone App registration (empty: Phone App not offered)")
	fs.StringVar(&c.phoneAppClientSecret, "phoneapp-client-secret", "", "client secret of the Phone App registration")
	fs.StringVar(&c.m365LoginURL, "m365-login-url", m365.DefaultLoginURL, "Microsoft identity platform base URL")
	fs.StringVar(&c.m365GraphURL, "m365-graph-url", m365.DefaultGraphURL, "Microsoft Graph base URL")
	fs.StringVar(&c.phoneAppDomain, "phoneapp-domain", defaultPhoneAppDomain, "domain Phone App calls come from (checked against tenants' external access)")
	fs.StringVar(&c.m365StateKey, "m365-state-key", "", "hex key signing consent states; the same on every node (default: random, single node)")
	c.calls.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	log, err := newLogger(c.logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)

	app, err := open(ctx, c, log)
	if err != nil {
		return err
	}
	defer app.close()

	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another pbx2teams running? use --http to pick another address)", c.httpAddr, err)
	}
	if err := app.start(ctx); err != nil {
		return err
	}
	srv := &http.Server{Handler: app.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("pbx2teams started", "version", version, "portal", "http://"+ln.Addr().String()+"/", "sandbox", c.sandbox)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// app is the wired service.
type app struct {
	store   pbx2teams.Store
	svc     *pbx2teams.Service
	handler http.Handler
	closers []func()
	// runners are started by start, in their own goroutines.
	runners []func(ctx context.Context) error
	log     *slog.Logger
	// calls is the call plane (nil when calls are off).
	calls *calls
	// phoneAppGraph reads Graph with the Phone App's authorization
	// (Outlook contacts for the tab); nil without a Phone App registration.
	phoneAppGraph *m365.Client
	// sandboxGraph and sandboxTeams are the simulated Microsoft side of
	// serve --sandbox (nil otherwise).
	sandboxGraph *msim.Sim
	sandboxTeams *sandboxTeams
}

// start runs the background planes (SIP engine, feeders, sync scheduler).
func (a *app) start(ctx context.Context) error {
	for _, run := range a.runners {
		go func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("background plane stopped", "err", err)
			}
		}()
	}
	return nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// open opens the store and wires every plane. It is shared by serve and the
// end-to-end tests.
func open(ctx context.Context, c config, log *slog.Logger) (*app, error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	key, err := secrets.LoadOrCreateKey(c.key, filepath.Join(c.dataDir, "secret.key"))
	if err != nil {
		return nil, err
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return nil, err
	}
	a := &app{log: log}
	switch {
	case c.database == "":
		path := filepath.Join(c.dataDir, "pbx2teams.db")
		st, err := sqlite.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open SQLite %s: %w", path, err)
		}
		a.store = st
	case strings.HasPrefix(c.database, "postgres://"), strings.HasPrefix(c.database, "postgresql://"):
		st, err := postgres.Open(ctx, c.database)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		a.store = st
	default:
		return nil, errors.New("--database must be empty (SQLite) or a postgres:// URL")
	}
	a.closers = append(a.closers, func() { a.store.Close() })

	a.svc = pbx2teams.NewService(a.store, box, log)
	created, password, err := a.svc.Bootstrap(ctx, "Operator", c.adminEmail)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("first-start setup: %w", err)
	}
	if created {
		// Shown once, on the terminal only: the hash alone is stored.
		fmt.Fprintf(os.Stderr, "\n  First start: operator admin created.\n    email:    %s\n    password: %s\n  This password is shown only now: keep it in a password manager.\n\n", c.adminEmail, password)
	}

	reg := metrics.NewRegistry()
	mux := http.NewServeMux()
	if c.publicURL == "" {
		c.publicURL = "http://" + c.httpAddr
	}
	c.publicURL = strings.TrimRight(c.publicURL, "/")
	if c.phoneAppDomain == "" {
		c.phoneAppDomain = defaultPhoneAppDomain
	}
	var facts pbx2teams.TenantFacts
	var graph *msim.Sim
	if c.sandbox {
		sim, err := msim.NewSandbox(msim.Options{BaseURL: c.publicURL + sandboxPrefix})
		if err != nil {
			a.close()
			return nil, fmt.Errorf("sandbox tenant: %w", err)
		}
		mux.Handle(sandboxPrefix+"/", http.StripPrefix(sandboxPrefix, sim.Handler()))
		log.Info("sandbox Microsoft 365 tenant", "url", c.publicURL+sandboxPrefix)
		c.m365LoginURL, c.m365GraphURL = c.publicURL+sandboxPrefix, c.publicURL+sandboxPrefix
		c.m365ClientID, c.m365ClientSecret = msim.SandboxSyncClientID, msim.SandboxSyncClientSecret
		c.phoneAppClientID, c.phoneAppClientSecret = msim.SandboxPhoneAppClientID, msim.SandboxPhoneAppClientSecret
		facts, graph = sim, sim
	}
	dirSync, err := a.wireM365(c, facts)
	if err != nil {
		a.close()
		return nil, err
	}
	var simTeams *sandboxTeams
	if graph != nil {
		if simTeams, err = a.startSandboxTeams(graph, &c); err != nil {
			a.close()
			return nil, err
		}
		a.sandboxGraph, a.sandboxTeams = graph, simTeams
	}
	if err := a.wireSIP(c, reg); err != nil {
		a.close()
		return nil, err
	}
	if n, err := a.svc.EnsureSBCLabels(ctx); err != nil {
		a.close()
		return nil, fmt.Errorf("SBC labels: %w", err)
	} else if n > 0 {
		log.Info("SBC subdomain labels given to customers without one", "customers", n)
	}
	if err := a.wirePhoneApp(mux, c); err != nil {
		a.close()
		return nil, err
	}
	if err := a.mountSandboxClient(mux, c, graph, simTeams); err != nil {
		a.close()
		return nil, err
	}
	var tester pbx2teams.TestCaller // a nil interface when calls are off
	if a.calls != nil {
		tester = a.calls.b2b
	}
	mux.Handle("/api/v1/", api.New(a.svc, api.Options{Log: log, Version: version, Sync: dirSync, SBCBaseFQDN: c.calls.sbcFQDN, TestCaller: tester}))
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		cctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.store.Ping(cctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/", portal.New(a.svc, portal.Options{Secure: c.secureCookies, Log: log, Sync: dirSync, SBCBaseFQDN: c.calls.sbcFQDN, TestCaller: tester}))
	a.handler = reg.Instrument(mux, routeClass)
	return a, nil
}

// wireM365 builds the Microsoft 365 engine (connect, sync, Phone App
// install, readiness); without a sync app registration it returns nil and
// the portal leaves those features out.
func (a *app) wireM365(c config, facts pbx2teams.TenantFacts) (*dirsync.Engine, error) {
	if c.m365ClientID == "" {
		a.log.Warn("no Microsoft 365 app registration (--m365-client-id): connect and sync are off; use --sandbox to try them")
		return nil, nil
	}
	var stateKey []byte
	if c.m365StateKey != "" {
		k, err := hex.DecodeString(c.m365StateKey)
		if err != nil || len(k) < 16 {
			return nil, errors.New("--m365-state-key must be at least 32 hex characters")
		}
		stateKey = k
	}
	client := func(id, secret string) *m365.Client {
		return m365.New(m365.Config{ClientID: id, ClientSecret: secret, LoginURL: c.m365LoginURL, GraphURL: c.m365GraphURL,
			Logger: a.log, ThrottlePriority: "Low"})
	}
	var phoneApp *m365.Client
	if c.phoneAppClientID != "" {
		phoneApp = client(c.phoneAppClientID, c.phoneAppClientSecret)
		a.phoneAppGraph = phoneApp
	}
	eng := dirsync.New(dirsync.Config{Service: a.svc, Sync: client(c.m365ClientID, c.m365ClientSecret), PhoneApp: phoneApp,
		Facts: facts, PublicURL: c.publicURL, TabURL: c.publicURL + phoneAppPath, StateKey: stateKey, PhoneAppDomain: c.phoneAppDomain, Log: a.log})
	a.runners = append(a.runners, eng.Run)
	return eng, nil
}

// defaultPhoneAppDomain is the domain Phone App calls come from unless
// --phoneapp-domain names the provider's own.
const defaultPhoneAppDomain = "phoneapp.pbx2teams.example"

// sandboxPrefix is where serve --sandbox mounts the simulated Microsoft 365
// (its login and Graph endpoints) on the portal's own address.
const sandboxPrefix = "/_msim"

// routeClass names a request's route for metrics without its IDs.
func routeClass(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/api/"):
		return "api"
	case p == "/metrics", p == "/healthz", p == "/readyz":
		return p[1:]
	case strings.HasPrefix(p, "/static/"):
		return "static"
	}
	return "portal"
}
