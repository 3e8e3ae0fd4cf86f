// Package dirsync is pbx2teams' Microsoft 365 directory sync: connecting a
// customer's tenant (admin consent bound to the admin's portal session),
// authorizing and publishing the Phone App, Sync Now and automatic sync
// (full listings, Large Tenant Mode groups, deltas), and installing the
// Phone App for every configured Phone App user.
//
// Graph pages are streamed into one store transaction (Service.ApplyDirectory)
// a page at a time: memory stays flat in the tenant's size, and a failure
// mid-run (throttling beyond the retry bound, a malformed page, a revoked
// consent) rolls everything back, so the previous state stays intact.
// The price is that the run holds the store's write lock while it reads
// Graph; for SQLite that serialises other writers for the run's length
// (seconds for 100,000 users), which a single node can afford. One sync
// per customer runs at a time, enforced by the store.
package dirsync

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/teamsapp"
)

// Config configures an Engine.
type Config struct {
	Service *pbx2teams.Service
	// Sync is the main app registration (application permissions for the
	// sync: User.Read.All, GroupMember.Read.All, Organization.Read.All).
	Sync *m365.Client
	// PhoneApp is the Phone App's app registration (admin consent for
	// self-installation, delegated AppCatalog.ReadWrite.All to publish);
	// nil when the Phone App is not offered.
	PhoneApp *m365.Client
	// Facts answers coexistence and external access (sandbox: the
	// simulator); nil in production.
	Facts pbx2teams.TenantFacts
	// PublicURL is the portal's external base URL (scheme://host[:port]);
	// the consent redirect URI is PublicURL + CallbackPath.
	PublicURL string
	// StateKey signs consent states (HMAC-SHA256). All nodes must share it;
	// nil generates a random one (single node).
	StateKey []byte
	// PhoneAppDomain is the domain Phone App calls come from (for the
	// external access check), e.g. phoneapp.example.net.
	PhoneAppDomain string
	// PhoneAppManifestID is the Teams app's manifest id (a GUID, constant
	// across versions) and PhoneAppVersion its version.
	PhoneAppManifestID string
	PhoneAppVersion    string
	// TabURL is the dialler tab's address (default PublicURL + "/phone/", where the phoneapp package is served).
	TabURL string
	// ProductName names the app in Teams (default "Phone").
	ProductName string
	// FullEvery forces a full sync when the last one is older (default 24 h).
	FullEvery time.Duration
	// Tick is how often the scheduler looks for due syncs (default 1 min).
	Tick time.Duration
	Log  *slog.Logger
}

// CallbackPath is where Microsoft sends the admin back after a consent or
// sign-in; register PublicURL + CallbackPath as a redirect URI of both app
// registrations.
const CallbackPath = "/m365/callback"

// DefaultPhoneAppManifestID is the Phone App's manifest id when none is
// configured.
const DefaultPhoneAppManifestID = "7c1e4f0a-5b2d-4c39-8e61-2f9a0d3b4c5e"

// Engine runs syncs and the Microsoft 365 connection flows.
type Engine struct {
	cfg Config
	svc *pbx2teams.Service
	log *slog.Logger

	mu   sync.Mutex
	live map[string]*jobRun // by account ID
	wg   sync.WaitGroup
}

// New returns an Engine.
func New(cfg Config) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.TabURL == "" {
		cfg.TabURL = cfg.PublicURL + "/phone/"
	}
	if cfg.PhoneAppManifestID == "" {
		cfg.PhoneAppManifestID = DefaultPhoneAppManifestID
	}
	if cfg.PhoneAppVersion == "" {
		cfg.PhoneAppVersion = "1.0.0"
	}
	if cfg.ProductName == "" {
		cfg.ProductName = "Phone"
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = 24 * time.Hour
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if len(cfg.StateKey) == 0 {
		cfg.StateKey = randomKey()
	}
	return &Engine{cfg: cfg, svc: cfg.Service, log: cfg.Log, live: map[string]*jobRun{}}
}

// Facts is the engine's TenantFacts (nil in production).
func (e *Engine) Facts() pbx2teams.TenantFacts { return e.cfg.Facts }

// PhoneAppDomain is the domain Phone App calls come from.
func (e *Engine) PhoneAppDomain() string { return e.cfg.PhoneAppDomain }

// PhoneAppAvailable reports whether a Phone App registration is configured.
func (e *Engine) PhoneAppAvailable() bool { return e.cfg.PhoneApp != nil }

// ReadinessInput is what readiness checks need from the engine.
func (e *Engine) ReadinessInput() pbx2teams.ReadinessInput {
	return pbx2teams.ReadinessInput{PhoneAppDomain: e.cfg.PhoneAppDomain, Facts: e.cfg.Facts}
}

// AppPackage is the Phone App's Teams app package (zip).
func (e *Engine) AppPackage() ([]byte, error) {
	clientID := ""
	if e.cfg.PhoneApp != nil {
		clientID = e.cfg.PhoneApp.ClientID()
	}
	if clientID == "" {
		return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "The Phone App is not configured on this service (no Phone App app registration).")
	}
	pkg, err := teamsapp.Package(teamsapp.Options{AppID: e.cfg.PhoneAppManifestID, Version: e.cfg.PhoneAppVersion,
		ClientID: clientID, TabURL: e.cfg.TabURL, ShortName: e.cfg.ProductName})
	if err != nil {
		return nil, &pbx2teams.Error{Code: pbx2teams.EInternal, Message: "The Teams app package could not be built.", Err: err}
	}
	return pkg, nil
}

// SearchGroups finds Entra ID groups of a customer's tenant by name (the
// Large Tenant Mode group picker).
func (e *Engine) SearchGroups(ctx context.Context, p *pbx2teams.Principal, accountID, text string) ([]m365.Group, error) {
	ts, err := e.svc.TeamsSettings(ctx, p, accountID)
	if err != nil {
		return nil, err
	}
	if ts.ConsentedAt == nil {
		return nil, pbx2teams.Errorf(pbx2teams.EInvalid, "Connect Microsoft 365 first; then groups can be searched.")
	}
	if len(text) > 100 {
		text = text[:100]
	}
	return e.cfg.Sync.App(ts.TenantID).SearchGroups(ctx, text, 25)
}

// Run marks jobs left running by a previous process failed, then starts
// due automatic syncs every Tick until ctx ends, and waits for the syncs
// it started.
func (e *Engine) Run(ctx context.Context) error {
	if n, err := e.svc.RecoverSyncJobs(ctx); err != nil {
		return err
	} else if n > 0 {
		e.log.Warn("dirsync: sync jobs left running by a previous process marked failed", "jobs", n)
	}
	t := time.NewTicker(e.cfg.Tick)
	defer t.Stop()
	for {
		e.startDue(ctx)
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// startDue starts the automatic syncs that are due.
func (e *Engine) startDue(ctx context.Context) {
	states, err := e.svc.Store.SyncStates(ctx)
	if err != nil {
		e.log.Error("dirsync: list sync states", "err", err)
		return
	}
	now := e.now()
	for _, st := range states {
		ts, err := e.svc.Store.TeamsSettings(ctx, st.AccountID)
		if err != nil || ts.ConsentedAt == nil || ts.SyncIntervalMinutes <= 0 {
			continue
		}
		if st.LastRunAt != nil && now.Sub(*st.LastRunAt) < time.Duration(ts.SyncIntervalMinutes)*time.Minute {
			continue
		}
		if _, err := e.Start(ctx, pbx2teams.System, st.AccountID, StartOptions{Trigger: "auto"}); err != nil &&
			pbx2teams.ErrorCode(err) != pbx2teams.EConflict {
			e.log.Warn("dirsync: automatic sync not started", "account", st.AccountID, "err", err)
		}
	}
}

func (e *Engine) now() time.Time {
	if e.svc.Now != nil {
		return e.svc.Now()
	}
	return time.Now()
}

// Wait waits for syncs started by Start to finish (tests, shutdown).
func (e *Engine) Wait() { e.wg.Wait() }
