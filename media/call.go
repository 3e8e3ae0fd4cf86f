//go:build linux

package media

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/srtp/v3"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media/sdp"
)

// Leg is one side of a relayed call.
type Leg int

// The two legs. Leg A faces the PBX, leg B faces Microsoft Teams.
const (
	LegA Leg = 0
	LegB Leg = 1

	local Leg = -1 // the relay itself, as the author of an offer
)

func (l Leg) other() Leg { return 1 - l }

// String names the peer of the leg in human messages.
func (l Leg) String() string {
	switch l {
	case LegA:
		return "the PBX"
	case LegB:
		return "Teams"
	}
	return "the relay"
}

// Security is a leg's policy for SRTP.
type Security int

const (
	// SecurityFollow answers as the peer offers (SRTP when its offer
	// carries a usable a=crypto line, plain RTP otherwise) and offers
	// plain RTP. The default for leg A.
	SecurityFollow Security = iota
	// SecurityPlain uses plain RTP only and refuses SRTP offers.
	SecurityPlain
	// SecuritySRTP uses SDES-keyed SRTP only and refuses plain offers and
	// answers. The default for leg B.
	SecuritySRTP
)

type legOptions struct {
	security     Security
	holdInactive bool // any direction other than sendrecv is written as a=inactive
	muxOnly      bool // offer a=rtcp-mux without a separate RTCP port
}

// CallOption adjusts a call's per-leg policies; pass them to NewCall.
type CallOption func(*[2]legOptions)

// WithSecurity sets a leg's SRTP policy.
func WithSecurity(l Leg, s Security) CallOption {
	return func(o *[2]legOptions) { o[l].security = s }
}

// WithHoldAsInactive makes the relay write a=inactive toward the leg
// whenever the stream is not sendrecv (Teams understands no other hold
// signal). Default on for leg B, off for leg A.
func WithHoldAsInactive(l Leg, on bool) CallOption {
	return func(o *[2]legOptions) { o[l].holdInactive = on }
}

// WithRTCPMuxOnly makes offers toward the leg carry a=rtcp-mux and no
// separate RTCP port. Default on for leg B (Teams requires RFC 5761
// multiplexing), off for leg A.
func WithRTCPMuxOnly(l Leg, on bool) CallOption {
	return func(o *[2]legOptions) { o[l].muxOnly = on }
}

// secParams is the SRTP outcome of one description.
type secParams struct {
	secure bool
	crypto sdp.Crypto // the peer's chosen key
	suite  suite
}

// latch is the address a leg's peer actually sends from.
type latch struct {
	addr     sockaddr
	set      bool
	lastSeen int64
}

// leg is the state of one side of a call. Fields are guarded by Call.mu.
type leg struct {
	id   Leg
	opt  legOptions
	pair *pair   // borrowed from the relay's pool at the first offer
	rtp  *socket // pair.rtp once bound
	rtcp *socket // pair.rtcp once the leg uses a separate RTCP port
	port int
	ip   netip.Addr // advertised
	self binding    // what the leg's sockets point to while it owns them

	negotiated   bool
	remote       *sdp.Session // last description from the peer
	remoteIdx    int          // its relayed m= section
	remoteDir    sdp.Direction
	localDir     sdp.Direction
	remoteCodecs []sdp.Codec // peer's numbering
	localCodecs  []sdp.Codec // numbering of our last description to the peer
	rtcpMux      bool

	sdpRTP, sdpRTCP netip.AddrPort
	dstRTP, dstRTCP sockaddr
	latchRTP        latch
	latchRTCP       latch

	secure      bool
	localKey    []byte
	localSuite  suite
	localTag    int
	remoteKey   sdp.Crypto
	remoteSuite suite
	enc, dec    *srtp.Context

	origin   sdp.Origin
	lastBody []byte // our last description to the peer, without its o= line

	st counters
}

// pending is an offer waiting for its answer.
type pending struct {
	from    Leg // LegA, LegB, or local
	to      Leg
	src     *sdp.Session // the peer's offer (nil for a local offer)
	idx     int
	srcSec  secParams
	offered []sdp.Codec   // codecs offered to `to`, in our numbering toward it
	dir     sdp.Direction // direction offered to `to`
	secure  bool
}

// Call is one relayed call: two legs with their sockets, negotiated
// state and counters. Its methods are safe for concurrent use.
//
// Offer/answer: when a leg's peer sends an offer, pass it to Offer (or
// OfferFromA / OfferFromB) and send the result to the other leg's peer;
// pass that peer's answer to Answer (AnswerFromB / AnswerFromA) and send
// the result back. Re-offers (hold, resume, codec or key changes) go the
// same way. OfferTo writes an offer of the relay's own, e.g. to put Teams
// on hold with a=inactive.
type Call struct {
	r         *Relay
	id        string
	w         engine
	wi        int // index of w among the relay's workers and pools
	hasWorker bool

	mu     sync.Mutex
	closed bool
	legs   [2]leg

	pending    *pending
	last       *pending // the last answered offer, for repeated answers (183, then 200)
	lastAnswer []byte
	lastOut    []byte

	fwd   [2]bool        // fwd[x]: forward RTP received on leg x
	ptMap [2][128]uint8  // payload type rewrite per receiving leg; noMap keeps it
	clock [2][128]uint32 // RTP clock per received payload type, 0 = no jitter
	times struct{ rx, sdp int64 }

	onTimeout func()
	armedAt   int64
	timer     *time.Timer
	fired     bool
}

const noMap = 0xFF

func newCall(r *Relay, id string, opts []CallOption) *Call {
	o := [2]legOptions{
		{security: SecurityFollow},
		{security: SecuritySRTP, holdInactive: true, muxOnly: true},
	}
	for _, f := range opts {
		f(&o)
	}
	c := &Call{r: r, id: id}
	sessID := randomID()
	for i := range c.legs {
		l := &c.legs[i]
		l.id, l.opt = Leg(i), o[i]
		l.self = binding{call: c, leg: l}
		l.ip = r.cfg.AdvertisedIP
		if l.id == LegB {
			l.ip = r.cfg.AdvertisedIPB
		}
		at := "IP4"
		if l.ip.Is6() {
			at = "IP6"
		}
		l.origin = sdp.Origin{Username: "pbx2teams", SessionID: strconv.FormatUint(sessID+uint64(i), 10),
			Version: 1, NetType: "IN", AddrType: at, Address: l.ip.String()}
	}
	c.resetMaps()
	return c
}

// randomID is an SDP session id. It need not be secret, only unlikely to
// repeat, so it comes from the runtime's fast generator rather than a
// system call.
func randomID() uint64 {
	return rand.Uint64() >> 2 // fits in a signed 64-bit integer, as some parsers want
}

// ID returns the identifier given to NewCall.
func (c *Call) ID() string { return c.id }

// OfferFromA relays an offer from the PBX and returns the offer for Teams.
func (c *Call) OfferFromA(body []byte) ([]byte, error) { return c.Offer(LegA, body) }

// AnswerFromB relays Teams' answer and returns the answer for the PBX.
func (c *Call) AnswerFromB(body []byte) ([]byte, error) { return c.Answer(LegB, body) }

// OfferFromB relays an offer from Teams and returns the offer for the PBX.
func (c *Call) OfferFromB(body []byte) ([]byte, error) { return c.Offer(LegB, body) }

// AnswerFromA relays the PBX's answer and returns the answer for Teams.
func (c *Call) AnswerFromA(body []byte) ([]byte, error) { return c.Answer(LegA, body) }

// Offer takes an offer received on leg from and returns the offer to send
// to the other leg's peer. Nothing changes on the media path until the
// answer arrives. Errors carry ErrBadSDP, ErrNoCommonCodec,
// ErrSRTPRequired, ErrSRTPRefused or ErrNoPorts.
func (c *Call) Offer(from Leg, body []byte) ([]byte, error) {
	s, err := sdp.Parse(body)
	if err != nil {
		return nil, fail(pbx2teams.EInvalid, errors.Join(ErrBadSDP, err), "The SDP offer from %s could not be read: %v.", from, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fail(pbx2teams.EInvalid, ErrClosed, "The call has ended.")
	}
	x, y := &c.legs[from], &c.legs[from.other()]
	idx, err := audioStream(s, from)
	if err != nil {
		return nil, err
	}
	m := s.Media[idx]
	codecs := SupportedCodecs(m.Codecs)
	if !hasAudio(codecs) {
		return nil, fail(pbx2teams.EInvalid, ErrNoCommonCodec,
			"No common audio codec: %s offers %s; the relay passes PCMU, PCMA and G722 without transcoding.",
			from, codecNames(m.Codecs))
	}
	xsec, err := x.acceptOffer(m)
	if err != nil {
		return nil, err
	}
	if err := c.allocate(); err != nil {
		return nil, err
	}
	toY := y.outgoingDir(effectiveDir(m))
	secure := y.offerSecure()
	out := c.render(y, s, idx, len(s.Media), c.offerMedia(y, codecs, toY, secure), nil)
	c.pending = &pending{from: from, to: y.id, src: s, idx: idx, srcSec: xsec, offered: codecs, dir: toY, secure: secure}
	c.r.log.Debug("media offer", "call", c.id, "from", from, "codecs", codecNames(codecs), "srtp", xsec.secure)
	return out, nil
}

// OfferTo writes an offer of the relay's own toward leg to, with the
// leg's current codecs and keys and direction dir (as the relay sees it:
// sdp.Inactive to hold, sdp.SendRecv to resume). Its answer goes to
// Answer, which then returns nil: the other leg is not involved.
func (c *Call) OfferTo(to Leg, dir sdp.Direction) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fail(pbx2teams.EInvalid, ErrClosed, "The call has ended.")
	}
	if c.pending != nil {
		return nil, fail(pbx2teams.EConflict, ErrOutOfOrder, "An SDP offer toward %s is still waiting for its answer.", c.pending.to)
	}
	if err := c.allocate(); err != nil {
		return nil, err
	}
	y, x := &c.legs[to], &c.legs[to.other()]
	tmpl, idx, n := x.remote, x.remoteIdx, 0
	if tmpl == nil {
		tmpl, idx = blankSession(), 0
	}
	n = len(tmpl.Media)
	codecs := y.localCodecs
	if len(codecs) == 0 {
		codecs = x.remoteCodecs
	}
	if len(codecs) == 0 {
		codecs = defaultCodecs()
	}
	d := y.outgoingDir(dir)
	secure := y.offerSecure()
	if y.negotiated {
		secure = y.secure
	}
	out := c.render(y, tmpl, idx, n, c.offerMedia(y, codecs, d, secure), nil)
	c.pending = &pending{from: local, to: to, idx: idx, offered: codecs, dir: d, secure: secure}
	return out, nil
}

// Answer takes the answer received on leg from to the pending offer and
// returns the answer for the other leg's peer (nil when the offer was the
// relay's own, from OfferTo). The media path follows the new state at
// once. An identical repeated answer (a 183 and then the 200) returns the
// same body again; a changed one updates the call.
func (c *Call) Answer(from Leg, body []byte) ([]byte, error) {
	s, err := sdp.Parse(body)
	if err != nil {
		return nil, fail(pbx2teams.EInvalid, errors.Join(ErrBadSDP, err), "The SDP answer from %s could not be read: %v.", from, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fail(pbx2teams.EInvalid, ErrClosed, "The call has ended.")
	}
	p := c.pending
	if p == nil || p.to != from {
		if c.last == nil || c.last.to != from {
			return nil, fail(pbx2teams.EInvalid, ErrOutOfOrder, "Received an SDP answer from %s with no offer pending.", from)
		}
		if bytes.Equal(body, c.lastAnswer) {
			return c.lastOut, nil
		}
		p = c.last
	}
	y := &c.legs[from]
	if p.idx >= len(s.Media) || s.Media[p.idx].Port == 0 || !s.Media[p.idx].RTP() {
		return nil, fail(pbx2teams.EInvalid, ErrNoCommonCodec, "%s rejected the audio stream.", from)
	}
	m := s.Media[p.idx]

	var ysec secParams
	if p.secure {
		if cr, su, ok := matchAnswerCrypto(m.Crypto, y.localTag, y.localSuite); ok {
			ysec = secParams{secure: true, crypto: cr, suite: su}
		} else if y.opt.security == SecuritySRTP {
			return nil, fail(pbx2teams.EInvalid, ErrSRTPRequired, "%s answered without a usable SRTP key (a=crypto %s).", from, y.localSuite.name)
		}
	} else if m.Secure() {
		return nil, fail(pbx2teams.EInvalid, ErrSRTPRefused, "%s answered SRTP to a plain RTP offer.", from)
	}
	accepted, err := Intersect(p.offered, m.Codecs)
	if err != nil {
		return nil, err
	}
	yd := effectiveDir(m)
	yd = sdp.Make(yd.Sends() && p.dir.Receives(), yd.Receives() && p.dir.Sends())

	var out []byte
	var xd sdp.Direction
	var xsec secParams
	if p.from != local {
		x := &c.legs[p.from]
		xm := p.src.Media[p.idx]
		xo := effectiveDir(xm)
		xd = x.outgoingDir(sdp.Make(yd.Sends() && xo.Receives(), yd.Receives() && xo.Sends()))
		xsec = p.srcSec
		mr := sdp.MediaRewrite{Port: x.port, Proto: xm.Proto, Codecs: accepted, Direction: xd, RTCPMux: xm.RTCPMux}
		if !xm.RTCPMux {
			mr.RTCPPort = c.ensureRTCP(x)
		}
		if xsec.secure {
			mr.Crypto = []sdp.Crypto{x.answerCrypto(xsec)}
		}
		out = c.render(x, s, p.idx, len(p.src.Media), mr, p.src)
		if err := c.commit(x, p.src, p.idx, xsec, xd, accepted, xm.RTCPMux); err != nil {
			return nil, err
		}
	}
	if err := c.commit(y, s, p.idx, ysec, p.dir, accepted, m.RTCPMux); err != nil {
		return nil, err
	}
	c.recompute()
	c.pending, c.last, c.lastAnswer, c.lastOut = nil, p, append([]byte(nil), body...), out
	c.r.log.Debug("media answer", "call", c.id, "from", from, "codecs", codecNames(accepted),
		"fwdA", c.fwd[LegA], "fwdB", c.fwd[LegB])
	return out, nil
}

// CancelOffer forgets a pending offer whose answer will not come (the
// offer was rejected); the call keeps its previous state.
func (c *Call) CancelOffer() {
	c.mu.Lock()
	c.pending = nil
	c.mu.Unlock()
}

// Held reports whether no direction of the call may carry media.
func (c *Call) Held() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held()
}

func (c *Call) held() bool {
	return c.legs[0].negotiated && c.legs[1].negotiated && !c.fwd[0] && !c.fwd[1]
}

// OnTimeout arms the media timeout: fn runs once (in its own goroutine)
// when no packet has arrived on either leg for Config.MediaTimeout (or
// Config.HoldTimeout while the call is held). Arm it when the call is
// answered; ringing with no early media is not a dead call.
func (c *Call) OnTimeout(fn func()) {
	d := c.r.cfg.MediaTimeout
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || d <= 0 {
		return
	}
	c.onTimeout, c.armedAt, c.fired = fn, c.r.now(), false
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.checkTimeout)
	} else {
		c.timer.Reset(d)
	}
}

func (c *Call) checkTimeout() {
	c.mu.Lock()
	if c.closed || c.fired || c.onTimeout == nil {
		c.mu.Unlock()
		return
	}
	limit := c.r.cfg.MediaTimeout
	if c.held() {
		limit = c.r.cfg.HoldTimeout
	}
	if limit <= 0 {
		c.timer.Reset(c.r.cfg.MediaTimeout)
		c.mu.Unlock()
		return
	}
	last := max(c.times.rx, c.times.sdp, c.armedAt)
	idle := time.Duration(c.r.now() - last)
	if idle < limit {
		c.timer.Reset(limit - idle)
		c.mu.Unlock()
		return
	}
	c.fired = true
	fn := c.onTimeout
	c.mu.Unlock()
	c.r.log.Info("media timeout", "call", c.id, "idle", idle.Round(time.Millisecond))
	fn()
}

// Close releases the call's sockets and ports. It is safe to call more
// than once.
func (c *Call) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	var prs [2]*pair
	for i := range c.legs {
		l := &c.legs[i]
		if l.pair != nil {
			// From here the worker drops what arrives on these sockets.
			l.pair.rtp.bound.Store(nil)
			l.pair.rtcp.bound.Store(nil)
			prs[i] = l.pair
		}
		l.pair, l.rtp, l.rtcp = nil, nil, nil
	}
	c.mu.Unlock()
	for _, p := range prs {
		if p != nil {
			c.r.giveBack(c.wi, p)
		}
	}
	c.r.forget(c)
	return nil
}

// audioStream picks the m= section the relay anchors: the first active
// RTP audio stream.
func audioStream(s *sdp.Session, from Leg) (int, error) {
	for i, m := range s.Media {
		if m.Type == "audio" && m.Port != 0 && m.RTP() {
			return i, nil
		}
	}
	return 0, fail(pbx2teams.EInvalid, ErrNoCommonCodec, "The SDP from %s has no active RTP audio stream.", from)
}

// effectiveDir is the direction a description declares for its stream,
// reading the old hold convention c=0.0.0.0 as "do not send to me".
func effectiveDir(m *sdp.Media) sdp.Direction {
	d := m.Direction
	if m.Port == 0 {
		return sdp.Inactive
	}
	if m.Addr.IsValid() && m.Addr.IsUnspecified() {
		d = sdp.Make(d.Sends(), false)
	}
	return d
}

func blankSession() *sdp.Session {
	s, _ := sdp.Parse([]byte("v=0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"))
	return s
}

// outgoingDir is the direction the relay declares to the leg's peer.
func (l *leg) outgoingDir(d sdp.Direction) sdp.Direction {
	if l.opt.holdInactive && d != sdp.SendRecv {
		return sdp.Inactive
	}
	return d
}

// acceptOffer applies the leg's SRTP policy to an offer from its peer.
func (l *leg) acceptOffer(m *sdp.Media) (secParams, error) {
	cr, su, ok := chooseCrypto(m.Crypto)
	switch l.opt.security {
	case SecuritySRTP:
		if !ok {
			return secParams{}, fail(pbx2teams.EInvalid, ErrSRTPRequired,
				"%s must offer SRTP with SDES keys (RTP/SAVP and a=crypto AES_CM_128_HMAC_SHA1_80).", l.id)
		}
	case SecurityPlain:
		if m.Secure() {
			return secParams{}, fail(pbx2teams.EInvalid, ErrSRTPRefused, "%s offered SRTP, but this connection is set to plain RTP.", l.id)
		}
		ok = false
	default:
		if m.Secure() && !ok {
			return secParams{}, fail(pbx2teams.EInvalid, ErrSRTPRefused,
				"%s offered SRTP without a supported SDES crypto suite (supported: AES_CM_128_HMAC_SHA1_80/32, AEAD_AES_128/256_GCM, AES_256_CM_HMAC_SHA1_80/32).", l.id)
		}
	}
	if !ok {
		return secParams{}, nil
	}
	return secParams{secure: true, crypto: cr, suite: su}, nil
}

func (l *leg) offerSecure() bool { return l.opt.security == SecuritySRTP }

// key returns the relay's key for the leg in suite s, making a new one
// when the suite changes.
func (l *leg) key(s suite) []byte {
	if l.localKey == nil || l.localSuite.name != s.name {
		l.localKey, l.localSuite = newKey(s), s
	}
	return l.localKey
}

// offerMedia is the stream of an offer toward leg l: always a=rtcp-mux,
// and a separate RTCP port too unless the leg is mux-only.
func (c *Call) offerMedia(l *leg, codecs []sdp.Codec, d sdp.Direction, secure bool) sdp.MediaRewrite {
	mr := sdp.MediaRewrite{Port: l.port, Proto: "RTP/AVP", Codecs: codecs, Direction: d, RTCPMux: true}
	if !l.opt.muxOnly {
		mr.RTCPPort = c.ensureRTCP(l)
	}
	if secure {
		s := suites[0]
		if l.localKey != nil {
			s = l.localSuite // keep the key across re-offers
		}
		if l.localTag == 0 {
			l.localTag = 1
		}
		mr.Proto = "RTP/SAVP"
		mr.Crypto = []sdp.Crypto{{Tag: l.localTag, Suite: s.name, Key: l.key(s)}}
	}
	return mr
}

// answerCrypto is the relay's a=crypto line answering the peer's chosen key.
func (l *leg) answerCrypto(p secParams) sdp.Crypto {
	l.localTag = p.crypto.Tag
	return sdp.Crypto{Tag: p.crypto.Tag, Suite: p.suite.name, Key: l.key(p.suite)}
}

// matchAnswerCrypto finds the peer's key in an answer: the line with the
// tag the relay offered, or failing that any line of the same suite.
func matchAnswerCrypto(list []sdp.Crypto, tag int, want suite) (sdp.Crypto, suite, bool) {
	for pass := 0; pass < 2; pass++ {
		for _, c := range list {
			s, ok := usable(c)
			if ok && s.name == want.name && (pass == 1 || c.Tag == tag) {
				return c, s, true
			}
		}
	}
	return sdp.Crypto{}, suite{}, false
}

// render writes the description for leg l from template t: stream idx
// as mr says, the other n-1 streams disabled (their types and formats
// taken from fmtFrom when given), with the leg's origin. The origin's
// version goes up whenever the content changes.
func (c *Call) render(l *leg, t *sdp.Session, idx, n int, mr sdp.MediaRewrite, fmtFrom *sdp.Session) []byte {
	media := make([]sdp.MediaRewrite, n)
	for i := range media {
		if i == idx {
			media[i] = mr
			continue
		}
		if fmtFrom != nil && i < len(fmtFrom.Media) {
			fm := fmtFrom.Media[i]
			media[i] = sdp.MediaRewrite{Type: fm.Type, Proto: fm.Proto, Formats: fm.Formats}
		}
	}
	rw := sdp.Rewrite{Origin: l.origin, Addr: l.ip, Media: media}
	out := t.Rewrite(rw)
	body := withoutOrigin(out)
	if l.lastBody != nil && !bytes.Equal(body, l.lastBody) {
		l.origin.Version++
		rw.Origin = l.origin
		out = t.Rewrite(rw)
	}
	l.lastBody = body
	return out
}

func withoutOrigin(b []byte) []byte {
	i := bytes.Index(b, []byte("\no="))
	if i < 0 {
		return b
	}
	j := bytes.IndexByte(b[i+1:], '\n')
	if j < 0 {
		return b[:i]
	}
	return append(append([]byte(nil), b[:i]...), b[i+1+j:]...)
}

// allocate gives each leg a port pair: its RTP socket starts relaying
// for the call at once, its RTCP socket when the leg needs it.
func (c *Call) allocate() error {
	if !c.hasWorker {
		c.wi, c.hasWorker = c.r.pickWorker(), true
		c.w = c.r.workers[c.wi]
	}
	for i := range c.legs {
		l := &c.legs[i]
		if l.pair != nil {
			continue
		}
		p, err := c.r.borrow(c.wi)
		if err != nil {
			return err
		}
		l.pair, l.rtp, l.port = p, p.rtp, p.port
		p.rtp.bound.Store(&l.self)
	}
	return nil
}

// ensureRTCP puts the leg's separate RTCP socket (port+1) to use and
// returns its port, or 0 when the leg has no ports.
func (c *Call) ensureRTCP(l *leg) int {
	if l.rtcp != nil {
		return l.rtcp.port
	}
	if l.pair == nil {
		return 0
	}
	l.rtcp = l.pair.rtcp
	l.rtcp.bound.Store(&l.self)
	return l.rtcp.port
}

// commit installs a negotiated description as the leg's state.
func (c *Call) commit(l *leg, remote *sdp.Session, idx int, sec secParams, localDir sdp.Direction, localCodecs []sdp.Codec, mux bool) error {
	m := remote.Media[idx]
	if sec.secure {
		if l.dec == nil || !bytes.Equal(l.remoteKey.Key, sec.crypto.Key) || l.remoteKey.MKILen != sec.crypto.MKILen ||
			l.remoteKey.MKI != sec.crypto.MKI || l.remoteSuite.name != sec.suite.name {
			dec, err := decryptContext(sec.crypto, sec.suite)
			if err != nil {
				return fail(pbx2teams.EInvalid, errors.Join(ErrBadSDP, err), "The SRTP key from %s is unusable.", l.id)
			}
			l.dec = dec
		}
		if l.enc == nil || l.remoteSuite.name != sec.suite.name || !l.secure {
			enc, err := encryptContext(l.key(sec.suite), sec.suite)
			if err != nil {
				return fail(pbx2teams.EInternal, err, "SRTP context could not be created.")
			}
			l.enc = enc
		}
		l.remoteKey, l.remoteSuite = sec.crypto, sec.suite
	} else {
		l.enc, l.dec, l.remoteKey, l.remoteSuite = nil, nil, sdp.Crypto{}, suite{}
	}
	l.secure = sec.secure
	l.negotiated = true
	l.remote, l.remoteIdx = remote, idx
	l.remoteDir = effectiveDir(m)
	l.localDir = localDir
	l.remoteCodecs = SupportedCodecs(m.Codecs)
	l.localCodecs = localCodecs
	l.rtcpMux = mux && m.RTCPMux
	if !l.rtcpMux {
		c.ensureRTCP(l)
	}

	var rtpAP, rtcpAP netip.AddrPort
	if m.Addr.IsValid() && !m.Addr.IsUnspecified() && m.Port > 0 {
		rtpAP = netip.AddrPortFrom(m.Addr, uint16(m.Port))
		ra, rp := m.Addr, m.Port+1
		if m.RTCPPort != 0 {
			rp = m.RTCPPort
			if m.RTCPAddr.IsValid() && !m.RTCPAddr.IsUnspecified() {
				ra = m.RTCPAddr
			}
		}
		if rp <= 65535 {
			rtcpAP = netip.AddrPortFrom(ra, uint16(rp))
		}
	}
	if rtpAP != l.sdpRTP {
		// A new address in the description: forget the learned one and
		// send there until the peer's packets show where it really is.
		l.latchRTP, l.latchRTCP = latch{}, latch{}
	}
	l.sdpRTP, l.sdpRTCP = rtpAP, rtcpAP
	l.dstRTP.set(c.r.family, rtpAP)
	l.dstRTCP.set(c.r.family, rtcpAP)
	c.times.sdp = c.r.now()
	return nil
}

// recompute derives the forwarding switches and payload type maps from
// both legs' negotiated state.
func (c *Call) recompute() {
	for x := range c.legs {
		a, b := &c.legs[x], &c.legs[1-x]
		c.fwd[x] = a.negotiated && b.negotiated &&
			a.remoteDir.Sends() && a.localDir.Receives() && b.localDir.Sends() && b.remoteDir.Receives()
	}
	c.resetMaps()
	for x := range c.legs {
		a, b := &c.legs[x], &c.legs[1-x]
		// What may arrive from a: the numbering we declared to it first
		// (RFC 3264: a sends with our payload types), then its own.
		seen := [128]bool{}
		for _, list := range [][]sdp.Codec{a.localCodecs, a.remoteCodecs} {
			for _, cd := range list {
				if seen[cd.PT] {
					continue
				}
				seen[cd.PT] = true
				if classify(cd) == kindAudio {
					c.clock[x][cd.PT] = cd.ClockRate
				}
				if pt, ok := ptFor(cd, b.remoteCodecs, b.localCodecs); ok && pt != cd.PT {
					c.ptMap[x][cd.PT] = pt
				}
			}
		}
	}
}

func (c *Call) resetMaps() {
	for x := range c.ptMap {
		for i := range c.ptMap[x] {
			c.ptMap[x][i] = noMap
			c.clock[x][i] = 0
		}
	}
}

// ptFor finds the payload type the receiving side uses for a codec.
func ptFor(cd sdp.Codec, lists ...[]sdp.Codec) (uint8, bool) {
	for _, l := range lists {
		for _, c := range l {
			if sameCodec(c, cd) {
				return c.PT, true
			}
		}
	}
	return 0, false
}
