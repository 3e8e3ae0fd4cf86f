package portal_test

import (
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/portal"
)

const phoneAppDomain = "phoneapp.pbx2teams.example"

// declinedCaller stands in for the B2BUA when the tenant's external access
// blocks the Phone App's domain: it records whom it was asked to ring,
// records Microsoft's 603 for the user's readiness as the B2BUA's hook
// does, and reports the refusal in the B2BUA's words.
type declinedCaller struct {
	svc    *pbx2teams.Service
	mu     sync.Mutex
	called []string // UPNs
	// gate, if set, holds the call "ringing" until it is closed.
	gate chan struct{}
}

func (c *declinedCaller) TestCall(ctx context.Context, u *pbx2teams.User) (string, string, error) {
	c.mu.Lock()
	c.called = append(c.called, u.UPN)
	c.mu.Unlock()
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return "The test call rang " + u.UPN + " in Teams but was not answered.", "", nil
		}
	}
	if err := c.svc.PhoneAppRejected(ctx, u, 603, "External access does not allow "+phoneAppDomain); err != nil {
		return "", "", err
	}
	return "The test call was refused: 603 Declined.",
		"Microsoft declined the call because the tenant's external access does not allow " + phoneAppDomain + ". Allow it under Users > External access in the Teams admin center.", nil
}

func (c *declinedCaller) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.called...)
}

// phoneAppCustomer gives customer A its licences and Phone App, makes
// Alice a Phone App user and Bob a standard user, and serves the portal
// with opts plus a Microsoft 365 engine for readiness (production-like: no
// tenant facts, so external access is "not verifiable" until a call proves
// otherwise). Carol stays unconfigured.
func phoneAppCustomer(t *testing.T, opts func(svc *pbx2teams.Service) portal.Options) *fixture {
	t.Helper()
	f := newFixture(t, portal.Options{})
	ctx := context.Background()
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 10)
	f.licence(f.custA.ID, pbx2teams.SKUPhoneAppUser, 5)
	on := true
	_, err := f.svc.SetTeamsOptions(ctx, f.op, f.custA.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	must(t, err)
	pw := "sip-secret"
	_, err = f.svc.ConfigureUser(ctx, f.op, f.custA.ID, f.usersA[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServicePhoneApp, SIPUsername: "201", Password: &pw})
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.op, f.custA.ID, f.usersA[1].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard, SIPUsername: "202", Password: &pw, PhoneNumber: "+441632960202"})
	must(t, err)
	o := opts(f.svc)
	o.Sync = dirsync.New(dirsync.Config{Service: f.svc, PhoneAppDomain: phoneAppDomain, Log: slog.New(slog.DiscardHandler)})
	f.srv = httptest.NewServer(portal.New(f.svc, o))
	t.Cleanup(f.srv.Close)
	return f
}

// checkLine returns the readiness line of the check key on a user page.
func checkLine(body, key string) string {
	i := strings.Index(body, `data-check="`+key+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</li>")
	start := strings.LastIndex(body[:i], "<li")
	return body[start : i+j]
}

func TestUserTestCall(t *testing.T) {
	var caller *declinedCaller
	f := phoneAppCustomer(t, func(svc *pbx2teams.Service) portal.Options {
		caller = &declinedCaller{svc: svc}
		return portal.Options{TestCaller: caller}
	})
	alice, bob, carol := f.usersA[0], f.usersA[1], f.usersA[2]
	userPath := func(u *pbx2teams.User) string { return "/a/" + f.custA.ID + "/users/" + u.ID }

	admin := f.signedIn("admin@contoso.example")
	res, body := admin.get(userPath(alice))
	if res.StatusCode != 200 || !strings.Contains(body, `id="test-call-submit"`) || !strings.Contains(body, `action="`+userPath(alice)+`/test-call"`) {
		t.Fatalf("Alice's page has no test call button: %d", res.StatusCode)
	}
	if l := checkLine(body, "external_access"); !strings.Contains(l, "not_verifiable") {
		t.Fatalf("external access before the test call: %s", l)
	}
	if strings.Contains(body, `id="test-call-result"`) {
		t.Fatal("a result is shown before any test call")
	}
	// Standard and unconfigured users have no button.
	for _, u := range []*pbx2teams.User{bob, carol} {
		if _, body := admin.get(userPath(u)); strings.Contains(body, `id="test-call-submit"`) {
			t.Errorf("%s's page offers a test call", u.UPN)
		}
	}

	// A viewer sees no button, and a forged post is refused.
	viewer := f.signedIn("viewer@contoso.example")
	if _, body := viewer.get(userPath(alice)); strings.Contains(body, `id="test-call-submit"`) {
		t.Error("the viewer is offered a test call")
	}
	if res, body := viewer.post(userPath(alice)+"/test-call", url.Values{}); res.StatusCode != http.StatusForbidden || !strings.Contains(body, "can only view") {
		t.Errorf("viewer's test call: %d", res.StatusCode)
	}
	// Without the form's CSRF token: refused.
	if res, _ := admin.post(userPath(alice)+"/test-call", url.Values{"csrf": {"forged"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("test call without CSRF: %d", res.StatusCode)
	}
	// Another customer's admin cannot reach Alice.
	other := f.signedIn("admin@fabrikam.example")
	other.get("/a/" + f.custB.ID + "/users")
	if res, _ := other.post(userPath(alice)+"/test-call", url.Values{}); res.StatusCode != http.StatusNotFound {
		t.Errorf("other customer's test call: %d", res.StatusCode)
	}
	if res, _ := other.post("/a/"+f.custB.ID+"/users/"+alice.ID+"/test-call", url.Values{}); res.StatusCode != http.StatusNotFound {
		t.Errorf("other customer's test call through their own account: %d", res.StatusCode)
	}
	// A standard user is explained, not rung.
	admin.get(userPath(bob))
	res, body = admin.post(userPath(bob)+"/test-call", url.Values{})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), "is a standard user — call their Teams number from the PBX instead") {
		t.Errorf("standard user's test call: %d", res.StatusCode)
	}
	if got := caller.calls(); len(got) != 0 {
		t.Fatalf("refused requests rang %v", got)
	}

	// The admin's test call: the outcome, the advice, and the readiness
	// that the 603 has now failed, with the admin-center fix.
	admin.get(userPath(alice))
	res, body = admin.post(userPath(alice)+"/test-call", url.Values{})
	if res.StatusCode != 200 {
		t.Fatalf("test call: %d", res.StatusCode)
	}
	if got := caller.calls(); len(got) != 1 || got[0] != alice.UPN {
		t.Fatalf("caller rang %v", got)
	}
	text := html.UnescapeString(body)
	if !strings.Contains(body, `id="test-call-outcome"`) || !strings.Contains(text, "The test call was refused: 603 Declined.") ||
		!strings.Contains(text, "external access does not allow "+phoneAppDomain) {
		t.Fatal("the page does not show the test call's outcome and advice")
	}
	l := html.UnescapeString(checkLine(body, "external_access"))
	if !strings.Contains(l, `class="check fail"`) || !strings.Contains(l, "603") ||
		!strings.Contains(l, "External access does not allow "+phoneAppDomain) || !strings.Contains(l, pbx2teams.FixFederation(phoneAppDomain)) {
		t.Fatalf("external access after the 603: %s", l)
	}
	if !strings.Contains(body, `id="test-call-submit"`) {
		t.Error("no button to test again")
	}
	// The refusal stays on the user's page, and the call is in the audit log.
	if _, body := admin.get(userPath(alice)); !strings.Contains(checkLine(body, "external_access"), `class="check fail"`) {
		t.Error("the failed check is gone on reload")
	}
	audit, err := f.svc.Audit(context.Background(), f.op, f.custA.ID, 0, 100)
	must(t, err)
	found := false
	for _, e := range audit {
		if e.Action == "user.test_call" && e.Target == alice.UPN && strings.Contains(e.Detail, "603") && e.ActorName == "admin@contoso.example" {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry for the test call: %+v", audit)
	}
}

func TestUserTestCallWithoutCalls(t *testing.T) {
	f := phoneAppCustomer(t, func(*pbx2teams.Service) portal.Options { return portal.Options{} })
	alice := f.usersA[0]
	path := "/a/" + f.custA.ID + "/users/" + alice.ID
	admin := f.signedIn("admin@contoso.example")
	if _, body := admin.get(path); strings.Contains(body, `id="test-call-submit"`) {
		t.Fatal("a node without calls offers a test call")
	}
	res, body := admin.post(path+"/test-call", url.Values{})
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Calls are not enabled on this service") {
		t.Fatalf("test call without calls: %d", res.StatusCode)
	}
}
