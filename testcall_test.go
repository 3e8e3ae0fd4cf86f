package pbx2teams_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// refusingCaller stands in for the B2BUA: it records who it was asked to
// call and answers as the B2BUA does when Microsoft refuses the call with
// 603, recording the refusal for readiness as the B2BUA's hook does.
type refusingCaller struct {
	svc     *pbx2teams.Service
	mu      sync.Mutex
	called  []string // UPNs
	err     error    // returned instead of a result when set
	release chan struct{}
	started chan struct{}
}

func (c *refusingCaller) TestCall(ctx context.Context, u *pbx2teams.User) (string, string, error) {
	c.mu.Lock()
	c.called = append(c.called, u.UPN)
	c.mu.Unlock()
	if c.started != nil {
		c.started <- struct{}{}
		<-c.release
	}
	if c.err != nil {
		return "", "", c.err
	}
	if err := c.svc.PhoneAppRejected(ctx, u, 603, "External access does not allow phoneapp.pbx2teams.example"); err != nil {
		return "", "", err
	}
	return "The test call was refused: 603 Declined.", "The tenant's external access blocks phoneapp.pbx2teams.example; allow it in the Teams admin center.", nil
}

func (c *refusingCaller) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.called...)
}

// phoneAppFixture gives customer A licences, Phone App turned on, users[0]
// as a Phone App user and users[1] as a standard user.
func phoneAppFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPBXUser, 5, nil)
	must(t, err)
	_, err = f.svc.SetLicence(ctx, f.partA, f.custA.ID, pbx2teams.SKUPhoneAppUser, 2, nil)
	must(t, err)
	on := true
	_, err = f.svc.SetTeamsOptions(ctx, f.adminA, f.custA.ID, pbx2teams.TeamsOptions{PhoneAppEnabled: &on})
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[0].ID, pbx2teams.UserConfig{Type: pbx2teams.ServicePhoneApp, SIPUsername: "201", Password: pw("sip-secret")})
	must(t, err)
	_, err = f.svc.ConfigureUser(ctx, f.adminA, f.custA.ID, f.users[1].ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard, SIPUsername: "202", Password: pw("sip-secret"), PhoneNumber: "+441632960202"})
	must(t, err)
	return f
}

func auditActions(t *testing.T, f *fixture, action string) []pbx2teams.AuditEntry {
	t.Helper()
	all, err := f.svc.Audit(context.Background(), f.op, f.custA.ID, 0, 500)
	must(t, err)
	var out []pbx2teams.AuditEntry
	for _, e := range all {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestTestCallRules(t *testing.T) {
	f := phoneAppFixture(t)
	ctx := context.Background()
	tc := &refusingCaller{svc: f.svc}
	alice, bob, carol := f.users[0], f.users[1], f.users[2]

	// A viewer of the customer may not ring users.
	viewer := viewerOf(t, f.svc, f.partA, f.custA.ID, "viewer@contoso.example")
	_, err := f.svc.TestCall(ctx, viewer, tc, f.custA.ID, alice.ID)
	wantCode(t, err, pbx2teams.EForbidden)
	// Another customer's admin does not even learn the user exists.
	_, err = f.svc.TestCall(ctx, f.adminB, tc, f.custA.ID, alice.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	_, err = f.svc.TestCall(ctx, f.adminB, tc, f.custB.ID, alice.ID)
	wantCode(t, err, pbx2teams.ENotFound)
	// A standard user is reached through Direct Routing: told to call from the PBX.
	_, err = f.svc.TestCall(ctx, f.adminA, tc, f.custA.ID, bob.ID)
	wantCode(t, err, pbx2teams.EInvalid)
	if m := pbx2teams.ErrorMessage(err); !strings.Contains(m, "Phone App users") || !strings.Contains(m, bob.UPN) || !strings.Contains(m, "standard user") || !strings.Contains(m, "from the PBX") {
		t.Errorf("standard user refusal: %q", m)
	}
	// An unconfigured user has no line to test.
	_, err = f.svc.TestCall(ctx, f.adminA, tc, f.custA.ID, carol.ID)
	wantCode(t, err, pbx2teams.EInvalid)
	if m := pbx2teams.ErrorMessage(err); !strings.Contains(m, carol.UPN) || !strings.Contains(m, "Phone App user") {
		t.Errorf("unconfigured user refusal: %q", m)
	}
	// A node without call control says so.
	_, err = f.svc.TestCall(ctx, f.adminA, nil, f.custA.ID, alice.ID)
	wantCode(t, err, pbx2teams.EUnavailable)
	if m := pbx2teams.ErrorMessage(err); !strings.Contains(m, "Calls are not enabled on this service") {
		t.Errorf("no caller: %q", m)
	}
	if got := tc.calls(); len(got) != 0 {
		t.Fatalf("refused requests rang %v", got)
	}
	if got := auditActions(t, f, "user.test_call"); len(got) != 0 {
		t.Fatalf("refused requests were audited as test calls: %+v", got)
	}

	// The customer's admin (and the partner above it) can.
	res, err := f.svc.TestCall(ctx, f.adminA, tc, f.custA.ID, alice.ID)
	must(t, err)
	if !strings.Contains(res.Result, "603") || !strings.Contains(res.Advice, "external access") || res.At.IsZero() {
		t.Fatalf("result %+v", res)
	}
	if _, err := f.svc.TestCall(ctx, f.partA, tc, f.custA.ID, alice.ID); err != nil {
		t.Fatalf("partner admin: %v", err)
	}
	if got := tc.calls(); len(got) != 2 || got[0] != alice.UPN {
		t.Fatalf("caller asked to ring %v", got)
	}
	audit := auditActions(t, f, "user.test_call")
	if len(audit) != 2 || audit[1].Target != alice.UPN || audit[1].ActorID != f.adminA.AdminID || !strings.Contains(audit[1].Detail, "603") {
		t.Fatalf("audit %+v", audit)
	}
	// The refusal the call control recorded now fails the user's external
	// access check, with the admin-center fix.
	_, r, err := f.svc.UserReadiness(ctx, f.adminA, f.custA.ID, alice.ID, pbx2teams.ReadinessInput{PhoneAppDomain: "phoneapp.pbx2teams.example"})
	must(t, err)
	var fed *pbx2teams.Check
	for i := range r.Checks {
		if r.Checks[i].Key == "external_access" {
			fed = &r.Checks[i]
		}
	}
	if fed == nil || fed.State != pbx2teams.CheckFail || !strings.Contains(fed.Detail, "603") || !strings.Contains(fed.Fix, "Teams admin center") {
		t.Fatalf("external access check after the 603: %+v", fed)
	}

	// A disabled user's line is suspended: nothing to ring.
	aliceOff := *alice
	aliceOff.Enabled = false
	must(t, f.svc.Store.UpsertDirectoryUser(ctx, &aliceOff))
	_, err = f.svc.TestCall(ctx, f.adminA, tc, f.custA.ID, alice.ID)
	wantCode(t, err, pbx2teams.EInvalid)
	if m := pbx2teams.ErrorMessage(err); !strings.Contains(m, "disabled") {
		t.Errorf("disabled user refusal: %q", m)
	}
}

func TestTestCallErrorsAndOverlap(t *testing.T) {
	f := phoneAppFixture(t)
	ctx := context.Background()
	alice := f.users[0]

	// The call control's own refusal reaches the admin unchanged, and the
	// attempt is audited.
	down := &refusingCaller{svc: f.svc, err: pbx2teams.Errorf(pbx2teams.EUnavailable, "Phone App calls are not set up on this service.")}
	_, err := f.svc.TestCall(ctx, f.adminA, down, f.custA.ID, alice.ID)
	wantCode(t, err, pbx2teams.EUnavailable)
	if audit := auditActions(t, f, "user.test_call"); len(audit) != 1 || !strings.Contains(audit[0].Detail, "not placed") {
		t.Fatalf("audit %+v", audit)
	}

	// While one test call rings a user, a second one is refused.
	slow := &refusingCaller{svc: f.svc, started: make(chan struct{}, 2), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.TestCall(ctx, f.adminA, slow, f.custA.ID, alice.ID)
		done <- err
	}()
	<-slow.started
	second := make(chan error, 1)
	go func() {
		_, err := f.svc.TestCall(ctx, f.partA, slow, f.custA.ID, alice.ID)
		second <- err
	}()
	select {
	case err = <-second:
	case <-time.After(10 * time.Second):
		close(slow.release)
		t.Fatal("a second test call to the same user was placed while the first rang")
	}
	wantCode(t, err, pbx2teams.EConflict)
	close(slow.release)
	must(t, <-done)
	if got := slow.calls(); len(got) != 1 {
		t.Fatalf("overlapping test calls rang %d times", len(got))
	}
}
