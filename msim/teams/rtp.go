package teams

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// MediaMode is what a simulated Teams endpoint sends.
type MediaMode int

// Media modes.
const (
	// Pattern sends the known audio pattern (a 1 kHz tone, see
	// PatternFrame) every 20 ms.
	Pattern MediaMode = iota
	// Echo sends back every audio packet it receives.
	Echo
	// Silent sends nothing.
	Silent
)

// PatternFrame is the 20 ms payload a simulated Teams endpoint sends in
// Pattern mode for a codec name: a 1 kHz tone at 8 kHz sampling (period
// of 8 samples, so every frame is the same), encoded in μ-law or A-law;
// for other codecs a fixed byte sequence. The relay does not transcode,
// so the far end receives exactly these bytes.
func PatternFrame(codec string) []byte {
	const n = 160
	out := make([]byte, n)
	for i := range out {
		s := int16(8000 * math.Sin(2*math.Pi*float64(i%8)/8))
		switch strings.ToUpper(codec) {
		case "PCMU":
			out[i] = linearToULaw(s)
		case "PCMA":
			out[i] = linearToALaw(s)
		default:
			out[i] = byte(0x55 ^ i)
		}
	}
	return out
}

func linearToULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0F
	return ^(sign | byte(exp<<4) | byte(mant))
}

func linearToALaw(s int16) byte {
	v := int(s)
	sign := byte(0x80)
	if v < 0 {
		v, sign = -v-1, 0
	}
	if v > 32767 {
		v = 32767
	}
	var out byte
	if v < 256 {
		out = byte(v >> 4)
	} else {
		exp := 1
		for t := v >> 8; t > 1 && exp < 7; t >>= 1 {
			exp++
		}
		out = byte(exp<<4) | byte((v>>(exp+3))&0x0F)
	}
	return (out | sign) ^ 0x55
}

// MediaStats are what a simulated endpoint received.
type MediaStats struct {
	Packets      int    `json:"packets"`      // audio packets received and decrypted
	PatternHits  int    `json:"patternHits"`  // of them, equal to the sent pattern frame
	AuthFailures int    `json:"authFailures"` // SRTP packets that failed authentication
	DTMF         string `json:"dtmf"`         // digits received as RFC 4733 events
	Codec        string `json:"codec"`        // negotiated audio codec
	SentPackets  int    `json:"sentPackets"`
}

// endpoint is the media of one simulated Teams call: one UDP socket
// (RTP and RTCP multiplexed), SDES-SRTP both ways.
type endpoint struct {
	conn *net.UDPConn
	port int

	mu         sync.Mutex
	offerKeys  []msdp.Crypto // keys we offered (tag → key), or our answer key
	enc, dec   *srtp.Context
	encMKI     []byte
	remote     netip.AddrPort
	latched    bool
	pt, dtmfPT uint8
	codec      string
	mode       MediaMode
	sending    bool // false while inactive/held
	pattern    []byte

	ssrc      uint32
	seq       uint16
	ts        uint32
	dtmfQueue []byte

	packets, hits, authFail, sent int
	dtmf                          strings.Builder
	lastEventTS                   uint32
	haveEventTS                   bool
	payloads                      [][]byte // first payloads received, for tests

	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup
}

const keepPayloads = 200

func newEndpoint(ip string, mode MediaMode) (*endpoint, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	e := &endpoint{conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, mode: mode, done: make(chan struct{}),
		ssrc: binary.BigEndian.Uint32(b[:4]), seq: binary.BigEndian.Uint16(b[4:]), pt: 0xFF, dtmfPT: 0xFF}
	e.wg.Add(2)
	go e.readLoop()
	go e.sendLoop()
	return e, nil
}

func newKey() []byte {
	k := make([]byte, 30)
	_, _ = rand.Read(k)
	return k
}

// configure applies a negotiated description: the peer's address, the
// codec, the peer's key (for decryption) and ours (for encryption).
func (e *endpoint) configure(remote netip.AddrPort, codec msdp.Codec, dtmf *msdp.Codec, theirs, ours msdp.Crypto, dir msdp.Direction) error {
	if len(theirs.Key) < 30 || len(ours.Key) < 30 {
		return errors.New("SRTP key too short")
	}
	decOpts := []srtp.ContextOption{srtp.SRTPReplayProtection(64), srtp.SRTCPReplayProtection(64)}
	if m := theirs.MKIBytes(); m != nil {
		decOpts = append(decOpts, srtp.MasterKeyIndicator(m))
	}
	dec, err := srtp.CreateContext(theirs.Key[:16], theirs.Key[16:30], srtp.ProtectionProfileAes128CmHmacSha1_80, decOpts...)
	if err != nil {
		return err
	}
	opts := []srtp.ContextOption{}
	if m := ours.MKIBytes(); m != nil {
		opts = append(opts, srtp.MasterKeyIndicator(m))
	}
	enc, err := srtp.CreateContext(ours.Key[:16], ours.Key[16:30], srtp.ProtectionProfileAes128CmHmacSha1_80, opts...)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.latched || e.remote.Addr() != remote.Addr() {
		e.remote, e.latched = remote, false
	}
	e.enc, e.dec = enc, dec
	e.pt, e.codec = codec.PT, codec.Name
	e.pattern = PatternFrame(codec.Name)
	if dtmf != nil {
		e.dtmfPT = dtmf.PT
	}
	e.sending = dir.Sends()
	return nil
}

// setDirection changes whether we send (hold/resume).
func (e *endpoint) setDirection(d msdp.Direction) {
	e.mu.Lock()
	e.sending = d.Sends()
	e.mu.Unlock()
}

func (e *endpoint) setMode(m MediaMode) {
	e.mu.Lock()
	e.mode = m
	e.mu.Unlock()
}

func (e *endpoint) close() {
	if e.closed.Swap(true) {
		return
	}
	close(e.done)
	e.conn.Close()
	e.wg.Wait()
}

func (e *endpoint) readLoop() {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	var hdr rtp.Header
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.closed.Load() {
				return
			}
			continue
		}
		pkt := buf[:n]
		if n < 12 || pkt[0]>>6 != 2 {
			continue
		}
		if pt := pkt[1] & 0x7F; pt >= 64 && pt <= 95 {
			continue // RTCP (multiplexed): not checked here
		}
		e.mu.Lock()
		dec := e.dec
		e.mu.Unlock()
		if dec == nil {
			continue
		}
		plain, err := dec.DecryptRTP(nil, pkt, &hdr)
		if err != nil {
			e.mu.Lock()
			e.authFail++
			e.mu.Unlock()
			continue
		}
		payload := plain[hdr.MarshalSize():]
		e.mu.Lock()
		if !e.latched { // symmetric RTP: answer where the relay sends from
			e.remote, e.latched = from, true
		}
		switch {
		case hdr.PayloadType == e.dtmfPT && len(payload) >= 4:
			end := payload[1]&0x80 != 0
			if end && (!e.haveEventTS || hdr.Timestamp != e.lastEventTS) {
				e.lastEventTS, e.haveEventTS = hdr.Timestamp, true
				e.dtmf.WriteByte(eventDigit(payload[0]))
			}
		case hdr.PayloadType == e.pt:
			e.packets++
			if bytes.Equal(payload, e.pattern) {
				e.hits++
			}
			if len(e.payloads) < keepPayloads {
				e.payloads = append(e.payloads, append([]byte(nil), payload...))
			}
			if e.mode == Echo && e.sending && e.enc != nil {
				e.sendLocked(e.pt, payload, false, 160)
			}
		}
		e.mu.Unlock()
	}
}

func (e *endpoint) sendLoop() {
	defer e.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		if e.enc != nil && e.sending {
			if len(e.dtmfQueue) > 0 {
				e.sendDigitLocked(e.dtmfQueue[0])
				e.dtmfQueue = e.dtmfQueue[1:]
			} else if e.mode == Pattern {
				e.sendLocked(e.pt, e.pattern, false, 160)
			}
		}
		e.mu.Unlock()
	}
}

// sendLocked encrypts and sends one packet; advance is the timestamp step.
func (e *endpoint) sendLocked(pt uint8, payload []byte, marker bool, advance uint32) {
	if !e.remote.IsValid() || e.remote.Port() == 0 {
		return
	}
	e.seq++
	hdr := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: e.seq, Timestamp: e.ts, SSRC: e.ssrc, Marker: marker}
	e.ts += advance
	raw, err := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
	if err != nil {
		return
	}
	out, err := e.enc.EncryptRTP(nil, raw, nil)
	if err != nil {
		return
	}
	if _, err := e.conn.WriteToUDPAddrPort(out, e.remote); err == nil {
		e.sent++
	}
}

// sendDigitLocked sends one RFC 4733 event: three updates and three end
// packets, all with the event's timestamp.
func (e *endpoint) sendDigitLocked(d byte) {
	if e.dtmfPT == 0xFF {
		return
	}
	ev := digitEvent(d)
	start := e.ts
	for i := 0; i < 6; i++ {
		dur := uint16(160 * (i + 1))
		flags := byte(10) // volume
		if i >= 3 {
			flags |= 0x80
			dur = 160 * 3
		}
		p := []byte{ev, flags, byte(dur >> 8), byte(dur)}
		e.ts = start
		e.sendLocked(e.dtmfPT, p, i == 0, 0)
	}
	e.ts = start + 160*3
}

func digitEvent(d byte) byte {
	switch {
	case d >= '0' && d <= '9':
		return d - '0'
	case d == '*':
		return 10
	case d == '#':
		return 11
	case d >= 'A' && d <= 'D':
		return 12 + d - 'A'
	}
	return 0
}

func eventDigit(ev byte) byte {
	switch {
	case ev <= 9:
		return '0' + ev
	case ev == 10:
		return '*'
	case ev == 11:
		return '#'
	case ev >= 12 && ev <= 15:
		return 'A' + ev - 12
	}
	return '?'
}

func (e *endpoint) sendDTMF(digits string) {
	e.mu.Lock()
	e.dtmfQueue = append(e.dtmfQueue, digits...)
	e.mu.Unlock()
}

func (e *endpoint) stats() MediaStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return MediaStats{Packets: e.packets, PatternHits: e.hits, AuthFailures: e.authFail, DTMF: e.dtmf.String(),
		Codec: e.codec, SentPackets: e.sent}
}

func (e *endpoint) receivedPayloads() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([][]byte, len(e.payloads))
	copy(out, e.payloads)
	return out
}
