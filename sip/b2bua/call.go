package b2bua

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media"
	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// call is one call through the B2BUA: the PBX leg, the Teams leg and the
// media relay between them.
type call struct {
	b       *B2BUA
	id      string
	dir     string
	log     *slog.Logger // with the call's attributes; made on first use
	logOnce sync.Once
	user    *pbx2teams.User
	media   *media.Call
	tb      *traceBuf

	mu        sync.Mutex
	pbx       *leg
	teams     *leg
	connected bool
	rec       Record
	offering  bool // an offer/answer exchange is in progress
	// lastSDP is the last description each leg's peer sent us (offer or
	// answer), by media leg; a re-INVITE that changes nothing is answered
	// from it without bothering the other side. sent is the last one we
	// sent to each leg's peer.
	lastSDP [2][]byte
	sent    [2][]byte
	// setupCancel aborts the outgoing INVITE in progress.
	setupCancel context.CancelFunc
	// received is when the caller's INVITE arrived; waited is the time
	// spent waiting for the called side's answer (for AddedDelay).
	received time.Time
	waited   time.Duration

	// Phone App calls: the state the tab sees (nil for Direct Routing
	// calls), the PBX's support of REFER with Replaces, and a transfer in
	// progress (NOTIFY sipfrag statuses from the PBX).
	live        *liveState
	pbxReplaces bool
	referCh     chan int
	transferred bool

	done    chan struct{}
	endOnce sync.Once
}

func (b *B2BUA) newCall(dir string, u *pbx2teams.User) *call {
	c := &call{b: b, id: newTag() + newTag(), user: u, done: make(chan struct{})}
	c.dir = dir
	c.rec = Record{ID: c.id, Direction: dir, Route: pbx2teams.RouteDirectRouting, StartedAt: time.Now().UTC()}
	if u != nil {
		c.rec.AccountID, c.rec.UserID = u.AccountID, u.ID
	}
	if b.cfg.TraceLimit > 0 {
		c.tb = &traceBuf{limit: b.cfg.TraceLimit, recID: c.id}
	}
	sec := b.cfg.TeamsMedia
	if u != nil && u.Type == pbx2teams.ServicePhoneApp {
		sec = media.SecuritySRTP // the federation edge takes SRTP only, whatever the trunk's benchmark setting
	}
	opts := []media.CallOption{media.WithSecurity(media.LegB, sec)}
	c.media = b.cfg.Relay.NewCall(c.id, opts...)
	return c
}

// lg returns the call's logger.
func (c *call) lg() *slog.Logger {
	c.logOnce.Do(func() { c.log = c.b.log.With("call", c.id, "direction", c.dir) })
	return c.log
}

func (c *call) trace(l *leg, dir string, m sip.Message) {
	if c.tb != nil {
		c.tb.add(l.s.name, dir, m)
	}
	if c.b.log.Enabled(context.Background(), slog.LevelDebug) {
		switch x := m.(type) {
		case *sip.Request:
			c.lg().Debug("sip", "leg", l.s.name, "dir", dir, "msg", x.StartLine(), "dest", x.Destination(), "src", x.Source())
		case *sip.Response:
			c.lg().Debug("sip", "leg", l.s.name, "dir", dir, "msg", x.StartLine(), "cseq", x.CSeq().Value())
		}
	}
}

// mediaLeg is the relay leg of a SIP leg.
func mediaLeg(l *leg) media.Leg {
	if l.s.teams {
		return media.LegB
	}
	return media.LegA
}

// other returns the leg facing the other side.
func (c *call) other(l *leg) *leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.s.teams {
		return c.pbx
	}
	return c.teams
}

func (c *call) setLeg(l *leg) {
	c.mu.Lock()
	if l.s.teams {
		c.teams = l
	} else {
		c.pbx = l
	}
	c.mu.Unlock()
	c.b.addDialog(l)
}

func (c *call) noteSent(l *leg, body []byte) {
	if len(body) == 0 {
		return
	}
	c.mu.Lock()
	c.sent[mediaLeg(l)] = body
	c.mu.Unlock()
}

func (c *call) noteSDP(l *leg, body []byte) {
	if len(body) == 0 {
		return
	}
	c.mu.Lock()
	c.lastSDP[mediaLeg(l)] = body
	c.mu.Unlock()
}

// ended reports whether the call is over.
func (c *call) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// hangup ends the call: whatever is pending is cancelled, confirmed legs
// get BYE, the media is released and the record written. by says who
// ended it; advice is kept when the record has none.
func (c *call) hangup(by, advice string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		if c.rec.EndedBy == "" {
			c.rec.EndedBy = by
		}
		if c.rec.Advice == "" {
			c.rec.Advice = advice
		}
		cancel := c.setupCancel
		legs := []*leg{c.pbx, c.teams}
		c.mu.Unlock()
		close(c.done)
		if cancel != nil {
			cancel()
		}
		wait := 32 * time.Second
		if by == endShutdown {
			wait = 2 * time.Second
		}
		// Usually one leg is still up (the other hung up): BYE it here;
		// when both are, the second BYE goes in parallel.
		var up []*leg
		for _, l := range legs {
			if l == nil {
				continue
			}
			l.stopSessionTimer()
			l.mu.Lock()
			live := l.confirmed && !l.ended
			l.mu.Unlock()
			if live {
				up = append(up, l)
			}
		}
		var wg sync.WaitGroup
		for i, l := range up {
			if i == len(up)-1 {
				l.byeWithin(wait)
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.byeWithin(wait)
			}()
		}
		wg.Wait()
		c.finish()
	})
}

// finish releases the call and hands its record to the recorder.
func (c *call) finish() {
	st := c.media.Stats()
	c.media.Close()
	c.mu.Lock()
	legs := []*leg{c.pbx, c.teams}
	c.rec.EndedAt = time.Now().UTC()
	if c.rec.Result == "" {
		c.rec.Result = ResultFailed
		if c.live != nil && !c.connected && (c.rec.EndedBy == endTeams || c.rec.EndedBy == endUser) {
			// The Phone App user hung up before the far end answered.
			c.rec.Result = ResultCancelled
		}
	}
	c.rec.Media = MediaRecord{Codec: st.A.Codec, PacketsFromPBX: st.A.PacketsIn, PacketsToPBX: st.A.PacketsOut,
		PacketsFromMS: st.B.PacketsIn, PacketsToMS: st.B.PacketsOut, LostFromPBX: st.A.Lost, LostFromMS: st.B.Lost,
		JitterPBX: st.A.Jitter, JitterMS: st.B.Jitter, SRTPFailures: st.A.AuthFailures + st.B.AuthFailures, SRTPPBX: st.A.SRTP}
	rec := c.rec
	c.mu.Unlock()
	for _, l := range legs {
		if l != nil {
			c.b.removeDialog(l)
		}
	}
	c.b.removeCall(c)
	c.liveEnded(rec)
	c.lg().Info("call ended", "result", rec.Result, "ended_by", rec.EndedBy, "pbx_status", rec.PBXStatus,
		"teams_status", rec.TeamsStatus, "from", rec.From, "to", rec.To)
	if r := c.b.cfg.Recorder; r != nil {
		var tr *Trace
		if c.tb != nil {
			tr = c.tb.render(c.b.cfg.TraceFull || rec.Result != ResultAnswered)
		}
		r.CallEnded(&rec, tr)
	}
}

// connect marks the call answered and arms the media and session timers.
func (c *call) connect() {
	now := time.Now()
	c.mu.Lock()
	c.connected = true
	c.rec.Result = ResultAnswered
	c.rec.AnsweredAt = now.UTC()
	if !c.received.IsZero() {
		c.rec.AddedDelay = max(0, now.Sub(c.received)-c.waited)
	}
	c.mu.Unlock()
	c.setLive(func(lc *pbx2teams.LiveCall) {
		lc.State = pbx2teams.CallConnected
		lc.AnsweredAt = now.UTC()
	})
	c.media.OnTimeout(func() {
		c.hangup(endMedia, "No media arrived from either side for too long; the call was ended as dead.")
	})
}

// onRequest handles an in-dialog request other than INVITE and ACK.
func (c *call) onRequest(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	c.trace(l, "in", req)
	if !l.checkCSeq(req) {
		l.replyIn(req, tx, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	switch req.Method {
	case sip.BYE:
		l.mu.Lock()
		l.ended = true
		l.mu.Unlock()
		l.replyIn(req, tx, 200, "OK", nil)
		if !c.isCurrent(l) {
			// A Teams leg replaced by a transfer: Microsoft releases it.
			l.stopSessionTimer()
			c.b.removeDialog(l)
			return
		}
		by := endPBX
		if l.s.teams {
			by = endTeams
		}
		c.hangup(by, "")
	case sip.UPDATE:
		if len(req.Body()) > 0 {
			// Media changes come by re-INVITE from both our peers; an
			// UPDATE offer is refused rather than half handled.
			l.replyIn(req, tx, 488, "Not Acceptable Here", nil, sip.NewHeader("Warning", `399 pbx2teams "Send media changes by re-INVITE"`))
			return
		}
		l.updateTarget(req)
		l.replyIn(req, tx, 200, "OK", nil, l.sessionRefreshed(req)...)
	case sip.REFER:
		if l.s.fed != nil {
			l.replyIn(req, tx, 403, "Forbidden", nil, sip.NewHeader("Warning", `399 pbx2teams "Transfer Phone App calls from the Phone App tab"`))
			return
		}
		if !l.s.teams {
			l.replyIn(req, tx, 403, "Forbidden", nil, sip.NewHeader("Warning", `399 pbx2teams "Transfer from the PBX side is not supported; transfer in Teams"`))
			return
		}
		c.onRefer(l, req, tx)
	case sip.NOTIFY:
		l.replyIn(req, tx, 200, "OK", nil)
		if !l.s.teams {
			c.onReferNotify(req)
		}
	case sip.INFO:
		l.replyIn(req, tx, 200, "OK", nil)
	default:
		l.replyIn(req, tx, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE"))
	}
}

// beginOffer claims the call's single offer/answer slot.
func (c *call) beginOffer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offering {
		return false
	}
	c.offering = true
	return true
}

func (c *call) endOffer() {
	c.mu.Lock()
	c.offering = false
	c.mu.Unlock()
}

// onReinvite handles a re-INVITE on either leg: hold, resume, a media
// change, or a session refresh.
func (c *call) onReinvite(l *leg, req *sip.Request, tx sip.ServerTransaction) {
	c.trace(l, "in", req)
	if !l.checkCSeq(req) {
		l.replyIn(req, tx, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	if c.ended() {
		l.replyIn(req, tx, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if !c.beginOffer() {
		l.replyIn(req, tx, 491, "Request Pending", nil)
		return
	}
	// The slot is released before the final response goes out, so that
	// the peer's next re-INVITE, sent on receipt of it, is not refused.
	released := false
	release := func() {
		if !released {
			released = true
			c.endOffer()
		}
	}
	defer release()
	reply := func(code int, reason string, body []byte, hdrs ...sip.Header) {
		release()
		l.replyIn(req, tx, code, reason, body, hdrs...)
	}
	l.updateTarget(req)
	refresh := l.sessionRefreshed(req)
	from := mediaLeg(l)
	body := req.Body()
	if len(body) == 0 {
		// An offerless re-INVITE: we offer what we have and take the
		// answer from the ACK.
		dir := msdp.SendRecv
		offer, err := c.media.OfferTo(from, dir)
		if err != nil {
			reply(500, "Server Internal Error", nil)
			return
		}
		reply(200, "OK", offer, refresh...)
		return
	}
	other := c.other(l)
	out, err := c.media.Offer(from, body)
	if err != nil {
		reply(488, "Not Acceptable Here", nil, warning(err))
		return
	}
	c.mu.Lock()
	prev := c.lastSDP[from]
	otherLast := c.lastSDP[1-from]
	c.mu.Unlock()
	if other == nil || otherLast == nil || sameMedia(prev, body) {
		// Nothing the other side needs to know: answer with its last
		// description, as if it had answered again.
		ans, err := c.media.Answer(1-from, otherLast)
		if err != nil || ans == nil {
			c.media.CancelOffer()
			reply(488, "Not Acceptable Here", nil, warning(err))
			return
		}
		c.noteSDP(l, body)
		reply(200, "OK", ans, refresh...)
		return
	}
	// Hold, resume or a codec change: the other side must agree.
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	fwd := other.newRequest(sip.INVITE)
	fwd.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	fwd.SetBody(out)
	res, err := other.do(ctx, fwd)
	if err != nil || !res.IsSuccess() {
		c.media.CancelOffer()
		code, reason := 488, "Not Acceptable Here"
		if err == nil {
			code, reason = res.StatusCode, res.Reason
			if code == 481 || code == 408 {
				defer c.hangup(otherName(l), "The other side lost the call during a re-INVITE.")
			}
		}
		reply(code, reason, nil)
		return
	}
	c.noteSDP(other, res.Body())
	ans, err := c.media.Answer(1-from, res.Body())
	if err != nil || ans == nil {
		reply(488, "Not Acceptable Here", nil, warning(err))
		return
	}
	c.noteSDP(l, body)
	reply(200, "OK", ans, refresh...)
}

// onAckBody takes the answer to the offer we put in a 2xx (offerless
// INVITE or re-INVITE).
func (c *call) onAckBody(l *leg, body []byte) {
	if _, err := c.media.Answer(mediaLeg(l), body); err != nil {
		c.lg().Debug("answer in ACK not usable", "error", err)
		return
	}
	c.noteSDP(l, body)
}

// sideEnd is who ended a call when l's peer did.
func sideEnd(l *leg) string {
	if l.s.teams {
		return endTeams
	}
	return endPBX
}

func otherName(l *leg) string {
	if l.s.teams {
		return endPBX
	}
	return endTeams
}

// sameMedia reports whether two descriptions of a peer ask for the same
// thing: the same audio address, port, direction, codecs and keys. Only
// the o= version or unrelated lines may differ.
func sameMedia(a, b []byte) bool {
	if len(a) == 0 {
		return false
	}
	sa, err1 := msdp.Parse(a)
	sb, err2 := msdp.Parse(b)
	if err1 != nil || err2 != nil || len(sa.Media) != len(sb.Media) {
		return false
	}
	for i := range sa.Media {
		x, y := sa.Media[i], sb.Media[i]
		if x.Port != y.Port || x.Addr != y.Addr || x.Direction != y.Direction || x.Proto != y.Proto ||
			len(x.Codecs) != len(y.Codecs) || len(x.Crypto) != len(y.Crypto) {
			return false
		}
		for j := range x.Codecs {
			if x.Codecs[j].Key() != y.Codecs[j].Key() || x.Codecs[j].PT != y.Codecs[j].PT {
				return false
			}
		}
		for j := range x.Crypto {
			if string(x.Crypto[j].Key) != string(y.Crypto[j].Key) {
				return false
			}
		}
	}
	return true
}

// warning renders an error as a Warning header for a refusal.
func warning(err error) sip.Header {
	msg := "media negotiation failed"
	if err != nil {
		msg = pbx2teams.ErrorMessage(err)
	}
	return sip.NewHeader("Warning", `399 pbx2teams "`+sanitizeQuoted(msg)+`"`)
}

// statusOf maps a media error to a SIP status and reason.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, media.ErrNoPorts):
		return 503, "Service Unavailable"
	case errors.Is(err, media.ErrClosed):
		return 487, "Request Terminated"
	}
	return 488, "Not Acceptable Here"
}

// sessionExpires reads Session-Expires (RFC 4028): the interval and the
// refresher parameter ("uac", "uas" or "").
func sessionExpires(m interface{ GetHeader(string) sip.Header }) (time.Duration, string) {
	h := m.GetHeader("Session-Expires")
	if h == nil {
		h = m.GetHeader("x") // compact form
	}
	if h == nil {
		return 0, ""
	}
	v := h.Value()
	num, params, _ := strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 || n > 86400 {
		return 0, ""
	}
	refresher := ""
	for _, p := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(n) * time.Second, refresher
}
