package pbx2teams

import (
	"strings"
	"testing"
	"time"
)

type facts struct {
	mode    string
	allowed bool
}

func (f facts) Coexistence(string, string) (string, error)    { return f.mode, nil }
func (f facts) FederationAllows(string, string) (bool, error) { return f.allowed, nil }

func failedKeys(r Readiness) string {
	var ks []string
	for _, c := range r.Failed() {
		ks = append(ks, c.Key)
	}
	return strings.Join(ks, ",")
}

func TestUserReadiness(t *testing.T) {
	now := time.Now()
	ts := &TeamsSettings{TenantID: "t", ConsentedAt: &now, PhoneAppEnabled: true, PhoneAppAuthorizedAt: &now}
	in := ReadinessInput{TenantID: "t", PhoneAppDomain: "app.example", Facts: facts{"TeamsOnly", true}, Installed: true}
	app := &User{Kind: KindPerson, Enabled: true, Type: ServicePhoneApp}
	if r := UserReadiness(app, ts, in); !r.Ready {
		t.Fatalf("ready Phone App user: %+v", r)
	}
	bad := in
	bad.Facts, bad.Installed = facts{"Islands", false}, false
	withPhone := *app
	withPhone.HasTeamsPhone, withPhone.Conflict = true, ConflictBothGroups
	r := UserReadiness(&withPhone, ts, bad)
	if got := failedKeys(r); got != "conflict,licence,teams_only,external_access,installed" {
		t.Fatalf("failed checks %q", got)
	}
	for _, c := range r.Failed() {
		if c.Fix == "" {
			t.Errorf("%s has no fix", c.Key)
		}
	}
	// Production: coexistence and federation cannot be verified from Graph.
	prod := in
	prod.Facts = nil
	r = UserReadiness(app, ts, prod)
	n := 0
	for _, c := range r.Checks {
		if c.State == CheckNotVerifiable {
			n++
			if !strings.Contains(c.Detail, "Not verifiable from Microsoft Graph") || !strings.Contains(c.Fix, "Teams admin center") {
				t.Errorf("unverifiable check %+v", c)
			}
		}
	}
	if n != 2 || !r.Ready {
		t.Fatalf("production readiness %+v", r)
	}
	std := &User{Kind: KindPerson, Enabled: true, Type: ServiceStandard}
	if got := failedKeys(UserReadiness(std, ts, in)); got != "licence" {
		t.Fatalf("standard without Teams Phone: %q", got)
	}
	room := &User{Kind: KindMeetingRoom, Enabled: true}
	if r := UserReadiness(room, ts, in); !r.Ready || r.Checks[0].State != CheckNotApplicable {
		t.Fatalf("room: %+v", r)
	}
}

func TestTenantReadiness(t *testing.T) {
	r := TenantReadiness(&TeamsSettings{ConsentError: "The administrator cancelled."}, ReadinessInput{})
	if r.Ready || !strings.Contains(r.Checks[0].Fix, "cancelled") {
		t.Fatalf("not connected: %+v", r)
	}
	now := time.Now()
	ts := &TeamsSettings{TenantID: "t", ConsentedAt: &now, PhoneAppEnabled: true, LargeTenantMode: true}
	r = TenantReadiness(ts, ReadinessInput{PhoneAppDomain: "app.example", Facts: facts{"TeamsOnly", false}})
	if got := failedKeys(r); got != "phone_app_authorized,external_access,phone_app_group" {
		t.Fatalf("failed %q", got)
	}
}

// A refused call proves what Graph cannot show: a 603 from external access
// fails that check (with the admin-center fix), a 480 "not in TeamsOnly
// mode" fails coexistence, and a plain decline by the user proves nothing.
func TestReadinessFromRefusedCalls(t *testing.T) {
	now := time.Now()
	ts := &TeamsSettings{TenantID: "t", ConsentedAt: &now, PhoneAppEnabled: true, PhoneAppAuthorizedAt: &now}
	app := &User{Kind: KindPerson, Enabled: true, Type: ServicePhoneApp}
	in := ReadinessInput{TenantID: "t", PhoneAppDomain: "app.example", Installed: true} // production: no facts
	in.Rejection = &CallRejection{At: now, Status: 603, Warning: `External access does not allow app.example`}
	r := UserReadiness(app, ts, in)
	if got := failedKeys(r); got != "external_access" {
		t.Fatalf("after a 603 from external access: failed %q", got)
	}
	c := r.Failed()[0]
	if !strings.Contains(c.Detail, "603") || !strings.Contains(c.Fix, "app.example") {
		t.Fatalf("check %+v", c)
	}
	in.Rejection = &CallRejection{At: now, Status: 480, Warning: "User is not in TeamsOnly mode"}
	if got := failedKeys(UserReadiness(app, ts, in)); got != "teams_only" {
		t.Fatalf("after a 480: failed %q", got)
	}
	in.Rejection = &CallRejection{At: now, Status: 603}
	if r := UserReadiness(app, ts, in); !r.Ready {
		t.Fatalf("a user's own decline failed readiness: %+v", r.Failed())
	}
}
