package m365_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
)

func TestSSOValidator(t *testing.T) {
	e := newEnv(t, false)
	ctx := ctxT(t)
	aud := "api://localhost/" + msim.SandboxPhoneAppClientID
	v := &m365.SSOValidator{LoginURL: e.srv.URL, Audiences: []string{aud, msim.SandboxPhoneAppClientID},
		Tenants: func(tid string) bool { return tid == tenant }}
	tok, err := e.sim.MintUserToken(msim.UserTokenOptions{User: "johanna.lorenz@contoso.example", Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	u, err := v.Validate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if u.TenantID != tenant || u.UPN != "johanna.lorenz@contoso.example" || u.UserID != "a0000001-0000-4000-8000-000000000011" {
		t.Fatalf("user: %+v", u)
	}
	// v1-style tokens are accepted too.
	tok1, _ := e.sim.MintUserToken(msim.UserTokenOptions{User: "lee.gu@contoso.example", Audience: msim.SandboxPhoneAppClientID, Version: "1.0"})
	if u, err := v.Validate(ctx, tok1); err != nil || u.UPN != "lee.gu@contoso.example" {
		t.Fatalf("v1 token: %+v %v", u, err)
	}
	bad := map[string]string{}
	bad["other audience"], _ = e.sim.MintUserToken(msim.UserTokenOptions{User: "lee.gu@contoso.example", Audience: "api://elsewhere/x"})
	bad["other scope"], _ = e.sim.MintUserToken(msim.UserTokenOptions{User: "lee.gu@contoso.example", Audience: aud, Scopes: "User.Read"})
	bad["expired"], _ = e.sim.MintUserToken(msim.UserTokenOptions{User: "lee.gu@contoso.example", Audience: aud, Lifetime: time.Nanosecond})
	parts := strings.Split(tok, ".")
	bad["tampered"] = parts[0] + "." + strings.TrimSuffix(parts[1], parts[1][len(parts[1])-2:]) + "AA." + parts[2]
	bad["not a jwt"] = "abc"
	for name, b := range bad {
		vv := &m365.SSOValidator{LoginURL: v.LoginURL, Audiences: v.Audiences}
		if name == "expired" { // beyond the 5-minute clock skew allowance
			vv.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
		}
		if _, err := vv.Validate(ctx, b); pbx2teams.ErrorCode(err) != pbx2teams.EUnauthenticated {
			t.Errorf("%s: accepted or wrong error: %v", name, err)
		}
	}
	// Another tenant's token is refused when tenants are restricted.
	sid, _ := e.sim.Generate("Other", "other.example", msim.GenerateSpec{Users: 3})
	other, err := e.sim.MintUserToken(msim.UserTokenOptions{Tenant: sid, User: firstUser(t, e, sid), Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(ctx, other); err == nil || !strings.Contains(pbx2teams.ErrorMessage(err), "not connected") {
		t.Fatalf("other tenant: %v", err)
	}
}

func firstUser(t *testing.T, e *env, tid string) string {
	t.Helper()
	_ = e.sim.GrantConsent(tid, msim.SandboxSyncClientID)
	var upn string
	err := e.c.App(tid).ListUsers(ctxT(t), m365.UserQuery{Top: 1}, func(p []m365.User) error {
		if upn == "" && len(p) > 0 {
			upn = p[0].UserPrincipalName
		}
		return nil
	})
	if err != nil || upn == "" {
		t.Fatal(err)
	}
	return upn
}
