//go:build linux

package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"time"
	"unsafe"

	"github.com/pbx2teams/pbx2teams/media/sdp"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

// ErrNoDTMF is returned by SendDTMF when the leg's peer did not negotiate
// telephone-event (RFC 4733).
var ErrNoDTMF = errors.New("the peer did not negotiate telephone-event (RFC 4733 DTMF)")

// ErrBadDigit is returned by SendDTMF for a character that is not a DTMF
// digit (0-9, *, #, A-D).
var ErrBadDigit = errors.New("not a DTMF digit: use 0-9, *, # or A-D")

// dtmfEvent maps a digit to its RFC 4733 event code.
func dtmfEvent(d rune) (byte, bool) {
	switch {
	case d >= '0' && d <= '9':
		return byte(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return byte(12 + d - 'A'), true
	case d >= 'a' && d <= 'd':
		return byte(12 + d - 'a'), true
	}
	return 0, false
}

// SendDTMF sends digits to the peer of leg `to` as RFC 4733 telephone-event
// packets, each lasting dur (default 100 ms) with a 60 ms pause between
// digits, SRTP-protected when the leg is. The events travel in a stream of
// their own (own SSRC) beside the relayed audio, with the payload type the
// peer announced. It returns once the last digit is sent.
func (c *Call) SendDTMF(to Leg, digits string, dur time.Duration) error {
	if dur <= 0 {
		dur = 100 * time.Millisecond
	}
	if digits == "" {
		return ErrBadDigit
	}
	events := make([]byte, 0, len(digits))
	for _, d := range digits {
		e, ok := dtmfEvent(d)
		if !ok {
			return ErrBadDigit
		}
		events = append(events, e)
	}
	pt, ok := c.dtmfPT(to)
	if !ok {
		return ErrNoDTMF
	}
	var rnd [10]byte
	_, _ = rand.Read(rnd[:])
	s := dtmfStream{
		ssrc: binary.BigEndian.Uint32(rnd[0:4]),
		seq:  binary.BigEndian.Uint16(rnd[4:6]),
		ts:   binary.BigEndian.Uint32(rnd[6:10]),
		pt:   pt,
	}
	const step = 20 * time.Millisecond
	const units = 160 // 20 ms at 8 kHz
	for i, ev := range events {
		if i > 0 {
			time.Sleep(60 * time.Millisecond)
			s.ts += uint32(dur/step+3)*units + 480
		}
		n := int(dur / step)
		if n < 1 {
			n = 1
		}
		for k := 1; k <= n; k++ {
			if err := c.sendEvent(to, &s, ev, k == 1, false, uint16(k*units)); err != nil {
				return err
			}
			time.Sleep(step)
		}
		// RFC 4733 §2.5.1.4: the end packet is sent three times.
		for k := 0; k < 3; k++ {
			if err := c.sendEvent(to, &s, ev, false, true, uint16(n*units)); err != nil {
				return err
			}
		}
	}
	return nil
}

type dtmfStream struct {
	ssrc uint32
	seq  uint16
	ts   uint32
	pt   uint8
}

// dtmfPT is the telephone-event payload type (8 kHz) the peer of leg to
// expects.
func (c *Call) dtmfPT(to Leg) (uint8, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &c.legs[to]
	for _, cs := range [][]sdp.Codec{l.remoteCodecs, l.localCodecs} {
		for _, cd := range cs {
			if cd.Is("telephone-event") && (cd.ClockRate == 8000 || cd.ClockRate == 0) {
				return cd.PT, true
			}
		}
	}
	return 0, false
}

// sendEvent sends one telephone-event packet to the peer of leg to, under
// the call's lock so the SRTP context is never used by two goroutines.
func (c *Call) sendEvent(to Leg, s *dtmfStream, ev byte, marker, end bool, duration uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	l := &c.legs[to]
	dst := l.rtpDest()
	if l.rtp == nil || dst == nil {
		return errors.New("media: the leg has no peer address yet")
	}
	flags := byte(10) // volume -10 dBm0
	if end {
		flags |= 0x80
	}
	payload := []byte{ev, flags, byte(duration >> 8), byte(duration)}
	h := rtp.Header{Version: 2, Marker: marker, PayloadType: s.pt, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc}
	s.seq++
	buf := make([]byte, 0, 12+len(payload)+16)
	hdr, err := h.Marshal()
	if err != nil {
		return err
	}
	buf = append(append(buf, hdr...), payload...)
	if l.enc != nil {
		if buf, err = l.enc.EncryptRTP(nil, buf, nil); err != nil {
			l.st.sendErrors++
			return err
		}
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(l.rtp.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, uintptr(dst.ptr()), uintptr(dst.n))
	if e != 0 {
		l.st.sendErrors++
		return e
	}
	return nil
}
