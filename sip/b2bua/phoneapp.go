package b2bua

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/federation"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

// Phone App calls: the Teams leg goes from the Phone App domain to the
// user's UPN through the federation edge (package federation). Calls to
// the user's extension ring them that way (callToPhoneApp); calls they
// place from the tab ring them first and then call the PBX as them
// (Dial, in dialler.go).

// phoneAppUserURI is the Teams identity of a Phone App user.
func phoneAppUserURI(u *pbx2teams.User) (sip.Uri, bool) { return federation.UserURI(u.UPN) }

// phoneAppLeg makes the Teams leg of a Phone App call: From the caller
// (number and name) at the Phone App domain, To the user's UPN, Contact
// an opaque user part at the Phone App domain.
func (b *B2BUA) phoneAppLeg(c *call, to sip.Uri, callerNumber, callerName string) *leg {
	link := b.cfg.PhoneApp
	return newUAC(c, b.fed, newTag()+newTag(), link.CallerURI(callerNumber), to, callerName, "", link.Contact(newTag()))
}

// callToPhoneApp runs a PBX → Teams call of a Phone App user: it rings
// them through the Phone App leg with the caller's number and name.
func (b *B2BUA) callToPhoneApp(req *sip.Request, tx sip.ServerTransaction, u *pbx2teams.User, received time.Time) {
	to, ok := phoneAppUserURI(u)
	if !ok {
		b.rejected.Add(1)
		b.pbx.reply(req, tx, 480, "Temporarily Unavailable", "The Phone App user has no usable sign-in name (UPN).")
		return
	}
	b.bridgeToTeams(req, tx, u, received, u.UPN, func(c *call, caller, callerName string) teamsDial {
		t := b.phoneAppLeg(c, to, teams.CallerNumber(caller), callerName)
		return teamsDial{leg: t,
			invite: func(ctx context.Context, offer []byte, onProv func(*sip.Response)) (*sip.Response, string, string) {
				return c.invitePhoneApp(ctx, t, to, offer, onProv)
			},
			advice: func(status int, warn string) string { return b.phoneAppAdvice(u, status, warn) },
		}
	})
}

// invitePhoneApp calls a Teams user through the federation edge: one
// attempt (no retry on any final answer), the refusals that say something
// about the user's readiness reported to Config.OnPhoneAppRejected. It
// returns the final response (nil if the edge never answered), the edge,
// and a diagnostic.
func (c *call) invitePhoneApp(ctx context.Context, t *leg, to sip.Uri, offer []byte, onProvisional func(*sip.Response)) (*sip.Response, string, string) {
	link := c.b.cfg.PhoneApp
	hdrs := []sip.Header{
		sip.NewHeader("Allow", federation.Allow),
		sip.NewHeader("Supported", "timer"),
		sip.NewHeader("Session-Expires", strconv.Itoa(int(c.b.cfg.SessionExpires/time.Second))),
	}
	req := t.inviteRequest(to, offer, hdrs...)
	req.SetTransport("TLS")
	req.SetDestination(link.Edge())
	r := t.attempt(ctx, req, link.RequestTimeout(), onProvisional)
	if r.res == nil {
		return nil, link.Edge(), "The federation edge did not answer: " + errText(r.err)
	}
	if r.res.IsSuccess() {
		t.established(r.res)
		t.ackFor(r.res)
		return r.res, link.Edge(), ""
	}
	warn := warningText(r.res)
	switch r.res.StatusCode {
	case 403, 404, 480, 603:
		if fn := c.b.cfg.OnPhoneAppRejected; fn != nil && c.user != nil {
			fn(c.user, r.res.StatusCode, warn)
		}
	}
	if warn == "" {
		warn = diagnostics(r.res)
	}
	return r.res, link.Edge(), warn
}

// warningText is the text of a response's Warning header (399 host "text"),
// or "".
func warningText(res *sip.Response) string {
	h := res.GetHeader("Warning")
	if h == nil {
		return ""
	}
	v := h.Value()
	if i := strings.IndexByte(v, '"'); i >= 0 {
		if j := strings.LastIndexByte(v, '"'); j > i {
			return clipText(v[i+1:j], 300)
		}
	}
	return clipText(v, 300)
}

// phoneAppAdvice explains a final status of the Phone App leg in plain
// words: what is wrong and how to fix it.
func (b *B2BUA) phoneAppAdvice(u *pbx2teams.User, status int, warn string) string {
	domain := b.cfg.PhoneApp.Domain()
	lw := strings.ToLower(warn)
	var s string
	switch {
	case status == 603 && strings.Contains(lw, "external access"):
		s = "External access in your Microsoft 365 tenant blocks the Phone App domain " + domain +
			": allow it in Teams admin center › Users › External access (changes can take a few hours)."
	case status == 480 && strings.Contains(lw, "teamsonly"):
		s = "The user is not in TeamsOnly mode, which the Phone App needs: set their coexistence mode to Teams only in Teams admin center › Users › " +
			u.UPN + " › Account (Grant-CsTeamsUpgradePolicy -PolicyName UpgradeToTeams)."
	case status == 603:
		s = "The call was declined in Teams (603)."
	case status == 404:
		s = "Teams found no user " + u.UPN + " (404): check the user's sign-in name and that the user exists in the tenant."
	case status == 403:
		s = "The federation edge refused the Phone App domain (403): the service's certificate must be valid for " + domain + "."
	case status == 480:
		s = "The Teams user could not be reached (480): signed out, or no device online."
	case status == 486:
		s = "The Teams user was busy (486)."
	case status == 487:
		s = "The call was cancelled before it was answered in Teams."
	case status == 488:
		s = "Teams could not accept the media (488): no common codec or SRTP key."
	case status == 503 || status == 408 || status == 504:
		s = "The Teams federation edge did not take the call (" + itoa(status) + "); check the service's connection to " + b.cfg.PhoneApp.Edge() + "."
	default:
		s = "Teams refused the call (" + itoa(status) + ")."
	}
	if warn != "" && !strings.Contains(s, warn) {
		s += " Detail: " + warn
	}
	return s
}

// onReferNotify takes a NOTIFY of the PBX about a transfer we asked for:
// the status line of its message/sipfrag body.
func (c *call) onReferNotify(req *sip.Request) {
	c.mu.Lock()
	ch := c.referCh
	c.mu.Unlock()
	if ch == nil {
		return
	}
	st := sipfragStatus(req.Body())
	if st == 0 {
		return
	}
	if st >= 200 && st < 300 {
		// Set before the PBX's BYE can end the call.
		c.mu.Lock()
		c.transferred = true
		c.mu.Unlock()
	}
	select {
	case ch <- st:
	default:
	}
}

// sipfragStatus reads "SIP/2.0 200 OK" at the start of a sipfrag body.
func sipfragStatus(body []byte) int {
	line, _, _ := strings.Cut(string(body), "\n")
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 100 || n > 699 {
		return 0
	}
	return n
}
