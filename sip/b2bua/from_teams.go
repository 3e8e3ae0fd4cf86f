package b2bua

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// fromTeams handles a new INVITE from Microsoft: a Teams user calling out.
// The Request-URI host (the customer's SBC subdomain) gives the customer;
// the caller's number gives the user.
func (b *B2BUA) fromTeams(req *sip.Request, tx sip.ServerTransaction) {
	received := time.Now()
	s := b.teams
	reject := func(code int, reason, why string) {
		b.rejected.Add(1)
		b.log.Info("INVITE from Teams refused", "status", code, "why", why, "ruri", clip(req.Recipient.String()))
		s.reply(req, tx, code, reason, why)
	}
	if req.GetHeader("Replaces") != nil {
		b.replaceTeamsLeg(req, tx)
		return
	}
	host := strings.ToLower(req.Recipient.Host)
	acct, ok := b.cfg.Customers.CustomerByFQDN(host)
	if !ok {
		// Some proxies address the trunk FQDN and name the customer in To.
		acct, ok = b.cfg.Customers.CustomerByFQDN(strings.ToLower(req.To().Address.Host))
	}
	if !ok {
		reject(404, "Not Found", "No customer has the SBC subdomain "+host+".")
		return
	}
	number, ok := teams.E164(req.From().Address.User)
	if !ok {
		reject(403, "Forbidden", "The caller's number is not in E.164 form.")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	u, err := b.cfg.Directory.UserByPhoneNumber(ctx, acct, number)
	if err != nil || u.Type != pbx2teams.ServiceStandard || !u.ConsumesLicences() {
		if err != nil && pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
			b.log.Error("user lookup failed", "error", err)
			s.reply(req, tx, 503, "Service Unavailable", "")
			return
		}
		// Caller-ID screening: a tenant admin can give a Teams user any
		// number; only configured users may call out as themselves.
		reject(403, "Forbidden", "The number "+number+" is not a configured user of this customer.")
		return
	}
	ps, err := b.cfg.Directory.PBXSettings(ctx, acct)
	if err != nil || ps.Domain == "" {
		reject(503, "Service Unavailable", "The customer's PBX connection is not configured.")
		return
	}
	pw, err := b.cfg.Passwords(u)
	if err != nil {
		reject(503, "Service Unavailable", "The user's SIP password is not available.")
		return
	}
	b.callFromTeams(req, tx, u, ps, pw, host, received)
}

// callFromTeams runs a Teams → PBX call to its end of setup.
func (b *B2BUA) callFromTeams(req *sip.Request, tx sip.ServerTransaction, u *pbx2teams.User, ps *pbx2teams.PBXSettings, password, fqdn string, received time.Time) {
	c := b.newCall(FromTeams, u)
	c.received = received
	dialled := req.Recipient.User
	c.rec.From, c.rec.FromName, c.rec.To = req.From().Address.User, req.From().DisplayName, dialled
	if !b.addCall(c) {
		b.teams.reply(req, tx, 503, "Service Unavailable", "")
		c.media.Close()
		return
	}
	t := newUAS(c, b.teams, req, tx)
	t.contact = b.cfg.Trunk.Contact(dialled, fqdn)
	c.setLeg(t)
	// No explicit 100: the transaction layer sends one if nothing else
	// goes out within 200 ms, and Teams/the PBX usually ring sooner.

	fail := func(code int, reason, advice string, hdrs ...sip.Header) {
		c.failSetup(t, code, reason, advice, hdrs...)
	}
	if len(req.Body()) == 0 {
		c.rec.Result = ResultRejected
		fail(488, "Not Acceptable Here", "Teams sent no SDP offer.")
		return
	}
	offer, err := c.media.OfferFromB(req.Body())
	if err != nil {
		code, reason := statusOf(err)
		c.rec.Result = ResultRejected
		fail(code, reason, pbx2teams.ErrorMessage(err), warning(err))
		return
	}
	c.noteSDP(t, req.Body())

	pt, advice := b.pbxTarget(c, u, ps, dialled)
	if pt == nil {
		fail(503, "Service Unavailable", advice)
		return
	}
	p := pt.leg
	c.setLeg(p)

	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RingTimeout)
	defer cancel()
	c.mu.Lock()
	c.setupCancel = cancel
	c.mu.Unlock()
	cancelledByTeams := false
	tx.OnCancel(func(*sip.Request) {
		c.mu.Lock()
		cancelledByTeams = true
		c.mu.Unlock()
		cancel()
	})

	sentRinging, sentEarly := false, false
	onProvisional := func(res *sip.Response) {
		if res.StatusCode == 183 && len(res.Body()) > 0 {
			if ans, err := c.media.AnswerFromA(res.Body()); err == nil {
				c.noteSDP(p, res.Body())
				if !sentEarly {
					sentEarly = true
					_ = t.respond(183, "Session Progress", ans, sip.NewHeader("Allow", allowTeams))
				}
				return
			}
		}
		// Teams plays ringback on 180.
		if !sentRinging && !sentEarly {
			sentRinging = true
			_ = t.respond(180, "Ringing", nil, sip.NewHeader("Allow", allowTeams))
		}
	}
	res := c.invitePBX(ctx, p, pt.ruri, pt.targets, offer, pt.authUser, password, onProvisional)
	c.mu.Lock()
	byTeams := cancelledByTeams
	c.mu.Unlock()
	if res == nil || !res.IsSuccess() {
		warn := "The PBX did not answer."
		if res != nil {
			warn = diagnostics(res)
		}
		c.setupFailed(t, p, res, byTeams, ctx.Err() != nil, warn, pbxAdvice, "Nobody answered on the PBX within the ring timeout.")
		return
	}
	c.rec.PBXStatus = res.StatusCode
	c.noteSDP(p, res.Body())
	ans, err := c.media.AnswerFromA(res.Body())
	if err != nil {
		fail(488, "Not Acceptable Here", "The PBX answered with media the relay cannot use: "+pbx2teams.ErrorMessage(err), warning(err))
		return
	}
	p.sessionAnswered(res)
	hdrs := []sip.Header{sip.NewHeader("Allow", allowTeams)}
	hdrs = append(hdrs, t.sessionRefreshed(req)...)
	c.rec.TeamsStatus = 200
	if err := t.respond(200, "OK", ans, hdrs...); err != nil {
		c.rec.TeamsStatus, c.rec.Result = 487, ResultCancelled
		c.hangup(endTeams, "")
		return
	}
	c.connect()
}

// pbxTarget is where and as whom a call goes to the PBX.
type pbxTarget struct {
	leg      *leg
	ruri     sip.Uri
	targets  []sipx.Target
	authUser string
	domain   string // the PBX's SIP domain (host part)
}

// pbxTarget resolves the customer's PBX for a call as user u to dialled
// and makes the PBX leg (From the user's SIP username, Contact their
// registration's). It returns advice when the PBX cannot be reached.
func (b *B2BUA) pbxTarget(c *call, u *pbx2teams.User, ps *pbx2teams.PBXSettings, dialled string) (*pbxTarget, string) {
	transport := strings.ToLower(string(ps.Transport))
	if transport == "" {
		transport = "udp"
	}
	domainHost, domainPort, err := sipx.SplitHostPort(ps.Domain)
	if err != nil {
		return nil, "The customer's PBX domain is not valid."
	}
	nextHost, nextPort := domainHost, domainPort
	if ps.OutboundProxy != "" {
		if h, p, err := sipx.SplitHostPort(ps.OutboundProxy); err == nil {
			nextHost, nextPort = h, p
		}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	targets, err := sipx.Resolve(rctx, b.cfg.Resolver, nextHost, nextPort, transport)
	rcancel()
	if err != nil || len(targets) == 0 {
		return nil, "The PBX address could not be resolved: " + errText(err)
	}
	authUser := u.AuthUsername
	if authUser == "" {
		authUser = u.SIPUsername
	}
	ruri := sip.Uri{Scheme: "sip", User: dialled, Host: domainHost, Port: int(domainPort)}
	local := sip.Uri{Scheme: "sip", User: u.SIPUsername, Host: domainHost}
	remote := sip.Uri{Scheme: "sip", User: dialled, Host: domainHost}
	p := newUAC(c, b.pbx, newTag()+newTag(), local, remote, u.DisplayName, "", b.pbx.pbxContact(u.ContactUser, transport))
	p.transport = strings.ToUpper(transport)
	return &pbxTarget{leg: p, ruri: ruri, targets: targets, authUser: authUser, domain: domainHost}, ""
}

// pbxAdvice explains a final status of the PBX leg.
func pbxAdvice(status int, warn string) string { return adviceFor("pbx", status, warn) }

func errText(err error) string {
	if err == nil {
		return "no address"
	}
	return err.Error()
}

// invitePBX calls the PBX as the user: targets in order (failover on 503,
// 408 and timeouts before anything rang), and digest authentication with
// the user's credentials when challenged.
func (c *call) invitePBX(ctx context.Context, p *leg, ruri sip.Uri, targets []sipx.Target, offer []byte, authUser, password string, onProvisional func(*sip.Response)) *sip.Response {
	var last *sip.Response
	var authHdr sip.Header
	authTries := 0
	for i := 0; i < len(targets); {
		tg := targets[i]
		if ctx.Err() != nil {
			return last
		}
		hdrs := []sip.Header{sip.NewHeader("Allow", allowPBX), sip.NewHeader("Supported", "timer")}
		if authHdr != nil {
			hdrs = append(hdrs, authHdr)
		}
		req := p.inviteRequest(ruri, offer, hdrs...)
		req.SetTransport(strings.ToUpper(tg.Transport))
		req.SetDestination(tg.Addr.String())
		r := p.attempt(ctx, req, 8*time.Second, onProvisional)
		if r.res == nil {
			if ctx.Err() != nil || r.ringing {
				return last
			}
			i++
			p.mu.Lock()
			p.localSeq++
			p.mu.Unlock()
			continue
		}
		last = r.res
		switch code := r.res.StatusCode; {
		case r.res.IsSuccess():
			p.established(r.res)
			p.ackFor(r.res)
			return r.res
		case (code == 401 || code == 407) && authTries < 2:
			h, err := digestHeader(r.res, req, authUser, password)
			if err != nil {
				return r.res
			}
			authHdr = h
			authTries++
			p.mu.Lock()
			p.localSeq++
			p.mu.Unlock()
			continue
		case !r.ringing && (code == 503 || code == 408 || code == 504):
			i++
			p.mu.Lock()
			p.localSeq++
			p.mu.Unlock()
			continue
		default:
			return r.res
		}
	}
	return last
}

// digestHeader answers a 401/407 challenge for an INVITE.
func digestHeader(res *sip.Response, req *sip.Request, user, password string) (sip.Header, error) {
	name, reply := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, reply = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var best *sipx.Challenge
	for _, h := range res.GetHeaders(name) {
		ch, err := sipx.ParseChallenge(h.Value())
		if err != nil {
			continue
		}
		if best == nil || ch.Strength() > best.Strength() {
			chc := ch
			best = &chc
		}
	}
	if best == nil {
		return nil, errNoChallenge
	}
	v, err := sipx.Authorization(best, sipx.Answer{Method: "INVITE", URI: req.Recipient.String(), Username: user, Password: password, NC: 1})
	if err != nil {
		return nil, err
	}
	return sip.NewHeader(reply, v), nil
}

type challengeError string

func (e challengeError) Error() string { return string(e) }

const errNoChallenge = challengeError("no usable digest challenge")

// keep imports used when building without later files.
var _ = msdp.SendRecv
var _ = strconv.Itoa
var _ = teams.Allow
