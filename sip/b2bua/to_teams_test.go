package b2bua_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

var lo = netip.MustParseAddr("127.0.0.1")

func (e *env) contactURI(u string) string {
	return fmt.Sprintf("sip:%s@127.0.0.1:%d", u, e.PBX.Port("udp"))
}

// A PBX call to the user's registration Contact rings the user's Teams
// number through the trunk, in the form Microsoft requires; media flows
// both ways through the relay (the Teams user echoes); the PBX hangs up.
func TestPBXToTeamsCall(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 200 * time.Millisecond, Media: simteams.Echo})
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	sess, prov, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatalf("call failed: %v (provisional %v)", err, prov)
	}
	if len(prov) == 0 || (prov[len(prov)-1] != 180 && prov[len(prov)-1] != 183) {
		t.Errorf("PBX saw no ringing: %v", prov)
	}
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv := tc.Invite()
	if inv.Recipient.User != "+442071230001" || !strings.HasSuffix(inv.Recipient.Host, "pstnhub.microsoft.com") {
		t.Errorf("Request-URI = %s", inv.Recipient.String())
	}
	if v, _ := inv.Recipient.UriParams.Get("user"); v != "phone" {
		t.Errorf("Request-URI without user=phone: %s", inv.Recipient.String())
	}
	if f := inv.From(); f.Address.User != "2002" || f.DisplayName != "Desk 2002" || f.Address.Host != e.Customer {
		t.Errorf("From = %s", f.Value())
	}
	if to := inv.To(); to.Address.User != "+442071230001" {
		t.Errorf("To = %s", to.Value())
	}
	if c := inv.Contact(); c.Address.Host != e.Customer || c.Address.Port != e.Trunk.Port() {
		t.Errorf("Contact = %s, want the customer FQDN %s", c.Value(), e.Customer)
	}
	if h := inv.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "REFER") {
		t.Errorf("Allow = %v, want REFER", h)
	}
	if h := inv.GetHeader("X-MS-SBC"); h == nil {
		t.Error("no X-MS-SBC")
	}
	sd, err := msdp.Parse(inv.Body())
	if err != nil || !sd.Media[0].Secure() || !sd.Media[0].RTCPMux {
		t.Errorf("offer to Teams not SRTP with rtcp-mux: %v\n%s", err, inv.Body())
	}

	waitUntil(t, 10*time.Second, "echoed audio at the phone", func() bool { _, echo := ph.counts(); return echo >= 25 })
	if m := tc.Media(); m.Packets < 25 || m.AuthFailures != 0 {
		t.Errorf("Teams side media = %+v", m)
	}
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg not released")
	}
	if r := tc.EndReason(); r != "bye from sbc" {
		t.Errorf("Teams leg ended by %q", r)
	}
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultAnswered || rec.EndedBy != "pbx" || rec.PBXStatus != 200 || rec.TeamsStatus != 200 ||
		rec.From != "2002" || rec.To != "+442071230001" || rec.Direction != b2bua.ToTeams || rec.UserID != u.ID {
		t.Errorf("record = %+v", rec)
	}
	if rec.Media.PacketsFromPBX < 25 || rec.Media.PacketsFromMS < 25 {
		t.Errorf("record media = %+v", rec.Media)
	}
	tr := e.Rec.trace(rec.ID)
	if tr == nil || len(tr.Messages) < 6 {
		t.Fatalf("trace too short: %+v", tr)
	}
	legs := map[string]bool{}
	for _, m := range tr.Messages {
		legs[m.Leg] = true
	}
	if !legs["pbx"] || !legs["teams"] {
		t.Errorf("trace legs = %v", legs)
	}
}

// Toll-fraud scanners and strangers ring nobody: unknown Contacts get 404,
// a user without a live registration gets 404, and a known Contact from an
// address that is not the user's PBX gets 403.
func TestPBXToTeamsRefusesStrangers(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	unreg := e.addUser("1002", "+442071230002", netip.Addr{})
	other := e.addUser("1003", "+442071230003", netip.MustParseAddr("192.0.2.10"))
	for _, n := range []string{u.PhoneNumber, unreg.PhoneNumber, other.PhoneNumber} {
		e.Tenant.AddUser(n, simteams.UserOptions{AnswerAfter: 0})
	}
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	for _, c := range []struct {
		user string
		want int
	}{
		{"scanner-guess-100", 404},
		{"1001", 404}, // an extension, not the Contact
		{unreg.ContactUser, 404},
		{other.ContactUser, 403},
	} {
		_, _, err := ph.call(ctx, e.contactURI(c.user), "666")
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) || de.Res.StatusCode != c.want {
			t.Errorf("INVITE to %s: %v, want %d", c.user, err, c.want)
		}
	}
	if n := len(e.Sim.Records("INVITE")); n != 0 {
		t.Errorf("%d INVITEs reached Teams", n)
	}
	if st := e.B2BUA.Stats(); st.Rejected != 4 || st.Total != 0 {
		t.Errorf("stats = %+v", st)
	}
}
