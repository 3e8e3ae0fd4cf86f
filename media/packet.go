//go:build linux

package media

import (
	"errors"
	"strings"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"
)

// The packet path. Everything here runs on the call's worker goroutine
// with Call.mu held, once per datagram, and must not allocate: the
// buffers and headers it uses belong to the worker.

// sender takes the datagrams the packet path forwards. queue may keep a
// reference to p until flush (the epoll engine) or copy it at once (the
// io_uring engine). Both count what they queue on the leg.
type sender interface {
	queue(fd int, p []byte, dst *sockaddr, l *leg, c *Call, rtcp bool)
	flush()
}

// scratch is what the packet path works in, owned by one worker
// goroutine and reused for every packet.
type scratch struct {
	plain   [batchMax][]byte // decrypted packet i of a receive batch
	out     [batchMax][]byte // encrypted packet i of a receive batch
	hdr     rtp.Header
	rtcpHdr rtcp.Header
	tx      sender
}

func newScratch(tx sender) scratch {
	sc := scratch{tx: tx}
	for i := range sc.plain {
		sc.plain[i] = make([]byte, bufSize+64)
		sc.out[i] = make([]byte, bufSize+64)
	}
	return sc
}

// handle relays datagram i of a receive batch, which arrived on socket s
// of leg x from address from; what it forwards goes to w.tx.
func (c *Call) handle(w *scratch, s *socket, x *leg, i int, pkt []byte, from *sockaddr, now int64) {
	if len(pkt) < 8 || pkt[0]>>6 != 2 {
		x.st.malformed++
		return
	}
	// RFC 5761 §4: on a multiplexed port, second-byte values 192-223
	// are RTCP packet types.
	if s.rtcp || (pkt[1] >= 192 && pkt[1] <= 223) {
		c.handleRTCP(w, s, x, i, pkt, from, now)
		return
	}
	if len(pkt) < 12 {
		x.st.malformed++
		return
	}
	relatch := int64(c.r.cfg.RelatchAfter)
	if !x.admit(&x.latchRTP, from, now, relatch) {
		x.st.foreign++
		return
	}
	plain := pkt
	if x.dec != nil {
		out, err := x.dec.DecryptRTP(w.plain[i][:0], pkt, &w.hdr)
		if err != nil {
			x.st.reject(err)
			return
		}
		plain = out
	}
	x.latchRTP.note(from, now, relatch)
	c.times.rx = now
	x.st.receive(plain, len(pkt), now, c.clock[x.id][plain[1]&0x7f])

	if !c.fwd[x.id] {
		return
	}
	y := &c.legs[x.id.other()]
	dst := y.rtpDest()
	if dst == nil || y.rtp == nil {
		return
	}
	if m := c.ptMap[x.id][plain[1]&0x7f]; m != noMap {
		plain[1] = plain[1]&0x80 | m
	}
	out := plain
	if y.enc != nil {
		var err error
		out, err = y.enc.EncryptRTP(w.out[i][:0], plain, &w.hdr)
		if err != nil {
			y.st.sendErrors++
			return
		}
	}
	w.tx.queue(y.rtp.fd, out, dst, y, c, false)
}

// handleRTCP relays RTCP. It flows whatever the stream direction: RTP/RTCP
// peers keep reporting while on hold.
func (c *Call) handleRTCP(w *scratch, s *socket, x *leg, i int, pkt []byte, from *sockaddr, now int64) {
	relatch := int64(c.r.cfg.RelatchAfter)
	l := &x.latchRTCP
	if !s.rtcp {
		l = &x.latchRTP
	}
	if !x.admit(l, from, now, relatch) {
		x.st.foreign++
		return
	}
	plain := pkt
	if x.dec != nil {
		out, err := x.dec.DecryptRTCP(w.plain[i][:0], pkt, &w.rtcpHdr)
		if err != nil {
			x.st.reject(err)
			return
		}
		plain = out
	}
	l.note(from, now, relatch)
	c.times.rx = now
	x.st.rtcpIn++

	y := &c.legs[x.id.other()]
	sock, dst := y.rtcpRoute()
	if sock == nil || dst == nil {
		return
	}
	out := plain
	if y.enc != nil {
		var err error
		out, err = y.enc.EncryptRTCP(w.out[i][:0], plain, &w.rtcpHdr)
		if err != nil {
			y.st.sendErrors++
			return
		}
	}
	w.tx.queue(sock.fd, out, dst, y, c, true)
}

// admit decides whether a datagram from src may enter. Before the first
// packet, and from the latched source, everything may. From another
// source: an SRTP leg lets authentication decide; a plain leg accepts it
// only once the latched source has gone quiet.
func (l *leg) admit(lt *latch, src *sockaddr, now, relatch int64) bool {
	if !lt.set || lt.addr.equal(src) || l.dec != nil {
		return true
	}
	return now-lt.lastSeen >= relatch
}

// note records an accepted datagram's source: the first one latches, a
// new one takes over once the old source has been quiet for relatch.
func (lt *latch) note(src *sockaddr, now, relatch int64) {
	if !lt.set {
		lt.addr, lt.set, lt.lastSeen = *src, true, now
		return
	}
	if lt.addr.equal(src) {
		lt.lastSeen = now
		return
	}
	if now-lt.lastSeen >= relatch {
		lt.addr, lt.lastSeen = *src, now
	}
}

// rtpDest is where RTP for the leg's peer goes: the latched source, else
// the address from its description.
func (l *leg) rtpDest() *sockaddr {
	if l.latchRTP.set {
		return &l.latchRTP.addr
	}
	if l.dstRTP.valid() {
		return &l.dstRTP
	}
	return nil
}

// rtcpRoute returns the socket and address RTCP for the leg's peer uses.
func (l *leg) rtcpRoute() (*socket, *sockaddr) {
	if l.rtcpMux {
		return l.rtp, l.rtpDest()
	}
	if l.rtcp == nil {
		return nil, nil
	}
	if l.latchRTCP.set {
		return l.rtcp, &l.latchRTCP.addr
	}
	if l.dstRTCP.valid() {
		return l.rtcp, &l.dstRTCP
	}
	return nil, nil
}

func closeFD(fd int) { _ = unix.Close(fd) }

// isReplay tells a replayed SRTP packet from other failures; pion does
// not export its "duplicated packet" error. Only rejected packets get here.
func isReplay(err error) bool {
	return !errors.Is(err, srtp.ErrFailedToVerifyAuthTag) && strings.Contains(err.Error(), "duplicated")
}
