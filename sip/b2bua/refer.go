package b2bua

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// Transfers from Teams. Our Allow lists REFER, so Microsoft's proxy acts
// as transferor: it sends REFER on the Teams leg, we answer 202, send a
// new INVITE back to Microsoft (Request-URI = Refer-To, Referred-By copied
// byte for byte), report its progress with NOTIFY (message/sipfrag), and
// once it is answered Microsoft releases the old leg with BYE. The PBX
// leg never notices: the relay moves the Teams side of the media to the
// new leg.

// isCurrent reports whether l is still one of the call's two legs (a leg
// replaced by a transfer is not).
func (c *call) isCurrent(l *leg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pbx == l || c.teams == l
}

// onRefer handles REFER on the Teams leg.
func (c *call) onRefer(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	rt := req.GetHeader("Refer-To")
	if rt == nil {
		rt = req.GetHeader("r")
	}
	var target sip.Uri
	if rt == nil {
		l.replyIn(req, tx, 400, "Bad Request", nil, sip.NewHeader("Warning", `399 pbx2teams "Refer-To missing"`))
		return
	}
	if _, err := sip.ParseAddressValue(rt.Value(), &target, nil); err != nil || target.Host == "" {
		l.replyIn(req, tx, 400, "Bad Request", nil, sip.NewHeader("Warning", `399 pbx2teams "Refer-To unreadable"`))
		return
	}
	if !c.isCurrent(l) || c.ended() {
		l.replyIn(req, tx, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if !c.beginOffer() {
		l.replyIn(req, tx, 491, "Request Pending", nil)
		return
	}
	var referredBy string
	if h := req.GetHeader("Referred-By"); h != nil {
		referredBy = h.Value()
	} else if h := req.GetHeader("b"); h != nil {
		referredBy = h.Value()
	}
	l.replyIn(req, tx, 202, "Accepted", nil)
	go func() {
		defer c.endOffer()
		c.transfer(l, target, referredBy, req.CSeq().SeqNo)
	}()
}

// notify reports a transfer's progress on the leg that sent the REFER.
func (c *call) notify(l *leg, eventID uint32, status int, reason string, final bool) {
	req := l.newRequest(sip.NOTIFY)
	req.AppendHeader(sip.NewHeader("Event", "refer;id="+strconv.FormatUint(uint64(eventID), 10)))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte("SIP/2.0 " + strconv.Itoa(status) + " " + reason + "\r\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.do(ctx, req); err != nil {
		c.lg().Debug("NOTIFY failed", "error", err)
	}
}

// transfer places the new call to the Refer-To target and, when it is
// answered, makes it the call's Teams leg.
func (c *call) transfer(old *leg, target sip.Uri, referredBy string, eventID uint32) {
	c.notify(old, eventID, 100, "Trying", false)
	offer, err := c.media.OfferTo(teamsMediaLeg, msdp.SendRecv)
	if err != nil {
		c.notify(old, eventID, 503, "Service Unavailable", true)
		return
	}
	old.mu.Lock()
	local, localName := old.localURI, old.localName
	contact := old.contact
	old.mu.Unlock()
	remote := sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}
	nt := newUAC(c, c.b.teams, newTag()+newTag(), local, remote, localName, "", contact)
	c.b.addDialog(nt)
	ruri := *target.Clone()
	ruri.Headers = nil // an embedded header part is not part of the Request-URI

	lastNotified := 0
	onProvisional := func(res *sip.Response) {
		if res.StatusCode != lastNotified && (res.StatusCode == 180 || res.StatusCode == 183) {
			lastNotified = res.StatusCode
			c.notify(old, eventID, res.StatusCode, res.Reason, false)
		}
	}
	// Back to Microsoft: first where Refer-To points, then the proxies in
	// failover order.
	tr := c.b.cfg.Trunk
	port := target.Port
	if port == 0 {
		port = 5061
	}
	dests := []string{net.JoinHostPort(target.Host, strconv.Itoa(port))}
	for _, tg := range tr.Targets() {
		if !strings.EqualFold(tg.Proxy, target.Host) {
			dests = append(dests, tg.Destination())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.b.cfg.RingTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var res *sip.Response
	for i, d := range dests {
		if i > 0 {
			nt.mu.Lock()
			nt.localSeq++
			nt.mu.Unlock()
		}
		hdrs := []sip.Header{
			sip.NewHeader("Allow", allowTeams),
			sip.NewHeader("Supported", "timer"),
			sip.NewHeader("Session-Expires", strconv.Itoa(int(c.b.cfg.SessionExpires/time.Second))),
		}
		if referredBy != "" {
			hdrs = append(hdrs, sip.NewHeader("Referred-By", referredBy))
		}
		req := nt.inviteRequest(ruri, offer, hdrs...)
		req.SetTransport(strings.ToUpper(tr.Transport()))
		req.SetDestination(d)
		r := nt.attempt(ctx, req, tr.RequestTimeout(), onProvisional)
		if r.res != nil {
			res = r.res
			if r.res.IsSuccess() || r.ringing || !teams.ShouldFailover(r.res.StatusCode) {
				break
			}
			continue
		}
		if ctx.Err() != nil || r.ringing {
			break
		}
	}
	if res == nil || !res.IsSuccess() {
		c.media.CancelOffer()
		c.b.removeDialog(nt)
		code, reason := 503, "Service Unavailable"
		if res != nil {
			code, reason = res.StatusCode, res.Reason
		}
		if !c.ended() {
			c.notify(old, eventID, code, reason, true)
		}
		return
	}
	nt.established(res)
	nt.ackFor(res)
	if _, err := c.media.Answer(teamsMediaLeg, res.Body()); err != nil {
		c.lg().Info("transfer target answered unusable media", "error", pbx2teams.ErrorMessage(err))
		go nt.bye()
		c.b.removeDialog(nt)
		c.notify(old, eventID, 488, "Not Acceptable Here", true)
		return
	}
	c.noteSDP(nt, res.Body())
	c.mu.Lock()
	c.teams = nt
	c.rec.To = target.User
	c.mu.Unlock()
	nt.sessionAnswered(res)
	old.stopSessionTimer()
	c.notify(old, eventID, 200, "OK", true)
	// Microsoft releases the old leg once told the transfer worked; do it
	// ourselves if it does not.
	go func() {
		select {
		case <-time.After(32 * time.Second):
			old.bye()
			c.b.removeDialog(old)
		case <-c.done:
		}
	}()
}

// replaceTeamsLeg handles an INVITE with Replaces from Microsoft (used by
// call queues): the new dialog takes the place of one of our Teams legs.
func (b *B2BUA) replaceTeamsLeg(req *sip.Request, tx sip.ServerTransaction) {
	s := b.teams
	callID, toTag, fromTag, ok := parseReplaces(req.GetHeader("Replaces").Value())
	var old *leg
	if ok {
		b.mu.Lock()
		old = b.dialogs[dialogKey(callID, toTag)]
		if old == nil {
			old = b.dialogs[dialogKey(callID, fromTag)]
		}
		b.mu.Unlock()
	}
	if old == nil || !old.s.teams || !old.c.isCurrent(old) {
		s.reply(req, tx, 481, "Call/Transaction Does Not Exist", "Replaces matches no call")
		return
	}
	c := old.c
	if !c.beginOffer() {
		s.reply(req, tx, 491, "Request Pending", "")
		return
	}
	defer c.endOffer()
	nt := newUAS(c, s, req, tx)
	old.mu.Lock()
	nt.contact = old.contact
	old.mu.Unlock()
	c.b.addDialog(nt)
	c.trace(nt, "in", req)
	_ = nt.respond(100, "Trying", nil)
	out, err := c.media.Offer(teamsMediaLeg, req.Body())
	_ = out
	if err != nil {
		c.b.removeDialog(nt)
		_ = nt.respond(488, "Not Acceptable Here", nil, warning(err))
		return
	}
	c.mu.Lock()
	pbxLast := c.lastSDP[pbxMediaLeg]
	c.mu.Unlock()
	ans, err := c.media.Answer(pbxMediaLeg, pbxLast)
	if err != nil || ans == nil {
		c.media.CancelOffer()
		c.b.removeDialog(nt)
		_ = nt.respond(488, "Not Acceptable Here", nil, warning(err))
		return
	}
	c.noteSDP(nt, req.Body())
	c.mu.Lock()
	c.teams = nt
	c.mu.Unlock()
	hdrs := append([]sip.Header{sip.NewHeader("Allow", allowTeams)}, nt.sessionRefreshed(req)...)
	if err := nt.respond(200, "OK", ans, hdrs...); err != nil {
		c.hangup(endTeams, "")
		return
	}
	old.stopSessionTimer()
	go func() {
		old.bye()
		c.b.removeDialog(old)
	}()
}

// parseReplaces reads a Replaces header: call-id;to-tag=..;from-tag=..
func parseReplaces(v string) (callID, toTag, fromTag string, ok bool) {
	parts := strings.Split(v, ";")
	callID = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(k) {
		case "to-tag":
			toTag = val
		case "from-tag":
			fromTag = val
		}
	}
	return callID, toTag, fromTag, callID != "" && toTag != "" && fromTag != ""
}
