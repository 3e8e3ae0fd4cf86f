package b2bua_test

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
)

// A desk phone on the PBX calls a Phone App user's extension: Kamailio
// routes it to the user's registration, the B2BUA rings the user in
// Teams through the federation edge with the caller's number and name,
// and audio flows both ways (the Teams user echoes the pcap's audio).
func TestPhoneAppKamailioInbound(t *testing.T) {
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "p1001"}, {Username: "2002", Password: "p2002"}}})
	e := newEnv(t, envOptions{phoneApp: true})
	eng := useEngine(t, e)
	u, tu := e.addPhoneAppUser("1001", netip.Addr{}, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Echo})
	register(t, eng, k, u, "p1001")
	w := watchUser(t, e.B2BUA, u)

	sp := sipp.StartT(t, sipp.Options{ScenarioXML: sipp.DeskCalls(3 * time.Second), Remote: k.Addr(), Calls: 1, Rate: 1,
		Keys: sipp.DeskCallKeys("2002", "1001", pbxDomain), Timeout: 30 * time.Second, Messages: true})
	ctx := ctxT(t, 40*time.Second)
	tc, err := tu.Incoming(ctx)
	if err != nil {
		select {
		case rec := <-e.Rec.ch:
			t.Fatalf("%v; call record %+v", err, rec)
		default:
			t.Fatal(err)
		}
	}
	inv := tc.Invite()
	if f := inv.From(); f.Address.User != "2002" || f.DisplayName != "Desk 2002" || f.Address.Host != phoneAppDomain {
		t.Errorf("caller shown in Teams: %s", f.Value())
	}
	if inv.Recipient.User+"@"+inv.Recipient.Host != u.UPN {
		t.Errorf("Request-URI %s", inv.Recipient.String())
	}
	in := w.until(t, "", pbx2teams.CallIncoming)
	if in.Remote != "2002" || in.RemoteName != "Desk 2002" || in.Direction != pbx2teams.DirectionInbound {
		t.Errorf("live call %+v", in)
	}
	w.until(t, in.ID, pbx2teams.CallConnected)
	res, err := sp.Wait(ctx)
	if err != nil || res.Successful != 1 {
		t.Fatalf("SIPp: %+v %v\nmessages:\n%s", res, err, sp.Messages())
	}
	end := w.until(t, in.ID, pbx2teams.CallEnded)
	if end.Reason != "The other party hung up." || end.PacketsToUser < 50 || end.PacketsFromUser < 50 {
		t.Errorf("live call at the end %+v", end)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg not released after the desk phone hung up")
	}
	if m := tc.Media(); m.Codec != "PCMA" || m.Packets < 50 {
		t.Fatalf("Teams user received %+v, want PCMA audio from the pcap", m)
	}
	rec := e.Rec.next(t)
	if rec.Route != pbx2teams.RoutePhoneApp || rec.Direction != pbx2teams.DirectionInbound || rec.Result != b2bua.ResultAnswered ||
		rec.EndedBy != "pbx" || rec.To != u.UPN || rec.From != "2002" || rec.TeamsPeer != e.Link.Edge() {
		t.Errorf("record %+v", rec)
	}
	// Both ways: the pcap toward Teams, the echo back toward the PBX.
	if m := rec.Media; m.PacketsFromPBX < 50 || m.PacketsToMS < 50 || m.PacketsFromMS < 50 || m.PacketsToPBX < 50 {
		t.Errorf("media %+v", m)
	}
}

// The SIPp phone of extension 2002 for calls a Phone App user places
// through the PBX: farEnd answers, takes hold and resume, accepts a blind
// transfer and takes BYE; farEndJoin answers and accepts a transfer (the
// one that receives an attended transfer's REFER); farEndPlain answers and
// waits for BYE.
var (
	farEnd      = sipp.Scenario("far_answer", "far_hold", "far_refer", "far_bye")
	farEndJoin  = sipp.Scenario("far_answer", "far_refer", "far_bye")
	farEndPlain = sipp.Scenario("far_answer", "far_bye")
)

// A Phone App user dials extension 2002 from the tab: Teams rings them
// first (the caller shown is 2002); once they answer, the call goes to
// Kamailio as extension 1001 with 1001's credentials and reaches the SIPp
// phone of 2002. Audio and DTMF come back from the far end; hold sends
// a=inactive to the PBX and resume sendrecv; a blind transfer is accepted
// and ends the call as transferred. A number the PBX does not know ends
// the call with the PBX's refusal in plain words.
func TestPhoneAppKamailioDial(t *testing.T) {
	// One worker: messages we send back to back (ACK then REFER, the
	// NOTIFY's 200 then BYE) reach the scripted far end in that order.
	k := kamailioInviteAuth(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain, Children: 1,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "p1001"}, {Username: "2002", Password: "p2002"}}})
	e := newEnv(t, envOptions{phoneApp: true})
	u, tu := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Pattern})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbxDomain, OutboundProxy: k.Addr(), Transport: pbx2teams.TransportUDP}
	e.cfgPassword("1001", "p1001")
	mediaPort := freeUDPPort(t)
	far := sipp.StartT(t, sipp.Options{ScenarioXML: farEnd, Calls: 1, Timeout: 50 * time.Second, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(mediaPort)}})
	registerContact(t, k, "2002", "p2002", "sip:2002@"+far.Addr())
	w := watchUser(t, e.B2BUA, u)
	ctx := ctxT(t, 50*time.Second)

	lc, err := e.B2BUA.Dial(ctx, u, "2002")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := tc.Invite().From(); f.Address.User != "2002" || f.DisplayName != "Calling 2002" || f.Address.Host != phoneAppDomain {
		t.Errorf("the callback shows %s", f.Value())
	}
	w.until(t, lc.ID, pbx2teams.CallDialling)
	w.until(t, lc.ID, pbx2teams.CallRinging)
	conn := w.until(t, lc.ID, pbx2teams.CallConnected)
	if !conn.CanAttendedTransfer {
		t.Errorf("the PBX announced REFER and replaces, but %+v", conn)
	}
	waitUntil(t, 10*time.Second, "the pattern echoed by the far end", func() bool { return tc.Media().PatternHits >= 25 })
	if invs := far.Received("INVITE"); len(invs) != 1 || !strings.Contains(invs[0].Text, "From: \"User 1001\" <sip:1001@"+pbxDomain+">") {
		t.Errorf("the far end did not see the call as from extension 1001: %+v", invs)
	}
	// Counters reach the tab while connected.
	moving := w.until(t, lc.ID, pbx2teams.CallConnected)
	if moving.PacketsToUser == 0 && moving.PacketsFromUser == 0 {
		moving = w.until(t, lc.ID, pbx2teams.CallConnected)
	}
	if moving.PacketsToUser == 0 || moving.PacketsFromUser == 0 {
		t.Errorf("media counters not moving: %+v", moving)
	}

	if err := e.B2BUA.DTMF(ctx, u, lc.ID, "42#"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "DTMF echoed by the far end", func() bool { return tc.Media().DTMF == "42#" })

	if err := e.B2BUA.Hold(ctx, u, lc.ID, true); err != nil {
		t.Fatal(err)
	}
	w.until(t, lc.ID, pbx2teams.CallHeld)
	if err := e.B2BUA.Hold(ctx, u, lc.ID, false); err != nil {
		t.Fatal(err)
	}
	w.until(t, lc.ID, pbx2teams.CallConnected)
	invs := far.Received("INVITE")
	if len(invs) != 3 || !strings.Contains(invs[1].Text, "a=inactive") || !strings.Contains(invs[2].Text, "a=sendrecv") {
		t.Errorf("hold and resume toward the PBX: %+v", invs)
	}

	if err := e.B2BUA.Transfer(ctx, u, lc.ID, "3003"); err != nil {
		t.Fatal(err)
	}
	end := w.until(t, lc.ID, pbx2teams.CallTransferred)
	if !strings.Contains(end.Reason, "3003") {
		t.Errorf("reason %q", end.Reason)
	}
	if refers := far.Received("REFER"); len(refers) != 1 || !strings.Contains(refers[0].Text, "Refer-To: <sip:3003@"+pbxDomain+">") {
		t.Errorf("REFER at the far end: %+v", refers)
	}
	if res, err := far.Wait(ctx); err != nil || res.Successful != 1 {
		t.Fatalf("SIPp far end: %+v %v\n%s", res, err, tail(far.Messages(), 60))
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("the Teams leg was not released after the transfer")
	}
	rec := e.Rec.next(t)
	if rec.Route != pbx2teams.RoutePhoneApp || rec.Direction != pbx2teams.DirectionOutbound || rec.Result != b2bua.ResultAnswered ||
		rec.PBXStatus != 200 || rec.TeamsStatus != 200 || rec.To != "2002" || rec.Media.PacketsToMS < 25 || rec.Media.PacketsFromMS < 25 {
		t.Errorf("record %+v", rec)
	}

	// Kamailio knows no 4040: its 404 reaches the tab in plain words.
	lc, err = e.B2BUA.Dial(ctx, u, "4040")
	if err != nil {
		t.Fatal(err)
	}
	end = w.until(t, lc.ID, pbx2teams.CallEnded)
	if !strings.HasPrefix(end.Reason, "The PBX refused the call: 404") || !strings.Contains(end.Reason, "check the number") {
		t.Errorf("reason %q", end.Reason)
	}
	rec = e.Rec.next(t)
	if rec.PBXStatus != 404 || rec.Result != b2bua.ResultFailed {
		t.Errorf("record %+v", rec)
	}
}

// headerValue returns the value of the first header called name in a
// logged SIP message.
func headerValue(msg, name string) string {
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tagOf returns the tag parameter of a From/To value.
func tagOf(v string) string {
	_, t, _ := strings.Cut(v, ";tag=")
	t, _, _ = strings.Cut(t, ";")
	return t
}

// A Phone App user with two calls through the PBX joins them: REFER on
// the first call's PBX dialog names the second call's far end with a
// Replaces of that dialog; once the PBX reports success both calls end
// as transferred.
func TestPhoneAppKamailioAttendedTransfer(t *testing.T) {
	k := kamailioInviteAuth(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain, Children: 1,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "p1001"}, {Username: "2002", Password: "p2002"},
			{Username: "2003", Password: "p2003"}}})
	e := newEnv(t, envOptions{phoneApp: true})
	u, _ := e.addPhoneAppUser("1001", lo, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Pattern})
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbxDomain, OutboundProxy: k.Addr(), Transport: pbx2teams.TransportUDP}
	e.cfgPassword("1001", "p1001")
	farA := sipp.StartT(t, sipp.Options{ScenarioXML: farEndJoin, Calls: 1, Timeout: 40 * time.Second, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(freeUDPPort(t))}})
	farB := sipp.StartT(t, sipp.Options{ScenarioXML: farEndPlain, Calls: 1, Timeout: 40 * time.Second, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(freeUDPPort(t))}})
	registerContact(t, k, "2002", "p2002", "sip:2002@"+farA.Addr())
	registerContact(t, k, "2003", "p2003", "sip:2003@"+farB.Addr())
	w := watchUser(t, e.B2BUA, u)
	ctx := ctxT(t, 40*time.Second)

	a, err := e.B2BUA.Dial(ctx, u, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if ca := w.until(t, a.ID, pbx2teams.CallConnected); !ca.CanAttendedTransfer {
		t.Fatalf("the PBX announced REFER and replaces, but %+v", ca)
	}
	b, err := e.B2BUA.Dial(ctx, u, "2003")
	if err != nil {
		t.Fatal(err)
	}
	w.until(t, b.ID, pbx2teams.CallConnected)
	if err := e.B2BUA.AttendedTransfer(ctx, u, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	w.reached(t, a.ID, pbx2teams.CallTransferred)
	w.reached(t, b.ID, pbx2teams.CallTransferred)

	invB := farB.Received("INVITE")
	refers := farA.Received("REFER")
	if len(invB) != 1 || len(refers) != 1 {
		t.Fatalf("INVITEs at B %d, REFERs at A %d", len(invB), len(refers))
	}
	callID := headerValue(invB[0].Text, "Call-ID")
	fromTag := tagOf(headerValue(invB[0].Text, "From"))
	referTo := headerValue(refers[0].Text, "Refer-To")
	want := "Replaces=" + url.QueryEscape(callID+";to-tag=") // B's tag follows
	if !strings.HasPrefix(referTo, "<sip:2003@") || !strings.Contains(referTo, want) || !strings.Contains(referTo, url.QueryEscape(";from-tag="+fromTag)) {
		t.Errorf("Refer-To %q does not replace B's dialog (Call-ID %s, our tag %s)", referTo, callID, fromTag)
	}
	for _, far := range []*sipp.Process{farA, farB} {
		if res, err := far.Wait(ctx); err != nil || res.Successful != 1 {
			t.Errorf("SIPp: %+v %v\n%s", res, err, tail(far.Messages(), 40))
		}
	}
}
