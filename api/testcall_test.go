package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// recordingCaller stands in for the B2BUA: it records whom it was asked to
// ring, and how long it was given, and answers as the B2BUA does when
// Microsoft refuses the call with 603.
type recordingCaller struct {
	mu        sync.Mutex
	called    []string        // UPNs
	deadlines []time.Duration // time left on the context when called; -1 for none
}

func (c *recordingCaller) TestCall(ctx context.Context, u *pbx2teams.User) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.called = append(c.called, u.UPN)
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	c.deadlines = append(c.deadlines, left)
	return "The test call was refused: 603 Declined.",
		"Microsoft declined the call: the tenant's external access blocks phoneapp.pbx2teams.example. Allow it in the Teams admin center.", nil
}

func (c *recordingCaller) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.called...)
}

// makeAlicePhoneApp gives A1 the Phone App licence, turns Phone App on and
// configures alice as a Phone App user, as her admin would.
func (f *fixture) makeAlicePhoneApp() {
	f.t.Helper()
	ctx := f.ctx
	if _, err := f.svc.SetLicence(ctx, f.operator, f.a1.ID, pbx2teams.SKUPhoneAppUser, 5, nil); err != nil {
		f.t.Fatal(err)
	}
	on := true
	if _, err := f.svc.SetTeamsOptions(ctx, f.operator, f.a1.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on}); err != nil {
		f.t.Fatal(err)
	}
	pw := "pw-alice"
	if _, err := f.svc.ConfigureUser(ctx, f.operator, f.a1.ID, f.alice.ID,
		pbx2teams.UserConfig{Type: pbx2teams.ServicePhoneApp, SIPUsername: "1001", Password: &pw}); err != nil {
		f.t.Fatal(err)
	}
}

func TestTestCallEndpoint(t *testing.T) {
	f := newFixture(t)
	f.makeAlicePhoneApp()
	pw := "pw-bob"
	if _, err := f.svc.ConfigureUser(f.ctx, f.operator, f.a1.ID, f.bob.ID,
		pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard, SIPUsername: "1002", Password: &pw, PhoneNumber: "+441632960102"}); err != nil {
		t.Fatal(err)
	}
	base := Prefix + "/accounts/" + f.a1.ID + "/users/"

	// A standard user is refused with a message saying what to do instead.
	r := f.a1Key.call("POST", base+f.bob.ID+"/test-call", nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("standard user: %s", r)
	}
	if eb := r.err(t); eb.Code != pbx2teams.EInvalid || !strings.Contains(eb.Message, "standard user") || !strings.Contains(eb.Message, f.bob.UPN) {
		t.Fatalf("standard user: %+v", eb)
	}
	// A meeting room, an unknown user.
	if r := f.a1Key.call("POST", base+f.room.ID+"/test-call", nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("meeting room: %s", r)
	}
	if r := f.a1Key.call("POST", base+"usr_nobody/test-call", nil); r.status != http.StatusNotFound || r.err(t).Code != pbx2teams.ENotFound {
		t.Fatalf("unknown user: %s", r)
	}
	// A body, if any, is an empty JSON object.
	if r := f.a1Key.raw("POST", base+f.alice.ID+"/test-call", "text/plain", []byte("ring")); r.status != http.StatusUnsupportedMediaType {
		t.Fatalf("text body: %s", r)
	}
	if r := f.a1Key.call("POST", base+f.alice.ID+"/test-call", m{"number": "+441632960999"}); r.status != http.StatusBadRequest {
		t.Fatalf("unknown field: %s", r)
	}
	// A viewer may not ring users.
	if r := f.a1ViewerKey.call("POST", base+f.alice.ID+"/test-call", nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer: %s", r)
	}
	if got := f.caller.calls(); len(got) != 0 {
		t.Fatalf("refused requests rang %v", got)
	}

	// The customer's admin (session, with CSRF) rings alice and reads the outcome.
	var res pbx2teams.TestCallResult
	f.a1Admin.ok(200, "POST", base+f.alice.ID+"/test-call", nil, &res)
	if !strings.Contains(res.Result, "603") || !strings.Contains(res.Advice, "external access") || res.At.IsZero() {
		t.Fatalf("result %+v", res)
	}
	// With an API key and an empty object as the body, too.
	r = f.a1Key.ok(200, "POST", base+f.alice.ID+"/test-call", m{}, nil)
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil || raw["result"] == nil || raw["advice"] == nil || raw["at"] == nil {
		t.Fatalf("body %s", r.body)
	}
	got := f.caller.calls()
	if len(got) != 2 || got[0] != f.alice.UPN || got[1] != f.alice.UPN {
		t.Fatalf("caller rang %v", got)
	}
	// The call is bounded: the caller was given a deadline, at most the
	// default bound away.
	for _, d := range f.caller.deadlines {
		if d <= 0 || d > DefaultTestCallTimeout {
			t.Fatalf("test call context had %v left; want a deadline within %v", d, DefaultTestCallTimeout)
		}
	}
	// It is in the audit log, with the actor and the outcome.
	var page auditPage
	f.a1Key.ok(200, "GET", Prefix+"/accounts/"+f.a1.ID+"/audit", nil, &page)
	n := 0
	for _, e := range page.Entries {
		if e.Action == "user.test_call" {
			n++
			if e.Target != f.alice.UPN || !strings.Contains(e.Detail, "603") {
				t.Errorf("audit entry %+v", e)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d test call audit entries, want 2", n)
	}
}

func TestTestCallWithoutCalls(t *testing.T) {
	f := newFixtureOn(t, newEnv(t, Options{})) // no TestCaller: calls not enabled on this node
	f.makeAlicePhoneApp()
	r := f.a1Key.call("POST", Prefix+"/accounts/"+f.a1.ID+"/users/"+f.alice.ID+"/test-call", nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("without calls: %s", r)
	}
	if eb := r.err(t); eb.Code != pbx2teams.EUnavailable || !strings.Contains(eb.Message, "Calls are not enabled on this service") {
		t.Fatalf("without calls: %+v", eb)
	}
}
