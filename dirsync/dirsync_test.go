package dirsync_test

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

const tenant = msim.SandboxTenantID

var quiet = slog.New(slog.DiscardHandler)

type env struct {
	sim  *msim.Sim
	srv  *httptest.Server
	svc  *pbx2teams.Service
	eng  *dirsync.Engine
	acc  string
	sess *pbx2teams.Session
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fastRetry() m365.RetryPolicy {
	return m365.RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		MaxWait: 10 * time.Second, AttemptTimeout: 5 * time.Second}
}

// newEnv starts the sandbox simulator on loopback, a SQLite store, the
// service with a customer holding licences, and an engine. With connect,
// the customer's tenant is connected (consent granted in the simulator).
func newEnv(t *testing.T, connect bool, sim *msim.Sim) *env {
	t.Helper()
	ctx := ctxT(t)
	if sim == nil {
		var err error
		if sim, err = msim.NewSandbox(msim.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p2t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := pbx2teams.NewService(st, box, quiet)
	if _, _, err := svc.Bootstrap(ctx, "Operator", "op@example.net"); err != nil {
		t.Fatal(err)
	}
	admin, err := st.AdminByEmail(ctx, "op@example.net")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := svc.CreateAccount(ctx, pbx2teams.System, admin.AccountID, pbx2teams.KindCustomer, "Contoso Ltd")
	if err != nil {
		t.Fatal(err)
	}
	for sku, n := range map[pbx2teams.SKU]int{pbx2teams.SKUPBXUser: 3, pbx2teams.SKUPhoneAppUser: 2} {
		if _, err := svc.SetLicence(ctx, pbx2teams.System, acc.ID, sku, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(id, secret string) m365.Config {
		return m365.Config{ClientID: id, ClientSecret: secret, LoginURL: srv.URL, GraphURL: srv.URL, Retry: fastRetry(), Logger: quiet}
	}
	eng := dirsync.New(dirsync.Config{Service: svc,
		Sync:     m365.New(cfg(msim.SandboxSyncClientID, msim.SandboxSyncClientSecret)),
		PhoneApp: m365.New(cfg(msim.SandboxPhoneAppClientID, msim.SandboxPhoneAppClientSecret)),
		Facts:    sim, PublicURL: "https://portal.example", PhoneAppDomain: "phoneapp.pbx2teams.example", Log: quiet})
	e := &env{sim: sim, srv: srv, svc: svc, eng: eng, acc: acc.ID, sess: &pbx2teams.Session{CSRFToken: "csrf-of-this-session"}}
	if connect {
		if err := sim.GrantConsent(tenant, msim.SandboxSyncClientID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ConnectTenant(ctx, pbx2teams.System, acc.ID, tenant, "Contoso"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) options(t *testing.T, o pbx2teams.TeamsOptions) {
	t.Helper()
	if _, err := e.svc.SetTeamsOptions(ctxT(t), pbx2teams.System, e.acc, o); err != nil {
		t.Fatal(err)
	}
}

func (e *env) sync(t *testing.T, o dirsync.StartOptions) *pbx2teams.SyncJob {
	t.Helper()
	j, err := e.eng.SyncNow(ctxT(t), pbx2teams.System, e.acc, o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (e *env) mustSync(t *testing.T, o dirsync.StartOptions) *pbx2teams.SyncJob {
	t.Helper()
	j := e.sync(t, o)
	if j.Status != pbx2teams.SyncSucceeded {
		t.Fatalf("sync %s: %s\n%s", j.Status, j.Error, j.Log)
	}
	return j
}

func (e *env) user(t *testing.T, upn string) *pbx2teams.User {
	t.Helper()
	u, err := e.svc.Store.UserByUPN(ctxT(t), e.acc, upn)
	if err != nil {
		t.Fatalf("user %s: %v", upn, err)
	}
	return u
}

func (e *env) allUsers(t *testing.T) []pbx2teams.User {
	t.Helper()
	var out []pbx2teams.User
	cursor := ""
	for {
		p, err := e.svc.Store.Users(ctxT(t), pbx2teams.UserQuery{AccountID: e.acc, Cursor: cursor, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Users...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
}

func (e *env) configure(t *testing.T, upn string, typ pbx2teams.ServiceType, number string) {
	t.Helper()
	pw := "s3cret"
	u := e.user(t, upn)
	if _, err := e.svc.ConfigureUser(ctxT(t), pbx2teams.System, e.acc, u.ID, pbx2teams.UserConfig{Type: typ,
		SIPUsername: strings.Split(upn, ".")[0], Password: &pw, PhoneNumber: number}); err != nil {
		t.Fatalf("configure %s: %v", upn, err)
	}
}

func TestFullSyncClassifiesAndNeverDuplicates(t *testing.T) {
	e := newEnv(t, true, nil)
	j := e.mustSync(t, dirsync.StartOptions{})
	if j.Mode != pbx2teams.SyncModeFull || j.Counts.Seen != 21 || j.Counts.Added != 21 || j.Counts.Removed != 0 {
		t.Fatalf("counts %+v mode %s", j.Counts, j.Mode)
	}
	want := map[string]struct {
		kind      pbx2teams.UserKind
		suggested pbx2teams.ServiceType
	}{
		"alex.wilber@contoso.example":    {pbx2teams.KindPerson, pbx2teams.ServiceStandard},
		"isaiah.langer@contoso.example":  {pbx2teams.KindPerson, ""}, // calling plan
		"pradeep.gupta@contoso.example":  {pbx2teams.KindPerson, ""}, // Teams Phone plan disabled
		"boardroom@contoso.example":      {pbx2teams.KindMeetingRoom, ""},
		"sales-cq@contoso.example":       {pbx2teams.KindResourceAccount, ""},
		"helpdesk-bot@contoso.example":   {pbx2teams.KindBot, ""},
		"christie.cline@contoso.example": {pbx2teams.KindPerson, pbx2teams.ServiceStandard},
	}
	for upn, w := range want {
		u := e.user(t, upn)
		if u.Kind != w.kind || u.SuggestedType != w.suggested {
			t.Errorf("%s: kind %s suggested %q; want %s %q", upn, u.Kind, u.SuggestedType, w.kind, w.suggested)
		}
	}
	if j.Counts.ExcludedWhy[pbx2teams.ExcludeCallingPlan] != 1 || j.Counts.ExcludedWhy[pbx2teams.ExcludeMeetingRoom] != 1 {
		t.Errorf("excluded: %v", j.Counts.ExcludedWhy)
	}
	if !strings.Contains(j.Log, "ADD alex.wilber@contoso.example") || !strings.Contains(j.Log, "DONE> seen=21") {
		t.Errorf("log:\n%s", j.Log)
	}
	// A second full run adds nobody and changes nothing.
	j2 := e.mustSync(t, dirsync.StartOptions{Full: true})
	if j2.Counts.Added != 0 || j2.Counts.Updated != 0 || j2.Counts.Seen != 21 {
		t.Fatalf("second run counts %+v", j2.Counts)
	}
	if n := len(e.allUsers(t)); n != 21 {
		t.Fatalf("%d users stored; want 21", n)
	}
	jobs, err := e.svc.SyncJobs(ctxT(t), pbx2teams.System, e.acc, 10)
	if err != nil || len(jobs) != 2 || jobs[0].ID != j2.ID || jobs[0].Status != pbx2teams.SyncSucceeded {
		t.Fatalf("jobs %v %+v", err, jobs)
	}
}

func TestLargeTenantModeGroupsAndConflict(t *testing.T) {
	e := newEnv(t, true, nil)
	on := true
	e.options(t, pbx2teams.TeamsOptions{PhoneAppEnabled: &on, LargeTenantMode: &on,
		StandardGroups: []pbx2teams.Group{{ID: "b0000001-0000-4000-8000-000000000001", DisplayName: "Teams Voice Users"}},
		PhoneAppGroup:  &pbx2teams.Group{ID: "b0000001-0000-4000-8000-000000000003", DisplayName: "Phone App Users"}})
	j := e.mustSync(t, dirsync.StartOptions{})
	if j.Mode != pbx2teams.SyncModeGroups {
		t.Fatalf("mode %s", j.Mode)
	}
	// Teams Voice Users has 8 direct members and Sales Voice nested (2 more);
	// Phone App Users 6, of which Megan is also a standard member.
	if j.Counts.Seen != 15 || j.Counts.Conflicts != 1 {
		t.Fatalf("counts %+v\n%s", j.Counts, j.Log)
	}
	if u := e.user(t, "megan.bowen@contoso.example"); u.Conflict == "" || u.SuggestedType == pbx2teams.ServicePhoneApp {
		t.Fatalf("megan: %+v", u)
	}
	if u := e.user(t, "johanna.lorenz@contoso.example"); u.SuggestedType != pbx2teams.ServicePhoneApp || u.Conflict != "" {
		t.Fatalf("johanna: %+v", u)
	}
	if u := e.user(t, "grady.archie@contoso.example"); u.SuggestedType != pbx2teams.ServiceStandard {
		t.Fatalf("grady (nested group): %+v", u)
	}
	if _, err := e.svc.Store.UserByUPN(ctxT(t), e.acc, "henrietta.mueller@contoso.example"); pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
		t.Fatalf("henrietta is in no group but was synced: %v", err)
	}
	if len(j.Warnings) == 0 || !strings.Contains(j.Warnings[0], "megan.bowen") {
		t.Fatalf("warnings %v", j.Warnings)
	}
	// Megan leaves the standard group: the conflict clears; she holds
	// Teams Phone (E5), so she is excluded from Phone App, with the reason.
	if err := e.sim.ChangeGroupMembers(tenant, "Teams Voice Users", nil, []string{"megan.bowen@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	j = e.mustSync(t, dirsync.StartOptions{})
	if u := e.user(t, "megan.bowen@contoso.example"); u.Conflict != "" || u.SuggestedType != "" {
		t.Fatalf("megan after leaving the standard group: %+v", u)
	}
	if j.Counts.Conflicts != 0 || j.Counts.Seen != 15 || j.Counts.ExcludedWhy[pbx2teams.ExcludeHasTeamsPhone] != 1 {
		t.Fatalf("counts %+v", j.Counts)
	}
}

func TestDeltaSuspendsDisabledAndDeletedUsers(t *testing.T) {
	e := newEnv(t, true, nil)
	e.mustSync(t, dirsync.StartOptions{})
	e.configure(t, "alex.wilber@contoso.example", pbx2teams.ServiceStandard, "+441632960101")
	e.configure(t, "diego.siciliani@contoso.example", pbx2teams.ServiceStandard, "+441632960102")
	e.configure(t, "christie.cline@contoso.example", pbx2teams.ServiceStandard, "+441632960103")
	std, _, _ := e.svc.Store.CountLicenceUse(ctxT(t), e.acc)
	if std != 3 {
		t.Fatalf("licence use %d", std)
	}
	off := false
	if err := e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{AccountEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.DeleteUser(tenant, "diego.siciliani@contoso.example", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.AddUser(tenant, msim.UserSpec{UserPrincipalName: "new.person@contoso.example", DisplayName: "New Person", Licenses: []string{"SPE_E5"}}); err != nil {
		t.Fatal(err)
	}
	j := e.mustSync(t, dirsync.StartOptions{})
	if j.Mode != pbx2teams.SyncModeDelta {
		t.Fatalf("mode %s; want delta", j.Mode)
	}
	if j.Counts.Added != 1 || j.Counts.Removed != 1 || j.Counts.Suspended != 2 || j.Counts.Seen != 2 {
		t.Fatalf("delta counts %+v\n%s", j.Counts, j.Log)
	}
	if u := e.user(t, "alex.wilber@contoso.example"); !u.Suspended || u.Enabled {
		t.Fatalf("alex: %+v", u)
	}
	if u := e.user(t, "diego.siciliani@contoso.example"); !u.Suspended || !u.Deleted {
		t.Fatalf("diego: %+v", u)
	}
	std, _, _ = e.svc.Store.CountLicenceUse(ctxT(t), e.acc)
	if std != 1 {
		t.Fatalf("licence use after suspension %d; want 1", std)
	}
	// The freed licences are used by others; Alex is enabled again but no
	// licence is free: he stays suspended with a warning.
	e.configure(t, "megan.bowen@contoso.example", pbx2teams.ServiceStandard, "+441632960104")
	e.configure(t, "patti.fernandez@contoso.example", pbx2teams.ServiceStandard, "+441632960105")
	on := true
	if err := e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{AccountEnabled: &on}); err != nil {
		t.Fatal(err)
	}
	j = e.mustSync(t, dirsync.StartOptions{})
	if u := e.user(t, "alex.wilber@contoso.example"); !u.Suspended || !u.Enabled {
		t.Fatalf("alex re-enabled without a free licence: %+v", u)
	}
	if len(j.Warnings) != 1 || !strings.Contains(j.Warnings[0], "STILL SUSPENDED alex.wilber") {
		t.Fatalf("warnings %v", j.Warnings)
	}
	// A licence is freed: the next sync resumes him.
	if _, err := e.svc.ConfigureUser(ctxT(t), pbx2teams.System, e.acc, e.user(t, "patti.fernandez@contoso.example").ID, pbx2teams.UserConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{JobTitle: ptr("Sales Director")}); err != nil {
		t.Fatal(err)
	}
	j = e.mustSync(t, dirsync.StartOptions{})
	if u := e.user(t, "alex.wilber@contoso.example"); u.Suspended || j.Counts.Resumed != 1 {
		t.Fatalf("alex not resumed: %+v %+v", u, j.Counts)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, true, nil)
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Method: "GET", Status: 429, RetryAfter: 1, Count: 1})
	start := time.Now()
	j := e.mustSync(t, dirsync.StartOptions{Diagnostic: true})
	if time.Since(start) < time.Second {
		t.Fatalf("sync took %v; Retry-After of 1 s not honoured", time.Since(start))
	}
	if j.Counts.Seen != 21 || !strings.Contains(j.Log, "GRAPH> ") || !strings.Contains(j.Log, "429") {
		t.Fatalf("counts %+v log:\n%s", j.Counts, j.Log)
	}
}

func genSim(t *testing.T, users int) *msim.Sim {
	t.Helper()
	sim, err := msim.NewSandbox(msim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.AddUser(tenant, msim.UserSpec{UserPrincipalName: "x0@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < users; i++ {
		if _, err := sim.AddUser(tenant, msim.UserSpec{UserPrincipalName: "gen" + strings.Repeat("x", i%3) + itoa(i) + "@contoso.example",
			Licenses: []string{"SPE_E3", "MCOEV"}}); err != nil {
			t.Fatal(err)
		}
	}
	return sim
}

func itoa(i int) string {
	var b [12]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

func TestMalformedPageFailsJobAndChangesNothing(t *testing.T) {
	e := newEnv(t, true, genSim(t, 2100))
	first := e.mustSync(t, dirsync.StartOptions{})
	before := e.allUsers(t)
	if len(before) != first.Counts.Seen {
		t.Fatalf("%d stored, %d seen", len(before), first.Counts.Seen)
	}
	off := false
	if err := e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{AccountEnabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.AddUser(tenant, msim.UserSpec{UserPrincipalName: "late@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	// The second page of the listing arrives cut in half, every time.
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Method: "GET", Skip: 2, Count: 100, Malformed: true})
	j := e.sync(t, dirsync.StartOptions{Full: true})
	if j.Status != pbx2teams.SyncFailed || j.Error == "" || !strings.Contains(j.Log, "nothing of this run was applied") {
		t.Fatalf("job %s error %q\n%s", j.Status, j.Error, j.Log)
	}
	after := e.allUsers(t)
	if len(after) != len(before) {
		t.Fatalf("%d users after the failed run; %d before", len(after), len(before))
	}
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Enabled != after[i].Enabled || !before[i].SyncedAt.Equal(*after[i].SyncedAt) {
			t.Fatalf("user changed by a failed run: %+v -> %+v", before[i], after[i])
		}
	}
	stored, err := e.svc.SyncJob(ctxT(t), pbx2teams.System, e.acc, j.ID)
	if err != nil || stored.Status != pbx2teams.SyncFailed || stored.Error != j.Error {
		t.Fatalf("stored job %v %+v", err, stored)
	}
	e.sim.ClearFaults()
	j = e.mustSync(t, dirsync.StartOptions{Full: true})
	if j.Counts.Added != 1 || j.Counts.Updated != 1 {
		t.Fatalf("after the fault: %+v", j.Counts)
	}
}

func TestConcurrentSyncRefusedAndCrashRecovery(t *testing.T) {
	e := newEnv(t, true, nil)
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Method: "GET", DelayMS: 700, Count: 2})
	j, err := e.eng.Start(ctxT(t), pbx2teams.System, e.acc, dirsync.StartOptions{})
	if err != nil || j.Status != pbx2teams.SyncRunning {
		t.Fatalf("start: %v %+v", err, j)
	}
	if _, ok := e.eng.Live(e.acc); !ok {
		t.Fatal("no live state of the running sync")
	}
	_, err = e.eng.Start(ctxT(t), pbx2teams.System, e.acc, dirsync.StartOptions{})
	if pbx2teams.ErrorCode(err) != pbx2teams.EConflict || !strings.Contains(pbx2teams.ErrorMessage(err), "already running") {
		t.Fatalf("second start: %v", err)
	}
	e.eng.Wait()
	done, err := e.svc.SyncJob(ctxT(t), pbx2teams.System, e.acc, j.ID)
	if err != nil || done.Status != pbx2teams.SyncSucceeded {
		t.Fatalf("job after wait: %v %+v", err, done)
	}
	// A job left running by a crash is marked failed at start-up.
	crashed, err := e.svc.StartSyncJob(ctxT(t), pbx2teams.System, e.acc, "full", "manual", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	ran := make(chan error, 1)
	go func() { ran <- e.eng.Run(ctx) }()
	var got *pbx2teams.SyncJob
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, _ = e.svc.SyncJob(ctxT(t), pbx2teams.System, e.acc, crashed.ID); got.Status != pbx2teams.SyncRunning {
			break
		}
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if got.Status != pbx2teams.SyncFailed || !strings.Contains(got.Error, "stopped while this sync was running") {
		t.Fatalf("crashed job: %+v", got)
	}
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

// click loads a simulator consent or sign-in page, presses button and
// returns where the simulator redirects the browser.
func click(t *testing.T, base, pageURL, button string) url.Values {
	t.Helper()
	resp, err := noFollow.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formAction.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no form at %s:\n%s", pageURL, body)
	}
	resp, err = noFollow.PostForm(base+html.UnescapeString(string(m[1])), url.Values{"action": {button}, "user": {"adele.vance@contoso.example"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("submit: %d %v", resp.StatusCode, err)
	}
	if !strings.HasPrefix(loc.String(), "https://portal.example"+dirsync.CallbackPath) {
		t.Fatalf("redirected to %s", loc)
	}
	return loc.Query()
}

func TestConnectConsentFlows(t *testing.T) {
	e := newEnv(t, false, nil)
	ctx := ctxT(t)
	// Cancelled consent: shown, nothing connected.
	u, err := e.eng.ConnectURL(ctx, pbx2teams.System, e.sess, e.acc)
	if err != nil {
		t.Fatal(err)
	}
	res := e.eng.HandleCallback(ctx, pbx2teams.System, e.sess, click(t, e.srv.URL, u, "cancel"))
	if res.Err == nil || !strings.Contains(pbx2teams.ErrorMessage(res.Err), "cancelled") {
		t.Fatalf("cancel: %+v", res)
	}
	ts, _ := e.svc.TeamsSettings(ctx, pbx2teams.System, e.acc)
	if ts.ConsentedAt != nil || !strings.Contains(ts.ConsentError, "cancelled") {
		t.Fatalf("settings after cancel: %+v", ts)
	}
	// A state from another session is refused.
	u, _ = e.eng.ConnectURL(ctx, pbx2teams.System, e.sess, e.acc)
	q := click(t, e.srv.URL, u, "accept")
	other := &pbx2teams.Session{CSRFToken: "someone-else"}
	if res := e.eng.HandleCallback(ctx, pbx2teams.System, other, q); pbx2teams.ErrorCode(res.Err) != pbx2teams.EForbidden {
		t.Fatalf("foreign session: %+v", res)
	}
	res = e.eng.HandleCallback(ctx, pbx2teams.System, e.sess, q)
	if res.Err != nil || res.Notice != "m365-connected" {
		t.Fatalf("accept: %+v", res)
	}
	ts, _ = e.svc.TeamsSettings(ctx, pbx2teams.System, e.acc)
	if ts.TenantID != tenant || ts.TenantName != "Contoso" || ts.ConsentedAt == nil || ts.ConsentError != "" {
		t.Fatalf("connected settings: %+v", ts)
	}
	// Revoked consent: the next sync fails, says so, and the tab asks for
	// the consent again.
	if err := e.sim.RevokeConsent(tenant, msim.SandboxSyncClientID); err != nil {
		t.Fatal(err)
	}
	j := e.sync(t, dirsync.StartOptions{})
	if j.Status != pbx2teams.SyncFailed {
		t.Fatalf("sync after revocation: %+v", j)
	}
	ts, _ = e.svc.TeamsSettings(ctx, pbx2teams.System, e.acc)
	if ts.ConsentedAt != nil || !strings.Contains(ts.ConsentError, "Connect Microsoft 365 again") {
		t.Fatalf("settings after revocation: %+v", ts)
	}
}

// authorizePhoneApp runs "Authorize Phone App for my Organization": the
// Phone App's admin consent, then the admin's sign-in that publishes it.
func (e *env) authorizePhoneApp(t *testing.T) {
	t.Helper()
	ctx := ctxT(t)
	u, err := e.eng.AuthorizePhoneAppURL(ctx, pbx2teams.System, e.sess, e.acc)
	if err != nil {
		t.Fatal(err)
	}
	res := e.eng.HandleCallback(ctx, pbx2teams.System, e.sess, click(t, e.srv.URL, u, "accept"))
	if res.Err != nil || !strings.Contains(res.Redirect, "/oauth2/v2.0/authorize") {
		t.Fatalf("phone app consent: %+v", res)
	}
	res = e.eng.HandleCallback(ctx, pbx2teams.System, e.sess, click(t, e.srv.URL, res.Redirect, "accept"))
	if res.Err != nil || res.Notice != "phone-app-authorized" {
		t.Fatalf("phone app sign-in: %+v", res)
	}
}

func installed(t *testing.T, e *env, upn string) bool {
	t.Helper()
	st, err := e.sim.UserState(tenant, upn)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.InstalledApps {
		if a.ExternalID == dirsync.DefaultPhoneAppManifestID {
			return true
		}
	}
	return false
}

func TestPhoneAppPublishInstallUninstall(t *testing.T) {
	e := newEnv(t, true, nil)
	on := true
	e.options(t, pbx2teams.TeamsOptions{PhoneAppEnabled: &on, LargeTenantMode: &on,
		StandardGroups: []pbx2teams.Group{{ID: "b0000001-0000-4000-8000-000000000001", DisplayName: "Teams Voice Users"}},
		PhoneAppGroup:  &pbx2teams.Group{ID: "b0000001-0000-4000-8000-000000000003", DisplayName: "Phone App Users"}})
	j := e.mustSync(t, dirsync.StartOptions{})
	if len(j.Warnings) < 2 || !strings.Contains(strings.Join(j.Warnings, "\n"), "not authorized") {
		t.Fatalf("no warning about the missing authorization: %v", j.Warnings)
	}
	e.authorizePhoneApp(t)
	e.configure(t, "johanna.lorenz@contoso.example", pbx2teams.ServicePhoneApp, "")
	e.configure(t, "lee.gu@contoso.example", pbx2teams.ServicePhoneApp, "")
	j = e.mustSync(t, dirsync.StartOptions{})
	if j.Counts.Installed != 2 || !installed(t, e, "johanna.lorenz@contoso.example") || !installed(t, e, "lee.gu@contoso.example") {
		t.Fatalf("installed %d\n%s", j.Counts.Installed, j.Log)
	}
	if installed(t, e, "lidia.holloway@contoso.example") {
		t.Fatal("installed for an unconfigured user")
	}
	// Readiness sees the install; Lynne's Islands mode fails Teams only.
	_, rd, err := e.svc.UserReadiness(ctxT(t), pbx2teams.System, e.acc, e.user(t, "johanna.lorenz@contoso.example").ID, e.eng.ReadinessInput())
	if err != nil || !rd.Ready {
		t.Fatalf("johanna readiness %v %+v", err, rd)
	}
	// Johanna leaves the Phone App group: she is no longer synced, her
	// configuration is suspended and the app removed.
	if err := e.sim.ChangeGroupMembers(tenant, "Phone App Users", nil, []string{"johanna.lorenz@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	j = e.mustSync(t, dirsync.StartOptions{})
	if j.Counts.Uninstalled != 1 || installed(t, e, "johanna.lorenz@contoso.example") || !installed(t, e, "lee.gu@contoso.example") {
		t.Fatalf("uninstalled %d\n%s", j.Counts.Uninstalled, j.Log)
	}
	// A second run changes nothing in Teams.
	j = e.mustSync(t, dirsync.StartOptions{})
	if j.Counts.Installed != 0 || j.Counts.Uninstalled != 0 {
		t.Fatalf("idempotent run: %+v", j.Counts)
	}
}

func TestReadinessChecks(t *testing.T) {
	e := newEnv(t, true, nil)
	on := true
	e.options(t, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	e.mustSync(t, dirsync.StartOptions{})
	e.configure(t, "lynne.robbins@contoso.example", pbx2teams.ServicePhoneApp, "")
	in := e.eng.ReadinessInput()
	_, rd, err := e.svc.UserReadiness(ctxT(t), pbx2teams.System, e.acc, e.user(t, "lynne.robbins@contoso.example").ID, in)
	if err != nil || rd.Ready {
		t.Fatalf("lynne: %v %+v", err, rd)
	}
	var keys []string
	for _, c := range rd.Failed() {
		keys = append(keys, c.Key)
		if c.Fix == "" {
			t.Errorf("check %s fails without a fix", c.Key)
		}
	}
	if strings.Join(keys, ",") != "teams_only,installed" {
		t.Fatalf("failed checks %v", keys)
	}
	// External access blocking the Phone App domain fails the tenant check.
	if err := e.sim.SetFederation(tenant, msim.Federation{AllowFederatedUsers: true, BlockedDomains: []string{in.PhoneAppDomain}}); err != nil {
		t.Fatal(err)
	}
	ts, _ := e.svc.TeamsSettings(ctxT(t), pbx2teams.System, e.acc)
	in.TenantID = ts.TenantID
	tr := pbx2teams.TenantReadiness(ts, in)
	var ext *pbx2teams.Check
	for i := range tr.Checks {
		if tr.Checks[i].Key == "external_access" {
			ext = &tr.Checks[i]
		}
	}
	if ext == nil || ext.State != pbx2teams.CheckFail || !strings.Contains(ext.Fix, in.PhoneAppDomain) {
		t.Fatalf("external access: %+v", tr)
	}
	// Production: no facts, so the check cannot be verified and says how.
	in.Facts = nil
	tr = pbx2teams.TenantReadiness(ts, in)
	for _, c := range tr.Checks {
		if c.Key == "external_access" && (c.State != pbx2teams.CheckNotVerifiable || !strings.Contains(c.Detail, "not verifiable from Microsoft Graph") && !strings.Contains(c.Detail, "Not verifiable from Microsoft Graph")) {
			t.Fatalf("production external access: %+v", c)
		}
	}
	// Standard user with a calling plan fails the licence check.
	u := e.user(t, "isaiah.langer@contoso.example")
	r := pbx2teams.UserReadiness(&pbx2teams.User{Kind: u.Kind, Enabled: true, Type: pbx2teams.ServiceStandard, HasTeamsPhone: true, HasCallingPlan: true}, ts, in)
	if r.Ready || r.Failed()[0].Key != "licence" {
		t.Fatalf("calling plan readiness %+v", r)
	}
}
