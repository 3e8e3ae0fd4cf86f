package b2bua

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// The Dialler: call control the Phone App tab drives for one user.
// Placing a call is callback-first, as in Call2Teams: the user is rung in
// Teams through the Phone App leg (the caller shown is the number being
// dialled), and once they answer the PBX destination is called as the
// user (their SIP username and digest credentials) and the two joined.

var _ pbx2teams.Dialler = (*B2BUA)(nil)

// Dialler returns the B2BUA as the Phone App tab's call control.
func (b *B2BUA) Dialler() pbx2teams.Dialler { return b }

// dialTimeout bounds a tab request that waits on the PBX (hold,
// transfer).
const dialTimeout = 32 * time.Second

// cleanNumber accepts what a dial pad produces: an extension or an E.164
// number, with visual separators removed.
func cleanNumber(s string) (string, bool) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9', r == '*', r == '#':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", false
		}
	}
	out := b.String()
	if out == "" || out == "+" || len(out) > 32 {
		return "", false
	}
	return out, true
}

// phoneAppUser checks that u may use the Dialler.
func (b *B2BUA) phoneAppUser(u *pbx2teams.User) error {
	if b.fed == nil {
		return pbx2teams.Errorf(pbx2teams.EUnavailable, "Phone App calls are not set up on this service.")
	}
	if u == nil || u.Type != pbx2teams.ServicePhoneApp || !u.ConsumesLicences() {
		return pbx2teams.Errorf(pbx2teams.EForbidden, "Only Phone App users can place calls from the Phone App.")
	}
	if _, ok := phoneAppUserURI(u); !ok {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Your account has no usable sign-in name (UPN) for Teams calls; ask your administrator.")
	}
	return nil
}

func (c *call) snapshot() pbx2teams.LiveCall {
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	return c.live.lc
}

// Dial places a callback-first call: ring the user in Teams, then, once
// answered, call number through the PBX as the user. It returns at once
// with the call ringing the user; progress comes through Watch.
func (b *B2BUA) Dial(ctx context.Context, u *pbx2teams.User, number string) (*pbx2teams.LiveCall, error) {
	if err := b.phoneAppUser(u); err != nil {
		return nil, err
	}
	num, ok := cleanNumber(number)
	if !ok {
		return nil, pbx2teams.Errorf(pbx2teams.EInvalid, "%q is not a number to dial: use digits, * and #, optionally starting with +.", clip(number))
	}
	ps, err := b.cfg.Directory.PBXSettings(ctx, u.AccountID)
	if err != nil || ps.Domain == "" {
		return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "Your PBX connection is not configured; ask your administrator.")
	}
	pw, err := b.cfg.Passwords(u)
	if err != nil || pw == "" {
		return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "Your PBX password is not set; ask your administrator.")
	}
	c := b.newCall(FromTeams, u)
	c.rec.Route = pbx2teams.RoutePhoneApp
	c.rec.From, c.rec.FromName, c.rec.To = u.SIPUsername, u.DisplayName, num
	c.live = &liveState{lc: pbx2teams.LiveCall{ID: c.id, AccountID: u.AccountID, UserID: u.ID,
		Direction: pbx2teams.DirectionOutbound, Remote: num, State: pbx2teams.CallRingingYou, StartedAt: c.rec.StartedAt}}
	if !b.addCall(c) {
		c.media.Close()
		return nil, pbx2teams.Errorf(pbx2teams.EUnavailable, "The service is shutting down; try again in a moment.")
	}
	c.liveStarted()
	lc := c.snapshot()
	go c.runDial(num, ps, pw)
	return &lc, nil
}

// endDial ends a callback-first call that failed before it connected.
func (c *call) endDial(by, result, reason string) {
	c.mu.Lock()
	if c.rec.Result == "" {
		c.rec.Result = result
	}
	if c.rec.Advice == "" {
		c.rec.Advice = reason
	}
	c.mu.Unlock()
	c.setReason(reason)
	c.hangup(by, reason)
}

// runDial runs a callback-first call to its end of setup.
func (c *call) runDial(number string, ps *pbx2teams.PBXSettings, password string) {
	b := c.b
	u := c.user
	to, _ := phoneAppUserURI(u)
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RingTimeout)
	defer cancel()
	c.mu.Lock()
	c.setupCancel = cancel
	c.mu.Unlock()
	if c.ended() {
		return
	}

	// 1. Ring the user in Teams, the caller shown as the dialled number.
	offer, err := c.media.OfferTo(teamsMediaLeg, msdp.SendRecv)
	if err != nil {
		c.endDial(endError, ResultFailed, "The service could not set up the call's media: "+pbx2teams.ErrorMessage(err))
		return
	}
	t := b.phoneAppLeg(c, to, number, "Calling "+number)
	c.setLeg(t)
	res, peer, warn := c.invitePhoneApp(ctx, t, to, offer, nil)
	c.noteTeamsAnswer(res, peer)
	if res == nil || !res.IsSuccess() {
		c.media.CancelOffer()
		switch {
		case c.ended():
		case ctx.Err() != nil:
			c.endDial(endTimeout, ResultNoAnswer, "You did not answer the callback in Teams.")
		case res == nil:
			c.endDial(endError, ResultFailed, b.phoneAppAdvice(u, 503, warn))
		case (res.StatusCode == 603 && warn == "") || res.StatusCode == 486:
			c.endDial(endTeams, ResultDeclined, "You declined the callback in Teams.")
		default:
			c.endDial(endTeams, resultOf(res.StatusCode), b.phoneAppAdvice(u, res.StatusCode, warn))
		}
		return
	}
	if _, err := c.media.Answer(teamsMediaLeg, res.Body()); err != nil {
		c.endDial(endError, ResultFailed, "Teams answered with media the relay cannot use: "+pbx2teams.ErrorMessage(err))
		return
	}
	c.noteSDP(t, res.Body())
	t.sessionAnswered(res)
	if c.ended() {
		return
	}
	c.setLive(func(lc *pbx2teams.LiveCall) { lc.State = pbx2teams.CallDialling })

	// 2. Call the destination through the PBX as the user.
	pt, advice := b.pbxTarget(c, u, ps, number)
	if pt == nil {
		c.endDial(endError, ResultFailed, "The PBX could not be reached: "+advice)
		return
	}
	p := pt.leg
	c.setLeg(p)
	offer, err = c.media.OfferTo(pbxMediaLeg, msdp.SendRecv)
	if err != nil {
		c.endDial(endError, ResultFailed, "The service could not set up the call's media: "+pbx2teams.ErrorMessage(err))
		return
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), b.cfg.RingTimeout)
	defer cancel2()
	c.mu.Lock()
	c.setupCancel = cancel2
	c.mu.Unlock()
	if c.ended() {
		return
	}
	onProvisional := func(res *sip.Response) {
		// Early media (ringback, announcements) goes to the user at once:
		// the Teams leg is already up.
		if res.StatusCode == 183 && len(res.Body()) > 0 {
			if _, err := c.media.Answer(pbxMediaLeg, res.Body()); err == nil {
				c.noteSDP(p, res.Body())
			}
		}
		c.setLive(func(lc *pbx2teams.LiveCall) { lc.State = pbx2teams.CallRinging })
	}
	res, err = c.invitePBX(ctx2, p, pt.ruri, pt.targets, offer, pt.authUser, password, onProvisional), nil
	c.mu.Lock()
	if res != nil {
		c.rec.PBXStatus = res.StatusCode
	}
	c.mu.Unlock()
	if res == nil || !res.IsSuccess() {
		c.media.CancelOffer()
		switch {
		case c.ended():
		case ctx2.Err() != nil:
			c.endDial(endTimeout, ResultNoAnswer, "Nobody answered the call to "+number+".")
		case res == nil:
			c.endDial(endError, ResultFailed, "The PBX did not answer the call; ask your administrator to check the PBX connection.")
		default:
			c.endDial(endPBX, resultOf(res.StatusCode), pbxRefusal(res))
		}
		return
	}
	if _, err := c.media.Answer(pbxMediaLeg, res.Body()); err != nil {
		c.endDial(endError, ResultFailed, "The PBX answered with media the relay cannot use: "+pbx2teams.ErrorMessage(err))
		return
	}
	c.noteSDP(p, res.Body())
	p.sessionAnswered(res)
	replaces := supportsReplaces(res)
	c.mu.Lock()
	c.pbxReplaces = replaces
	c.mu.Unlock()
	c.setLive(func(lc *pbx2teams.LiveCall) { lc.CanAttendedTransfer = replaces })
	c.connect()
}

// pbxRefusal says in plain words why the PBX refused a call the user
// placed, and what to check.
func pbxRefusal(res *sip.Response) string {
	hint := ""
	switch code := res.StatusCode; {
	case code == 404 || code == 484 || code == 604:
		hint = "check the number"
	case code == 486 || code == 600:
		hint = "the line is busy"
	case code == 480 || code == 408:
		hint = "nobody is available at that number"
	case code == 401 || code == 407 || code == 403:
		hint = "your PBX account may not call this number, or its credentials are wrong; ask your administrator"
	case code == 603:
		hint = "the call was declined"
	case code == 488:
		hint = "the PBX and Teams have no audio codec in common"
	case code >= 500:
		hint = "the PBX is unavailable; try again later"
	}
	s := fmt.Sprintf("The PBX refused the call: %d %s", res.StatusCode, res.Reason)
	if hint != "" {
		s += " — " + hint
	}
	return s
}

// supportsReplaces reports whether a peer's answer lists REFER in Allow
// and replaces in Supported (RFC 3891).
func supportsReplaces(res interface{ GetHeaders(string) []sip.Header }) bool {
	has := func(names []string, want string) bool {
		for _, n := range names {
			for _, h := range res.GetHeaders(n) {
				for _, v := range strings.Split(h.Value(), ",") {
					if strings.EqualFold(strings.TrimSpace(v), want) {
						return true
					}
				}
			}
		}
		return false
	}
	return has([]string{"Allow"}, "REFER") && has([]string{"Supported", "k"}, "replaces")
}

// Hangup ends one of the user's calls at any stage.
func (b *B2BUA) Hangup(ctx context.Context, u *pbx2teams.User, callID string) error {
	c, err := b.userCall(u, callID)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if !c.connected && c.rec.Result == "" {
		c.rec.Result = ResultCancelled
	}
	c.mu.Unlock()
	c.setReason("You hung up.")
	go c.hangup(endUser, "")
	return nil
}

// connectedPBXLeg returns the PBX leg of a connected call.
func (c *call) connectedPBXLeg() (*leg, error) {
	c.mu.Lock()
	p, connected := c.pbx, c.connected
	c.mu.Unlock()
	if !connected || p == nil || c.ended() {
		return nil, pbx2teams.Errorf(pbx2teams.EConflict, "The call is not connected.")
	}
	return p, nil
}

// Hold puts the far end on hold (a=inactive toward the PBX, so the PBX
// plays its music on hold) or resumes it (sendrecv).
func (b *B2BUA) Hold(ctx context.Context, u *pbx2teams.User, callID string, on bool) error {
	c, err := b.userCall(u, callID)
	if err != nil {
		return err
	}
	p, err := c.connectedPBXLeg()
	if err != nil {
		return err
	}
	if !c.beginOffer() {
		return pbx2teams.Errorf(pbx2teams.EConflict, "Another change of this call is in progress; try again.")
	}
	defer c.endOffer()
	dir, state := msdp.SendRecv, pbx2teams.CallConnected
	if on {
		dir, state = msdp.Inactive, pbx2teams.CallHeld
	}
	offer, err := c.media.OfferTo(pbxMediaLeg, dir)
	if err != nil {
		return pbx2teams.Errorf(pbx2teams.EConflict, "%s", pbx2teams.ErrorMessage(err))
	}
	req := p.newRequest(sip.INVITE)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", allowPBX))
	req.SetBody(offer)
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	res, err := p.do(ctx, req)
	if err != nil || !res.IsSuccess() {
		c.media.CancelOffer()
		if err != nil {
			return pbx2teams.Errorf(pbx2teams.EUnavailable, "The PBX did not answer the %s request.", holdWord(on))
		}
		if res.StatusCode == 481 || res.StatusCode == 408 {
			go c.hangup(endPBX, "The PBX lost the call.")
		}
		return pbx2teams.Errorf(pbx2teams.EConflict, "The PBX refused the %s: %d %s.", holdWord(on), res.StatusCode, res.Reason)
	}
	if _, err := c.media.Answer(pbxMediaLeg, res.Body()); err != nil {
		return pbx2teams.Errorf(pbx2teams.EConflict, "The PBX answered the %s with unusable media: %s", holdWord(on), pbx2teams.ErrorMessage(err))
	}
	c.noteSDP(p, res.Body())
	c.setLive(func(lc *pbx2teams.LiveCall) { lc.State = state })
	return nil
}

func holdWord(on bool) string {
	if on {
		return "hold"
	}
	return "resume"
}

// Transfer hands the far end to target: REFER to the PBX in the call's
// PBX dialog. On success the call ends as transferred; on failure it
// stays as it was and the error says why.
func (b *B2BUA) Transfer(ctx context.Context, u *pbx2teams.User, callID, target string) error {
	c, err := b.userCall(u, callID)
	if err != nil {
		return err
	}
	num, ok := cleanNumber(target)
	if !ok {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "%q is not a number to transfer to.", clip(target))
	}
	p, err := c.connectedPBXLeg()
	if err != nil {
		return err
	}
	p.mu.Lock()
	domain := p.remoteURI.Host
	if p.uas {
		// An incoming call: the caller's URI may not name the PBX.
		domain = p.localURI.Host
	}
	p.mu.Unlock()
	if ps, err := b.cfg.Directory.PBXSettings(ctx, u.AccountID); err == nil && ps.Domain != "" {
		if h, _, err := sipx.SplitHostPort(ps.Domain); err == nil {
			domain = h
		}
	}
	referTo := "<" + (&sip.Uri{Scheme: "sip", User: num, Host: domain}).String() + ">"
	return c.refer(ctx, p, referTo, "Transferred to "+num+".")
}

// AttendedTransfer joins the far ends of two of the user's calls: REFER
// on the first call's PBX dialog with Refer-To naming the second call's
// far end and a Replaces of its dialog, when the PBX supports it.
func (b *B2BUA) AttendedTransfer(ctx context.Context, u *pbx2teams.User, callID, otherCallID string) error {
	c, err := b.userCall(u, callID)
	if err != nil {
		return err
	}
	o, err := b.userCall(u, otherCallID)
	if err != nil {
		return err
	}
	if c == o {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Choose two different calls to join.")
	}
	p, err := c.connectedPBXLeg()
	if err != nil {
		return err
	}
	op, err := o.connectedPBXLeg()
	if err != nil {
		return err
	}
	c.mu.Lock()
	ok := c.pbxReplaces
	c.mu.Unlock()
	if !ok {
		return pbx2teams.Errorf(pbx2teams.EConflict, "Your PBX does not announce transfers with Replaces, so the two calls cannot be joined; use a blind transfer instead.")
	}
	op.mu.Lock()
	target := op.remoteURI
	replaces := op.callID + ";to-tag=" + op.remoteTag + ";from-tag=" + op.localTag
	op.mu.Unlock()
	referTo := "<" + (&sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port}).String() +
		"?Replaces=" + url.QueryEscape(replaces) + ">"
	if err := c.refer(ctx, p, referTo, "Joined with your other call."); err != nil {
		return err
	}
	// The PBX replaces the other call's dialog; end our side of it.
	o.mu.Lock()
	o.transferred = true
	o.mu.Unlock()
	o.setReason("Joined with your other call.")
	go o.hangup(endUser, "")
	return nil
}

// refer sends REFER on the PBX leg and follows the NOTIFYs until the
// transfer's outcome.
func (c *call) refer(ctx context.Context, p *leg, referTo, done string) error {
	ch := make(chan int, 8)
	c.mu.Lock()
	if c.referCh != nil {
		c.mu.Unlock()
		return pbx2teams.Errorf(pbx2teams.EConflict, "A transfer of this call is already in progress.")
	}
	c.referCh = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.referCh = nil
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	req := p.newRequest(sip.REFER)
	req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	p.mu.Lock()
	by := "<" + p.localURI.String() + ">"
	p.mu.Unlock()
	req.AppendHeader(sip.NewHeader("Referred-By", by))
	res, err := p.do(ctx, req)
	if err != nil {
		return pbx2teams.Errorf(pbx2teams.EUnavailable, "The PBX did not answer the transfer request.")
	}
	if !res.IsSuccess() {
		return pbx2teams.Errorf(pbx2teams.EConflict, "The PBX refused the transfer: %d %s.", res.StatusCode, res.Reason)
	}
	for {
		select {
		case st := <-ch:
			if st < 200 {
				continue
			}
			if st >= 300 {
				return pbx2teams.Errorf(pbx2teams.EConflict, "The transfer failed: the PBX reported %d; the call is still yours.", st)
			}
			c.setReason(done)
			go c.hangup(endUser, "")
			return nil
		case <-c.done:
			c.mu.Lock()
			ok := c.transferred
			c.mu.Unlock()
			if ok {
				return nil
			}
			return pbx2teams.Errorf(pbx2teams.EConflict, "The call ended during the transfer.")
		case <-ctx.Done():
			return pbx2teams.Errorf(pbx2teams.EUnavailable, "The PBX did not report the outcome of the transfer.")
		}
	}
}

// DTMF sends digits to the far end as RFC 4733 events on the PBX leg.
func (b *B2BUA) DTMF(ctx context.Context, u *pbx2teams.User, callID, digits string) error {
	c, err := b.userCall(u, callID)
	if err != nil {
		return err
	}
	if _, err := c.connectedPBXLeg(); err != nil {
		return err
	}
	if len(digits) > 64 {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Send at most 64 digits at a time.")
	}
	switch err := c.media.SendDTMF(media.LegA, digits, 0); {
	case err == nil:
		return nil
	case errors.Is(err, media.ErrBadDigit):
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Keypad digits are 0-9, *, # and A-D.")
	case errors.Is(err, media.ErrNoDTMF):
		return pbx2teams.Errorf(pbx2teams.EConflict, "The PBX did not agree to RFC 4733 DTMF for this call, so keypad digits cannot be sent.")
	default:
		return pbx2teams.Errorf(pbx2teams.EUnavailable, "The digits could not be sent: %s", pbx2teams.ErrorMessage(err))
	}
}

// testCallHold is how long a test call stays up once answered.
const testCallHold = 2 * time.Second

// TestCall rings a Phone App user through the Phone App leg (From
// "pbx2teams test call"); once answered it stays up briefly (silence) and
// hangs up. result and advice are plain words for the portal; err is set
// only when no test call could be placed at all.
func (b *B2BUA) TestCall(ctx context.Context, u *pbx2teams.User) (result, advice string, err error) {
	if err := b.phoneAppUser(u); err != nil {
		return "", "", err
	}
	to, _ := phoneAppUserURI(u)
	c := b.newCall(ToTeams, u)
	c.rec.Route = pbx2teams.RoutePhoneApp
	c.rec.From, c.rec.FromName, c.rec.To = "pbx2teams-test", "pbx2teams test call", u.UPN
	if !b.addCall(c) {
		c.media.Close()
		return "", "", pbx2teams.Errorf(pbx2teams.EUnavailable, "The service is shutting down; try again in a moment.")
	}
	offer, err := c.media.OfferTo(teamsMediaLeg, msdp.SendRecv)
	if err != nil {
		c.endDial(endError, ResultFailed, pbx2teams.ErrorMessage(err))
		return "", "", pbx2teams.Errorf(pbx2teams.EUnavailable, "The media relay could not take the test call: %s", pbx2teams.ErrorMessage(err))
	}
	t := b.phoneAppLeg(c, to, "pbx2teams-test", "pbx2teams test call")
	c.setLeg(t)
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RingTimeout)
	defer cancel()
	c.mu.Lock()
	c.setupCancel = cancel
	c.mu.Unlock()
	rang := false
	res, peer, warn := c.invitePhoneApp(ctx, t, to, offer, func(*sip.Response) { rang = true })
	c.noteTeamsAnswer(res, peer)
	if res == nil || !res.IsSuccess() {
		c.media.CancelOffer()
		switch {
		case res == nil && rang:
			c.endDial(endTimeout, ResultNoAnswer, "")
			return "The test call rang " + u.UPN + " in Teams but was not answered.",
				"The Phone App path works up to the user's Teams client; answer the test call to check it end to end.", nil
		case res == nil:
			advice = b.phoneAppAdvice(u, 503, warn)
			c.endDial(endError, ResultFailed, advice)
			return "The federation edge did not answer the test call.", advice, nil
		}
		advice = b.phoneAppAdvice(u, res.StatusCode, warn)
		c.endDial(endTeams, resultOf(res.StatusCode), advice)
		return fmt.Sprintf("The test call was refused: %d %s.", res.StatusCode, res.Reason), advice, nil
	}
	if _, err := c.media.Answer(teamsMediaLeg, res.Body()); err != nil {
		advice = "Teams answered with media the relay cannot use: " + pbx2teams.ErrorMessage(err)
		c.endDial(endError, ResultFailed, advice)
		return "The test call was answered but its media could not be set up.", advice, nil
	}
	c.noteSDP(t, res.Body())
	c.connect()
	select {
	case <-time.After(testCallHold):
	case <-c.done:
	case <-ctx.Done():
	}
	c.hangup(endUser, "")
	return "The test call rang " + u.UPN + " in Teams and was answered.", "", nil
}

// noteTeamsAnswer records which Microsoft peer took the Teams leg and its
// final status (none when it never answered).
func (c *call) noteTeamsAnswer(res *sip.Response, peer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec.TeamsPeer = peer
	if res != nil {
		c.rec.TeamsStatus = res.StatusCode
	}
}
