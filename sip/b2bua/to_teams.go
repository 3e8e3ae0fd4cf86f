package b2bua

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// allowTeams is what we advertise to Microsoft: REFER included, so the
// proxy acts as transferor and sends us REFER.
const allowTeams = teams.Allow

// allowPBX is what we advertise to the PBX.
const allowPBX = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, UPDATE"

const lookupTimeout = 3 * time.Second

// toTeams handles a new INVITE from the PBX side: a call to a user's
// registration Contact, to be rung in Teams.
func (b *B2BUA) toTeams(req *sip.Request, tx sip.ServerTransaction) {
	received := time.Now()
	s := b.pbx
	reject := func(code int, reason, why string) {
		b.rejected.Add(1)
		b.log.Info("INVITE from PBX side refused", "status", code, "why", why, "from", req.Source(), "ruri_user", clip(req.Recipient.User))
		s.reply(req, tx, code, reason, "")
	}
	contactUser := req.Recipient.User
	if contactUser == "" {
		reject(404, "Not Found", "no user part")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	u, err := b.cfg.Directory.UserByContact(ctx, contactUser)
	cancel()
	if err != nil {
		if pbx2teams.ErrorCode(err) == pbx2teams.ENotFound {
			reject(404, "Not Found", "unknown contact")
		} else {
			b.log.Error("user lookup failed", "error", err)
			s.reply(req, tx, 503, "Service Unavailable", "")
		}
		return
	}
	// Only users with a live registration, and only from the PBX that
	// registration is held with: a scanner guessing Contacts, or another
	// host replaying one, rings nobody.
	phoneApp := u.Type == pbx2teams.ServicePhoneApp && b.fed != nil
	if (u.Type != pbx2teams.ServiceStandard && !phoneApp) || !u.ConsumesLicences() {
		reject(404, "Not Found", "user not a standard or Phone App user")
		return
	}
	addrs, registered := b.cfg.Registrations.PBXAddresses(u.ID)
	if !registered {
		reject(404, "Not Found", "no live registration")
		return
	}
	if !fromAny(req, addrs) {
		reject(403, "Forbidden", "source is not the PBX of the registration")
		return
	}
	if phoneApp {
		b.callToPhoneApp(req, tx, u, received)
		return
	}
	b.callToTeams(req, tx, u, received)
}

// fromAny reports whether the request's source address is one of addrs.
func fromAny(req *sip.Request, addrs []netip.Addr) bool {
	ip, ok := sourceIP(req)
	if !ok {
		return false
	}
	src, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	src = src.Unmap()
	for _, a := range addrs {
		if a.Unmap() == src {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// pbxContact is our Contact toward the PBX for a user: the registration's
// Contact, so in-dialog requests come back to the same place.
func (s *side) pbxContact(contactUser, transport string) *sip.ContactHeader {
	tr := strings.ToLower(transport)
	if !s.stack.HasTransport(tr) {
		tr = s.deflt
	}
	host := s.stack.AdvertisedHost()
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	u := sip.Uri{Scheme: "sip", User: contactUser, Host: host, Port: s.stack.Port(tr)}
	if tr != "udp" {
		u.UriParams = sip.HeaderParams{{K: "transport", V: tr}}
	}
	return &sip.ContactHeader{Address: u}
}

// callerOf returns the caller's number and name as the PBX gives them:
// the From user, or P-Asserted-Identity when From is anonymous (Teams
// shows a made-up number for "anonymous").
func callerOf(req *sip.Request) (number, name string) {
	f := req.From()
	number, name = f.Address.User, f.DisplayName
	if strings.EqualFold(number, "anonymous") || number == "" {
		var ids []string // an empty P-Asserted-Identity lists nothing
		if h := req.GetHeader("P-Asserted-Identity"); h != nil {
			ids = splitHeaderList(h.Value())
		}
		var u sip.Uri
		if len(ids) > 0 {
			if n, err := sip.ParseAddressValue(ids[0], &u, nil); err == nil && u.User != "" {
				number = u.User
				if name == "" || strings.EqualFold(name, "anonymous") {
					name = n
				}
			}
		}
	}
	if number == "" {
		number = "anonymous"
	}
	return number, name
}

// teamsDial is how the Teams leg of a PBX → Teams call is placed: through
// the Direct Routing trunk, or through the Phone App leg.
type teamsDial struct {
	leg *leg
	// invite sends the INVITE and returns the final response (nil when
	// nobody answered), the Microsoft peer that took it, and a diagnostic.
	invite func(ctx context.Context, offer []byte, onProvisional func(*sip.Response)) (*sip.Response, string, string)
	// advice explains a final status of the Teams leg.
	advice func(status int, warn string) string
}

// callToTeams runs a PBX → Teams call of a standard user (Direct
// Routing) to its end of setup.
func (b *B2BUA) callToTeams(req *sip.Request, tx sip.ServerTransaction, u *pbx2teams.User, received time.Time) {
	number, ok := teams.E164(u.PhoneNumber)
	fqdn, okF := b.cfg.Customers.FQDN(u.AccountID)
	if !ok || !okF {
		b.rejected.Add(1)
		why := "The user has no Teams phone number in E.164 form."
		if !okF {
			why = "The customer has no SBC subdomain configured."
		}
		b.pbx.reply(req, tx, 480, "Temporarily Unavailable", why)
		return
	}
	b.bridgeToTeams(req, tx, u, received, number, func(c *call, caller, callerName string) teamsDial {
		callerNum := teams.CallerNumber(caller)
		t := newUAC(c, b.teams, newTag()+newTag(),
			teams.NumberURI(callerNum, fqdn), teams.NumberURI(number, fqdn), callerName, "",
			b.cfg.Trunk.Contact(callerNum, fqdn))
		return teamsDial{leg: t,
			invite: func(ctx context.Context, offer []byte, onProv func(*sip.Response)) (*sip.Response, string, string) {
				return c.inviteTeams(ctx, t, number, offer, onProv)
			},
			advice: func(status int, warn string) string { return adviceFor("teams", status, warn) },
		}
	})
}

// bridgeToTeams runs a PBX → Teams call to its end of setup: the PBX leg
// answers as the Teams leg does. to is the called party for the record;
// mk makes the Teams leg once the call exists.
func (b *B2BUA) bridgeToTeams(req *sip.Request, tx sip.ServerTransaction, u *pbx2teams.User, received time.Time, to string,
	mk func(c *call, caller, callerName string) teamsDial) {
	s := b.pbx
	c := b.newCall(ToTeams, u)
	c.received = received
	caller, callerName := callerOf(req)
	c.rec.From, c.rec.FromName, c.rec.To = caller, callerName, to
	if u.Type == pbx2teams.ServicePhoneApp {
		c.rec.Route = pbx2teams.RoutePhoneApp
		c.live = &liveState{lc: pbx2teams.LiveCall{ID: c.id, AccountID: u.AccountID, UserID: u.ID,
			Direction: pbx2teams.DirectionInbound, Remote: caller, RemoteName: callerName,
			State: pbx2teams.CallIncoming, StartedAt: c.rec.StartedAt}}
		c.pbxReplaces = supportsReplaces(req)
		c.live.lc.CanAttendedTransfer = c.pbxReplaces
	}
	if !b.addCall(c) {
		s.reply(req, tx, 503, "Service Unavailable", "")
		c.media.Close()
		return
	}
	c.liveStarted()
	a := newUAS(c, s, req, tx)
	a.contact = s.pbxContact(u.ContactUser, req.Transport())
	c.setLeg(a)
	// No explicit 100: the transaction layer sends one if nothing else
	// goes out within 200 ms, and Teams/the PBX usually ring sooner.

	pbxOffer := req.Body()
	var offer []byte
	var err error
	delayed := len(pbxOffer) == 0
	if delayed {
		// The PBX makes no offer; Teams needs one (no delayed offer in
		// Direct Routing or federation), so the relay writes its own.
		offer, err = c.media.OfferTo(teamsMediaLeg, msdp.SendRecv)
	} else {
		offer, err = c.media.OfferFromA(pbxOffer)
		c.noteSDP(a, pbxOffer)
	}
	if err != nil {
		code, reason := statusOf(err)
		c.rec.Result = ResultRejected
		c.failSetup(a, code, reason, pbx2teams.ErrorMessage(err), warning(err))
		return
	}

	d := mk(c, caller, callerName)
	t := d.leg
	c.setLeg(t)

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RingTimeout)
	defer cancel()
	c.mu.Lock()
	c.setupCancel = cancel
	c.mu.Unlock()
	cancelledByPBX := false
	tx.OnCancel(func(*sip.Request) {
		c.mu.Lock()
		cancelledByPBX = true
		c.mu.Unlock()
		cancel()
	})

	sentRinging, sentEarly := false, []byte(nil)
	onProvisional := func(res *sip.Response) {
		body := res.Body()
		if res.StatusCode == 183 && len(body) > 0 && !delayed {
			ans, err := c.media.AnswerFromB(body)
			if err != nil {
				return
			}
			c.noteSDP(t, body)
			if !b.cfg.Collapse183 {
				if !bytes.Equal(ans, sentEarly) {
					sentEarly = ans
					_ = a.respond(183, "Session Progress", ans)
				}
				return
			}
		}
		if !sentRinging && sentEarly == nil {
			sentRinging = true
			_ = a.respond(180, "Ringing", nil)
		}
	}

	res, peer, warn := d.invite(ctx, offer, onProvisional)
	c.mu.Lock()
	byPBX := cancelledByPBX
	c.rec.TeamsPeer = peer
	c.mu.Unlock()
	if res == nil || !res.IsSuccess() {
		c.setupFailed(a, t, res, byPBX, ctx.Err() != nil, warn, d.advice, "Nobody answered in Teams within the ring timeout.")
		return
	}
	c.rec.TeamsStatus = res.StatusCode
	c.noteSDP(t, res.Body())
	var ans []byte
	if delayed {
		if _, err = c.media.AnswerFromB(res.Body()); err == nil {
			ans, err = c.media.OfferTo(pbxMediaLeg, msdp.SendRecv)
		}
	} else {
		ans, err = c.media.AnswerFromB(res.Body())
	}
	if err != nil {
		c.rec.Result = ResultFailed
		c.failSetup(a, 488, "Not Acceptable Here", "Teams answered with media the relay cannot use: "+pbx2teams.ErrorMessage(err), warning(err))
		return
	}
	t.sessionAnswered(res)
	hdrs := []sip.Header{sip.NewHeader("Allow", allowPBX)}
	hdrs = append(hdrs, a.sessionRefreshed(req)...)
	c.rec.PBXStatus = 200
	if err := a.respond(200, "OK", ans, hdrs...); err != nil {
		// The PBX gave up at the same moment.
		c.rec.PBXStatus, c.rec.Result = 487, ResultCancelled
		c.hangup(endPBX, "")
		return
	}
	c.connect()
}

// setStatus records the final status of a leg's initial INVITE.
func (c *call) setStatus(l *leg, code int) {
	if l.s.teams {
		c.rec.TeamsStatus = code
	} else {
		c.rec.PBXStatus = code
	}
}

// failSetup answers the caller's INVITE on a with a failure and ends the
// call.
func (c *call) failSetup(a *leg, code int, reason, advice string, hdrs ...sip.Header) {
	c.mu.Lock()
	c.setStatus(a, code)
	if c.rec.Result == "" {
		c.rec.Result = resultOf(code)
	}
	c.rec.Advice = advice
	c.mu.Unlock()
	_ = a.respond(code, reason, nil, hdrs...)
	c.hangup(endError, advice)
}

// setupFailed ends a call whose outgoing INVITE (on called) did not
// succeed, answering the caller's INVITE (on a) as a desk phone's call
// would be: the caller's CANCEL, the ring timeout, a lost call, or the
// called side's status mapped by mapFailure. The same mapping serves
// both directions and both routes to Teams.
func (c *call) setupFailed(a, called *leg, res *sip.Response, cancelled, timedOut bool, warn string, advice func(int, string) string, noAnswer string) {
	if res != nil {
		c.setStatus(called, res.StatusCode)
	}
	switch {
	case cancelled:
		// The transaction layer already answered 487.
		c.setStatus(a, 487)
		c.rec.Result = ResultCancelled
		c.hangup(sideEnd(a), "")
	case timedOut && !c.ended():
		c.rec.Result = ResultNoAnswer
		c.failSetup(a, 480, "Temporarily Unavailable", noAnswer)
	case c.ended():
		// Shut down or hung up meanwhile.
		_ = a.respond(503, "Service Unavailable", nil)
	case res == nil:
		c.failSetup(a, 503, "Service Unavailable", advice(503, warn))
	default:
		code, reason := mapFailure(res)
		var hdrs []sip.Header
		if !a.s.teams {
			// The PBX backs off too; Microsoft would take a 503 with
			// Retry-After as the whole SBC being overloaded.
			hdrs = retryHeaders(res)
		}
		c.failSetup(a, code, reason, advice(res.StatusCode, warn), hdrs...)
	}
}

// teamsMediaLeg and pbxMediaLeg name the relay legs.
const (
	pbxMediaLeg   = 0
	teamsMediaLeg = 1
)

// inviteTeams calls a Teams number through the proxies in failover order:
// the next proxy is tried on 408, 503, 504, a timeout or a transport
// failure before anything rang; any other answer is final (no retry after
// 603 or 486). It returns the final response (nil if every proxy
// failed), the proxy that gave it, and a Warning/diagnostic text.
func (c *call) inviteTeams(ctx context.Context, t *leg, number string, offer []byte, onProvisional func(*sip.Response)) (*sip.Response, string, string) {
	tr := c.b.cfg.Trunk
	var last *sip.Response
	lastProxy := ""
	for i, tg := range tr.Targets() {
		if ctx.Err() != nil {
			break
		}
		if i > 0 {
			t.mu.Lock()
			t.localSeq++
			t.mu.Unlock()
		}
		hdrs := []sip.Header{
			sip.NewHeader("Allow", allowTeams),
			sip.NewHeader("Supported", "timer"),
			sip.NewHeader("Session-Expires", strconv.Itoa(int(c.b.cfg.SessionExpires/time.Second))),
		}
		req := t.inviteRequest(teams.RequestURI(number, tg.Proxy), offer, hdrs...)
		req.SetTransport(strings.ToUpper(tr.Transport()))
		req.SetDestination(tg.Destination())
		r := t.attempt(ctx, req, tr.RequestTimeout(), onProvisional)
		lastProxy = tg.Proxy
		if r.res != nil {
			last = r.res
			if r.res.IsSuccess() {
				t.established(r.res)
				t.ackFor(r.res)
				return r.res, tg.Proxy, ""
			}
			if !r.ringing && teams.ShouldFailover(r.res.StatusCode) {
				tr.ReportFailure(tg.Proxy, r.res.StatusCode, teams.RetryAfter(r.res))
				continue
			}
			return r.res, tg.Proxy, diagnostics(r.res)
		}
		if ctx.Err() != nil || r.ringing {
			break
		}
		tr.ReportFailure(tg.Proxy, 0, 0)
	}
	if last != nil {
		return last, lastProxy, diagnostics(last)
	}
	return nil, lastProxy, "No Microsoft SIP proxy answered."
}

// diagnostics returns Microsoft's ms-diagnostics or a Warning of a
// response, for the call log.
func diagnostics(res *sip.Response) string {
	for _, name := range []string{"ms-diagnostics", "Warning", "Reason"} {
		if h := res.GetHeader(name); h != nil {
			return clipText(h.Value(), 300)
		}
	}
	return ""
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// mapFailure maps a final failure of the called side to what the caller
// gets. Most statuses pass unchanged; authentication challenges (the
// caller cannot answer them) become 403 and redirects (not followed)
// become 480.
func mapFailure(res *sip.Response) (int, string) {
	switch code := res.StatusCode; {
	case code == 401 || code == 407:
		return 403, "Forbidden"
	case code >= 300 && code < 400:
		return 480, "Temporarily Unavailable"
	default:
		return code, res.Reason
	}
}

// retryHeaders copies Retry-After of a 503 so the PBX backs off too.
func retryHeaders(res *sip.Response) []sip.Header {
	if h := res.GetHeader("Retry-After"); h != nil && res.StatusCode == 503 {
		return []sip.Header{sip.NewHeader("Retry-After", h.Value())}
	}
	return nil
}
