package b2bua_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/pbx2teams/pbx2teams/media"
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
	if rec.AddedDelay <= 0 || rec.AddedDelay > rec.AnsweredAt.Sub(rec.StartedAt)+time.Second {
		t.Errorf("added set-up delay %v not measured", rec.AddedDelay)
	}
	tr := e.Rec.trace(rec.ID)
	if tr == nil || len(tr.Messages) < 6 {
		t.Fatalf("trace too short: %+v", tr)
	}
	legs := map[string]bool{}
	for _, m := range tr.Messages {
		legs[m.Leg] = true
		if m.Summary == "" || m.Message != "" {
			t.Errorf("answered call's ladder entry %+v: want the start line only", m)
		}
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

// statusOf returns the SIP status of a failed call.
func statusOfErr(err error) int {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		return de.Res.StatusCode
	}
	return 0
}

// Busy, declined and unanswered calls map to the PBX, and Microsoft is
// never asked twice (no retry on 486 or 603).
func TestPBXToTeamsFailures(t *testing.T) {
	e := newEnv(t, envOptions{b2bua: func(c *b2bua.Config) { c.RingTimeout = 2 * time.Second }})
	ph := newPhone(t)
	ctx := ctxT(t, 30*time.Second)
	for i, c := range []struct {
		opts       simteams.UserOptions
		want       int
		result     string
		adviceWord string
	}{
		{simteams.UserOptions{Reject: 486}, 486, b2bua.ResultBusy, "busy"},
		{simteams.UserOptions{Reject: 603}, 603, b2bua.ResultDeclined, "declined"},
		{simteams.UserOptions{Reject: 480}, 480, b2bua.ResultNoAnswer, "reached"},
		{simteams.UserOptions{AnswerAfter: -1}, 480, b2bua.ResultNoAnswer, "ring timeout"},
	} {
		ext := fmt.Sprint(2000 + i)
		u := e.addUser(ext, fmt.Sprintf("+4420712300%02d", i), lo)
		e.Tenant.AddUser(u.PhoneNumber, c.opts)
		before := len(e.Sim.Records("INVITE"))
		_, prov, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
		if got := statusOfErr(err); got != c.want {
			t.Errorf("case %d: status %d (%v), want %d", i, got, err, c.want)
		}
		if len(prov) == 0 {
			t.Errorf("case %d: no ringing before the failure", i)
		}
		rec := e.Rec.next(t)
		if rec.Result != c.result || rec.PBXStatus != c.want || !strings.Contains(rec.Advice, c.adviceWord) {
			t.Errorf("case %d: record %+v", i, rec)
		}
		if n := len(e.Sim.Records("INVITE")) - before; c.opts.Reject != 0 && n != 1 {
			t.Errorf("case %d: Teams got %d INVITEs, want exactly 1", i, n)
		}
	}
}

// The PBX gives up while Teams rings: CANCEL goes to Teams and the PBX
// gets 487.
func TestPBXToTeamsCancel(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: -1})
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	callCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, _, err := ph.call(callCtx, e.contactURI(u.ContactUser), "2002")
		errc <- err
	}()
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel() // sipgo sends CANCEL
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg still ringing after CANCEL")
	}
	if r := tc.EndReason(); r != "cancelled" {
		t.Errorf("Teams call ended with %q", r)
	}
	<-errc
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultCancelled || rec.PBXStatus != 487 || rec.EndedBy != "pbx" {
		t.Errorf("record %+v", rec)
	}
}

// The Teams user hangs up: BYE reaches the PBX side.
func TestPBXToTeamsByeFromTeams(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Pattern})
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	if _, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002"); err != nil {
		t.Fatal(err)
	}
	tc, _ := tu.Incoming(ctx)
	waitUntil(t, 5*time.Second, "audio from Teams", func() bool { rx, _ := ph.counts(); return rx >= 10 })
	if err := tc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "BYE at the PBX", func() bool { return ph.byeCount() == 1 })
	rec := e.Rec.next(t)
	if rec.EndedBy != "teams" || rec.Result != b2bua.ResultAnswered {
		t.Errorf("record %+v", rec)
	}
}

// Teams' early media (one 183 with SDP) reaches the PBX as 183 with the
// relay's SDP, or as a plain 180 when Collapse183 is set.
func TestPBXToTeamsEarlyMedia(t *testing.T) {
	for _, collapse := range []bool{false, true} {
		t.Run(fmt.Sprint("collapse=", collapse), func(t *testing.T) {
			e := newEnv(t, envOptions{b2bua: func(c *b2bua.Config) { c.Collapse183 = collapse }})
			u := e.addUser("1001", "+442071230001", lo)
			e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 300 * time.Millisecond, EarlyMedia: true})
			ph := newPhone(t)
			ctx := ctxT(t, 20*time.Second)
			sess, prov, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Bye(ctx)
			has183 := false
			for _, p := range prov {
				has183 = has183 || p == 183
			}
			if has183 == collapse {
				t.Errorf("provisional responses %v with Collapse183=%v", prov, collapse)
			}
		})
	}
}

// A proxy answering 503 is skipped: the call goes through the next one,
// and the failing proxy is demoted for later calls.
func TestPBXToTeamsFailover(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 0})
	first := e.Sim.Datacenter(simteams.DefaultProxies[0])
	first.SetMode(simteams.Unavailable)
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	sess, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := tu.Incoming(ctx)
	if got := tc.Invite().Recipient.Host; got != simteams.DefaultProxies[1] {
		t.Errorf("call reached %s, want the second proxy", got)
	}
	if e.Trunk.Targets()[0].Proxy == simteams.DefaultProxies[0] {
		t.Error("503 proxy still first")
	}
	_ = sess.Bye(ctx)
	rec := e.Rec.next(t)
	if rec.TeamsPeer != simteams.DefaultProxies[1] {
		t.Errorf("record proxy %q", rec.TeamsPeer)
	}
	// A silent proxy: the attempt times out and the next one takes it.
	first.SetMode(simteams.Up)
	silent := e.Sim.Datacenter(simteams.DefaultProxies[2])
	silent.SetMode(simteams.NoResponse)
	e.Trunk.ReportFailure(simteams.DefaultProxies[1], 503, time.Hour)
	e.Trunk.ReportFailure(simteams.DefaultProxies[0], 503, time.Hour)
	if got := e.Trunk.Targets()[0].Proxy; got != silent.Name {
		t.Fatalf("silent proxy not first: %s", got)
	}
	sess, _, err = ph.call(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Bye(ctx)
	tc, _ = tu.Incoming(ctx)
	if got := tc.Invite().Recipient.Host; got != simteams.DefaultProxies[0] {
		t.Errorf("call reached %s after the silent proxy, want %s", got, simteams.DefaultProxies[0])
	}
	if silent.Invites() != 1 {
		t.Errorf("silent proxy got %d INVITEs", silent.Invites())
	}
}

// A PBX that sends INVITE without SDP (delayed offer): Teams still gets an
// offer (Direct Routing has no delayed offer); the PBX gets the relay's
// offer in the 200 and answers in the ACK; audio flows.
func TestPBXToTeamsDelayedOffer(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	ph := newPhone(t)
	ctx := ctxT(t, 20*time.Second)
	sess, err := ph.callDelayed(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := tu.Incoming(ctx)
	if len(tc.Invite().Body()) == 0 {
		t.Fatal("INVITE to Teams without SDP")
	}
	waitUntil(t, 10*time.Second, "echoed audio", func() bool { _, echo := ph.counts(); return echo >= 20 })
	_ = sess.Bye(ctx)
	<-tc.Done()
}

// A call whose media stops both ways is ended by the media timeout: both
// sides get BYE and the record says why.
func TestMediaTimeoutEndsDeadCall(t *testing.T) {
	e := newEnv(t, envOptions{relay: func(c *media.Config) { c.MediaTimeout = time.Second }})
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Silent})
	ph := newPhone(t)
	ph.mute()
	ctx := ctxT(t, 20*time.Second)
	if _, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002"); err != nil {
		t.Fatal(err)
	}
	tc, _ := tu.Incoming(ctx)
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("dead call not ended")
	}
	waitUntil(t, 5*time.Second, "BYE at the PBX", func() bool { return ph.byeCount() == 1 })
	if rec := e.Rec.next(t); rec.EndedBy != "media_timeout" || !strings.Contains(rec.Advice, "media") {
		t.Errorf("record %+v", rec)
	}
}
