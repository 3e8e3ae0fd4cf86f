//go:build linux

package media

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/srtp/v3"
)

// counters are one leg's statistics, updated on the packet path.
type counters struct {
	packetsIn, bytesIn   uint64
	packetsOut, bytesOut uint64
	rtcpIn, rtcpOut      uint64
	malformed, foreign   uint64
	authFailed, replayed uint64
	sendErrors           uint64

	// RFC 3550 appendix A.1 sequence accounting of the current source.
	started    bool
	ssrc       uint32
	baseSeq    uint32
	maxSeq     uint16
	cycles     uint32
	received   uint64
	lostBefore int64 // from sources that have ended

	// RFC 3550 appendix A.8 interarrival jitter, scaled by 16, in RTP
	// timestamp units of jitterClock.
	haveTransit bool
	transit     uint32
	jitter      int64
	jitterClock uint32
}

const (
	maxDropout  = 3000
	maxMisorder = 100
)

func (st *counters) reject(err error) {
	switch {
	case errors.Is(err, srtp.ErrFailedToVerifyAuthTag):
		st.authFailed++
	case isReplay(err):
		st.replayed++
	default:
		st.malformed++
	}
}

// lostCurrent is expected minus received for the current source.
func (st *counters) lostCurrent() int64 {
	if !st.started {
		return 0
	}
	expected := int64(st.cycles) + int64(st.maxSeq) - int64(st.baseSeq) + 1
	if lost := expected - int64(st.received); lost > 0 {
		return lost
	}
	return 0
}

func (st *counters) restart(ssrc uint32, seq uint16) {
	st.lostBefore += st.lostCurrent()
	st.started, st.ssrc = true, ssrc
	st.baseSeq, st.maxSeq, st.cycles, st.received = uint32(seq), seq, 0, 0
	st.haveTransit = false
}

// receive accounts an accepted RTP packet (plain holds the decrypted
// header); clock is the payload's RTP clock rate, 0 to skip jitter (e.g.
// telephone-event, whose timestamps mark event starts).
func (st *counters) receive(plain []byte, size int, now int64, clock uint32) {
	st.packetsIn++
	st.bytesIn += uint64(size)
	seq := uint16(plain[2])<<8 | uint16(plain[3])
	ts := uint32(plain[4])<<24 | uint32(plain[5])<<16 | uint32(plain[6])<<8 | uint32(plain[7])
	ssrc := uint32(plain[8])<<24 | uint32(plain[9])<<16 | uint32(plain[10])<<8 | uint32(plain[11])
	if !st.started || ssrc != st.ssrc {
		st.restart(ssrc, seq)
	} else {
		delta := seq - st.maxSeq
		switch {
		case delta == 0:
			return // duplicate
		case delta < maxDropout:
			if seq < st.maxSeq {
				st.cycles += 1 << 16
			}
			st.maxSeq = seq
		case delta <= 1<<16-maxMisorder:
			st.restart(ssrc, seq) // a jump: the sender restarted its sequence
		default:
			// late or reordered: counted as received, maximum unchanged
		}
	}
	st.received++
	if clock == 0 {
		return
	}
	if clock != st.jitterClock {
		st.jitterClock, st.haveTransit = clock, false
	}
	arrival := uint32(uint64(now/1000) * uint64(clock) / 1e6)
	transit := arrival - ts
	if st.haveTransit {
		d := int64(int32(transit - st.transit))
		if d < 0 {
			d = -d
		}
		st.jitter += d - (st.jitter+8)>>4
	}
	st.transit, st.haveTransit = transit, true
}

// LegStats are the counters of one leg of a call, for the call record.
// "In" is what the leg's peer sent to the relay, "Out" what the relay sent
// to it. Bytes are UDP payload bytes (RTP header, payload and, for SRTP,
// the authentication tag).
type LegStats struct {
	Local  netip.AddrPort // the relay's RTP address for this leg, as advertised
	Remote netip.AddrPort // where the relay sends RTP now: the latched source, else the SDP address
	SRTP   bool
	Codec  string // the first negotiated audio codec, e.g. "PCMU/8000"

	PacketsIn, BytesIn   uint64 // RTP received and accepted
	PacketsOut, BytesOut uint64 // RTP sent
	RTCPIn, RTCPOut      uint64

	// Lost is the RFC 3550 cumulative loss of the received streams:
	// expected (from sequence numbers) minus received.
	Lost int64
	// Jitter is the RFC 3550 interarrival jitter of the received stream.
	Jitter time.Duration

	// Dropped datagrams, by reason.
	AuthFailures uint64 // SRTP/SRTCP authentication failed
	Replays      uint64 // SRTP/SRTCP replay detected
	Foreign      uint64 // from an unexpected source address
	Malformed    uint64 // not RTP/RTCP, or too large
	SendErrors   uint64 // could not be encrypted or sent
}

// CallStats are both legs' counters.
type CallStats struct {
	ID   string
	A, B LegStats
	Held bool // no direction may carry media
}

// Stats returns a snapshot of the call's counters.
func (c *Call) Stats() CallStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := CallStats{ID: c.id, Held: c.held()}
	for i := range c.legs {
		l := &c.legs[i]
		ls := LegStats{
			SRTP:       l.secure,
			PacketsIn:  l.st.packetsIn,
			BytesIn:    l.st.bytesIn,
			PacketsOut: l.st.packetsOut,
			BytesOut:   l.st.bytesOut,
			RTCPIn:     l.st.rtcpIn, RTCPOut: l.st.rtcpOut,
			Lost:         l.st.lostBefore + l.st.lostCurrent(),
			AuthFailures: l.st.authFailed,
			Replays:      l.st.replayed,
			Foreign:      l.st.foreign,
			Malformed:    l.st.malformed,
			SendErrors:   l.st.sendErrors,
		}
		if l.port != 0 {
			ls.Local = netip.AddrPortFrom(l.ip, uint16(l.port))
		}
		if d := l.rtpDest(); d != nil {
			ls.Remote = d.addrPort()
		}
		for _, cd := range l.localCodecs {
			if classify(cd) == kindAudio {
				ls.Codec = cd.Name + "/" + strconv.FormatUint(uint64(cd.ClockRate), 10)
				break
			}
		}
		if l.st.jitterClock != 0 {
			ls.Jitter = time.Duration(l.st.jitter) * time.Second / time.Duration(16*uint64(l.st.jitterClock))
		}
		if i == 0 {
			cs.A = ls
		} else {
			cs.B = ls
		}
	}
	return cs
}
