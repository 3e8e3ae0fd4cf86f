package teams

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// UserOptions say how a simulated Teams user's endpoints behave when
// called.
type UserOptions struct {
	// Endpoints is the number of devices that ring (each forks a 180 with
	// its own To-tag). Default 2.
	Endpoints int
	// AnswerAfter answers that long after ringing; negative never answers
	// by itself (the test calls Answer or Decline, or the caller gives up).
	AnswerAfter time.Duration
	// Reject, when set, answers every call with this status (e.g. 486,
	// 603, 480) after ringing.
	Reject int
	// EarlyMedia sends one 183 with SDP after the 180s and plays media
	// before the answer.
	EarlyMedia bool
	// Media is what the user's endpoint sends once connected.
	Media MediaMode
	// Name is the display name used when the user calls out.
	Name string
}

// User is a simulated Teams user: found by its Direct Routing number
// (calls from an SBC) and by its UPN (federated calls from a Phone App
// domain through the federation edge).
type User struct {
	Number string // E.164; "" for a user without a Direct Routing number
	UPN    string // "" for a user added by number only
	Tenant *Tenant

	mu       sync.Mutex
	opts     UserOptions
	coex     string // coexistence mode; "" is TeamsOnly
	disabled bool   // account disabled (directory users)
	calls    []*Call
	incoming chan *Call
}

// Coexistence modes (TeamsUpgradePolicy) that matter to the simulator.
const (
	TeamsOnly = "TeamsOnly"
	Islands   = "Islands"
	SfBOnly   = "SfBOnly"
)

func newUser(t *Tenant, number, upn string, opts UserOptions) *User {
	if opts.Endpoints <= 0 {
		opts.Endpoints = 2
	}
	return &User{Number: number, UPN: upn, Tenant: t, opts: opts, incoming: make(chan *Call, 16)}
}

// AddUser gives the tenant a user with an E.164 number.
func (t *Tenant) AddUser(number string, opts UserOptions) *User {
	return t.AddUserUPN("", number, opts)
}

// AddUserUPN gives the tenant a user with a UPN (how the federation edge
// finds it) and optionally an E.164 number (how Direct Routing finds it;
// "" for a Phone App user without Teams Phone). The user starts in
// TeamsOnly mode.
func (t *Tenant) AddUserUPN(upn, number string, opts UserOptions) *User {
	u := newUser(t, number, upn, opts)
	t.mu.Lock()
	if number != "" {
		t.users[number] = u
	}
	if upn != "" {
		t.byUPN[strings.ToLower(upn)] = u
	}
	t.mu.Unlock()
	return u
}

// SetCoexistence sets the user's coexistence mode (TeamsOnly, Islands,
// SfBOnly, ...), as Grant-CsTeamsUpgradePolicy does; the federation edge
// rings only TeamsOnly users. For a directory user it lasts until the
// next call refreshes it from the directory.
func (u *User) SetCoexistence(mode string) {
	u.mu.Lock()
	u.coex = mode
	u.mu.Unlock()
}

// Coexistence returns the user's coexistence mode.
func (u *User) Coexistence() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.coex == "" {
		return TeamsOnly
	}
	return u.coex
}

// Options returns the user's current behaviour.
func (u *User) Options() UserOptions { return u.options() }

// Calls lists the user's calls that are ringing or established, oldest
// first.
func (u *User) Calls() []*Call {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*Call(nil), u.calls...)
}

// Call returns the user's live call with a Call-ID, or nil.
func (u *User) Call(callID string) *Call {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.calls {
		if c.callID == callID {
			return c
		}
	}
	return nil
}

func (u *User) addCall(c *Call) {
	u.mu.Lock()
	u.calls = append(u.calls, c)
	u.mu.Unlock()
}

func (u *User) dropCall(c *Call) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, x := range u.calls {
		if x == c {
			u.calls = append(u.calls[:i], u.calls[i+1:]...)
			return
		}
	}
}

// SetOptions changes the user's behaviour for the next calls.
func (u *User) SetOptions(o UserOptions) {
	if o.Endpoints <= 0 {
		o.Endpoints = 2
	}
	u.mu.Lock()
	u.opts = o
	u.mu.Unlock()
}

func (u *User) options() UserOptions {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.opts
}

// Incoming returns the next call that rang the user, waiting up to ctx.
func (u *User) Incoming(ctx context.Context) (*Call, error) {
	select {
	case c := <-u.incoming:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no call rang %s: %w", u.Number, ctx.Err())
	}
}

// user finds a user by number; a directory tenant asks the directory.
func (t *Tenant) user(number string) *User {
	t.mu.Lock()
	u, dir := t.users[number], t.fromDirectory
	t.mu.Unlock()
	if !dir || t.sim.cfg.Directory == nil {
		return u
	}
	du, ok := t.sim.cfg.Directory.UserByNumber(t.ID, number)
	if !ok || du.TenantID != t.ID {
		return nil
	}
	return t.sim.directoryUser(du)
}

// userByUPN finds a user of the tenant by UPN; a directory tenant asks the
// directory.
func (t *Tenant) userByUPN(upn string) *User {
	t.mu.Lock()
	u, dir := t.byUPN[strings.ToLower(upn)], t.fromDirectory
	t.mu.Unlock()
	if !dir || t.sim.cfg.Directory == nil {
		return u
	}
	du, ok := t.sim.cfg.Directory.UserByUPN(upn)
	if !ok || du.TenantID != t.ID {
		return nil
	}
	return t.sim.directoryUser(du)
}

// Reinvite is a re-INVITE or UPDATE the SBC sent during a call.
type Reinvite struct {
	At        time.Time
	Method    string
	Direction string // a= direction of its SDP ("" without SDP)
	Status    int    // what the simulator answered
}

// Call is one simulated Teams call leg.
type Call struct {
	User *User
	// Inbound is true for a call from the SBC to Teams.
	Inbound bool

	sim    *Sim
	dc     *Datacenter
	callID string
	// conn, for a call through the federation edge, is the peer's address
	// on the TLS connection the INVITE came over: in-dialog requests go
	// back over that connection.
	conn    string
	created time.Time

	mu          sync.Mutex
	invite      *sip.Request // the initial INVITE, received or sent
	localTag    string
	remoteTag   string
	localURI    sip.Uri
	remoteURI   sip.Uri
	localName   string
	remoteName  string
	localSeq    uint32
	remoteSeq   uint32
	target      sip.Uri
	routes      []sip.Uri
	sdp         *sdpBuilder
	ep          *endpoint
	myKeys      []msdp.Crypto
	myKey       msdp.Crypto
	neg         *negotiated
	answered    bool
	status      int // final status of the initial INVITE
	reinvites   []Reinvite
	notifies    []string
	referredBy  string // Referred-By of the INVITE that created the call
	transferOK  bool   // Referred-By came back unchanged
	outgoingRef string // Referred-By we sent in our REFER
	ringTags    []string
	answeredAt  time.Time
	heldByUser  bool // the Teams user put the call on hold
	heldByPeer  bool // the other side sent a=inactive

	decide chan int // inbound: 200 to answer, other to reject
	final  chan int // outbound: the final status
	ended  chan struct{}
	endMu  sync.Once
	reason string
}

func (c *Call) end(reason string) {
	c.endMu.Do(func() {
		c.mu.Lock()
		c.reason = reason
		ep := c.ep
		c.mu.Unlock()
		c.sim.dropCall(c)
		if c.User != nil {
			c.User.dropCall(c)
		}
		close(c.ended)
		if ep != nil {
			ep.close()
		}
	})
}

// Done is closed when the call has ended.
func (c *Call) Done() <-chan struct{} { return c.ended }

// EndReason says how the call ended: "bye from sbc", "bye from caller"
// (a federated call), "bye from teams", "cancelled", "transferred", a
// status, ...
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Invite returns the initial INVITE of the call.
func (c *Call) Invite() *sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.invite
}

// CallID is the SIP Call-ID.
func (c *Call) CallID() string { return c.callID }

// Status is the final status of the initial INVITE (0 while pending).
func (c *Call) Status() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Media returns what the call's endpoint received.
func (c *Call) Media() MediaStats {
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep == nil {
		return MediaStats{}
	}
	return ep.stats()
}

// Payloads returns the first audio payloads received (decrypted).
func (c *Call) Payloads() [][]byte {
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep == nil {
		return nil
	}
	return ep.receivedPayloads()
}

// SetMedia changes what the endpoint sends.
func (c *Call) SetMedia(m MediaMode) {
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep != nil {
		ep.setMode(m)
	}
}

// SendDTMF queues RFC 4733 digits on the media stream.
func (c *Call) SendDTMF(digits string) {
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep != nil {
		ep.sendDTMF(digits)
	}
}

// Reinvites lists the re-INVITEs and UPDATEs the SBC sent.
func (c *Call) Reinvites() []Reinvite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Reinvite(nil), c.reinvites...)
}

// Notifies lists the sipfrag status lines of NOTIFYs received after our
// REFER.
func (c *Call) Notifies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.notifies...)
}

// ReferredBy is the Referred-By header of the INVITE that created this
// call (a transfer), and whether it matched what the simulator sent.
func (c *Call) ReferredBy() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.referredBy, c.transferOK
}

// Answer answers a ringing inbound call.
func (c *Call) Answer() { c.decideWith(200) }

// Decline rejects a ringing inbound call (603, as a Teams user declining).
func (c *Call) Decline() { c.decideWith(603) }

// Reject answers a ringing inbound call with status.
func (c *Call) Reject(status int) { c.decideWith(status) }

func (c *Call) decideWith(status int) {
	select {
	case c.decide <- status:
	default:
	}
}

// Dial places a call from the user to a number through the tenant's voice
// route (the customer's SBC subdomain), like a Teams client dialling out.
// It returns once the INVITE is sent; WaitAnswer waits for the outcome.
func (u *User) Dial(ctx context.Context, number string) (*Call, error) {
	return u.dial(ctx, number, nil)
}

// DialReplacing sends an INVITE with Replaces for an established call of
// the simulator, as Microsoft does when a call queue agent picks up: the
// SBC must connect the new dialog in place of the old one.
func (u *User) DialReplacing(ctx context.Context, old *Call) (*Call, error) {
	old.mu.Lock()
	callID, local, remote := old.callID, old.localTag, old.remoteTag
	number := old.remoteURI.User
	old.mu.Unlock()
	// The tags name the dialog as the SBC sees it: its own tag is to-tag.
	h := sip.NewHeader("Replaces", fmt.Sprintf("%s;to-tag=%s;from-tag=%s", callID, remote, local))
	return u.dial(ctx, number, h)
}

func (u *User) dial(ctx context.Context, number string, replaces sip.Header) (*Call, error) {
	t := u.Tenant
	t.mu.Lock()
	route := t.route
	t.mu.Unlock()
	if route == "" && t.sim.cfg.VoiceRoute != nil {
		route = strings.ToLower(t.sim.cfg.VoiceRoute(t.ID))
	}
	if route == "" {
		return nil, errors.New("teams sim: tenant has no voice route (SetVoiceRoute)")
	}
	s := t.sim
	g := s.gatewayFor(route)
	if g == nil {
		return nil, fmt.Errorf("teams sim: %s is not under a declared gateway", route)
	}
	dc := s.dcs[0]
	for _, d := range s.dcs {
		if d.getMode() == Up {
			dc = d
			break
		}
	}
	c := newCall(s, dc, u, false)
	ep, err := newEndpoint(s.cfg.MediaIP, u.options().Media)
	if err != nil {
		return nil, err
	}
	c.ep = ep
	c.myKeys = []msdp.Crypto{
		{Tag: 2, Suite: "AES_CM_128_HMAC_SHA1_80", Key: newKey(), Lifetime: "2^31", MKI: 1, MKILen: 1},
		{Tag: 3, Suite: "AES_CM_128_HMAC_SHA1_80", Key: newKey(), Lifetime: "2^31"},
	}
	c.callID = sip.GenerateTagN(24) + "@" + dc.Name
	c.localTag = sip.GenerateTagN(12)
	c.localURI = sip.Uri{Scheme: "sip", User: u.Number, Host: dc.Name, UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}
	c.localName = u.options().Name
	c.remoteURI = sip.Uri{Scheme: "sip", User: number, Host: route, UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}
	c.target = sip.Uri{Scheme: "sip", User: number, Host: route, Port: g.Port,
		UriParams: sip.HeaderParams{{K: "user", V: "phone"}, {K: "transport", V: "tls"}}}
	c.localSeq = 1
	req := c.newRequest(sip.INVITE)
	req.Recipient = c.target
	body := c.sdp.offer(ep.port, c.myKeys, msdp.SendRecv)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY"))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if se := s.cfg.SessionExpires; se > 0 {
		req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(se)))
	}
	if replaces != nil {
		req.AppendHeader(replaces)
	}
	req.SetBody(body)
	c.invite = req
	s.addCall(c)
	u.addCall(c)
	tx, err := dc.cli.TransactionRequest(ctx, req, sipgo.ClientRequestAddVia)
	if err != nil {
		c.end("send failed: " + err.Error())
		return nil, err
	}
	go c.runOutbound(tx, req)
	return c, nil
}

// WaitAnswer waits for the final status of an outbound call.
func (c *Call) WaitAnswer(ctx context.Context) (int, error) {
	select {
	case st := <-c.final:
		c.final <- st
		return st, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Cancel cancels an outbound call that is still ringing.
func (c *Call) Cancel(ctx context.Context) error {
	c.mu.Lock()
	inv := c.invite
	answered := c.answered
	c.mu.Unlock()
	if answered || inv == nil {
		return errors.New("teams sim: call is not ringing")
	}
	cancel := sip.NewRequest(sip.CANCEL, inv.Recipient)
	cancel.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range []sip.Header{inv.From(), inv.To(), inv.CallID()} {
		cancel.AppendHeader(sip.HeaderClone(h))
	}
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	cancel.SetTransport(inv.Transport())
	cancel.SetDestination(inv.Destination())
	cancel.SetBody(nil)
	res, err := c.dc.cli.Do(ctx, cancel, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("CANCEL answered %d", res.StatusCode)
	}
	return nil
}

func newCall(s *Sim, dc *Datacenter, u *User, inbound bool) *Call {
	return &Call{User: u, Inbound: inbound, sim: s, dc: dc, sdp: newSDPBuilder(s.cfg.MediaIP), created: time.Now(),
		decide: make(chan int, 1), final: make(chan int, 1), ended: make(chan struct{})}
}

func (c *Call) runOutbound(tx sip.ClientTransaction, req *sip.Request) {
	defer tx.Terminate()
	finish := func(st int) {
		c.mu.Lock()
		c.status = st
		c.mu.Unlock()
		c.final <- st
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode == 100 {
				continue
			}
			if res.IsProvisional() {
				if len(res.Body()) > 0 {
					_ = c.applyAnswer(res.Body())
				}
				continue
			}
			if !res.IsSuccess() {
				finish(res.StatusCode)
				c.end(strconv.Itoa(res.StatusCode))
				return
			}
			c.mu.Lock()
			c.remoteTag, _ = res.To().Params.Get("tag")
			if ct := res.Contact(); ct != nil {
				c.target = ct.Address
			}
			rrs := res.GetHeaders("Record-Route")
			c.routes = nil
			for i := len(rrs) - 1; i >= 0; i-- {
				var u sip.Uri
				if _, err := sip.ParseAddressValue(rrs[i].Value(), &u, nil); err == nil {
					c.routes = append(c.routes, u)
				}
			}
			c.answered, c.answeredAt = true, time.Now()
			c.mu.Unlock()
			err := c.applyAnswer(res.Body())
			c.sendAck(res)
			if err != nil {
				finish(488)
				_ = c.Hangup(context.Background())
				return
			}
			finish(res.StatusCode)
			// 2xx retransmissions (over TLS there are none) would be ACKed
			// here; wait for the transaction to finish.
			<-tx.Done()
			return
		case <-tx.Done():
			finish(408)
			c.end("no answer: " + fmt.Sprint(tx.Err()))
			return
		}
	}
}

// applyAnswer configures media from the SBC's answer to our offer.
func (c *Call) applyAnswer(body []byte) error {
	n, p := checkSBCDescription(body)
	if p != nil {
		return p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ours *msdp.Crypto
	for i := range c.myKeys {
		if c.myKeys[i].Tag == n.key.Tag {
			ours = &c.myKeys[i]
		}
	}
	if ours == nil {
		return errors.New("answer key tag matches no offered key")
	}
	c.myKey, c.neg = *ours, n
	return c.ep.configure(n.remote, n.codec, n.dtmf, n.key, *ours, n.dir.Reverse())
}

func (c *Call) sendAck(res *sip.Response) {
	ack := c.newRequestSeq(sip.ACK, res.CSeq().SeqNo)
	ack.SetBody(nil)
	_ = c.dc.cli.WriteRequest(ack, sipgo.ClientRequestAddVia)
}

// newRequest builds an in-dialog request with the next CSeq.
func (c *Call) newRequest(m sip.RequestMethod) *sip.Request {
	c.mu.Lock()
	c.localSeq++
	seq := c.localSeq
	c.mu.Unlock()
	return c.newRequestSeq(m, seq)
}

func (c *Call) newRequestSeq(m sip.RequestMethod, seq uint32) *sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	req := sip.NewRequest(m, c.target)
	from := &sip.FromHeader{DisplayName: c.localName, Address: c.localURI}
	from.Params.Add("tag", c.localTag)
	to := &sip.ToHeader{DisplayName: c.remoteName, Address: c.remoteURI}
	if c.remoteTag != "" {
		to.Params.Add("tag", c.remoteTag)
	}
	cid := sip.CallIDHeader(c.callID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: m})
	req.AppendHeader(&mf)
	for _, r := range c.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	req.AppendHeader(&sip.ContactHeader{Address: c.dc.contactURI()})
	req.SetTransport("TLS")
	dest := c.target
	if len(c.routes) > 0 {
		dest = c.routes[0]
	}
	port := dest.Port
	if port == 0 {
		port = 5061
	}
	req.SetDestination(dest.Host + ":" + strconv.Itoa(port))
	if c.conn != "" {
		// Back over the caller's connection while it is open; once it is
		// gone, to the Contact, as an edge would reach the peer's domain.
		if conn, err := c.dc.ua.TransportLayer().GetConnection("tls", c.conn); err == nil && conn != nil {
			req.SetDestination(c.conn)
		}
	}
	return req
}

// do sends an in-dialog request and waits for its final response.
func (c *Call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	if req.Body() == nil {
		req.SetBody(nil)
	}
	return c.dc.cli.Do(ctx, req, sipgo.ClientRequestAddVia)
}

// Hangup ends an established call with BYE.
func (c *Call) Hangup(ctx context.Context) error {
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	if !answered {
		return errors.New("teams sim: call not established")
	}
	res, err := c.do(ctx, c.newRequest(sip.BYE))
	c.end("bye from teams")
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("BYE answered %d", res.StatusCode)
	}
	return nil
}

// Hold puts the call on hold the Teams way: a re-INVITE with a=inactive.
func (c *Call) Hold(ctx context.Context) (int, error) { return c.reoffer(ctx, msdp.Inactive) }

// Resume takes the call off hold.
func (c *Call) Resume(ctx context.Context) (int, error) { return c.reoffer(ctx, msdp.SendRecv) }

func (c *Call) reoffer(ctx context.Context, dir msdp.Direction) (int, error) {
	c.mu.Lock()
	if !c.answered || c.neg == nil {
		c.mu.Unlock()
		return 0, errors.New("teams sim: call not established")
	}
	key := c.myKey
	body := c.sdp.answerLike(c.ep.port, c.neg, key, dir)
	c.mu.Unlock()
	req := c.newRequest(sip.INVITE)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := c.do(ctx, req)
	if err != nil {
		return 0, err
	}
	ack := c.newRequestSeq(sip.ACK, res.CSeq().SeqNo)
	ack.SetBody(nil)
	if res.IsSuccess() {
		_ = c.dc.cli.WriteRequest(ack, sipgo.ClientRequestAddVia)
		n, p := checkSBCDescription(res.Body())
		if p != nil {
			return res.StatusCode, p
		}
		if n.dir != dir.Reverse() && !(dir == msdp.Inactive && n.dir == msdp.Inactive) {
			return res.StatusCode, fmt.Errorf("answer direction %s to our %s", n.dir, dir)
		}
		c.ep.setDirection(sdpDirAnd(dir, n.dir.Reverse()))
		c.mu.Lock()
		c.heldByUser = dir == msdp.Inactive
		c.mu.Unlock()
	}
	return res.StatusCode, nil
}

func sdpDirAnd(a, b msdp.Direction) msdp.Direction {
	return msdp.Make(a.Sends() && b.Sends(), a.Receives() && b.Receives())
}

// Transfer asks the SBC, with REFER, to call number instead (a blind
// transfer by the Teams user). Refer-To points at the proxy; Referred-By
// is long and opaque, as Microsoft's is, and must come back unchanged.
func (c *Call) Transfer(ctx context.Context, number string) (int, error) {
	c.mu.Lock()
	if !c.answered {
		c.mu.Unlock()
		return 0, errors.New("teams sim: call not established")
	}
	tenant := c.User.Tenant.ID
	c.mu.Unlock()
	corr := randHex(16)
	referTo := fmt.Sprintf("<sip:%s@%s:%d;user=phone;transport=tls;x-m=8:orgid:%s;x-t=%s>",
		number, c.dc.Name, c.dc.Port, randHex(16), tenant)
	referredBy := fmt.Sprintf("<sip:%s:%d;transport=tls;x-m=8:orgid:%s;x-t=%s;x-ti=%s;x-tt=%s>",
		c.dc.Name, c.dc.Port, randHex(16), tenant, corr,
		"sip%3A%2B"+strings.TrimPrefix(c.User.Number, "+")+"%40"+c.dc.Name+"%3Bx-ct%3D"+randHex(40))
	c.sim.mu.Lock()
	c.sim.transfers[corr] = referredBy
	c.sim.mu.Unlock()
	c.mu.Lock()
	c.outgoingRef = referredBy
	c.mu.Unlock()
	req := c.newRequest(sip.REFER)
	req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	req.AppendHeader(sip.NewHeader("Referred-By", referredBy))
	res, err := c.do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// handleInvite runs an initial INVITE from the SBC (PBX → Teams call).
func (dc *Datacenter) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		dc.onReinvite(req, tx)
		return
	}
	s := dc.sim
	dc.mu.Lock()
	dc.invites++
	dc.mu.Unlock()
	switch dc.getMode() {
	case NoResponse:
		s.record(dc, req, 0)
		return
	case Unavailable:
		dc.respond(req, tx, 503, "Service Unavailable", 0)
		return
	}
	fqdn, _, status, reason := sbcIdentity(req, tx)
	if status != 0 {
		dc.respond(req, tx, status, reason, 0)
		return
	}
	g := s.gatewayFor(fqdn)
	if g == nil || !g.seen() {
		dc.respond(req, tx, 403, "Forbidden: no trunk config was found for "+fqdn, 510532)
		return
	}
	if req.GetHeader("Replaces") != nil {
		dc.respond(req, tx, 403, "Forbidden: Replaces is not supported", 0)
		return
	}
	tenant := s.tenantFor(fqdn)
	if tenant == nil {
		dc.respond(req, tx, 403, "Forbidden: no trunk config was found; "+fqdn+" is not a domain of any tenant", 510532)
		return
	}
	neg, prob := checkSBCDescription(req.Body())
	if prob != nil {
		dc.respond(req, tx, prob.status, prob.reason, prob.code)
		return
	}
	number := req.Recipient.User
	u := tenant.user(number)
	if !strings.HasPrefix(number, "+") || u == nil {
		dc.respond(req, tx, 404, "Not Found: getting user info by number from RuntimeAPI failed", 511404)
		return
	}
	c := dc.inboundCall(req, u)
	if rb := req.GetHeader("Referred-By"); rb != nil {
		c.referredBy = rb.Value()
		s.mu.Lock()
		for _, sent := range s.transfers {
			if sent == c.referredBy {
				c.transferOK = true
			}
		}
		s.mu.Unlock()
		if !c.transferOK {
			dc.respond(req, tx, 403, "Forbidden: Referred-By does not match the REFER", 0)
			return
		}
	}
	dc.ring(req, tx, c, neg)
}

// inboundCall makes the call of an initial INVITE toward u.
func (dc *Datacenter) inboundCall(req *sip.Request, u *User) *Call {
	c := newCall(dc.sim, dc, u, true)
	c.callID = req.CallID().Value()
	c.invite = req
	c.remoteTag, _ = req.From().Params.Get("tag")
	c.remoteURI, c.remoteName = req.From().Address, req.From().DisplayName
	c.localURI, c.localName = req.To().Address, req.To().DisplayName
	c.remoteSeq = req.CSeq().SeqNo
	c.localSeq = 100
	c.target = req.Contact().Address
	for _, h := range req.GetHeaders("Record-Route") {
		var ru sip.Uri
		if _, err := sip.ParseAddressValue(h.Value(), &ru, nil); err == nil {
			c.routes = append(c.routes, ru)
		}
	}
	return c
}

// ring runs an accepted inbound call: 100, a 180 from each of the user's
// devices, 183 with early media when configured, then the user's (or
// the test's) decision: 200 with SRTP SDP, or a rejection.
func (dc *Datacenter) ring(req *sip.Request, tx sip.ServerTransaction, c *Call, neg *negotiated) {
	s, u := dc.sim, c.User
	opts := u.options()
	ep, err := newEndpoint(s.cfg.MediaIP, opts.Media)
	if err != nil {
		dc.respond(req, tx, 500, "media: "+err.Error(), 0)
		return
	}
	c.ep = ep
	c.neg = neg
	c.myKey = msdp.Crypto{Tag: neg.key.Tag, Suite: "AES_CM_128_HMAC_SHA1_80", Key: newKey(), Lifetime: "2^31"}
	s.addCall(c)
	u.addCall(c)
	rec := s.recordIdx(dc, req, 0, "")

	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	for i := 0; i < opts.Endpoints; i++ {
		tag := sip.GenerateTagN(10)
		c.ringTags = append(c.ringTags, tag)
		res := c.response(req, 180, "Ringing", tag, nil)
		_ = tx.Respond(res)
	}
	answerBody := func() []byte {
		return c.sdp.answer(ep.port, neg.codec, neg.dtmf, c.myKey, neg.dir.Reverse())
	}
	var body []byte
	if opts.EarlyMedia {
		body = answerBody()
		_ = ep.configure(neg.remote, neg.codec, neg.dtmf, neg.key, c.myKey, neg.dir.Reverse())
		res := c.response(req, 183, "Session Progress", c.ringTags[0], body)
		_ = tx.Respond(res)
	}
	select {
	case u.incoming <- c:
	default:
	}

	var timer <-chan time.Time
	switch {
	case opts.Reject != 0:
		t := time.NewTimer(50 * time.Millisecond)
		defer t.Stop()
		timer = t.C
	case opts.AnswerAfter >= 0:
		t := time.NewTimer(opts.AnswerAfter)
		defer t.Stop()
		timer = t.C
	}
	decision := 0
	select {
	case decision = <-c.decide:
	case <-timer:
		decision = 200
		if opts.Reject != 0 {
			decision = opts.Reject
		}
	case <-tx.Done():
		c.setStatus(487)
		s.setRecordStatus(rec, 487)
		c.end("cancelled")
		return
	case <-s.ctx.Done():
		return
	}
	if decision != 200 {
		res := c.response(req, decision, reasonPhrase(decision), c.ringTags[len(c.ringTags)-1], nil)
		_ = tx.Respond(res)
		c.setStatus(decision)
		s.setRecordStatus(rec, decision)
		c.end(strconv.Itoa(decision))
		return
	}
	if body == nil {
		body = answerBody()
	}
	if err := ep.configure(neg.remote, neg.codec, neg.dtmf, neg.key, c.myKey, neg.dir.Reverse()); err != nil {
		_ = tx.Respond(c.response(req, 488, "Not Acceptable Here", c.ringTags[0], nil))
		c.end("488")
		return
	}
	// The answering device is the last that rang: its To-tag may differ
	// from the 183's, as when another device of the user picks up.
	tag := c.ringTags[len(c.ringTags)-1]
	res := c.response(req, 200, "OK", tag, body)
	if se := s.cfg.SessionExpires; se > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(se)+";refresher=uac"))
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
	c.mu.Lock()
	c.localTag, c.answered, c.status, c.answeredAt = tag, true, 200, time.Now()
	c.mu.Unlock()
	s.setRecordStatus(rec, 200)
	if err := tx.Respond(res); err != nil {
		c.end("answer failed: " + err.Error())
	}
}

func (c *Call) setStatus(st int) {
	c.mu.Lock()
	c.status = st
	c.mu.Unlock()
}

// response builds a response to the initial INVITE with a device's tag.
func (c *Call) response(req *sip.Request, status int, reason, tag string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, status, reason, body)
	res.To().Params.Add("tag", tag)
	res.AppendHeader(&sip.ContactHeader{Address: c.dc.contactURI()})
	res.AppendHeader(sip.NewHeader("Allow", "INVITE,ACK,OPTIONS,CANCEL,BYE,NOTIFY"))
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	return res
}

func reasonPhrase(st int) string {
	switch st {
	case 486:
		return "Busy Here"
	case 480:
		return "Temporarily Unavailable"
	case 487:
		return "Request Terminated"
	case 603:
		return "Decline"
	case 404:
		return "Not Found"
	}
	return "Error"
}

// onReinvite answers a re-INVITE of an established call.
func (dc *Datacenter) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c := dc.sim.callByID(req.CallID().Value())
	if c == nil {
		dc.respond(req, tx, 481, "Call/Transaction Does Not Exist", 0)
		return
	}
	ri := Reinvite{At: time.Now(), Method: req.Method.String()}
	if len(req.Body()) == 0 {
		// Microsoft does not support delayed offer, re-INVITEs included.
		ri.Status = 488
		c.addReinvite(ri)
		dc.respond(req, tx, 488, "SDP required", 531000)
		return
	}
	n, prob := checkSBCDescription(req.Body())
	if s, err := msdp.Parse(req.Body()); err == nil && len(s.Media) > 0 {
		ri.Direction = s.Media[0].Direction.String()
	}
	if prob != nil {
		ri.Status = prob.status
		c.addReinvite(ri)
		dc.respond(req, tx, prob.status, prob.reason, prob.code)
		return
	}
	c.mu.Lock()
	c.remoteSeq = req.CSeq().SeqNo
	if ct := req.Contact(); ct != nil {
		c.target = ct.Address
	}
	// Keep our key unless the SBC's tag changed.
	if c.myKey.Tag != n.key.Tag {
		c.myKey.Tag = n.key.Tag
	}
	// Hold as Microsoft understands it: only a=inactive. sendonly and
	// recvonly are answered as if they were sendrecv (the proxy "does not
	// understand" them), which the test sees in Reinvites.
	ourDir := msdp.SendRecv
	if n.dir == msdp.Inactive {
		ourDir = msdp.Inactive
	}
	c.neg = n
	c.heldByPeer = n.dir != msdp.SendRecv
	key := c.myKey
	body := c.sdp.answer(c.ep.port, n.codec, n.dtmf, key, ourDir)
	ep := c.ep
	c.mu.Unlock()
	_ = ep.configure(n.remote, n.codec, n.dtmf, n.key, key, ourDir)
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(&sip.ContactHeader{Address: dc.contactURI()})
	if se := dc.sim.cfg.SessionExpires; se > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(se)+";refresher=uac"))
	}
	ri.Status = 200
	c.addReinvite(ri)
	_ = tx.Respond(res)
	dc.sim.record(dc, req, 200)
}

func (c *Call) addReinvite(r Reinvite) {
	c.mu.Lock()
	c.reinvites = append(c.reinvites, r)
	c.mu.Unlock()
}

// onInDialog handles ACK, BYE, NOTIFY, UPDATE, INFO and REFER.
func (dc *Datacenter) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	c := dc.sim.callByID(req.CallID().Value())
	if req.IsAck() {
		return
	}
	if c == nil {
		dc.respond(req, tx, 481, "Call/Transaction Does Not Exist", 0)
		return
	}
	switch req.Method {
	case sip.BYE:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		dc.sim.record(dc, req, 200)
		if dc.edge != nil {
			c.end("bye from caller")
		} else {
			c.end("bye from sbc")
		}
	case sip.UPDATE:
		c.addReinvite(Reinvite{At: time.Now(), Method: "UPDATE", Status: 200})
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if se := dc.sim.cfg.SessionExpires; se > 0 {
			res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(se)+";refresher=uac"))
		}
		_ = tx.Respond(res)
		dc.sim.record(dc, req, 200)
	case sip.NOTIFY:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		dc.sim.record(dc, req, 200)
		line := strings.TrimSpace(strings.SplitN(string(req.Body()), "\n", 2)[0])
		c.mu.Lock()
		c.notifies = append(c.notifies, line)
		c.mu.Unlock()
		if code := sipfragStatus(line); code >= 200 && code < 300 {
			// The transfer succeeded: Microsoft releases the old leg.
			go func() {
				ctx, cancel := context.WithTimeout(dc.sim.ctx, 10*time.Second)
				defer cancel()
				_, _ = c.do(ctx, c.newRequest(sip.BYE))
				c.end("transferred")
			}()
		}
	case sip.REFER:
		dc.respond(req, tx, 403, "Forbidden: transfers are initiated by Teams", 0)
	default:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		dc.sim.record(dc, req, 200)
	}
}

// sipfragStatus reads the status code of a "SIP/2.0 200 OK" sipfrag line.
func sipfragStatus(line string) int {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/") {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// answerLike writes a re-offer with the negotiated codec and our key.
func (s *sdpBuilder) answerLike(port int, n *negotiated, key msdp.Crypto, dir msdp.Direction) []byte {
	return s.answer(port, n.codec, n.dtmf, key, dir)
}

// RemoteMedia is where the endpoint sends media (for tests).
func (c *Call) RemoteMedia() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep == nil {
		return netip.AddrPort{}
	}
	c.ep.mu.Lock()
	defer c.ep.mu.Unlock()
	return c.ep.remote
}

// CallState is where a call stands, as a Teams client shows it.
type CallState string

// Call states.
const (
	StateRinging CallState = "ringing" // inbound, not answered yet
	StateDialing CallState = "dialing" // outbound, not answered yet
	StateActive  CallState = "active"
	StateHeld    CallState = "held" // on hold by either side
	StateEnded   CallState = "ended"
)

// CallInfo is a snapshot of a call for a page or a test: who is on the
// other end, its state and its media counters.
type CallInfo struct {
	CallID string `json:"callId"`
	// Inbound: the call came to the Teams user; Federated: through the
	// federation edge (a Phone App call) rather than Direct Routing.
	Inbound   bool      `json:"inbound"`
	Federated bool      `json:"federated"`
	State     CallState `json:"state"`
	// RemoteName and RemoteUser are the other party's display name and
	// URI user part (a number for PBX calls); RemoteURI is the whole URI.
	RemoteName string     `json:"remoteName,omitempty"`
	RemoteUser string     `json:"remoteUser,omitempty"`
	RemoteURI  string     `json:"remoteUri"`
	Started    time.Time  `json:"started"`
	Answered   time.Time  `json:"answered,omitzero"`
	HeldByUser bool       `json:"heldByUser"`
	HeldByPeer bool       `json:"heldByPeer"`
	Status     int        `json:"status,omitempty"` // final status of the initial INVITE
	EndReason  string     `json:"endReason,omitempty"`
	Media      MediaStats `json:"media"`
}

// Federated reports whether the call came through the federation edge.
func (c *Call) Federated() bool { return c.dc.edge != nil }

// Info returns a snapshot of the call.
func (c *Call) Info() CallInfo {
	ended := false
	select {
	case <-c.ended:
		ended = true
	default:
	}
	media := c.Media()
	c.mu.Lock()
	defer c.mu.Unlock()
	in := CallInfo{CallID: c.callID, Inbound: c.Inbound, Federated: c.dc.edge != nil,
		RemoteName: c.remoteName, RemoteUser: c.remoteURI.User, RemoteURI: c.remoteURI.String(),
		Started: c.created, Answered: c.answeredAt, HeldByUser: c.heldByUser, HeldByPeer: c.heldByPeer,
		Status: c.status, EndReason: c.reason, Media: media}
	switch {
	case ended:
		in.State = StateEnded
	case !c.answered && c.Inbound:
		in.State = StateRinging
	case !c.answered:
		in.State = StateDialing
	case c.heldByUser || c.heldByPeer:
		in.State = StateHeld
	default:
		in.State = StateActive
	}
	return in
}

// End ends the call whatever its state, as the red button of a Teams
// client does: a ringing inbound call is declined (603), a ringing
// outbound call cancelled, an established call hung up with BYE.
func (c *Call) End(ctx context.Context) error {
	select {
	case <-c.ended:
		return nil
	default:
	}
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	switch {
	case answered:
		return c.Hangup(ctx)
	case c.Inbound:
		c.Decline()
		return nil
	default:
		return c.Cancel(ctx)
	}
}
