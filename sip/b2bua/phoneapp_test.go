package b2bua_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

// A test call rings the Phone App user through the federation edge, from
// the Phone App domain, and is recorded as a Phone App call.
func TestPhoneAppTestCall(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true})
	u, tu := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Pattern})
	ctx := ctxT(t, 30*time.Second)
	type out struct{ result, advice string }
	done := make(chan out, 1)
	go func() {
		r, a, err := e.B2BUA.TestCall(ctx, u)
		if err != nil {
			t.Error(err)
		}
		done <- out{r, a}
	}()
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inv := tc.Invite()
	if f := inv.From(); f.DisplayName != "pbx2teams test call" || f.Address.Host != phoneAppDomain {
		t.Errorf("From of the test call: %s", f.Value())
	}
	if got := inv.Recipient.User + "@" + inv.Recipient.Host; got != u.UPN {
		t.Errorf("Request-URI %s, want the user's UPN %s", inv.Recipient.String(), u.UPN)
	}
	if ct := inv.Contact(); ct == nil || ct.Address.Host != phoneAppDomain {
		t.Errorf("Contact %v, want the Phone App domain", ct)
	}
	if h := inv.GetHeader("Allow"); h == nil || !strings.Contains(h.Value(), "REFER") || !strings.Contains(h.Value(), "UPDATE") {
		t.Errorf("Allow %v", h)
	}
	o := <-done
	if !strings.Contains(o.result, "answered") || o.advice != "" {
		t.Errorf("test call outcome %q / %q", o.result, o.advice)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("the test call was not hung up")
	}
	rec := e.Rec.next(t)
	if rec.Route != pbx2teams.RoutePhoneApp || rec.Result != b2bua.ResultAnswered || rec.TeamsStatus != 200 || rec.TeamsPeer != e.Link.Edge() {
		t.Errorf("record %+v", rec)
	}
	tr := e.Rec.trace(rec.ID)
	if tr == nil || tr.CallRecordID != rec.ID || tr.CallID != inv.CallID().Value() || len(tr.Messages) < 4 ||
		tr.Messages[0].Leg != "teams" || tr.Messages[0].Summary != "INVITE sip:1001@"+userDomain+" SIP/2.0" {
		t.Errorf("trace %+v", tr)
	}
}

// A tenant whose external access blocks the Phone App domain: the edge
// answers 603; the readiness hook hears it, the test call and the
// dialler say what to change, and nothing is retried.
func TestPhoneAppExternalAccessBlocked(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true})
	u, _ := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: "pbx.test", Transport: pbx2teams.TransportUDP}
	e.Tenant.SetExternalAccess(msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true, BlockedDomains: []string{phoneAppDomain}})
	ctx := ctxT(t, 30*time.Second)

	result, advice, err := e.B2BUA.TestCall(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "603") || !strings.Contains(advice, "External access") || !strings.Contains(advice, phoneAppDomain) {
		t.Errorf("test call outcome %q / %q", result, advice)
	}
	rj := e.rejections()
	if len(rj) != 1 || rj[0].userID != u.ID || rj[0].status != 603 || !strings.Contains(rj[0].warning, "External access does not allow "+phoneAppDomain) {
		t.Errorf("OnPhoneAppRejected heard %+v", rj)
	}
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultDeclined || rec.TeamsStatus != 603 || !strings.Contains(rec.Advice, "External access") {
		t.Errorf("record %+v", rec)
	}

	w := watchUser(t, e.B2BUA, u)
	lc, err := e.B2BUA.Dial(ctx, u, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if lc.State != pbx2teams.CallRingingYou || lc.Remote != "2002" || lc.Direction != pbx2teams.DirectionOutbound {
		t.Errorf("dial returned %+v", lc)
	}
	end := w.until(t, lc.ID, pbx2teams.CallEnded)
	if !strings.Contains(end.Reason, "External access in your Microsoft 365 tenant blocks the Phone App domain") {
		t.Errorf("reason %q", end.Reason)
	}
	// The edge records a refusal after sending it.
	waitUntil(t, 5*time.Second, "the edge's records", func() bool { return len(e.Edge.Records("INVITE")) >= 2 })
	if rec := e.Rec.next(t); rec.Result != b2bua.ResultDeclined || rec.TeamsStatus != 603 || rec.PBXStatus != 0 {
		t.Errorf("record %+v", rec)
	}
	if n := len(e.Edge.Records("INVITE")); n != 2 {
		t.Errorf("the edge received %d INVITEs, want 2 (no retry after 603)", n)
	}
	if len(e.rejections()) != 2 {
		t.Errorf("OnPhoneAppRejected heard %+v", e.rejections())
	}
}

// A user not in TeamsOnly mode: 480 from the edge, with the fix.
func TestPhoneAppNotTeamsOnly(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true})
	u, tu := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond})
	tu.SetCoexistence(simteams.Islands)
	result, advice, err := e.B2BUA.TestCall(ctxT(t, 30*time.Second), u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, "480") || !strings.Contains(advice, "TeamsOnly") {
		t.Errorf("test call outcome %q / %q", result, advice)
	}
	if rj := e.rejections(); len(rj) != 1 || rj[0].status != 480 || !strings.Contains(rj[0].warning, "TeamsOnly") {
		t.Errorf("OnPhoneAppRejected heard %+v", rj)
	}
}

// The dialler acts only on the user's own calls; hanging up while the
// callback rings cancels it in Teams.
func TestPhoneAppOtherUsersCall(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: "pbx.test", Transport: pbx2teams.TransportUDP}
	u1, tu1 := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: -1})
	u2, _ := e.addPhoneAppUser("1002", lo, simteams.UserOptions{AnswerAfter: -1})
	std := e.addUser("1003", "+442071230003", lo)
	ctx := ctxT(t, 30*time.Second)
	w := watchUser(t, e.B2BUA, u1)
	lc, err := e.B2BUA.Dial(ctx, u1, "+44 20 7123 0099")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tu1.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := tc.Invite().From(); f.Address.User != "+442071230099" || f.DisplayName != "Calling +442071230099" {
		t.Errorf("the callback shows %s, want the dialled number", f.Value())
	}
	for name, err := range map[string]error{
		"hangup":   e.B2BUA.Hangup(ctx, u2, lc.ID),
		"hold":     e.B2BUA.Hold(ctx, u2, lc.ID, true),
		"transfer": e.B2BUA.Transfer(ctx, u2, lc.ID, "2002"),
		"dtmf":     e.B2BUA.DTMF(ctx, u2, lc.ID, "1"),
	} {
		if pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
			t.Errorf("%s of another user's call: %v, want not_found", name, err)
		}
	}
	if cs := e.B2BUA.Calls(u2); len(cs) != 0 {
		t.Errorf("another user sees %+v", cs)
	}
	if cs := e.B2BUA.Calls(u1); len(cs) != 1 || cs[0].ID != lc.ID || cs[0].State != pbx2teams.CallRingingYou {
		t.Errorf("the user's calls %+v", cs)
	}
	if _, err := e.B2BUA.Dial(ctx, std, "2002"); pbx2teams.ErrorCode(err) != pbx2teams.EForbidden {
		t.Errorf("a standard user dialled: %v", err)
	}
	if _, err := e.B2BUA.Dial(ctx, u1, "20;02"); pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
		t.Errorf("a bad number was dialled: %v", err)
	}
	if err := e.B2BUA.Hangup(ctx, u1, lc.ID); err != nil {
		t.Fatal(err)
	}
	end := w.until(t, lc.ID, pbx2teams.CallEnded)
	if end.Reason != "You hung up." {
		t.Errorf("reason %q", end.Reason)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("the callback kept ringing in Teams")
	}
	rec := e.Rec.next(t)
	if rec.Route != pbx2teams.RoutePhoneApp || rec.Direction != pbx2teams.DirectionOutbound || rec.Result != b2bua.ResultCancelled ||
		rec.EndedBy != "user" || rec.To != "+442071230099" {
		t.Errorf("record %+v", rec)
	}
}
