package b2bua_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

// Calls to a Phone App user's extension that are not answered in Teams
// end at the PBX as a desk phone's would: busy, declined, no answer, and
// an unknown Teams user; nothing is retried.
func TestPhoneAppInboundFailures(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true, b2bua: func(c *b2bua.Config) { c.RingTimeout = 2 * time.Second }})
	ph := newPhone(t)
	ctx := ctxT(t, 30*time.Second)
	for i, c := range []struct {
		opts       *simteams.UserOptions // nil: no such user in Teams
		want       int
		result     string
		adviceWord string
	}{
		{&simteams.UserOptions{Reject: 486}, 486, b2bua.ResultBusy, "busy"},
		{&simteams.UserOptions{Reject: 603}, 603, b2bua.ResultDeclined, "declined"},
		{&simteams.UserOptions{AnswerAfter: -1}, 480, b2bua.ResultNoAnswer, "ring timeout"},
		{nil, 404, b2bua.ResultFailed, "found no user"},
	} {
		ext := fmt.Sprint(3000 + i)
		u := e.addUser(ext, "", lo)
		e.Dir.mu.Lock()
		u.Type = pbx2teams.ServicePhoneApp
		e.Dir.mu.Unlock()
		if c.opts != nil {
			e.Tenant.AddUserUPN(u.UPN, "", *c.opts)
		}
		_, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
		if got := statusOfErr(err); got != c.want {
			t.Errorf("case %d: status %d (%v), want %d", i, got, err, c.want)
		}
		rec := e.Rec.next(t)
		if rec.Route != pbx2teams.RoutePhoneApp || rec.Result != c.result || rec.PBXStatus != c.want || !strings.Contains(rec.Advice, c.adviceWord) {
			t.Errorf("case %d: record %+v", i, rec)
		}
		// Each case is one INVITE at the edge (it records a refusal
		// after sending it).
		waitUntil(t, 5*time.Second, "the edge's records", func() bool { return len(e.Edge.Records("INVITE")) >= i+1 })
		if n := len(e.Edge.Records("INVITE")); n != i+1 {
			t.Errorf("case %d: the edge has %d INVITEs after %d calls (a retry?)", i, n, i+1)
		}
	}
}

// The PBX caller gives up while Teams rings: CANCEL reaches Teams, the tab
// shows a missed call. Then a connected call: the Teams user holds (the
// edge's re-INVITE over our connection reaches the PBX) and hangs up (BYE
// to the PBX).
func TestPhoneAppInboundCancelHoldBye(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true})
	u, tu := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: -1})
	w := watchUser(t, e.B2BUA, u)
	ph := newPhone(t)
	ctx := ctxT(t, 30*time.Second)
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
	in := w.until(t, "", pbx2teams.CallIncoming)
	cancel()
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg still ringing after CANCEL")
	}
	<-errc
	if end := w.until(t, in.ID, pbx2teams.CallEnded); !strings.Contains(end.Reason, "Missed call") {
		t.Errorf("reason %q", end.Reason)
	}
	if rec := e.Rec.next(t); rec.Result != b2bua.ResultCancelled || rec.PBXStatus != 487 {
		t.Errorf("record %+v", rec)
	}

	tu.SetOptions(simteams.UserOptions{AnswerAfter: 0, Media: simteams.Echo})
	sess, _, err := ph.call(ctx, e.contactURI(u.ContactUser), "2002")
	if err != nil {
		t.Fatal(err)
	}
	_ = sess
	tc, err = tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in = w.until(t, "", pbx2teams.CallConnected)
	waitUntil(t, 10*time.Second, "echoed audio at the PBX phone", func() bool { _, echo := ph.counts(); return echo >= 25 })
	if st, err := tc.Hold(ctx); err != nil || st != 200 {
		t.Fatalf("hold from Teams: %d %v", st, err)
	}
	if r := ph.reinvites(); len(r) != 1 || r[0] == "sendrecv" {
		t.Errorf("PBX re-INVITEs %v, want a hold", r)
	}
	if err := tc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "BYE at the PBX", func() bool { return ph.byeCount() == 1 })
	if end := w.until(t, in.ID, pbx2teams.CallEnded); end.Reason != "You hung up." {
		t.Errorf("reason %q", end.Reason)
	}
	if rec := e.Rec.next(t); rec.Result != b2bua.ResultAnswered || rec.EndedBy != "teams" {
		t.Errorf("record %+v", rec)
	}
}

// Callback-first failures on the Teams side, in plain words; a PBX
// without REFER/Replaces gets no attended transfer.
func TestPhoneAppDialCallback(t *testing.T) {
	e := newEnv(t, envOptions{phoneApp: true, b2bua: func(c *b2bua.Config) { c.RingTimeout = 2 * time.Second }})
	pbx := newFakePBX(t, map[string]string{"1001": "pw-1001"})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbx.domain(), Transport: pbx2teams.TransportUDP}
	u, tu := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: -1})
	w := watchUser(t, e.B2BUA, u)
	ctx := ctxT(t, 30*time.Second)

	lc, err := e.B2BUA.Dial(ctx, u, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if end := w.until(t, lc.ID, pbx2teams.CallEnded); end.Reason != "You did not answer the callback in Teams." {
		t.Errorf("reason %q", end.Reason)
	}
	if rec := e.Rec.next(t); rec.Result != b2bua.ResultNoAnswer || rec.PBXStatus != 0 {
		t.Errorf("record %+v", rec)
	}

	tu.SetOptions(simteams.UserOptions{Reject: 603})
	lc, _ = e.B2BUA.Dial(ctx, u, "2002")
	if end := w.until(t, lc.ID, pbx2teams.CallEnded); end.Reason != "You declined the callback in Teams." {
		t.Errorf("reason %q", end.Reason)
	}
	e.Rec.next(t)
	if inv, _, _, _ := pbx.stats(); len(inv) != 0 {
		t.Errorf("the PBX was called although the callback was not answered")
	}

	tu.SetOptions(simteams.UserOptions{AnswerAfter: 0, Media: simteams.Pattern})
	a, _ := e.B2BUA.Dial(ctx, u, "2002")
	ca := w.until(t, a.ID, pbx2teams.CallConnected)
	b, _ := e.B2BUA.Dial(ctx, u, "2003")
	w.until(t, b.ID, pbx2teams.CallConnected)
	if ca.CanAttendedTransfer {
		t.Errorf("the PBX announced no Replaces: %+v", ca)
	}
	if err := e.B2BUA.AttendedTransfer(ctx, u, a.ID, b.ID); pbx2teams.ErrorCode(err) != pbx2teams.EConflict || !strings.Contains(err.Error(), "blind transfer") {
		t.Errorf("attended transfer without Replaces: %v", err)
	}
	// A PBX that refuses REFER: the call stays as it was.
	if err := e.B2BUA.Transfer(ctx, u, a.ID, "3003"); pbx2teams.ErrorCode(err) != pbx2teams.EConflict || !strings.Contains(err.Error(), "refused the transfer") {
		t.Errorf("transfer refused by the PBX: %v", err)
	}
	if cs := e.B2BUA.Calls(u); len(cs) != 2 || cs[0].State != pbx2teams.CallConnected || cs[1].State != pbx2teams.CallConnected {
		t.Errorf("calls %+v", cs)
	}
	if inv, _, _, _ := pbx.stats(); len(inv) != 2 || inv[0].From().Address.User != "1001" || inv[0].Recipient.User != "2002" {
		t.Errorf("INVITEs at the PBX %v", inv)
	}
	for _, id := range []string{a.ID, b.ID} {
		if err := e.B2BUA.Hangup(ctx, u, id); err != nil {
			t.Fatal(err)
		}
		w.until(t, id, pbx2teams.CallEnded)
	}
	waitUntil(t, 5*time.Second, "BYEs at the PBX", func() bool { _, byes, _, _ := pbx.stats(); return byes == 2 })
	e.Rec.next(t)
	e.Rec.next(t)

	// The user hangs up in Teams while the PBX destination rings: the
	// PBX gets CANCEL.
	pbx.ringFor = time.Hour
	c, _ := e.B2BUA.Dial(ctx, u, "2004")
	w.until(t, c.ID, pbx2teams.CallRinging)
	var tc *simteams.Call
	for _, x := range tu.Calls() {
		if x.Invite().From().Address.User == "2004" {
			tc = x
		}
	}
	if tc == nil {
		t.Fatal("no callback call in Teams")
	}
	if err := tc.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if end := w.until(t, c.ID, pbx2teams.CallEnded); end.Reason != "You hung up before the call was answered." {
		t.Errorf("reason %q", end.Reason)
	}
	waitUntil(t, 5*time.Second, "CANCEL at the PBX", func() bool { _, _, cancels, _ := pbx.stats(); return cancels == 1 })
	if rec := e.Rec.next(t); rec.Result != b2bua.ResultCancelled || rec.EndedBy != "teams" {
		t.Errorf("record %+v", rec)
	}
}
