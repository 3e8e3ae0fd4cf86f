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
	if u.Type != pbx2teams.ServiceStandard || !u.ConsumesLicences() {
		reject(404, "Not Found", "user not a standard user")
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
		if h := req.GetHeader("P-Asserted-Identity"); h != nil {
			var u sip.Uri
			if n, err := sip.ParseAddressValue(splitHeaderList(h.Value())[0], &u, nil); err == nil && u.User != "" {
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

// callToTeams runs a PBX → Teams call to its end of setup.
func (b *B2BUA) callToTeams(req *sip.Request, tx sip.ServerTransaction, u *pbx2teams.User, received time.Time) {
	s := b.pbx
	number, ok := teams.E164(u.PhoneNumber)
	fqdn, okF := b.cfg.Customers.FQDN(u.AccountID)
	if !ok || !okF {
		b.rejected.Add(1)
		why := "The user has no Teams phone number in E.164 form."
		if !okF {
			why = "The customer has no SBC subdomain configured."
		}
		s.reply(req, tx, 480, "Temporarily Unavailable", why)
		return
	}
	c := b.newCall(ToTeams, u)
	c.received = received
	caller, callerName := callerOf(req)
	c.rec.From, c.rec.FromName, c.rec.To = caller, callerName, number
	if !b.addCall(c) {
		s.reply(req, tx, 503, "Service Unavailable", "")
		c.media.Close()
		return
	}
	a := newUAS(c, s, req, tx)
	a.contact = s.pbxContact(u.ContactUser, req.Transport())
	c.setLeg(a)
	// No explicit 100: the transaction layer sends one if nothing else
	// goes out within 200 ms, and Teams/the PBX usually ring sooner.

	fail := func(code int, reason, advice string, hdrs ...sip.Header) {
		c.mu.Lock()
		c.rec.PBXStatus = code
		if c.rec.Result == "" {
			c.rec.Result = resultOf(code)
		}
		c.rec.Advice = advice
		c.mu.Unlock()
		_ = a.respond(code, reason, nil, hdrs...)
		c.hangup(endError, advice)
	}

	pbxOffer := req.Body()
	var offer []byte
	var err error
	delayed := len(pbxOffer) == 0
	if delayed {
		// The PBX makes no offer; Teams needs one (no delayed offer in
		// Direct Routing), so the relay writes its own.
		offer, err = c.media.OfferTo(teamsMediaLeg, msdp.SendRecv)
	} else {
		offer, err = c.media.OfferFromA(pbxOffer)
		c.noteSDP(a, pbxOffer)
	}
	if err != nil {
		code, reason := statusOf(err)
		c.rec.Result = ResultRejected
		fail(code, reason, pbx2teams.ErrorMessage(err), warning(err))
		return
	}

	callerNum := teams.CallerNumber(caller)
	t := newUAC(c, b.teams, newTag()+newTag(),
		teams.NumberURI(callerNum, fqdn), teams.NumberURI(number, fqdn), callerName, "",
		b.cfg.Trunk.Contact(callerNum, fqdn))
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

	res, proxy, warn := c.inviteTeams(ctx, t, number, offer, onProvisional)
	c.mu.Lock()
	byPBX := cancelledByPBX
	c.rec.TeamsProxy = proxy
	c.mu.Unlock()
	if res == nil || !res.IsSuccess() {
		if res != nil {
			c.rec.TeamsStatus = res.StatusCode
		}
		switch {
		case byPBX:
			// The transaction layer already answered 487.
			c.rec.PBXStatus, c.rec.Result = 487, ResultCancelled
			c.hangup(endPBX, "")
		case ctx.Err() != nil && !c.ended():
			c.rec.Result = ResultNoAnswer
			fail(480, "Temporarily Unavailable", "Nobody answered in Teams within the ring timeout.")
		case c.ended():
			// Shut down or hung up meanwhile.
			_ = a.respond(503, "Service Unavailable", nil)
		case res == nil:
			fail(503, "Service Unavailable", adviceFor("teams", 503, warn))
		default:
			code, reason := mapStatusToPBX(res)
			fail(code, reason, adviceFor("teams", res.StatusCode, warn), retryHeaders(res)...)
		}
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
		fail(488, "Not Acceptable Here", "Teams answered with media the relay cannot use: "+pbx2teams.ErrorMessage(err), warning(err))
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

// mapStatusToPBX maps a final failure from Teams to what the PBX gets.
// Most statuses pass unchanged; those that would make a PBX retry or
// misroute are adjusted.
func mapStatusToPBX(res *sip.Response) (int, string) {
	switch code := res.StatusCode; {
	case code == 401 || code == 407:
		return 403, "Forbidden" // Teams' challenges are not for the PBX to answer
	case code >= 300 && code < 400:
		return 480, "Temporarily Unavailable" // we do not follow redirects
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
