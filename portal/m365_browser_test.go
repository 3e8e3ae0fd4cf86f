package portal_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/portal"
)

// TestBrowserMicrosoft365Journey drives the Teams services tab in Chromium
// against the Microsoft 365 simulator: the customer admin connects the
// sandbox tenant (Accept on the simulator's consent page), enables Phone
// App and Large Tenant Mode, picks the groups by searching Graph,
// authorizes the Phone App (second consent and sign-in), runs Sync Now and
// sees standard and Phone App users with their icons and Megan's conflict.
func TestBrowserMicrosoft365Journey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	ctx := context.Background()
	sim, err := msim.NewSandbox(msim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's pages have no icon; Chromium asks for /favicon.ico
	// and would log the simulator's 404 as a console error.
	simH := sim.Handler()
	simSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		simH.ServeHTTP(w, r)
	}))
	defer simSrv.Close()

	// The portal's public URL is only known once it listens.
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	quiet := slog.New(slog.DiscardHandler)
	cc := func(id, secret string) *m365.Client {
		return m365.New(m365.Config{ClientID: id, ClientSecret: secret, LoginURL: simSrv.URL, GraphURL: simSrv.URL, Logger: quiet,
			Retry: m365.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, AttemptTimeout: 5 * time.Second}})
	}
	eng := dirsync.New(dirsync.Config{Service: f.svc, Sync: cc(msim.SandboxSyncClientID, msim.SandboxSyncClientSecret),
		PhoneApp: cc(msim.SandboxPhoneAppClientID, msim.SandboxPhoneAppClientSecret), Facts: sim,
		PublicURL: srv.URL, PhoneAppDomain: "phoneapp.pbx2teams.example", Log: quiet})
	h = portal.New(f.svc, portal.Options{Sync: eng})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 10)
	f.licence(f.custA.ID, pbx2teams.SKUPhoneAppUser, 5)

	j := newJourney(t, 120*time.Second, "failed")
	b, bc := j.b, j.b.Ctx
	shot, do, text, exists := j.shot, j.do, j.text, j.exists
	teams := srv.URL + "/a/" + f.custA.ID + "/teams"

	do("sign in", chromedp.Navigate(srv.URL+"/signin"),
		chromedp.SendKeys(chromedp.ID("email"), "admin@contoso.example"),
		chromedp.SendKeys(chromedp.ID("password"), f.password("admin@contoso.example")),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS(".topbar")))

	// Connect: Microsoft's (the simulator's) consent page, Accept, back.
	do("connect", chromedp.Navigate(teams), chromedp.Click(chromedp.ID("m365-connect")),
		chromedp.WaitVisible(chromedp.ID("accept")))
	shot("m365-consent")
	do("accept consent", chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("m365-state")))
	if s := text("#m365-state"); s != "Connected" {
		t.Fatalf("after consent: %q\n%s", s, text("main"))
	}
	if s := text("#m365-tenant"); !strings.Contains(s, "Contoso") || !strings.Contains(s, msim.SandboxTenantID) {
		t.Fatalf("tenant shown: %q", s)
	}

	// Phone App on, Large Tenant Mode with groups found through Graph.
	do("phone app and LTM switches", chromedp.Click(chromedp.ID("phone-app-switch")), chromedp.Click(chromedp.ID("ltm-switch")))
	do("search standard group", chromedp.SendKeys(chromedp.ID("group-search"), "Teams"), chromedp.Click(chromedp.ID("group-search-go")),
		chromedp.Click(chromedp.CSS(`li[data-group="Teams Voice Users"] button[data-use="standard"]`)))
	if _, err := chromedp.Run(bc, chromedp.Evaluate[bool](`(document.getElementById('group-search').value = '') === ''`)); err != nil {
		t.Fatal(err)
	}
	do("search phone app group", chromedp.SendKeys(chromedp.ID("group-search"), "Phone"),
		chromedp.Click(chromedp.ID("group-search-go")),
		chromedp.Click(chromedp.CSS(`li[data-group="Phone App Users"] button[data-use="phone-app"]`)))
	shot("m365-groups")
	do("save", chromedp.Click(chromedp.ID("teams-save")), chromedp.WaitVisible(chromedp.ID("phone-app-authorize")))
	ts, err := f.svc.TeamsSettings(ctx, f.op, f.custA.ID)
	if err != nil || !ts.PhoneAppEnabled || !ts.LargeTenantMode || len(ts.StandardGroups) != 1 ||
		ts.StandardGroups[0].ID != "b0000001-0000-4000-8000-000000000001" || ts.PhoneAppGroup == nil ||
		ts.PhoneAppGroup.ID != "b0000001-0000-4000-8000-000000000003" {
		t.Fatalf("saved settings: %v %+v", err, ts)
	}

	// Authorize Phone App: its admin consent, then the admin's sign-in.
	do("authorize phone app", chromedp.Click(chromedp.ID("phone-app-authorize")), chromedp.WaitVisible(chromedp.ID("accept")),
		chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("user")))
	shot("m365-signin")
	do("sign in at Microsoft", chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("phone-app-authorized")))
	if s := text("#phone-app-authorized"); s == "Not yet" || s == "" {
		t.Fatalf("phone app authorized shows %q; page:\n%s", s, text("main"))
	}

	// Sync Now, with its live status, until it is up to date.
	do("sync now", chromedp.Click(chromedp.ID("sync-now")), chromedp.WaitVisible(chromedp.ID("last-job")))
	do("wait for the sync", chromedp.WaitVisible(chromedp.CSS(`#sync-status[data-state="succeeded"]`)))
	if s := text("#sync-status"); !strings.Contains(s, "15 seen") || !strings.Contains(s, "1 conflicts") {
		t.Fatalf("sync status: %q", s)
	}
	shot("m365-synced")

	// Users: icons by type, the conflict flagged.
	do("users", chromedp.Navigate(srv.URL+"/a/"+f.custA.ID+"/users?q=contoso.example"), chromedp.WaitVisible(chromedp.ID("users-table")))
	shot("m365-users")
	for upn, icon := range map[string]string{
		"alex.wilber@contoso.example":    "ti-standard",
		"grady.archie@contoso.example":   "ti-standard",
		"johanna.lorenz@contoso.example": "ti-phoneapp",
		"lee.gu@contoso.example":         "ti-phoneapp",
	} {
		if !exists(`tr[data-user="` + upn + `"] svg.` + icon) {
			t.Errorf("%s has no %s icon", upn, icon)
		}
	}
	if s := text(`tr[data-user="megan.bowen@contoso.example"]`); !strings.Contains(s, "Conflict") {
		t.Errorf("megan's row does not flag the conflict: %q", s)
	}
	if !exists(`tr[data-user="lynne.robbins@contoso.example"] [data-failed="teams_only"]`) {
		t.Errorf("lynne's row does not show the Teams only readiness failure")
	}

	// The sync log is one click away.
	do("history", chromedp.Navigate(teams), chromedp.Click(chromedp.ID("last-job")), chromedp.WaitVisible(chromedp.ID("job-log")))
	if s := text("#job-log"); !strings.Contains(s, "CONFLICT megan.bowen@contoso.example") || !strings.Contains(s, "DONE> seen=15") {
		t.Fatalf("job log:\n%s", s)
	}
	for _, m := range b.Console() {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
			t.Errorf("browser error: %+v", m)
		}
	}
}
