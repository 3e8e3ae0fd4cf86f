package b2bua_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

// A Teams user calls an extension: the call reaches the PBX as the user
// (From their SIP username, digest with their password, Contact their
// registration Contact), audio and DTMF pass both ways, Teams hangs up.
func TestTeamsToPBXCall(t *testing.T) {
	e := newEnv(t, envOptions{b2bua: func(c *b2bua.Config) { c.TraceFull = true }})
	pbx := newFakePBX(t, map[string]string{"auth1001": "pw-1001"})
	u := e.addUser("1001", "+442071230001", lo)
	u.AuthUsername = "auth1001"
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{Media: simteams.Pattern, Name: "Alice Teams"})
	ctx := ctxT(t, 20*time.Second)
	call, err := tu.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	st, err := call.WaitAnswer(ctx)
	if err != nil || st != 200 {
		t.Fatalf("call answered %d, %v", st, err)
	}
	invs, _, _, _ := pbx.stats()
	if len(invs) != 1 {
		t.Fatalf("PBX got %d authorised INVITEs", len(invs))
	}
	inv := invs[0]
	if inv.Recipient.User != "1002" {
		t.Errorf("PBX Request-URI %s", inv.Recipient.String())
	}
	if f := inv.From(); f.Address.User != "1001" || f.DisplayName != u.DisplayName {
		t.Errorf("PBX From %s", f.Value())
	}
	if c := inv.Contact(); c.Address.User != u.ContactUser || c.Address.Port != e.PBX.Port("udp") {
		t.Errorf("PBX Contact %s, want the registration Contact", c.Value())
	}
	waitUntil(t, 10*time.Second, "the pattern echoed by the PBX", func() bool { return call.Media().PatternHits >= 25 })
	call.SendDTMF("123#")
	waitUntil(t, 10*time.Second, "DTMF echoed by the PBX", func() bool { return call.Media().DTMF == "123#" })
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "BYE at the PBX", func() bool { _, byes, _, _ := pbx.stats(); return byes == 1 })
	rec := e.Rec.next(t)
	if rec.Direction != b2bua.FromTeams || rec.Result != b2bua.ResultAnswered || rec.EndedBy != "teams" ||
		rec.From != u.PhoneNumber || rec.To != "1002" || rec.PBXStatus != 200 || rec.TeamsStatus != 200 {
		t.Errorf("record %+v", rec)
	}
	tr := e.Rec.trace(rec.ID)
	redacted := false
	for _, m := range tr.Messages {
		if m.Message == "" {
			t.Errorf("TraceFull trace without text: %s", m.Summary)
		}
		if strings.Contains(m.Message, "response=") {
			t.Errorf("trace keeps digest credentials: %s", m.Summary)
		}
		redacted = redacted || strings.Contains(m.Message, "Proxy-Authorization: [removed]")
	}
	if !redacted {
		t.Error("the authorised INVITE is not in the trace")
	}
}

// Caller-ID screening and customer matching: a number that is no user of
// the customer gets 403; a subdomain that is no customer gets 404; the PBX
// is never called.
func TestTeamsToPBXRefuses(t *testing.T) {
	e := newEnv(t, envOptions{teams: teamsLabels("stranger")})
	pbx := newFakePBX(t, map[string]string{"1001": "pw-1001"})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	ctx := ctxT(t, 20*time.Second)
	spoof := e.Tenant.AddUser("+442079999999", simteams.UserOptions{})
	call, err := spoof.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 403 {
		t.Errorf("unknown caller got %d, want 403", st)
	}
	other := e.Sim.AddTenant("tenant-stranger", e.Trunk.CustomerFQDN("stranger"))
	other.SetVoiceRoute(e.Trunk.CustomerFQDN("stranger"))
	u := e.addUser("1001", "+442071230001", lo)
	ou := other.AddUser(u.PhoneNumber, simteams.UserOptions{})
	call, err = ou.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 404 {
		t.Errorf("call via a subdomain of no customer got %d, want 404", st)
	}
	if invs, _, _, _ := pbx.stats(); len(invs) != 0 {
		t.Errorf("PBX called %d times", len(invs))
	}
}

// Busy at the PBX reaches Teams as 486; Teams cancelling while the PBX
// rings cancels the PBX leg.
func TestTeamsToPBXBusyAndCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	pbx := newFakePBX(t, map[string]string{"1001": "pw-1001"})
	pbx.answer = 486
	u := e.addUser("1001", "+442071230001", lo)
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{})
	ctx := ctxT(t, 20*time.Second)
	call, err := tu.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 486 {
		t.Errorf("busy PBX gave Teams %d", st)
	}
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultBusy || rec.PBXStatus != 486 || rec.TeamsStatus != 486 {
		t.Errorf("record %+v", rec)
	}

	pbx.answer, pbx.ringFor = 200, time.Hour
	call, err = tu.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the PBX ringing", func() bool { invs, _, _, _ := pbx.stats(); return len(invs) == 2 })
	if err := call.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 487 {
		t.Errorf("cancelled call got %d", st)
	}
	waitUntil(t, 5*time.Second, "CANCEL at the PBX", func() bool { _, _, c, _ := pbx.stats(); return c == 1 })
	rec = e.Rec.next(t)
	if rec.Result != b2bua.ResultCancelled || rec.EndedBy != "teams" {
		t.Errorf("record %+v", rec)
	}
}

// The PBX side hangs up a Teams → PBX call: BYE reaches Teams.
func TestTeamsToPBXByeFromPBX(t *testing.T) {
	e := newEnv(t, envOptions{})
	pbx := newFakePBX(t, map[string]string{"1001": "pw-1001"})
	u := e.addUser("1001", "+442071230001", lo)
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{Media: simteams.Pattern})
	ctx := ctxT(t, 20*time.Second)
	call, err := tu.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 200 {
		t.Fatalf("answer %d", st)
	}
	waitUntil(t, 10*time.Second, "audio at the PBX", func() bool { _, _, _, rx := pbx.stats(); return rx >= 10 })
	if err := pbx.hangup(ctx, call.CallID()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg not released")
	}
	if r := call.EndReason(); r != "bye from sbc" {
		t.Errorf("Teams leg ended %q", r)
	}
	if rec := e.Rec.next(t); rec.EndedBy != "pbx" || rec.Result != b2bua.ResultAnswered {
		t.Errorf("record %+v", rec)
	}
}
