package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
	"github.com/pbx2teams/pbx2teams/sqlstore"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running API over a real SQLite store in a temporary directory.
type env struct {
	t      *testing.T
	dir    string
	dbPath string
	store  *sqlstore.Store
	box    *secrets.Box
	svc    *pbx2teams.Service
	srv    *httptest.Server
	logs   *syncBuffer
	ctx    context.Context
	// sim is the Microsoft 365 simulator on loopback and eng the sync
	// engine using it (nil with newEnvNoSync).
	sim *msim.Sim
	eng *dirsync.Engine
}

// newEnv starts the API with a sync engine against the Microsoft 365
// simulator.
func newEnv(t *testing.T, opts Options) *env { return newEnvWith(t, opts, true) }

// newEnvNoSync starts the API without a sync engine (Microsoft 365 not
// configured on the node).
func newEnvNoSync(t *testing.T, opts Options) *env { return newEnvWith(t, opts, false) }

func newEnvWith(t *testing.T, opts Options, withSync bool) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, dbPath: filepath.Join(dir, "pbx2teams.db"), logs: &syncBuffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	e.ctx = ctx
	st, err := sqlite.Open(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	key, err := secrets.LoadOrCreateKey("", filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if e.box, err = secrets.NewBox(key); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = pbx2teams.NewService(st, e.box, log)
	if opts.Log == nil {
		opts.Log = log
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = -1 // tests make many quick requests; TestRateLimit turns it on
	}
	if withSync {
		if e.sim, err = msim.NewSandbox(msim.Options{}); err != nil {
			t.Fatal(err)
		}
		simSrv := httptest.NewServer(e.sim.Handler())
		t.Cleanup(simSrv.Close)
		quiet := slog.New(slog.DiscardHandler)
		cfg := func(id, secret string) m365.Config {
			return m365.Config{ClientID: id, ClientSecret: secret, LoginURL: simSrv.URL, GraphURL: simSrv.URL, Logger: quiet,
				Retry: m365.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
					MaxWait: 5 * time.Second, AttemptTimeout: 5 * time.Second}}
		}
		e.eng = dirsync.New(dirsync.Config{Service: e.svc,
			Sync:     m365.New(cfg(msim.SandboxSyncClientID, msim.SandboxSyncClientSecret)),
			PhoneApp: m365.New(cfg(msim.SandboxPhoneAppClientID, msim.SandboxPhoneAppClientSecret)),
			Facts:    e.sim, PublicURL: "https://portal.example", PhoneAppDomain: "phoneapp.pbx2teams.example", Log: quiet})
		opts.Sync = e.eng
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix+"/", New(e.svc, opts))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		if e.eng != nil {
			e.eng.Wait() // background syncs end before the store closes
		}
		st.Close()
	})
	return e
}

// connectM365 connects a customer to the simulator's sandbox tenant, as
// the consent flow would.
func (e *env) connectM365(accountID string) {
	e.t.Helper()
	if err := e.sim.GrantConsent(msim.SandboxTenantID, msim.SandboxSyncClientID); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.ConnectTenant(e.ctx, pbx2teams.System, accountID, msim.SandboxTenantID, "Contoso"); err != nil {
		e.t.Fatal(err)
	}
}

// client calls the API with an API key or a portal session.
type client struct {
	e      *env
	name   string
	bearer string
	cookie string
	csrf   string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// errBody decodes the JSON error body.
func (r response) err(t *testing.T) errorBody {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.body)
	}
	if eb.Code == "" || eb.Message == "" || eb.Details == nil {
		t.Fatalf("error body lacks code, message or details: %s", r.body)
	}
	return eb
}

func (c *client) raw(method, path, contentType string, body []byte) response {
	t := c.e.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.e.ctx, method, c.e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: pbx2teams.SessionCookieName, Value: c.cookie})
		if c.csrf != "" && !safeMethod(method) {
			req.Header.Set(pbx2teams.CSRFHeaderName, c.csrf)
		}
	}
	res, err := c.e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// call sends v as JSON (nil: no body) and returns the response.
func (c *client) call(method, path string, v any) response {
	c.e.t.Helper()
	if v == nil {
		return c.raw(method, path, "", nil)
	}
	b, err := json.Marshal(v)
	if err != nil {
		c.e.t.Fatal(err)
	}
	return c.raw(method, path, "application/json", b)
}

// ok calls and requires the status, decoding the body into out if given.
func (c *client) ok(status int, method, path string, v, out any) response {
	t := c.e.t
	t.Helper()
	r := c.call(method, path, v)
	if r.status != status {
		t.Fatalf("%s %s as %s: got %s, want %d", method, path, c.name, r, status)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.body)
		}
	}
	return r
}

// fixture is the account tree of the tests: operator → partner A →
// customer A1, operator → partner B → customer B1, with admins, viewers,
// API keys and directory users.
type fixture struct {
	*env
	operator             *pbx2teams.Principal
	partnerA, a1         *pbx2teams.Account
	partnerB, b1         *pbx2teams.Account
	alice, bob, room     *pbx2teams.User       // users of A1
	bertha               *pbx2teams.User       // a user of B1
	job                  *pbx2teams.SyncJob    // a finished sync job of A1
	call                 *pbx2teams.CallRecord // an answered call of A1's alice, with a trace
	opKey                *client
	partnerAKey, a1Key   *client
	partnerBKey, b1Key   *client
	a1ViewerKey          *client
	a1Admin, a1Viewer    *client // sessions
	partnerASess         *client
	partnerBSess, b1Sess *client
	// caller records the test calls the API places (nil with newFixtureOn).
	caller *recordingCaller
}

const adminPassword = "correct horse battery"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	caller := &recordingCaller{}
	f := newFixtureOn(t, newEnv(t, Options{TestCaller: caller}))
	f.caller = caller
	return f
}

// newFixtureOn builds the fixture on e; without a sync engine A1 is not
// connected to Microsoft 365 but still has its finished job.
func newFixtureOn(t *testing.T, e *env) *fixture {
	t.Helper()
	f := &fixture{env: e}
	ctx := f.ctx
	created, pw, err := f.svc.Bootstrap(ctx, "Operator Ltd", "ops@operator.example")
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	tok, _, err := f.svc.SignIn(ctx, "ops@operator.example", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if f.operator, _, err = f.svc.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	op := f.operator
	mk := func(parent string, kind pbx2teams.AccountKind, name string) *pbx2teams.Account {
		a, err := f.svc.CreateAccount(ctx, op, parent, kind, name)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	f.partnerA = mk(op.AccountID, pbx2teams.KindPartner, "Partner Alpha")
	f.a1 = mk(f.partnerA.ID, pbx2teams.KindCustomer, "Customer Alpha One")
	f.partnerB = mk(op.AccountID, pbx2teams.KindPartner, "Partner Bravo")
	f.b1 = mk(f.partnerB.ID, pbx2teams.KindCustomer, "Customer Bravo One")
	for _, acc := range []*pbx2teams.Account{f.a1, f.b1} {
		if _, err := f.svc.SetLicence(ctx, op, acc.ID, pbx2teams.SKUPBXUser, 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.alice = f.dirUser(f.a1, "alice@a1.example", "Alice Able", pbx2teams.KindPerson)
	f.bob = f.dirUser(f.a1, "bob@a1.example", "Bob Baker", pbx2teams.KindPerson)
	f.room = f.dirUser(f.a1, "boardroom@a1.example", "Board Room", pbx2teams.KindMeetingRoom)
	f.bertha = f.dirUser(f.b1, "bertha@b1.example", "Bertha Brown", pbx2teams.KindPerson)
	// A1 is connected to the simulator's tenant and has a finished job in
	// its history (recorded without running, so that the users above stay
	// as they are until a test runs a real sync).
	if f.sim != nil {
		f.connectM365(f.a1.ID)
	} else if _, err := f.svc.ConnectTenant(ctx, op, f.a1.ID, msim.SandboxTenantID, "Contoso"); err != nil {
		t.Fatal(err)
	}
	if f.job, err = f.svc.StartSyncJob(ctx, op, f.a1.ID, pbx2teams.SyncModeFull, "manual", false); err != nil {
		t.Fatal(err)
	}
	f.job.Log = "fixture job\n"
	if err := f.svc.FinishSyncJob(ctx, f.job); err != nil {
		t.Fatal(err)
	}

	// A1 has an answered call with its SIP trace, as the B2BUA records it.
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	f.call = &pbx2teams.CallRecord{AccountID: f.a1.ID, UserID: f.alice.ID, Direction: pbx2teams.DirectionInbound,
		Route: pbx2teams.RouteDirectRouting, From: "+441632960900", To: "+441632960101", StartedAt: t0,
		AnsweredAt: t0.Add(4 * time.Second), EndedAt: t0.Add(64 * time.Second), Result: pbx2teams.ResultAnswered,
		PBXStatus: 200, TeamsStatus: 200, EndedBy: "teams", Media: pbx2teams.CallMedia{Codec: "PCMU", PacketsFromPBX: 3000, PacketsToMS: 3000}}
	if err := f.svc.RecordCall(ctx, f.call, &pbx2teams.CallTrace{CallID: "fixture-call@pbx", Messages: []pbx2teams.TraceMessage{
		{At: t0, Leg: "pbx", Direction: "in", Summary: "INVITE sip:+441632960101@pbx2teams SIP/2.0"},
		{At: t0.Add(4 * time.Second), Leg: "pbx", Direction: "out", Summary: "SIP/2.0 200 OK"},
	}}); err != nil {
		t.Fatal(err)
	}

	f.opKey = f.key(op.AccountID, "")
	f.partnerAKey = f.key(f.partnerA.ID, "")
	f.a1Key = f.key(f.a1.ID, "")
	f.a1ViewerKey = f.key(f.a1.ID, pbx2teams.RoleViewer)
	f.partnerBKey = f.key(f.partnerB.ID, "")
	f.b1Key = f.key(f.b1.ID, "")
	f.partnerASess = f.session(f.partnerA.ID, "pa@alpha.example", "")
	f.a1Admin = f.session(f.a1.ID, "admin@a1.example", "")
	f.a1Viewer = f.session(f.a1.ID, "viewer@a1.example", pbx2teams.RoleViewer)
	f.partnerBSess = f.session(f.partnerB.ID, "pb@bravo.example", "")
	f.b1Sess = f.session(f.b1.ID, "admin@b1.example", "")
	return f
}

// dirUser adds a directory user the way the Microsoft 365 sync will.
func (f *fixture) dirUser(acc *pbx2teams.Account, upn, name string, kind pbx2teams.UserKind) *pbx2teams.User {
	f.t.Helper()
	now := time.Now()
	u := &pbx2teams.User{AccountID: acc.ID, ObjectID: secrets.NewID("oid-"), UPN: upn, DisplayName: name, Mail: upn,
		Enabled: true, Kind: kind, SyncedAt: &now}
	if err := f.store.UpsertDirectoryUser(f.ctx, u); err != nil {
		f.t.Fatal(err)
	}
	return u
}

// key creates an API key on the account (as the operator) and a client for it.
func (f *fixture) key(accountID string, role pbx2teams.Role) *client {
	f.t.Helper()
	k, ak, err := f.svc.CreateAPIKey(f.ctx, f.operator, accountID, "test "+string(role), role)
	if err != nil {
		f.t.Fatal(err)
	}
	return &client{e: f.env, name: "key of " + accountID + " (" + string(ak.Role) + ")", bearer: k}
}

// session creates an admin on the account, signs in and returns a client
// carrying the session cookie and its CSRF token.
func (f *fixture) session(accountID, email string, role pbx2teams.Role) *client {
	f.t.Helper()
	if _, _, err := f.svc.CreateAdmin(f.ctx, f.operator, accountID, email, "Test "+email, role, adminPassword); err != nil {
		f.t.Fatal(err)
	}
	tok, sess, err := f.svc.SignIn(f.ctx, email, adminPassword, "127.0.0.1")
	if err != nil {
		f.t.Fatal(err)
	}
	return &client{e: f.env, name: "session of " + email, cookie: tok, csrf: sess.CSRFToken}
}

func (f *fixture) user(id string) *pbx2teams.User {
	f.t.Helper()
	u, err := f.store.User(f.ctx, f.a1.ID, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

// snapshot renders everything the store holds that a request could change,
// as seen by the system principal, so that "nothing changed" is one
// comparison. API key last-use times are left out: authenticating touches them.
func (f *fixture) snapshot() string {
	f.t.Helper()
	ctx, sys := f.ctx, pbx2teams.System
	var b strings.Builder
	add := func(label string, v any, err error) {
		if err != nil && pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
			f.t.Fatalf("snapshot %s: %v", label, err)
		}
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, "%s: %s\n", label, j)
	}
	accs, err := f.svc.Accounts(ctx, sys)
	add("accounts", accs, err)
	for _, a := range accs {
		admins, err := f.svc.Admins(ctx, sys, a.ID)
		add("admins "+a.ID, admins, err)
		keys, err := f.svc.APIKeys(ctx, sys, a.ID)
		for i := range keys {
			keys[i].LastUsedAt = nil
		}
		add("keys "+a.ID, keys, err)
		if a.Kind != pbx2teams.KindCustomer {
			continue
		}
		ls, err := f.svc.Licences(ctx, sys, a.ID)
		add("licences "+a.ID, ls, err)
		pbx, err := f.svc.PBXSettings(ctx, sys, a.ID)
		add("pbx "+a.ID, pbx, err)
		ts, err := f.svc.TeamsSettings(ctx, sys, a.ID)
		add("teams "+a.ID, ts, err)
		page, err := f.svc.Users(ctx, sys, pbx2teams.UserQuery{AccountID: a.ID, Limit: 500})
		add("users "+a.ID, page, err)
		for _, u := range page.Users {
			fmt.Fprintf(&b, "password %s: %x\n", u.ID, u.PasswordEnc)
		}
	}
	for _, id := range []string{f.a1.ID, f.b1.ID} {
		jobs, err := f.svc.SyncJobs(ctx, sys, id, 200)
		add("sync jobs "+id, jobs, err)
	}
	audit, err := f.store.Audit(ctx, "/", 0, 10000)
	add("audit", audit, err)
	return b.String()
}

func (f *fixture) assertUnchanged(before, what string) {
	f.t.Helper()
	if after := f.snapshot(); after != before {
		f.t.Fatalf("%s changed the store:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}
