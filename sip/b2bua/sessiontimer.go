package b2bua

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// Session timers (RFC 4028), per leg. Microsoft always offers one on
// non-bypass calls and drops calls nobody refreshes; Direct Routing has no
// UPDATE, so we refresh with re-INVITE.

// supportsTimer reports whether the peer listed "timer" in Supported or
// Require.
func supportsTimer(m interface{ GetHeaders(string) []sip.Header }) bool {
	for _, name := range []string{"Supported", "k", "Require"} {
		for _, h := range m.GetHeaders(name) {
			for _, t := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(t), "timer") {
					return true
				}
			}
		}
	}
	return false
}

// sessionRefreshed handles Session-Expires in a request the peer sent
// (initial INVITE, re-INVITE or UPDATE): it re-arms the leg's timer and
// returns the headers of our 2xx. Unless the peer asks us to refresh, the
// peer (the UAC of the request) is the refresher.
func (l *leg) sessionRefreshed(req *sip.Request) []sip.Header {
	iv, ref := sessionExpires(req)
	if iv == 0 {
		l.mu.Lock()
		iv, we := l.seInterval, l.seRefresher
		l.mu.Unlock()
		if iv > 0 && !we {
			l.startSessionTimer(iv, false)
		}
		return nil
	}
	weRefresh := ref == "uas"
	l.startSessionTimer(iv, weRefresh)
	role := "uac"
	if weRefresh {
		role = "uas"
	}
	hdrs := []sip.Header{sip.NewHeader("Session-Expires", strconv.Itoa(int(iv/time.Second))+";refresher="+role)}
	if supportsTimer(req) {
		hdrs = append(hdrs, sip.NewHeader("Require", "timer"))
	}
	return hdrs
}

// sessionAnswered arms the timer of a UAC leg from the 2xx to our INVITE.
func (l *leg) sessionAnswered(res *sip.Response) {
	iv, ref := sessionExpires(res)
	if iv == 0 {
		return
	}
	// refresher=uac is us (we sent the INVITE); absent means the same.
	l.startSessionTimer(iv, ref != "uas")
}

// startSessionTimer arms the refresh (when we refresh) or the expiry
// watchdog (when the peer does).
func (l *leg) startSessionTimer(iv time.Duration, weRefresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.seInterval, l.seRefresher = iv, weRefresh
	if l.seTimer != nil {
		l.seTimer.Stop()
	}
	if weRefresh {
		l.seTimer = time.AfterFunc(iv/2, func() { l.c.refresh(l) })
		return
	}
	// RFC 4028 §10: without a refresh, BYE before the session expires.
	wait := iv - min(32*time.Second, iv/3)
	l.seTimer = time.AfterFunc(wait, func() {
		l.c.hangup(endSession, "The "+l.s.name+" side stopped refreshing the session (session timer expired).")
	})
}

func (l *leg) stopSessionTimer() {
	l.mu.Lock()
	if l.seTimer != nil {
		l.seTimer.Stop()
		l.seTimer = nil
	}
	l.mu.Unlock()
}

// refresh sends a session refresh re-INVITE on a leg we refresh: our
// current description again, so nothing changes on the media path.
func (c *call) refresh(l *leg) {
	if c.ended() {
		return
	}
	l.mu.Lock()
	iv := l.seInterval
	l.mu.Unlock()
	if !c.beginOffer() {
		// An exchange is in progress; try again shortly.
		l.mu.Lock()
		if l.seTimer != nil && !l.ended {
			l.seTimer.Reset(2 * time.Second)
		}
		l.mu.Unlock()
		return
	}
	defer c.endOffer()
	ml := mediaLeg(l)
	c.mu.Lock()
	last := c.sent[ml]
	c.mu.Unlock()
	dir := msdp.SendRecv
	if s, err := msdp.Parse(last); err == nil && len(s.Media) > 0 {
		dir = s.Media[0].Direction
	}
	offer, err := c.media.OfferTo(ml, dir)
	if err != nil {
		l.startSessionTimer(iv, true)
		return
	}
	req := l.newRequest(sip.INVITE)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(iv/time.Second))+";refresher=uac"))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if l.s.teams {
		req.AppendHeader(sip.NewHeader("Allow", allowTeams))
	}
	req.SetBody(offer)
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	res, err := l.do(ctx, req)
	switch {
	case err != nil || res.StatusCode == 408 || res.StatusCode == 481:
		c.media.CancelOffer()
		c.hangup(sideEnd(l), "The "+l.s.name+" side did not answer a session refresh; the call was lost.")
		return
	case !res.IsSuccess():
		c.media.CancelOffer()
		l.startSessionTimer(iv, true)
		return
	}
	if _, err := c.media.Answer(ml, res.Body()); err != nil {
		c.lg().Debug("refresh answer not usable", "error", err)
	}
	c.noteSDP(l, res.Body())
	if niv, ref := sessionExpires(res); niv > 0 {
		l.startSessionTimer(niv, ref != "uas")
	} else {
		l.startSessionTimer(iv, true)
	}
}
