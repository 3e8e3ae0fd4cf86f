package b2bua

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// leg is one SIP dialog of a call: toward the PBX or toward Teams, as UAS
// (the side that called us) or UAC (the side we call).
type leg struct {
	c   *call
	s   *side
	uas bool

	mu         sync.Mutex
	callID     string
	localTag   string
	remoteTag  string
	localURI   sip.Uri
	remoteURI  sip.Uri
	localName  string
	remoteName string
	localSeq   uint32
	remoteSeq  uint32
	target     sip.Uri   // remote target (the peer's Contact)
	routes     []sip.Uri // route set, in the order to visit
	contact    *sip.ContactHeader
	transport  string // of the initial INVITE
	confirmed  bool   // 2xx sent/received for the initial INVITE
	ended      bool

	// UAS: the initial INVITE, its transaction and our 2xx.
	inv     *sip.Request
	itx     sip.ServerTransaction
	final   *sip.Response
	acked   chan struct{}
	ackOnce sync.Once

	// UAC: the initial INVITE as last sent, and its transaction.
	out *sip.Request
	otx sip.ClientTransaction

	// Session timer (RFC 4028) of this dialog.
	seInterval  time.Duration
	seRefresher bool // we refresh
	seTimer     *time.Timer
}

func (l *leg) key() string { return dialogKey(l.callID, l.localTag) }

func newTag() string { return sip.GenerateTagN(12) }

// newUAS makes the leg for an INVITE we received.
func newUAS(c *call, s *side, req *sip.Request, tx sip.ServerTransaction) *leg {
	l := &leg{c: c, s: s, uas: true, inv: req, itx: tx, acked: make(chan struct{})}
	l.callID = req.CallID().Value()
	l.remoteTag, _ = req.From().Params.Get("tag")
	l.localTag = newTag()
	l.remoteURI, l.remoteName = req.From().Address, req.From().DisplayName
	l.localURI, l.localName = req.To().Address, req.To().DisplayName
	l.remoteSeq = req.CSeq().SeqNo
	l.localSeq = rand.Uint32N(1 << 16)
	if ct := req.Contact(); ct != nil {
		l.target = ct.Address
	} else {
		l.target = req.From().Address
	}
	for _, h := range req.GetHeaders("Record-Route") {
		l.routes = append(l.routes, parseURIs(h.Value())...)
	}
	l.transport = req.Transport()
	return l
}

// newUAC makes a leg we call out on.
func newUAC(c *call, s *side, callID string, local, remote sip.Uri, localName, remoteName string, contact *sip.ContactHeader) *leg {
	return &leg{c: c, s: s, callID: callID, localTag: newTag(), localURI: local, remoteURI: remote,
		localName: localName, remoteName: remoteName, localSeq: rand.Uint32N(1<<16) + 1, contact: contact}
}

// parseURIs reads the URIs of a Route/Record-Route header value (which
// may hold several comma-separated entries).
func parseURIs(v string) []sip.Uri {
	var out []sip.Uri
	for _, part := range splitHeaderList(v) {
		var u sip.Uri
		if _, err := sip.ParseAddressValue(part, &u, nil); err == nil {
			out = append(out, u)
		}
	}
	return out
}

// splitHeaderList splits a header value at commas outside <> and quotes.
func splitHeaderList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				if s := strings.TrimSpace(v[start:i]); s != "" {
					out = append(out, s)
				}
				start = i + 1
			}
		}
	}
	if s := strings.TrimSpace(v[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// response builds a response to the leg's initial INVITE.
func (l *leg) response(code int, reason string, body []byte, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(l.inv, code, reason, body)
	if code > 100 {
		res.To().Params.Add("tag", l.localTag)
	}
	if code > 100 && code < 300 && l.contact != nil {
		res.AppendHeader(l.contact)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	l.s.decorate(res)
	return res
}

// respond answers the leg's initial INVITE. A 2xx confirms the dialog and
// is retransmitted until the ACK arrives (unreliable transports).
func (l *leg) respond(code int, reason string, body []byte, hdrs ...sip.Header) error {
	res := l.response(code, reason, body, hdrs...)
	l.c.trace(l, "out", res)
	l.c.noteSent(l, body)
	if code >= 200 && code < 300 {
		l.mu.Lock()
		l.final, l.confirmed = res, true
		l.mu.Unlock()
	}
	if err := l.itx.Respond(res); err != nil {
		return err
	}
	if code >= 200 && code < 300 && !sip.IsReliable(l.transport) {
		go l.retransmit2xx(res)
	}
	return nil
}

// retransmit2xx resends our 2xx until the ACK (RFC 3261 §13.3.1.4).
func (l *leg) retransmit2xx(res *sip.Response) {
	d := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	// One timer re-armed per retransmission: most calls are acknowledged
	// before it first fires.
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-l.acked:
			return
		case <-l.c.done:
			return
		case <-deadline.C:
			l.c.hangup(endError, "The "+l.s.name+" side never acknowledged the answer (no ACK).")
			return
		case <-t.C:
			if err := l.itx.Respond(res); err != nil {
				return
			}
			d = min(2*d, sip.T2)
			t.Reset(d)
		}
	}
}

func (l *leg) gotAck(req *sip.Request) {
	l.c.trace(l, "in", req)
	if l.uas {
		l.ackOnce.Do(func() { close(l.acked) })
		if len(req.Body()) > 0 {
			l.c.onAckBody(l, req.Body())
		}
	}
}

// inviteRequest builds the initial INVITE of a UAC leg.
func (l *leg) inviteRequest(ruri sip.Uri, body []byte, hdrs ...sip.Header) *sip.Request {
	req := sip.NewRequest(sip.INVITE, ruri)
	from := &sip.FromHeader{DisplayName: l.localName, Address: l.localURI}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: l.remoteURI}
	cid := sip.CallIDHeader(l.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: l.localSeq, MethodName: sip.INVITE})
	req.AppendHeader(&mf)
	req.AppendHeader(l.contact)
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	}
	l.s.decorate(req)
	return req
}

// established records the dialog state of a UAC leg from its 2xx.
func (l *leg) established(res *sip.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remoteTag, _ = res.To().Params.Get("tag")
	if ct := res.Contact(); ct != nil {
		l.target = ct.Address
	}
	rr := res.GetHeaders("Record-Route")
	l.routes = l.routes[:0]
	for i := len(rr) - 1; i >= 0; i-- {
		us := parseURIs(rr[i].Value())
		for j := len(us) - 1; j >= 0; j-- {
			l.routes = append(l.routes, us[j])
		}
	}
	l.confirmed = true
	l.transport = l.out.Transport()
}

// ackFor builds and sends the ACK for a 2xx to our INVITE.
func (l *leg) ackFor(res *sip.Response) {
	ack := l.requestSeq(sip.ACK, res.CSeq().SeqNo)
	l.c.trace(l, "out", ack)
	if err := l.s.write(ack); err != nil {
		l.c.lg().Debug("ACK failed", "leg", l.s.name, "error", err)
	}
}

// newRequest builds an in-dialog request with the next CSeq.
func (l *leg) newRequest(m sip.RequestMethod) *sip.Request {
	l.mu.Lock()
	l.localSeq++
	seq := l.localSeq
	l.mu.Unlock()
	return l.requestSeq(m, seq)
}

// requestSeq builds an in-dialog request: Request-URI the remote target,
// the route set as Route headers, our tags and Contact.
func (l *leg) requestSeq(m sip.RequestMethod, seq uint32) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	ruri := l.target
	routes := l.routes
	if len(routes) > 0 && !routes[0].UriParams.Has("lr") {
		// Strict routing (RFC 3261 §12.2.1.1): the first route becomes the
		// Request-URI, the remote target the last Route.
		ruri = routes[0]
		routes = append(append([]sip.Uri{}, routes[1:]...), l.target)
	}
	req := sip.NewRequest(m, *ruri.Clone())
	from := &sip.FromHeader{DisplayName: l.localName, Address: l.localURI}
	from.Params.Add("tag", l.localTag)
	to := &sip.ToHeader{DisplayName: l.remoteName, Address: l.remoteURI}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	cid := sip.CallIDHeader(l.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: m})
	req.AppendHeader(&mf)
	for _, r := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	if m != sip.ACK && l.contact != nil {
		req.AppendHeader(l.contact)
	}
	next := ruri
	if len(routes) > 0 && routes[0].UriParams.Has("lr") {
		next = routes[0]
	}
	tr := l.transport
	if v, ok := next.UriParams.Get("transport"); ok && v != "" {
		tr = strings.ToUpper(v)
	}
	if tr == "" {
		tr = strings.ToUpper(l.s.deflt)
	}
	req.SetTransport(tr)
	port := next.Port
	if port == 0 {
		port = int(sip.DefaultPort(tr))
	}
	req.SetDestination(next.Host + ":" + strconv.Itoa(port))
	if l.s.fed != nil {
		// The federation edge is the Phone App leg's only next hop (an
		// outbound proxy): its Contact need not resolve from here.
		req.SetTransport("TLS")
		req.SetDestination(l.s.fed.Edge())
	}
	l.s.decorate(req)
	return req
}

// do sends an in-dialog request and waits for its final response; a 2xx
// to a re-INVITE is acknowledged.
func (l *leg) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	l.c.trace(l, "out", req)
	if req.IsInvite() {
		l.c.noteSent(l, req.Body())
	}
	tx, err := l.s.request(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			l.c.trace(l, "in", res)
			if req.IsInvite() && res.IsSuccess() {
				l.ackFor(res)
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, errors.New("transaction ended without a response")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// bye ends a confirmed dialog.
func (l *leg) bye(hdrs ...sip.Header) { l.byeWithin(32*time.Second, hdrs...) }

// byeWithin ends a confirmed dialog, waiting at most d for the answer.
func (l *leg) byeWithin(d time.Duration, hdrs ...sip.Header) {
	l.mu.Lock()
	if l.ended || !l.confirmed {
		l.mu.Unlock()
		return
	}
	l.ended = true
	l.mu.Unlock()
	req := l.newRequest(sip.BYE)
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, err := l.do(ctx, req); err != nil {
		l.c.lg().Debug("BYE failed", "leg", l.s.name, "error", err)
	}
}

// cancelRequest builds the CANCEL of our pending INVITE: same Via branch,
// Request-URI, Call-ID, From, To, Route and CSeq number.
func (l *leg) cancelRequest(reason string) *sip.Request {
	inv := l.out
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, h := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(h))
	}
	if reason != "" {
		req.AppendHeader(sip.NewHeader("Reason", reason))
	}
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	inv.Laddr.Copy(&req.Laddr)
	req.SetBody(nil)
	l.s.decorate(req)
	return req
}

// cancel sends CANCEL for our pending INVITE (after a provisional
// response, as RFC 3261 §9.1 requires).
func (l *leg) cancel(reason string) {
	l.mu.Lock()
	inv := l.out
	l.mu.Unlock()
	if inv == nil {
		return
	}
	req := l.cancelRequest(reason)
	l.c.trace(l, "out", req)
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	tx, err := l.s.client(req.Transport()).TransactionRequest(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		l.c.lg().Debug("CANCEL failed", "leg", l.s.name, "error", err)
		return
	}
	defer tx.Terminate()
	select {
	case <-tx.Responses():
	case <-tx.Done():
	case <-ctx.Done():
	}
}

// replyIn answers an in-dialog request of this leg.
func (l *leg) replyIn(req *sip.Request, tx sip.ServerTransaction, code int, reason string, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if code >= 200 && code < 300 && (req.IsInvite() || req.Method == sip.UPDATE) && l.contact != nil {
		res.AppendHeader(l.contact)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	l.s.decorate(res)
	l.c.trace(l, "out", res)
	l.c.noteSent(l, body)
	_ = tx.Respond(res)
}

// checkCSeq applies RFC 3261 §12.2.2: a request with a lower CSeq than
// the last one is out of order.
func (l *leg) checkCSeq(req *sip.Request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := req.CSeq().SeqNo
	if l.remoteSeq != 0 && n < l.remoteSeq {
		return false
	}
	if req.Method != sip.ACK && req.Method != sip.CANCEL {
		l.remoteSeq = n
	}
	return true
}

// updateTarget follows a target refresh (re-INVITE or UPDATE Contact).
func (l *leg) updateTarget(req *sip.Request) {
	if ct := req.Contact(); ct != nil && ct.Address.Host != "" {
		l.mu.Lock()
		l.target = ct.Address
		l.mu.Unlock()
	}
}

func (l *leg) String() string {
	return fmt.Sprintf("%s leg %s", l.s.name, l.callID)
}
