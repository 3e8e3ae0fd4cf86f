package m365_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
)

const tenant = msim.SandboxTenantID

type env struct {
	sim *msim.Sim
	srv *httptest.Server
	c   *m365.Client // the sync app
	pa  *m365.Client // the Phone App app
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// quiet keeps retry warnings out of test output.
var quiet = slog.New(slog.DiscardHandler)

func fastRetry() m365.RetryPolicy {
	return m365.RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		MaxWait: 10 * time.Second, AttemptTimeout: 5 * time.Second}
}

// newEnv starts the sandbox simulator on loopback; consent (admin consent
// of the sync app) is granted unless noConsent.
func newEnv(t *testing.T, noConsent bool, opts ...func(*msim.Options, *m365.Config)) *env {
	t.Helper()
	var so msim.Options
	cc := m365.Config{ClientID: msim.SandboxSyncClientID, ClientSecret: msim.SandboxSyncClientSecret, Retry: fastRetry()}
	for _, o := range opts {
		o(&so, &cc)
	}
	sim, err := msim.NewSandbox(so)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return newEnvOn(t, sim, srv, cc, noConsent)
}

func newEnvOn(t *testing.T, sim *msim.Sim, srv *httptest.Server, cc m365.Config, noConsent bool) *env {
	cc.LoginURL, cc.GraphURL = srv.URL, srv.URL
	if cc.Logger == nil {
		cc.Logger = quiet
	}
	pc := m365.Config{ClientID: msim.SandboxPhoneAppClientID, ClientSecret: msim.SandboxPhoneAppClientSecret,
		LoginURL: srv.URL, GraphURL: srv.URL, Retry: fastRetry(), Logger: quiet}
	if !noConsent {
		if err := sim.GrantConsent(tenant, msim.SandboxSyncClientID); err != nil {
			t.Fatal(err)
		}
	}
	return &env{sim: sim, srv: srv, c: m365.New(cc), pa: m365.New(pc)}
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// clickPage loads a consent or sign-in page, submits it with the button
// (accept or cancel) and extra fields, and returns the redirect target.
func clickPage(t *testing.T, base, pageURL, button string, fields url.Values) *url.URL {
	t.Helper()
	resp, err := noFollow.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`id="`+button+`"`)) {
		t.Fatalf("page %s: %d, no #%s button:\n%s", pageURL, resp.StatusCode, button, body)
	}
	m := formAction.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no form in page:\n%s", body)
	}
	form := url.Values{"action": {button}}
	for k, v := range fields {
		form[k] = v
	}
	resp, err = noFollow.PostForm(base+html.UnescapeString(string(m[1])), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("submit: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestAdminConsentFlow(t *testing.T) {
	e := newEnv(t, true)
	ctx := ctxT(t)

	// Before consent, tokens fail with a clear "connect" message.
	_, err := e.c.App(tenant).Organization(ctx)
	if !m365.NeedsConsent(err) || pbx2teams.ErrorCode(err) != pbx2teams.EForbidden ||
		!strings.Contains(pbx2teams.ErrorMessage(err), "Connect Microsoft 365") {
		t.Fatalf("before consent: %v", err)
	}
	if te, ok := m365.AsTokenError(err); !ok || te.AADSTS != m365.AADSTSMissingServicePrincipal {
		t.Fatalf("want AADSTS7000229, got %v", err)
	}

	redirect := "https://portal.example/m365/callback"
	// Cancel first: the callback reports it and nothing is granted.
	loc := clickPage(t, e.srv.URL, e.c.AdminConsentURL("", redirect, "st-1"), "cancel", nil)
	res, err := m365.ParseConsentCallback(loc.Query())
	if err == nil || res.State != "st-1" || res.Granted || !strings.Contains(pbx2teams.ErrorMessage(err), "cancelled") {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	if got := e.sim.ConsentState(tenant, msim.SandboxSyncClientID); got != "none" {
		t.Fatalf("consent after cancel = %s", got)
	}

	// Accept.
	loc = clickPage(t, e.srv.URL, e.c.AdminConsentURL("", redirect, "st-2"), "accept", nil)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("redirected to %s", got)
	}
	res, err = m365.ParseConsentCallback(loc.Query())
	if err != nil || !res.Granted || res.Tenant != tenant || res.State != "st-2" {
		t.Fatalf("accept: %+v %v", res, err)
	}
	org, err := e.c.VerifyConsent(ctx, res.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	if org.DisplayName != "Contoso" || org.ID != tenant || org.DefaultDomain() != "contoso.example" {
		t.Fatalf("organization: %+v", org)
	}
}

// clock is a settable clock for the client's token cache.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestTokenCachingAndRefresh(t *testing.T) {
	var clk clock
	e := newEnv(t, false, func(_ *msim.Options, c *m365.Config) { c.Now = clk.now })
	ctx := ctxT(t)
	g := e.c.App(tenant)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := g.Organization(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	key := tenant + " client_credentials"
	if n := e.sim.Stats().TokenRequests[key]; n != 1 {
		t.Fatalf("20 concurrent callers made %d token requests, want 1", n)
	}
	if n := e.sim.Stats().Requests["GET /v1.0/organization"]; n != 20 {
		t.Fatalf("organization requests = %d", n)
	}
	// Still fresh 50 minutes on (token lives 3599 s, renewed 5 min early).
	clk.advance(50 * time.Minute)
	if _, err := g.Organization(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().TokenRequests[key]; n != 1 {
		t.Fatalf("token requests after 50 min = %d, want 1", n)
	}
	// Within the renewal margin: one new token.
	clk.advance(6 * time.Minute)
	if _, err := g.Organization(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Organization(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().TokenRequests[key]; n != 2 {
		t.Fatalf("token requests after 56 min = %d, want 2", n)
	}
}

func TestRevokedConsent(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	g := e.c.App(tenant)
	if _, err := g.Organization(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.RevokeConsent(tenant, msim.SandboxSyncClientID); err != nil {
		t.Fatal(err)
	}
	// The cached token is refused by Graph; the client renews it and the
	// token endpoint says consent was revoked.
	_, err := g.Organization(ctx)
	if !m365.IsConsentRevoked(err) || !m365.NeedsConsent(err) {
		t.Fatalf("want revoked consent, got %v", err)
	}
	msg := pbx2teams.ErrorMessage(err)
	if !strings.Contains(msg, "revoked") || !strings.Contains(msg, "re-run Connect Microsoft 365") {
		t.Fatalf("message: %q", msg)
	}
	// Consent again: works again.
	if err := e.sim.GrantConsent(tenant, msim.SandboxSyncClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Organization(ctx); err != nil {
		t.Fatalf("after re-consent: %v", err)
	}
}

// arrivals records when requests to a path prefix reached the simulator.
type arrivals struct {
	mu     sync.Mutex
	prefix string
	at     []time.Time
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, a.prefix) {
			a.mu.Lock()
			a.at = append(a.at, time.Now())
			a.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	sim, err := msim.NewSandbox(msim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	arr := &arrivals{prefix: "/v1.0/organization"}
	srv := httptest.NewServer(arr.wrap(sim.Handler()))
	t.Cleanup(srv.Close)
	e := newEnvOn(t, sim, srv, m365.Config{ClientID: msim.SandboxSyncClientID, ClientSecret: msim.SandboxSyncClientSecret, Retry: fastRetry()}, false)
	ctx := ctxT(t)
	sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/organization", Count: 1, Status: 429, RetryAfter: 1})
	org, err := e.c.App(tenant).Organization(ctx)
	if err != nil || org.DisplayName != "Contoso" {
		t.Fatalf("after 429: %v %v", org, err)
	}
	if len(arr.at) != 2 {
		t.Fatalf("requests = %d, want 2 (429 then success)", len(arr.at))
	}
	// The retry came no sooner than Retry-After asked (1 s); the backoff
	// alone would have retried after ~10 ms.
	if gap := arr.at[1].Sub(arr.at[0]); gap < time.Second {
		t.Fatalf("retried after %v, before Retry-After: 1", gap)
	}
}

func TestServerErrorsRetriedThenBounded(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	g := e.c.App(tenant)
	// Two 500s, then success.
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/subscribedSkus", Count: 2, Status: 500})
	skus, err := g.SubscribedSkus(ctx)
	if err != nil || len(skus) == 0 {
		t.Fatalf("subscribedSkus after 500s: %v %v", skus, err)
	}
	if n := e.sim.Stats().Requests["GET /v1.0/subscribedSkus"]; n != 3 {
		t.Fatalf("subscribedSkus requests = %d, want 3", n)
	}
	// Unending 503s: gives up after MaxAttempts (4) with Graph's code.
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Count: 100, Status: 503})
	err = g.ListUsers(ctx, m365.UserQuery{}, func([]m365.User) error { return nil })
	ge, ok := m365.AsGraphError(err)
	if !ok || ge.Status != 503 || ge.Code != "serviceNotAvailable" || ge.Attempts != 4 {
		t.Fatalf("want 503 after 4 attempts, got %v", err)
	}
	if pbx2teams.ErrorCode(err) != pbx2teams.EUnavailable || !strings.Contains(pbx2teams.ErrorMessage(err), "after 4 attempts") {
		t.Fatalf("domain error: %v", err)
	}
	if n := e.sim.Stats().Requests["GET /v1.0/users"]; n != 4 {
		t.Fatalf("users requests = %d, want 4", n)
	}
	e.sim.ClearFaults()
	// A Retry-After beyond the wait budget fails at once, saying so.
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/organization", Count: 1, Status: 429, RetryAfter: 3600})
	_, err = g.Organization(ctx)
	if !m365.IsThrottled(err) || pbx2teams.ErrorCode(err) != pbx2teams.ERateLimited {
		t.Fatalf("want throttled, got %v", err)
	}
}

func TestTimeoutRetried(t *testing.T) {
	e := newEnv(t, false, func(_ *msim.Options, c *m365.Config) { c.Retry.AttemptTimeout = 300 * time.Millisecond })
	ctx := ctxT(t)
	g := e.c.App(tenant)
	if _, err := g.Organization(ctx); err != nil { // token first, outside the fault
		t.Fatal(err)
	}
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/organization", Count: 1, DelayMS: 2000})
	org, err := g.Organization(ctx)
	if err != nil || org.DisplayName != "Contoso" {
		t.Fatalf("after a slow answer: %v", err)
	}
	// The one before, the slow one (abandoned) and the retry.
	if st := e.sim.Stats(); st.Requests["GET /v1.0/organization"] != 3 || st.FaultsFired != 1 {
		t.Fatalf("organization requests %d, faults %d; want 3 and 1", st.Requests["GET /v1.0/organization"], st.FaultsFired)
	}
}

func genEnv(t *testing.T, users int, opts msim.Options) (*env, string) {
	t.Helper()
	sim, err := msim.NewSandbox(opts)
	if err != nil {
		t.Fatal(err)
	}
	tid, err := sim.Generate("Fabrikam", "fabrikam.example", msim.GenerateSpec{Users: users, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.GrantConsent(tid, msim.SandboxSyncClientID); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return newEnvOn(t, sim, srv, m365.Config{ClientID: msim.SandboxSyncClientID, ClientSecret: msim.SandboxSyncClientSecret, Retry: fastRetry()}, false), tid
}

func TestPagingEveryUserOnce(t *testing.T) {
	e, tid := genEnv(t, 2500, msim.Options{})
	ctx := ctxT(t)
	seen := map[string]int{}
	pages := 0
	err := e.c.App(tid).ListUsers(ctx, m365.UserQuery{}, func(p []m365.User) error {
		pages++
		for _, u := range p {
			seen[u.ID]++
			if u.UserPrincipalName == "" || u.AssignedPlans == nil && u.AssignedLicenses == nil && u.UserType == "" {
				return fmt.Errorf("user %s lacks selected fields", u.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2500 || pages != 3 {
		t.Fatalf("saw %d distinct users in %d pages, want 2500 in 3", len(seen), pages)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("user %s seen %d times", id, n)
		}
	}
	// $top above 999 is refused as Graph does.
	err = e.c.App(tid).ListUsers(ctx, m365.UserQuery{Top: 1000}, func([]m365.User) error { return nil })
	if ge, ok := m365.AsGraphError(err); !ok || ge.Status != 400 || pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
		t.Fatalf("$top=1000: %v", err)
	}
}

func TestMalformedPage(t *testing.T) {
	e, tid := genEnv(t, 2500, msim.Options{})
	ctx := ctxT(t)
	e.sim.InjectFault(msim.Fault{PathPrefix: "/v1.0/users", Skip: 1, Malformed: true})
	pages := 0
	err := e.c.App(tid).ListUsers(ctx, m365.UserQuery{}, func([]m365.User) error { pages++; return nil })
	if err == nil || pages != 1 {
		t.Fatalf("want failure on page 2 after 1 page, got %d pages, %v", pages, err)
	}
	msg := pbx2teams.ErrorMessage(err)
	if pbx2teams.ErrorCode(err) != pbx2teams.EUnavailable || !strings.Contains(msg, "malformed") || !strings.Contains(msg, "page 2") {
		t.Fatalf("message: %q", msg)
	}
}

func TestDeltaReturnsOnlyChanges(t *testing.T) {
	e := newEnv(t, false, func(o *msim.Options, _ *m365.Config) { o.DeltaPageSize = 5 })
	ctx := ctxT(t)
	g := e.c.App(tenant)
	all := map[string]m365.User{}
	pages := 0
	link, err := g.UsersDelta(ctx, "", nil, func(p []m365.User) error {
		pages++
		for _, u := range p {
			all[u.UserPrincipalName] = u
		}
		return nil
	})
	if err != nil || link == "" {
		t.Fatalf("initial round: %q %v", link, err)
	}
	if len(all) != 21 || pages != 5 {
		t.Fatalf("initial round: %d users in %d pages", len(all), pages)
	}
	lee := all["lee.gu@contoso.example"].ID

	name := "Alex Wilber-Smith"
	off := false
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{DisplayName: &name}))
	must(e.sim.UpdateUser(tenant, "megan.bowen@contoso.example", msim.UserPatch{AccountEnabled: &off}))
	must(e.sim.UpdateUser(tenant, "johanna.lorenz@contoso.example", msim.UserPatch{AddLicenses: []string{"MCOEV"}}))
	must(e.sim.DeleteUser(tenant, "lee.gu@contoso.example", false))
	newID, err := e.sim.AddUser(tenant, msim.UserSpec{UserPrincipalName: "nina.new@contoso.example", DisplayName: "Nina New", Licenses: []string{"SPE_E3"}})
	must(err)
	// Not Graph properties: must not show up in the delta.
	must(e.sim.SetCoexistence(tenant, "diego.siciliani@contoso.example", "SfBOnly"))
	must(e.sim.ChangeGroupMembers(tenant, "Phone App Users", []string{"henrietta.mueller@contoso.example"}, nil))

	got := map[string]m365.User{}
	link2, err := g.UsersDelta(ctx, link, nil, func(p []m365.User) error {
		for _, u := range p {
			got[u.ID] = u
		}
		return nil
	})
	must(err)
	if len(got) != 5 {
		t.Fatalf("delta returned %d users, want 5: %v", len(got), got)
	}
	if u := got[all["alex.wilber@contoso.example"].ID]; u.DisplayName != name {
		t.Fatalf("alex: %+v", u)
	}
	if u := got[all["megan.bowen@contoso.example"].ID]; u.Enabled() {
		t.Fatalf("megan still enabled: %+v", u)
	}
	if u := got[all["johanna.lorenz@contoso.example"].ID]; !m365.Classify(&u).HasTeamsPhone {
		t.Fatalf("johanna has no Teams Phone: %+v", u.AssignedPlans)
	}
	if u := got[lee]; u.Removed == nil || u.Removed.Reason != "changed" {
		t.Fatalf("lee not removed: %+v", u)
	}
	if u := got[newID]; u.UserPrincipalName != "nina.new@contoso.example" {
		t.Fatalf("new user: %+v", u)
	}
	// Nothing changed since: an empty round with a new link.
	n := 0
	link3, err := g.UsersDelta(ctx, link2, nil, func(p []m365.User) error { n += len(p); return nil })
	if err != nil || n != 0 || link3 == "" {
		t.Fatalf("quiet delta: %d users, %v", n, err)
	}
	// An expired token says so; the caller restarts with a full round.
	must(e.sim.ResetDelta(tenant))
	_, err = g.UsersDelta(ctx, link3, nil, func([]m365.User) error { return nil })
	if !m365.IsDeltaExpired(err) {
		t.Fatalf("want expired delta, got %v", err)
	}
}

func TestLatestDeltaLinkThenChanges(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	g := e.c.App(tenant)
	link, err := g.LatestDeltaLink(ctx, nil)
	if err != nil || link == "" {
		t.Fatal(link, err)
	}
	title := "Head of Sales"
	if err := e.sim.UpdateUser(tenant, "patti.fernandez@contoso.example", msim.UserPatch{JobTitle: &title}); err != nil {
		t.Fatal(err)
	}
	var got []m365.User
	if _, err := g.UsersDelta(ctx, link, nil, func(p []m365.User) error { got = append(got, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].JobTitle != title {
		t.Fatalf("got %+v", got)
	}
}

func TestGroupsAndTransitiveMembers(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	g := e.c.App(tenant)
	groups, err := g.SearchGroups(ctx, "voice", 10)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, gr := range groups {
		names[gr.DisplayName] = gr.ID
	}
	if len(groups) != 2 || names["Teams Voice Users"] == "" || names["Sales Voice"] == "" {
		t.Fatalf("search voice: %+v", groups)
	}
	voice := names["Teams Voice Users"]
	users := map[string]int{}
	nested := 0
	err = g.TransitiveMembers(ctx, voice, nil, func(p []m365.DirectoryObject) error {
		for _, m := range p {
			switch {
			case m.IsUser():
				users[m.UserPrincipalName]++
			case m.IsGroup():
				nested++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 8 direct + Diego and Grady through Sales Voice; Alex is in both, once.
	if len(users) != 10 || nested != 1 || users["diego.siciliani@contoso.example"] != 1 || users["alex.wilber@contoso.example"] != 1 {
		t.Fatalf("transitive members: %v, nested groups %d", users, nested)
	}
	for u, n := range users {
		if n != 1 {
			t.Fatalf("%s listed %d times", u, n)
		}
	}
	// Membership change in the nested group shows through.
	if err := e.sim.ChangeGroupMembers(tenant, "Sales Voice", []string{"henrietta.mueller@contoso.example"}, []string{"grady.archie@contoso.example"}); err != nil {
		t.Fatal(err)
	}
	var only []string
	err = g.TransitiveMemberUsers(ctx, voice, []string{"id", "userPrincipalName"}, func(p []m365.User) error {
		for _, u := range p {
			only = append(only, u.UserPrincipalName)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(only, ",")
	if len(only) != 10 || !strings.Contains(joined, "henrietta.mueller") || strings.Contains(joined, "grady.archie") {
		t.Fatalf("users only: %v", only)
	}
}

func TestTransitiveMembersPagedInLargeTenant(t *testing.T) {
	e, tid := genEnv(t, 3000, msim.Options{})
	ctx := ctxT(t)
	g := e.c.App(tid)
	groups, err := g.SearchGroups(ctx, "Teams Voice Users", 10)
	if err != nil {
		t.Fatal(err)
	}
	var voice string
	for _, gr := range groups {
		if gr.DisplayName == "Teams Voice Users" {
			voice = gr.ID
		}
	}
	seen := map[string]bool{}
	pages := 0
	err = g.TransitiveMemberUsers(ctx, voice, []string{"id"}, func(p []m365.User) error {
		pages++
		for _, u := range p {
			if seen[u.ID] {
				return fmt.Errorf("user %s twice", u.ID)
			}
			seen[u.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// About 60 % of 3,000 users hold Teams Phone and sit in the nested site groups.
	if len(seen) < 1500 || len(seen) > 2100 || pages < 2 {
		t.Fatalf("%d voice users in %d pages", len(seen), pages)
	}
}

// appPackage builds a Teams app package with the given manifest id and
// webApplicationInfo.id.
func appPackage(t *testing.T, manifestID, aadAppID string, mutate func(map[string]any)) []byte {
	t.Helper()
	m := map[string]any{
		"$schema":         "https://developer.microsoft.com/json-schemas/teams/v1.17/MicrosoftTeams.schema.json",
		"manifestVersion": "1.17", "version": "1.0.0", "id": manifestID,
		"developer": map[string]any{"name": "pbx2teams", "websiteUrl": "https://pbx.example", "privacyUrl": "https://pbx.example/privacy",
			"termsOfUseUrl": "https://pbx.example/terms"},
		"name":               map[string]any{"short": "Phone", "full": "PBX Phone for Microsoft Teams"},
		"description":        map[string]any{"short": "Call through your PBX", "full": "Dial pad and calls through the company PBX."},
		"icons":              map[string]any{"color": "color.png", "outline": "outline.png"},
		"accentColor":        "#4464EE",
		"staticTabs":         []any{map[string]any{"entityId": "phone", "name": "Phone", "contentUrl": "https://pbx.example/tab", "scopes": []string{"personal"}}},
		"webApplicationInfo": map[string]any{"id": aadAppID, "resource": "api://pbx.example/" + aadAppID},
	}
	if mutate != nil {
		mutate(m)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("manifest.json")
	_ = json.NewEncoder(w).Encode(m)
	for _, n := range []string{"color.png", "outline.png"} {
		w, _ := zw.Create(n)
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// signIn runs the authorization code flow with PKCE for user on the Phone
// App registration and returns the delegated token.
func signIn(t *testing.T, e *env, user string, scopes []string) *m365.DelegatedToken {
	t.Helper()
	redirect := "https://portal.example/m365/authorized"
	pk := m365.NewPKCE()
	u := e.pa.AuthCodeURL(m365.AuthCodeRequest{Tenant: tenant, RedirectURI: redirect, State: "st-a", Scopes: scopes, PKCE: &pk})
	loc := clickPage(t, e.srv.URL, u, "accept", url.Values{"user": {user}})
	code, state, err := m365.ParseAuthCodeCallback(loc.Query())
	if err != nil || state != "st-a" {
		t.Fatalf("callback: %v %q", err, state)
	}
	// The code is bound to the verifier: a wrong one is refused.
	if _, err := e.pa.RedeemCode(ctxT(t), tenant, code, redirect, m365.NewPKCE().Verifier, scopes); err == nil {
		t.Fatal("code redeemed with a wrong PKCE verifier")
	}
	loc = clickPage(t, e.srv.URL, u, "accept", url.Values{"user": {user}})
	code, _, _ = m365.ParseAuthCodeCallback(loc.Query())
	tok, err := e.pa.RedeemCode(ctxT(t), tenant, code, redirect, pk.Verifier, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if tok.UPN != user || tok.TenantID != tenant || tok.RefreshToken == "" {
		t.Fatalf("delegated token: %+v", tok)
	}
	return tok
}

func TestAppCatalogPublishNeedsDelegatedToken(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	manifestID := "7d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	pkg := appPackage(t, manifestID, msim.SandboxPhoneAppClientID, nil)

	// App-only: refused, as Graph refuses application permissions here.
	_, err := e.c.App(tenant).PublishTeamsApp(ctx, pkg)
	if ge, ok := m365.AsGraphError(err); !ok || ge.Status != 403 || pbx2teams.ErrorCode(err) != pbx2teams.EForbidden {
		t.Fatalf("app-only publish: %v", err)
	}

	tok := signIn(t, e, "adele.vance@contoso.example", []string{"https://graph.microsoft.com/AppCatalog.ReadWrite.All"})
	dg := e.pa.Delegated(tok)
	app, err := dg.PublishTeamsApp(ctx, pkg)
	if err != nil {
		t.Fatal(err)
	}
	if app.ExternalID != manifestID || app.DistributionMethod != "organization" || app.ID == "" {
		t.Fatalf("published: %+v", app)
	}
	// The sync app finds it by manifest id.
	found, err := e.c.App(tenant).FindTeamsApp(ctx, manifestID)
	if err != nil || found == nil || found.ID != app.ID || found.Latest() == nil || found.Latest().AzureADAppID != msim.SandboxPhoneAppClientID {
		t.Fatalf("find: %+v %v", found, err)
	}
	// A second publish of the same manifest id conflicts.
	if _, err := dg.PublishTeamsApp(ctx, pkg); pbx2teams.ErrorCode(err) != pbx2teams.EConflict {
		t.Fatalf("republish: %v", err)
	}
	// A broken manifest is refused with the field named.
	bad := appPackage(t, "8d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f", msim.SandboxPhoneAppClientID, func(m map[string]any) { delete(m, "name") })
	_, err = dg.PublishTeamsApp(ctx, bad)
	if pbx2teams.ErrorCode(err) != pbx2teams.EInvalid || !strings.Contains(pbx2teams.ErrorMessage(err), "name") {
		t.Fatalf("bad manifest: %v", err)
	}
	// A non-admin cannot publish directly.
	lee := signIn(t, e, "lee.gu@contoso.example", []string{"https://graph.microsoft.com/AppCatalog.Submit"})
	other := appPackage(t, "9d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f", msim.SandboxPhoneAppClientID, nil)
	if _, err := e.pa.Delegated(lee).PublishTeamsApp(ctx, other); pbx2teams.ErrorCode(err) != pbx2teams.EForbidden {
		t.Fatalf("non-admin publish: %v", err)
	}
}

func TestInstallAndUninstallForUser(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	tok := signIn(t, e, "adele.vance@contoso.example", []string{"https://graph.microsoft.com/AppCatalog.ReadWrite.All"})
	app, err := e.pa.Delegated(tok).PublishTeamsApp(ctx, appPackage(t, "7d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f", msim.SandboxPhoneAppClientID, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The Phone App registration installs itself (ReadWriteSelfForUser.All).
	if err := e.sim.GrantConsent(tenant, msim.SandboxPhoneAppClientID); err != nil {
		t.Fatal(err)
	}
	g := e.pa.App(tenant)
	user := "johanna.lorenz@contoso.example"
	ok, err := g.InstallApp(ctx, user, app.ID)
	if err != nil || !ok {
		t.Fatalf("install: %v %v", ok, err)
	}
	ok, err = g.InstallApp(ctx, user, app.ID)
	if err != nil || ok {
		t.Fatalf("second install: %v %v (want already installed)", ok, err)
	}
	st, err := e.sim.UserState(tenant, user)
	if err != nil || len(st.InstalledApps) != 1 || st.InstalledApps[0].ExternalID != app.ExternalID {
		t.Fatalf("sim state: %+v %v", st, err)
	}
	in, err := g.FindInstallation(ctx, user, app.ID)
	if err != nil || in == nil || in.TeamsApp == nil || in.TeamsApp.ID != app.ID {
		t.Fatalf("find installation: %+v %v", in, err)
	}
	removed, err := g.UninstallCatalogApp(ctx, user, app.ID)
	if err != nil || !removed {
		t.Fatalf("uninstall: %v %v", removed, err)
	}
	if st, _ := e.sim.UserState(tenant, user); len(st.InstalledApps) != 0 {
		t.Fatalf("still installed: %+v", st.InstalledApps)
	}
	if in, err := g.FindInstallation(ctx, user, app.ID); err != nil || in != nil {
		t.Fatalf("after uninstall: %+v %v", in, err)
	}
	// "Self" permission: another org app (not ours) may not be installed.
	foreign, err := e.pa.Delegated(tok).PublishTeamsApp(ctx, appPackage(t, "6d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "11111111-2222-4333-8444-555555555555", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.InstallApp(ctx, user, foreign.ID); pbx2teams.ErrorCode(err) != pbx2teams.EForbidden {
		t.Fatalf("install of a foreign app with Self permission: %v", err)
	}
}

func TestContactsDelegated(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	tok := signIn(t, e, "adele.vance@contoso.example", []string{"https://graph.microsoft.com/Contacts.Read"})
	var names []string
	err := e.pa.Delegated(tok).Contacts(ctx, "", func(p []m365.Contact) error {
		for _, c := range p {
			names = append(names, c.DisplayName)
		}
		return nil
	})
	if err != nil || strings.Join(names, ",") != "Fabrikam Reception,Dr Priya Shah" {
		t.Fatalf("contacts: %v %v", names, err)
	}
	// Without Contacts.Read the same call is refused.
	tok2 := signIn(t, e, "adele.vance@contoso.example", []string{"https://graph.microsoft.com/User.Read"})
	err = e.pa.Delegated(tok2).Contacts(ctx, "", func([]m365.Contact) error { return nil })
	if pbx2teams.ErrorCode(err) != pbx2teams.EForbidden {
		t.Fatalf("contacts without scope: %v", err)
	}
}

func TestClassifySandboxUsers(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	got := map[string]m365.Classification{}
	err := e.c.App(tenant).ListUsers(ctx, m365.UserQuery{}, func(p []m365.User) error {
		for i := range p {
			local, _, _ := strings.Cut(p[i].UserPrincipalName, "@")
			got[local] = m365.Classify(&p[i])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	person := pbx2teams.KindPerson
	want := map[string]m365.Classification{
		"adele.vance":       {Kind: person, HasTeams: true, HasTeamsPhone: true},
		"alex.wilber":       {Kind: person, HasTeams: true, HasTeamsPhone: true},
		"isaiah.langer":     {Kind: person, HasTeams: true, HasTeamsPhone: true, HasCallingPlan: true},
		"pradeep.gupta":     {Kind: person, HasTeams: true},
		"lee.gu":            {Kind: person, HasTeams: true},
		"boardroom":         {Kind: pbx2teams.KindMeetingRoom, HasTeams: true, HasTeamsPhone: true},
		"reception-aa":      {Kind: pbx2teams.KindResourceAccount},
		"sales-cq":          {Kind: pbx2teams.KindResourceAccount},
		"helpdesk-bot":      {Kind: pbx2teams.KindBot},
		"christie.cline":    {Kind: person, HasTeams: true, HasTeamsPhone: true},
		"henrietta.mueller": {Kind: person, HasTeams: true},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
	// A licence in grace period (Warning) still counts; Suspended does not.
	for status, phone := range map[string]bool{"Warning": true, "Suspended": false} {
		s := status
		if err := e.sim.UpdateUser(tenant, "alex.wilber@contoso.example", msim.UserPatch{LicenseStatus: &s}); err != nil {
			t.Fatal(err)
		}
		u, err := e.c.App(tenant).GetUser(ctx, "alex.wilber@contoso.example", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c := m365.Classify(u); c.HasTeamsPhone != phone {
			t.Errorf("status %s: HasTeamsPhone=%v", status, c.HasTeamsPhone)
		}
	}
	// Removing Teams Phone leaves the plan as Deleted: no longer usable.
	if err := e.sim.UpdateUser(tenant, "christie.cline@contoso.example", msim.UserPatch{RemoveLicenses: []string{"MCOEV"}}); err != nil {
		t.Fatal(err)
	}
	u, _ := e.c.App(tenant).GetUser(ctx, "christie.cline@contoso.example", nil)
	deleted := false
	for _, p := range u.AssignedPlans {
		if p.ServicePlanID == m365.PlanTeamsPhone && p.CapabilityStatus == "Deleted" {
			deleted = true
		}
	}
	if c := m365.Classify(u); c.HasTeamsPhone || !deleted {
		t.Fatalf("after removing MCOEV: %+v plans %+v", c, u.AssignedPlans)
	}
}

func TestDiagnosticLogging(t *testing.T) {
	e := newEnv(t, false)
	var buf bytes.Buffer
	var mu sync.Mutex
	l := slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, nil))
	ctx := m365.WithDiagnostics(ctxT(t), l)
	if _, err := e.c.App(tenant).SubscribedSkus(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"graph request", "method=GET", "path=/v1.0/subscribedSkus", "status=200", "duration_ms=", "login request"} {
		if !strings.Contains(out, want) {
			t.Fatalf("diagnostic log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, msim.SandboxSyncClientSecret) {
		t.Fatal("secret in the log")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestStopEarlyFromCallback(t *testing.T) {
	e, tid := genEnv(t, 2500, msim.Options{})
	ctx := ctxT(t)
	stop := errors.New("enough")
	pages := 0
	err := e.c.App(tid).ListUsers(ctx, m365.UserQuery{Top: 100}, func([]m365.User) error {
		pages++
		if pages == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || pages != 2 {
		t.Fatalf("err %v after %d pages", err, pages)
	}
	// Pages 1 and 2, and at most page 3 fetched ahead; nothing after.
	if n := e.sim.Stats().Requests["GET /v1.0/users"]; n < 2 || n > 3 {
		t.Fatalf("requests after stopping = %d", n)
	}
}
