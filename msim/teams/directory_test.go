package teams_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
)

// graphSim is a Graph simulator with two tenants: Fabrikam (external
// access open; Carol TeamsOnly with a number, Dave in Islands, Erin
// disabled) and Tailspin, which blocks the Phone App domain.
func graphSim(t *testing.T) (*msim.Sim, string) {
	t.Helper()
	g := msim.New(msim.Options{})
	off := false
	fab, err := g.AddTenant(msim.TenantSpec{DisplayName: "Fabrikam", Domains: []msim.DomainSpec{{Name: "fabrikam.example"}},
		Users: []msim.UserSpec{
			{UserPrincipalName: "carol@fabrikam.example", DisplayName: "Carol", BusinessPhones: []string{"+44 20 7946 0300"}},
			{UserPrincipalName: "dave@fabrikam.example", DisplayName: "Dave", CoexistenceMode: "Islands"},
			{UserPrincipalName: "erin@fabrikam.example", DisplayName: "Erin", AccountEnabled: &off},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.AddTenant(msim.TenantSpec{DisplayName: "Tailspin", Domains: []msim.DomainSpec{{Name: "tailspin.example"}},
		Federation: &msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true, BlockedDomains: []string{teamstest.PhoneAppDomain}},
		Users:      []msim.UserSpec{{UserPrincipalName: "frank@tailspin.example", DisplayName: "Frank"}}}); err != nil {
		t.Fatal(err)
	}
	return g, fab
}

func TestGraphDirectoryAtTheEdge(t *testing.T) {
	g, fab := graphSim(t)
	env := teamstest.StartFederation(t, teamstest.FederationOptions{Sim: func(c *simteams.Config) {
		c.Directory = simteams.GraphDirectory(g)
		o := simteams.SandboxUserOptions()
		o.AnswerAfter = 100 * time.Millisecond
		c.DirectoryUserOptions = &o
	}})
	p := newPhoneApp(t, env, env.Certificate)
	ctx := testCtx(t)
	edge := env.Edge.Name

	refused := func(upn string, status int, warn string) {
		t.Helper()
		res := p.invite(ctx, upn, inviteOpts{body: newMedia(t).offer("RTP/SAVP")}).wait(ctx)
		if res.StatusCode != status {
			t.Fatalf("%s: got %s (Warning %q), want %d", upn, res.StartLine(), warning(res), status)
		}
		if warn != "" && warning(res) != fmt.Sprintf("399 %s %q", edge, warn) {
			t.Errorf("%s: Warning %q, want %q", upn, warning(res), warn)
		}
	}
	refused("nobody@fabrikam.example", 404, "")
	refused("dave@fabrikam.example", 480, "User is not in TeamsOnly mode")
	refused("erin@fabrikam.example", 480, "User account is disabled")
	refused("frank@tailspin.example", 603, "External access does not allow "+env.Domain)

	// Carol is TeamsOnly: the call rings, answers by itself and echoes.
	connect := func(upn string) (*call, *media, *simteams.Call) {
		t.Helper()
		m := newMedia(t)
		c := p.invite(ctx, upn, inviteOpts{body: m.offer("RTP/SAVP")})
		res := c.wait(ctx)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %s", upn, res.StartLine())
		}
		m.start(t, res.Body())
		calls := env.Sim.CallsOf(upn)
		if len(calls) != 1 {
			t.Fatalf("%s has %d calls", upn, len(calls))
		}
		return c, m, calls[0]
	}
	c, m, in := connect("carol@fabrikam.example")
	if info := in.Info(); info.State != simteams.StateActive || !info.Federated || in.User.Number != "+442079460300" {
		t.Errorf("call %+v of user %s", info, in.User.Number)
	}
	waitFor(t, ctx, "echo of our pattern", func() bool { _, hits, _ := m.stats(); return hits >= 10 })
	// The call ends when the caller hangs up.
	if res := c.bye(ctx); res.StatusCode != 200 {
		t.Fatalf("BYE: %s", res.StartLine())
	}
	<-in.Done()
	if n := len(env.Sim.CallsOf("carol@fabrikam.example")); n != 0 {
		t.Errorf("%d calls left", n)
	}

	// Changes in the Graph simulator apply to the next call.
	if err := g.SetCoexistence(fab, "dave@fabrikam.example", "TeamsOnly"); err != nil {
		t.Fatal(err)
	}
	c, _, in = connect("dave@fabrikam.example")
	// Hang up from the Teams side through the call-control API.
	infos, err := env.Sim.CallInfos("dave@fabrikam.example")
	if err != nil || len(infos) != 1 || infos[0].CallID != in.CallID() {
		t.Fatalf("CallInfos: %+v %v", infos, err)
	}
	if err := env.Sim.EndCall(ctx, "dave@fabrikam.example", in.CallID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.byes:
	case <-ctx.Done():
		t.Fatal("no BYE reached the Phone App")
	}
	_ = c
	if err := g.SetFederation(fab, msim.Federation{AllowFederatedUsers: true, AllowedDomains: []string{"partner.example"}}); err != nil {
		t.Fatal(err)
	}
	refused("carol@fabrikam.example", 603, "External access does not allow "+env.Domain)
}

func TestCallControlByUPN(t *testing.T) {
	g, _ := graphSim(t)
	env := teamstest.StartFederation(t, teamstest.FederationOptions{Sim: func(c *simteams.Config) {
		c.Directory = simteams.GraphDirectory(g)
	}})
	// By hand: the page's user does not answer by itself.
	u := env.Sim.UserByUPN("carol@fabrikam.example")
	if u == nil || u.Options().AnswerAfter != 2*time.Second || u.Options().Media != simteams.Echo {
		t.Fatalf("directory user %v with options %+v, want the sandbox default", u, u.Options())
	}
	o := u.Options()
	o.AnswerAfter = -1
	u.SetOptions(o)
	if _, err := env.Sim.CallInfos("nobody@fabrikam.example"); !errors.Is(err, simteams.ErrNoUser) {
		t.Errorf("unknown user: %v", err)
	}
	p := newPhoneApp(t, env, env.Certificate)
	p.answerHolds(t)
	ctx := testCtx(t)
	m := newMedia(t)
	c := p.invite(ctx, "carol@fabrikam.example", inviteOpts{body: m.offer("RTP/SAVP"), media: m})
	in, err := u.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := in.CallID()
	if err := env.Sim.HoldCall(ctx, u.UPN, id); err == nil {
		t.Error("hold of a ringing call succeeded")
	}
	if err := env.Sim.AnswerCall(u.UPN, "no-such-call"); !errors.Is(err, simteams.ErrNoCall) {
		t.Errorf("answer of an unknown call: %v", err)
	}
	if err := env.Sim.AnswerCall(u.UPN, id); err != nil {
		t.Fatal(err)
	}
	res := c.wait(ctx)
	if res.StatusCode != 200 {
		t.Fatalf("answer: %s", res.StartLine())
	}
	m.start(t, res.Body())
	waitFor(t, ctx, "active", func() bool { return in.Info().State == simteams.StateActive })
	if err := env.Sim.AnswerCall(u.UPN, id); err == nil {
		t.Error("answering an active call succeeded")
	}
	if err := env.Sim.SendDTMF(u.UPN, id, "x"); err == nil {
		t.Error("bad digit accepted")
	}
	if err := env.Sim.SendDTMF(u.UPN, id, "9*"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "DTMF 9*", func() bool { _, _, d := m.stats(); return d == "9*" })
	if err := env.Sim.HoldCall(ctx, u.UPN, id); err != nil {
		t.Fatal(err)
	}
	if d := <-p.reinvite; d.String() != "inactive" || in.Info().State != simteams.StateHeld {
		t.Errorf("hold: offered %s, state %s", d, in.Info().State)
	}
	if err := env.Sim.ResumeCall(ctx, u.UPN, id); err != nil {
		t.Fatal(err)
	}
	if d := <-p.reinvite; d.String() != "sendrecv" || in.Info().State != simteams.StateActive {
		t.Errorf("resume: offered %s, state %s", d, in.Info().State)
	}
	if res := c.bye(ctx); res.StatusCode != 200 {
		t.Fatalf("BYE: %s", res.StartLine())
	}
	<-in.Done()
	if err := env.Sim.EndCall(ctx, u.UPN, id); !errors.Is(err, simteams.ErrNoCall) {
		t.Errorf("end of an ended call: %v", err)
	}
}

// Direct Routing calls find directory users by number, in the tenant of
// the SBC's customer subdomain.
func TestGraphDirectoryDirectRouting(t *testing.T) {
	g, fab := graphSim(t)
	dir := simteams.GraphDirectory(g)
	o := simteams.SandboxUserOptions()
	o.AnswerAfter = 50 * time.Millisecond
	env := teamstest.Start(t, teamstest.Options{Labels: []string{"fabrikam"}, Sim: func(c *simteams.Config) {
		c.Directory = dir
		c.DirectoryUserOptions = &o
	}})
	env.Trunk.Start()
	env.WaitActive(t)
	cust := env.Trunk.CustomerFQDN("fabrikam")
	if rs := invite(t, env, "+442079460300", cust, srtpOffer); final(rs).StatusCode != 403 {
		t.Fatalf("before the domain is known: %s", final(rs).StartLine())
	}
	if !dir.AddDomain(fab, cust) {
		t.Fatal("AddDomain")
	}
	if rs := invite(t, env, "+442079460300", cust, srtpOffer); final(rs).StatusCode != 200 {
		t.Fatalf("call to Carol's number: %s", final(rs).StartLine())
	}
	if rs := invite(t, env, "+442079460399", cust, srtpOffer); final(rs).StatusCode != 404 {
		t.Fatalf("unknown number: %s", final(rs).StartLine())
	}
	u := env.Sim.UserByUPN("carol@fabrikam.example")
	if u == nil || u.Number != "+442079460300" {
		t.Fatalf("Carol: %+v", u)
	}
	var seen bool
	for _, r := range env.Sim.Records("INVITE") {
		seen = seen || (r.Status == 200 && strings.HasPrefix(r.Request.Recipient.User, "+44207946"))
	}
	if !seen {
		t.Error("no answered INVITE recorded")
	}
}
