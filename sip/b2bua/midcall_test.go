package b2bua_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/pbx2teams/pbx2teams"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

// connect sets up a PBX → Teams call answered by a Teams user in echo
// mode, with audio flowing.
func connect(t *testing.T, e *env, ctx context.Context, opts simteams.UserOptions) (*phone, *sipgo.DialogClientSession, *simteams.Call) {
	t.Helper()
	u := e.addUser("1001", "+442071230001", lo)
	tu := e.Tenant.AddUser(u.PhoneNumber, opts)
	ph := newPhone(t)
	sess, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "audio", func() bool { _, echo := ph.counts(); return echo >= 5 })
	return ph, sess, tc
}

// Teams transfers the call (REFER): 202, NOTIFYs with the new leg's
// progress, a new INVITE back to Microsoft with the Refer-To target and the
// Referred-By unchanged; Microsoft releases the old leg and the PBX caller
// now talks to the transfer target.
func TestTransferFromTeams(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxT(t, 30*time.Second)
	ph, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	target := e.Tenant.AddUser("+442071230009", simteams.UserOptions{AnswerAfter: 200 * time.Millisecond, Media: simteams.Echo})
	st, err := tc.Transfer(ctx, target.Number)
	if err != nil || st != 202 {
		t.Fatalf("REFER answered %d, %v", st, err)
	}
	nc, err := target.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rb, ok := nc.ReferredBy(); !ok || rb == "" {
		t.Errorf("transfer INVITE Referred-By %q does not match the REFER's", rb)
	}
	inv := nc.Invite()
	if inv.Recipient.User != target.Number || !strings.Contains(inv.Recipient.String(), "x-m=") {
		t.Errorf("transfer Request-URI %s is not the Refer-To", inv.Recipient.String())
	}
	if c := inv.Contact(); c.Address.Host != e.Customer {
		t.Errorf("transfer INVITE Contact %s", c.Value())
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("old Teams leg not released")
	}
	if r := tc.EndReason(); r != "transferred" {
		t.Errorf("old leg ended %q", r)
	}
	n := tc.Notifies()
	if len(n) < 2 || !strings.HasPrefix(n[0], "SIP/2.0 100") || !strings.HasPrefix(n[len(n)-1], "SIP/2.0 200") {
		t.Errorf("NOTIFY sipfrags %v", n)
	}
	_, echoBefore := ph.counts()
	waitUntil(t, 10*time.Second, "audio echoed by the transfer target", func() bool {
		_, echo := ph.counts()
		return echo > echoBefore+20 && nc.Media().Packets > 20
	})
	if err := sess.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-nc.Done():
	case <-ctx.Done():
		t.Fatal("transfer target leg not released")
	}
	rec := e.Rec.next(t)
	if rec.To != target.Number || rec.Result != b2bua.ResultAnswered || rec.EndedBy != "pbx" {
		t.Errorf("record %+v", rec)
	}
}

// A failed transfer (the target is busy) is reported by NOTIFY and the
// original call goes on.
func TestTransferFromTeamsFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxT(t, 30*time.Second)
	ph, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	target := e.Tenant.AddUser("+442071230009", simteams.UserOptions{Reject: 486})
	if st, err := tc.Transfer(ctx, target.Number); err != nil || st != 202 {
		t.Fatalf("REFER answered %d, %v", st, err)
	}
	waitUntil(t, 10*time.Second, "final NOTIFY", func() bool {
		n := tc.Notifies()
		return len(n) > 0 && strings.HasPrefix(n[len(n)-1], "SIP/2.0 486")
	})
	_, echo := ph.counts()
	waitUntil(t, 5*time.Second, "audio on the original call", func() bool { _, e2 := ph.counts(); return e2 > echo+10 })
	_ = sess.Bye(ctx)
	<-tc.Done()
}

// Microsoft's INVITE with Replaces (a call queue agent picking up) takes
// the place of the Teams leg; the old leg gets BYE.
func TestReplacesFromTeams(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxT(t, 30*time.Second)
	ph, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	agent := e.Tenant.AddUser("+442071230050", simteams.UserOptions{Media: simteams.Echo})
	nc, err := agent.DialReplacing(ctx, tc)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := nc.WaitAnswer(ctx); st != 200 {
		t.Fatalf("INVITE with Replaces answered %d", st)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("replaced leg not released")
	}
	if r := tc.EndReason(); r != "bye from sbc" {
		t.Errorf("replaced leg ended %q", r)
	}
	_, echo := ph.counts()
	waitUntil(t, 10*time.Second, "audio echoed by the agent", func() bool {
		_, e2 := ph.counts()
		return e2 > echo+20 && nc.Media().Packets > 20
	})
	_ = sess.Bye(ctx)
	<-nc.Done()
}

// Hold from Teams is a=inactive; the PBX is put on hold and taken off
// again, and media stops meanwhile.
func TestHoldFromTeams(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxT(t, 30*time.Second)
	ph, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	if st, err := tc.Hold(ctx); err != nil || st != 200 {
		t.Fatalf("hold: %d %v", st, err)
	}
	if r := ph.reinvites(); len(r) != 1 || r[0] == "sendrecv" {
		t.Errorf("PBX re-INVITEs %v, want a hold", r)
	}
	time.Sleep(200 * time.Millisecond)
	rx, _ := ph.counts()
	time.Sleep(300 * time.Millisecond)
	if rx2, _ := ph.counts(); rx2 > rx+2 {
		t.Errorf("media still flowing to the PBX on hold: %d → %d", rx, rx2)
	}
	if st, err := tc.Resume(ctx); err != nil || st != 200 {
		t.Fatalf("resume: %d %v", st, err)
	}
	if r := ph.reinvites(); len(r) != 2 || r[1] != "sendrecv" {
		t.Errorf("PBX re-INVITEs %v, want resume", r)
	}
	_, echo := ph.counts()
	waitUntil(t, 5*time.Second, "audio after resume", func() bool { _, e2 := ph.counts(); return e2 > echo+10 })
	_ = sess.Bye(ctx)
	<-tc.Done()
}

// Hold from the PBX (a=sendonly) reaches Teams as a=inactive, the only
// hold Microsoft understands.
func TestHoldFromPBX(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxT(t, 30*time.Second)
	ph, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	st, dir, err := ph.reinvite(ctx, sess, msdp.SendOnly)
	if err != nil || st != 200 {
		t.Fatalf("hold re-INVITE: %d %v", st, err)
	}
	if dir != "recvonly" && dir != "inactive" {
		t.Errorf("PBX hold answered %q", dir)
	}
	ri := tc.Reinvites()
	if len(ri) != 1 || ri[0].Direction != "inactive" || ri[0].Status != 200 {
		t.Fatalf("Teams re-INVITEs %+v, want one a=inactive", ri)
	}
	st, dir, err = ph.reinvite(ctx, sess, msdp.SendRecv)
	if err != nil || st != 200 || dir != "sendrecv" {
		t.Fatalf("resume: %d %q %v", st, dir, err)
	}
	if ri := tc.Reinvites(); len(ri) != 2 || ri[1].Direction != "sendrecv" {
		t.Errorf("Teams re-INVITEs %+v", ri)
	}
	// A refresh that changes nothing stays on the PBX leg.
	if st, _, err := ph.reinvite(ctx, sess, msdp.SendRecv); err != nil || st != 200 {
		t.Fatalf("refresh: %d %v", st, err)
	}
	if ri := tc.Reinvites(); len(ri) != 2 {
		t.Errorf("an unchanged re-INVITE reached Teams: %+v", ri)
	}
	_ = sess.Bye(ctx)
	<-tc.Done()
}

// Microsoft's session timer (refresher=uac: us) is refreshed with
// re-INVITEs; on the Teams → PBX side, a Teams leg nobody refreshes is
// ended when the session expires.
func TestSessionTimers(t *testing.T) {
	e := newEnv(t, envOptions{teams: teamstestSessionExpires(3)})
	ctx := ctxT(t, 30*time.Second)
	_, sess, tc := connect(t, e, ctx, simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	waitUntil(t, 10*time.Second, "two refreshes", func() bool { return len(tc.Reinvites()) >= 2 })
	for _, r := range tc.Reinvites() {
		if r.Method != "INVITE" || r.Status != 200 || r.Direction != "sendrecv" {
			t.Errorf("refresh %+v", r)
		}
	}
	select {
	case <-tc.Done():
		t.Fatal("call dropped despite refreshes")
	default:
	}
	_ = sess.Bye(ctx)
	<-tc.Done()
	e.Rec.next(t)

	// Teams → PBX: Teams offers the timer, we make Teams the refresher;
	// the simulator never refreshes, so we end the call.
	pbx := newFakePBX(t, map[string]string{"1001": "pw-1001"})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	tu := e.Tenant.AddUser("+442071230001", simteams.UserOptions{})
	call, err := tu.Dial(ctx, "1002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 200 {
		t.Fatalf("answer %d", st)
	}
	se := call.Invite()
	_ = se
	rec := e.Rec.next(t)
	if rec.EndedBy != "session_timer" {
		t.Errorf("record %+v, want ended by the session timer", rec)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg not released by the expired session")
	}
}
