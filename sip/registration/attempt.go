package registration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// Outcome kinds.
const (
	failTransient uint8 = iota
	okDone
	failPermanent
)

const (
	maxTargets   = 4         // servers tried per attempt (RFC 3263 failover)
	maxExpiry    = 7 * 86400 // larger grants are treated as this
	dnsRetry     = 10 * time.Second
	dnsTimeout   = 10 * time.Second
	targetDownNS = int64(30 * time.Second)
)

var errNoResponse = errors.New("no response")

// outcome is what an attempt learned.
type outcome struct {
	kind       uint8
	aborted    bool // the engine is shutting down
	answered   bool // a server answered
	status     int
	reason     string
	failKey    string
	retryAfter time.Duration
	granted    uint32
	minExp     uint32
	target     int
	sentCSeq   uint32
	chal       sipx.Challenge
	chalFlags  uint8
	nc         uint32
	chalOK     bool
	freshChal  bool // chal came from a challenge in this attempt
	// The PBX refused (or found stale) a nonce another user got.
	sharedRefused, sharedStale bool
}

// attempt is one registration (or unregistration) attempt: a snapshot of
// the registration taken by the scheduler, so it runs without the lock.
type attempt struct {
	e                                         *Engine
	r                                         *reg
	gen                                       uint32
	prof                                      *profile
	hop                                       *hop
	username, authUser, password, contactUser string
	callID                                    uint64
	cseq                                      uint32
	expiry                                    uint32 // 0 unregisters
	chal                                      sipx.Challenge
	chalFlags                                 uint8
	nc                                        uint32 // for the pre-emptive answer
	shared                                    bool   // chal is the hop's shared nonce
	timer                                     *time.Timer
	out                                       outcome
}

// do runs the attempt: resolve the PBX, send REGISTER, answer digest
// challenges (pre-emptively with the last nonce when there is one), follow
// 423 Min-Expires, and fail over between servers on timeouts, transport
// errors and 503.
func (a *attempt) do(ctx context.Context) {
	e, out := a.e, &a.out
	out.target = -1
	targets, err := e.resolve(ctx, a.hop)
	if err != nil {
		if e.ctx.Err() != nil {
			out.aborted = true
			return
		}
		out.reason, out.failKey = err.Error(), "dns"
		return
	}
	e.mu.Lock()
	order := a.hop.pickOrder(e.clock(), make([]int, 0, len(targets)))
	e.mu.Unlock()

	var authName, authVal string
	if a.chalFlags&chValid != 0 {
		// Pre-emptive: reuse the last nonce (ours, or one the PBX gave
		// another user) with the next nonce count, saving the 401 round
		// trip.
		authName, authVal = a.authorize(&a.chal, a.chalFlags&chProxy != 0, a.nc)
		out.chal, out.chalFlags, out.nc, out.chalOK = a.chal, a.chalFlags, a.nc, true
	}
	fresh := false // authVal answers a challenge received in this attempt
	challenges, did423 := 0, false
	expiry := a.expiry
	for oi := 0; oi < len(order) && oi < maxTargets; {
		ti := order[oi]
		t := targets[ti]
		out.target = ti
		a.cseq++
		out.sentCSeq = a.cseq
		res, err := a.send(ctx, t, expiry, authName, authVal)
		if err != nil {
			if e.ctx.Err() != nil {
				out.aborted = true
				return
			}
			out.status = 0
			out.reason, out.failKey = describeSendErr(err, t)
			e.markDown(a.hop, ti, len(targets))
			oi++
			fresh, authName, authVal = false, "", "" // another server, other nonces
			continue
		}
		out.answered = true
		code := res.StatusCode
		out.status, out.reason, out.failKey = code, res.Reason, strconv.Itoa(code)
		switch {
		case code >= 200 && code < 300:
			out.kind, out.reason, out.failKey = okDone, "", ""
			if expiry > 0 {
				out.granted = grantedExpiry(res, a.contactUser, expiry)
			}
			if expiry != a.expiry {
				out.minExp = expiry
			}
			return
		case code == 401 || code == 407:
			proxy := code == 407
			ch, err := bestChallenge(res, proxy)
			if err != nil {
				out.kind, out.failKey = failPermanent, "auth"
				out.reason = reasonOr(res.Reason, "Unauthorized") + ": " + err.Error()
				return
			}
			if !fresh && a.shared {
				if ch.Stale {
					out.sharedStale = true
				} else {
					out.sharedRefused = true
				}
			}
			if fresh && !ch.Stale {
				// Our answer to a fresh challenge was refused: the
				// credentials are wrong. Retrying would only lock the
				// account at the PBX.
				out.kind = failPermanent
				out.reason = reasonOr(res.Reason, "Unauthorized")
				return
			}
			challenges++
			if challenges > 3 {
				out.reason = reasonOr(res.Reason, "Unauthorized") + " (challenged repeatedly)"
				return
			}
			a.nc = 1
			authName, authVal = a.authorize(&ch, proxy, 1)
			out.chal, out.chalFlags, out.nc, out.chalOK = ch, chalFlags(&ch, proxy), 1, true
			fresh, out.freshChal = true, true
		case code == 423:
			m := headerUint(res, "Min-Expires")
			if expiry == 0 || did423 || m <= expiry || m > maxExpiry {
				out.retryAfter = retryAfter(res)
				return
			}
			expiry, did423 = m, true
		case code == 503 && oi+1 < len(order) && oi+1 < maxTargets && retryAfter(res) == 0:
			e.markDown(a.hop, ti, len(targets))
			oi++
			fresh, authName, authVal = false, "", ""
		case permanentStatus(code):
			out.kind = failPermanent
			return
		default:
			out.retryAfter = retryAfter(res)
			return
		}
	}
}

// permanentStatus lists final responses that no retry will change: the
// PBX does not know or refuses this user.
func permanentStatus(code int) bool {
	switch code {
	case 403, 404, 410, 484, 603, 604:
		return true
	}
	return false
}

func reasonOr(r, def string) string {
	if strings.TrimSpace(r) == "" {
		return def
	}
	return r
}

func (a *attempt) authorize(c *sipx.Challenge, proxy bool, nc uint32) (name, value string) {
	name = "Authorization"
	if proxy {
		name = "Proxy-Authorization"
	}
	uri := "sip:" + hostForURI(a.prof.domainHost)
	if a.prof.domainPort != 0 {
		uri += ":" + strconv.Itoa(int(a.prof.domainPort))
	}
	if a.prof.transport != "udp" {
		uri += ";transport=" + a.prof.transport
	}
	v, err := sipx.Authorization(c, sipx.Answer{Method: "REGISTER", URI: uri,
		Username: a.authUser, Password: a.password, NC: nc})
	if err != nil {
		return "", ""
	}
	return name, v
}

func hostForURI(h string) string {
	if strings.IndexByte(h, ':') >= 0 {
		return "[" + h + "]"
	}
	return h
}

func upperTransport(t string) string {
	switch t {
	case "tcp":
		return "TCP"
	case "tls":
		return "TLS"
	}
	return "UDP"
}

// send sends one REGISTER transaction and waits for its final response.
func (a *attempt) send(ctx context.Context, t sipx.Target, expiry uint32, authName, authVal string) (*sip.Response, error) {
	e := a.e
	st := e.st
	ruri := sip.Uri{Scheme: "sip", Host: a.prof.domainHost, Port: int(a.prof.domainPort)}
	if t.Transport != "udp" {
		ruri.UriParams = sip.HeaderParams{{K: "transport", V: t.Transport}}
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	tr := upperTransport(t.Transport)
	req.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: tr,
		Host: st.AdvertisedHost(), Port: st.Port(t.Transport),
		Params: sip.HeaderParams{{K: "branch", V: sip.GenerateBranchN(16)}, {K: "rport"}}})
	if a.prof.route != nil {
		req.AppendHeader(a.prof.route)
	}
	req.AppendHeader(&maxForwards)
	aor := "<sip:" + a.username + "@" + hostForURI(a.prof.domainHost) + ">"
	var idbuf [16]byte
	cid := strconv.AppendUint(idbuf[:0], a.callID, 36)
	req.AppendHeader(sip.NewHeader("From", aor+";tag="+strconv.FormatUint(a.callID>>20, 36)))
	req.AppendHeader(sip.NewHeader("To", aor))
	callID := sip.CallIDHeader(string(cid))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: a.cseq, MethodName: sip.REGISTER})
	contact := "<" + st.ContactURI(a.contactUser, t.Transport) + ">"
	if expiry == 0 {
		contact += ";expires=0"
	}
	req.AppendHeader(sip.NewHeader("Contact", contact))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expiry))))
	if authVal != "" {
		req.AppendHeader(sip.NewHeader(authName, authVal))
	}
	req.AppendHeader(allowHeader)
	req.AppendHeader(e.uaHeader)
	req.SetBody(nil)
	req.SetTransport(tr)
	req.SetDestination(t.Addr.String())
	if t.Transport == "udp" {
		req.Laddr = st.UDPLocalAddr() // leave from the port in the Contact
	}

	if t.Transport != "udp" {
		// Connecting is part of the transaction's time budget.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.Timeout)
		defer cancel()
	}
	if t.Transport == "tls" {
		if err := st.DialTLS(ctx, t.Addr, t.Name); err != nil {
			if ctx.Err() != nil && e.ctx.Err() == nil {
				return nil, errNoResponse
			}
			return nil, err
		}
	}
	e.sent.Add(1)
	tx, err := st.UA.TransactionLayer().Request(ctx, req)
	if err != nil {
		if ctx.Err() != nil && e.ctx.Err() == nil {
			return nil, errNoResponse
		}
		return nil, err
	}
	defer tx.Terminate()
	// The worker's timer bounds the wait; cheaper than a context per
	// request.
	timer := a.timer
	timer.Reset(e.cfg.Timeout)
	defer timer.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if res == nil || res.StatusCode < 200 || res.StatusCode > 699 {
				continue // provisional, or not a valid status: ignore
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil && !errors.Is(err, sip.ErrTransactionTimeout) {
				return nil, err
			}
			return nil, errNoResponse
		case <-timer.C:
			return nil, errNoResponse
		case <-ctx.Done():
			if e.ctx.Err() != nil {
				return nil, e.ctx.Err()
			}
			return nil, errNoResponse
		}
	}
}

var (
	maxForwards = sip.MaxForwardsHeader(70)
	allowHeader = sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY")
)

// describeSendErr words a failure to get any response, and classifies it
// for metrics.
func describeSendErr(err error, t sipx.Target) (reason, key string) {
	var ce *sipx.CertificateError
	switch {
	case errors.As(err, &ce):
		return ce.Error(), "tls"
	case errors.Is(err, errNoResponse):
		return "No response from the PBX at " + t.String(), "timeout"
	case strings.Contains(err.Error(), "TLS handshake"):
		return "TLS handshake with the PBX at " + t.String() + " failed: " + innermost(err), "tls"
	case errors.Is(err, sip.ErrTransactionTransport) && t.Transport != "udp":
		return "Connection to the PBX at " + t.String() + " failed: " + innermost(err), "transport"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return "Cannot reach the PBX at " + t.String() + ": " + innermost(oe.Err), "transport"
	}
	return "Cannot reach the PBX at " + t.String() + ": " + innermost(err), "transport"
}

// innermost returns the message of the deepest wrapped error.
func innermost(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// bestChallenge picks the strongest digest challenge we can answer among
// the WWW-Authenticate (or Proxy-Authenticate) headers.
func bestChallenge(res *sip.Response, proxy bool) (sipx.Challenge, error) {
	name := "WWW-Authenticate"
	if proxy {
		name = "Proxy-Authenticate"
	}
	var best sipx.Challenge
	found := false
	var firstErr error
	for _, h := range res.GetHeaders(name) {
		c, err := sipx.ParseChallenge(h.Value())
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !found || c.Strength() > best.Strength() {
			best, found = c, true
		}
	}
	if found {
		return best, nil
	}
	if firstErr == nil {
		return best, fmt.Errorf("no %s header", name)
	}
	return best, fmt.Errorf("cannot answer the PBX's challenge: %w", firstErr)
}

// grantedExpiry reads the expiry the registrar granted to our Contact: its
// expires parameter, else the Expires header, else what we asked for.
func grantedExpiry(res *sip.Response, contactUser string, requested uint32) uint32 {
	for _, h := range res.GetHeaders("Contact") {
		if v, ok := contactExpires(h, contactUser); ok && v > 0 {
			return min(v, maxExpiry)
		}
	}
	if v := headerUint(res, "Expires"); v > 0 {
		return min(v, maxExpiry)
	}
	return requested
}

func contactExpires(h sip.Header, user string) (uint32, bool) {
	if ch, ok := h.(*sip.ContactHeader); ok {
		if ch.Address.User != user {
			return 0, false
		}
		for _, kv := range ch.Params {
			if strings.EqualFold(kv.K, "expires") {
				return parseUint(kv.V), true
			}
		}
		return 0, false
	}
	// An unparsed Contact: look for our URI and an expires parameter.
	v := h.Value()
	i := strings.Index(v, "sip:"+user+"@")
	if i < 0 {
		return 0, false
	}
	rest := v[i:]
	if j := strings.IndexByte(rest, ','); j >= 0 {
		rest = rest[:j]
	}
	lower := strings.ToLower(rest)
	if k := strings.Index(lower, "expires="); k >= 0 {
		return parseUint(rest[k+len("expires="):]), true
	}
	return 0, false
}

func headerUint(res *sip.Response, name string) uint32 {
	h := res.GetHeader(name)
	if h == nil {
		return 0
	}
	return parseUint(h.Value())
}

// parseUint reads leading decimal digits, saturating; 0 if none.
func parseUint(s string) uint32 {
	s = strings.TrimSpace(s)
	var n uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
		if n > 1<<31 {
			n = 1 << 31
		}
	}
	return uint32(n)
}

// retryAfter reads Retry-After (seconds, comment and parameters ignored),
// capped at one day.
func retryAfter(res *sip.Response) time.Duration {
	v := headerUint(res, "Retry-After")
	return time.Duration(min(v, 86400)) * time.Second
}

// resolve returns the hop's targets, looking them up when the cache is
// stale. A failed lookup keeps using the previous targets if there were
// any; otherwise it is remembered for dnsRetry.
func (e *Engine) resolve(ctx context.Context, h *hop) ([]sipx.Target, error) {
	ttl := int64(e.cfg.DNSCacheTTL)
	fresh := func(now int64) ([]sipx.Target, error, bool) {
		if h.resolvedAt == 0 {
			return nil, nil, false
		}
		if h.resolveErr != nil && now-h.resolvedAt < int64(dnsRetry) {
			return nil, h.resolveErr, true
		}
		if h.resolveErr == nil && now-h.resolvedAt < ttl {
			return h.targets, nil, true
		}
		return nil, nil, false
	}
	e.mu.Lock()
	t, err, ok := fresh(e.clock())
	e.mu.Unlock()
	if ok {
		return t, err
	}
	h.resolveMu.Lock()
	defer h.resolveMu.Unlock()
	e.mu.Lock()
	t, err, ok = fresh(e.clock())
	e.mu.Unlock()
	if ok {
		return t, err
	}
	lctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	targets, err := sipx.Resolve(lctx, e.cfg.Resolver, h.host, h.port, h.transport)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	h.resolvedAt = e.clock()
	if err != nil {
		if ctx.Err() != nil {
			h.resolvedAt = 0
			return nil, err
		}
		if len(h.targets) > 0 {
			e.log.Warn("DNS lookup failed; using the previous addresses", "pbx", h.host, "error", err)
			h.resolveErr = nil
			return h.targets, nil
		}
		if h.resolveErr == nil || h.resolveErr.Error() != err.Error() {
			e.log.Warn("DNS lookup failed", "pbx", h.host, "error", err)
		}
		h.resolveErr = err
		return nil, err
	}
	h.resolveErr = nil
	if !sameTargets(h.targets, targets) {
		h.targets = targets
		h.downUntil = make([]int64, len(targets))
		h.current = 0
	}
	return h.targets, nil
}

func sameTargets(a, b []sipx.Target) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (e *Engine) markDown(h *hop, ti, n int) {
	e.mu.Lock()
	if ti < len(h.downUntil) && len(h.downUntil) == n {
		h.downUntil[ti] = e.clock() + min(targetDownNS, int64(e.cfg.BackoffMin))
	}
	e.mu.Unlock()
}

var crlfcrlf = []byte("\r\n\r\n")

// keepAlive sends a double CRLF toward each PBX that holds bindings of
// ours, keeping NAT and firewall state alive. A TCP/TLS connection that
// has gone away means the PBX can no longer reach us over it: the users
// behind it re-register, which opens a new one.
func (e *Engine) keepAlive() {
	type job struct {
		h *hop
		t sipx.Target
	}
	now := e.clock()
	var jobs []job
	e.mu.Lock()
	for _, h := range e.hops {
		if h.bound <= 0 || len(h.targets) == 0 || now-h.lastKA < int64(e.cfg.KeepAlive) {
			continue
		}
		h.lastKA = now
		cur := h.current
		if cur >= len(h.targets) {
			cur = 0
		}
		jobs = append(jobs, job{h, h.targets[cur]})
	}
	e.mu.Unlock()
	for _, j := range jobs {
		if j.t.Transport == "udp" {
			if c := e.st.UDPConn(); c != nil {
				_, _ = c.WriteTo(crlfcrlf, net.UDPAddrFromAddrPort(j.t.Addr))
			}
			continue
		}
		conn, err := e.st.UA.TransportLayer().GetConnection(j.t.Transport, j.t.Addr.String())
		if err == nil && conn != nil {
			ok := false
			if w, isW := conn.(io.Writer); isW {
				_, err = w.Write(crlfcrlf)
				ok = err == nil
			}
			conn.TryClose() // GetConnection took a reference
			if ok {
				continue
			}
		}
		e.flowLost(j.h)
	}
}

// flowLost re-registers the healthy registrations of a hop whose
// connection is gone (RFC 5626 §4.4.1 style flow recovery).
func (e *Engine) flowLost(h *hop) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	n := 0
	for _, r := range e.regs {
		if r.prof.hop == h && r.state == stRegistered && r.failures == 0 && r.flags&(fInFlight|fQueued|fRemoving) == 0 {
			e.reschedule(r, now+jitter(e.cfg.StartJitter))
			n++
		}
	}
	if n > 0 {
		e.log.Info("connection to PBX lost; re-registering", "pbx", h.host, "transport", h.transport, "users", n)
	}
}
