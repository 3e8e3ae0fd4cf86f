//go:build linux

package media

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/pbx2teams/pbx2teams/media/sdp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testEngine forces the relay engine of the tests ("" picks as in
// production); TestEngineEpoll re-runs the suite with "epoll".
var testEngine = os.Getenv("MEDIA_TEST_ENGINE")

// portBase hands each test its own slice of ports so parallel packages
// and tests rarely meet; the relay skips ports others hold anyway.
var (
	portMu   sync.Mutex
	portNext = 0
)

func testRelay(t testing.TB, mod func(*Config)) *Relay {
	t.Helper()
	portMu.Lock()
	if portNext == 0 {
		// 50000-58999: clear of the relay's default range (40000-49999),
		// which a sandbox or another package's tests may be using with
		// its socket pool bound.
		n, _ := rand.Int(rand.Reader, big.NewInt(80))
		portNext = 50000 + int(n.Int64())*100
	}
	if portNext+99 > 60999 {
		portNext = 50000
	}
	min := portNext
	portNext += 100
	portMu.Unlock()
	cfg := Config{BindIP: loopback, PortMin: min, PortMax: min + 99, Workers: 2, Engine: testEngine, PortQuarantine: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// peer is a test endpoint: a PBX or a Teams media processor, with
// optional SRTP done by pion, independent of the relay's code.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
	addr netip.AddrPort
	key  []byte // the peer's own SRTP key (key||salt)
	enc  *srtp.Context
	dec  *srtp.Context // with the relay's key, from the relay's SDP
	seq  uint16
	ts   uint32
	ssrc uint32
}

func newPeer(t testing.TB) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 30)
	_, _ = rand.Read(key)
	p := &peer{t: t, conn: conn, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), key: key, seq: 1000, ts: 160000}
	var b [4]byte
	_, _ = rand.Read(b[:])
	p.ssrc = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return p
}

func (p *peer) port() int { return int(p.addr.Port()) }

// plainOffer is a PBX-style offer: RTP/AVP with G.711 and DTMF at PT 101.
func (p *peer) plainOffer(extra ...string) []byte {
	lines := []string{
		"v=0", "o=pbx 1 1 IN IP4 127.0.0.1", "s=call", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 101", p.port()),
		"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=x-pbx-private:42",
	}
	return []byte(strings.Join(append(lines, extra...), "\r\n") + "\r\n")
}

// savpSDP is a Teams-style body with the peer's key under tag.
func (p *peer) savpSDP(tag int, formats string, extra ...string) []byte {
	c := sdp.Crypto{Tag: tag, Suite: "AES_CM_128_HMAC_SHA1_80", Key: p.key, Lifetime: "2^31"}
	lines := []string{
		"v=0", "o=teams 7 7 IN IP4 127.0.0.1", "s=session", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d RTP/SAVP %s", p.port(), formats),
		"a=rtcp-mux", "a=label:main-audio", "a=crypto:" + c.String(),
	}
	return []byte(strings.Join(append(lines, extra...), "\r\n") + "\r\n")
}

// useRelayKey sets up the peer's SRTP from the relay's description to it.
func (p *peer) useRelayKey(relaySDP []byte) {
	p.t.Helper()
	s, err := sdp.Parse(relaySDP)
	if err != nil {
		p.t.Fatal(err)
	}
	m := s.Media[0]
	if len(m.Crypto) != 1 || m.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_80" {
		p.t.Fatalf("relay SDP should carry one AES_CM_128_HMAC_SHA1_80 key:\n%s", relaySDP)
	}
	k := m.Crypto[0].Key
	p.dec, err = srtp.CreateContext(k[:16], k[16:], srtp.ProtectionProfileAes128CmHmacSha1_80, srtp.SRTPReplayProtection(64))
	if err != nil {
		p.t.Fatal(err)
	}
	p.enc, err = srtp.CreateContext(p.key[:16], p.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		p.t.Fatal(err)
	}
}

// relayAddr is the relay's RTP address in a description it wrote.
func relayAddr(t testing.TB, body []byte) netip.AddrPort {
	t.Helper()
	s, err := sdp.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(s.Media[0].Addr, uint16(s.Media[0].Port))
}

// pattern is the known payload of packet seq: 160 bytes (20 ms of G.711).
func pattern(seq uint16) []byte {
	b := make([]byte, 160)
	for i := range b {
		b[i] = byte(int(seq)*7 + i)
	}
	return b
}

// packet builds the peer's next RTP packet.
func (p *peer) packet(pt uint8) []byte {
	p.seq++
	p.ts += 160
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.ssrc},
		Payload: pattern(p.seq)}
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// send writes raw bytes (encrypting them when the peer speaks SRTP).
func (p *peer) send(to netip.AddrPort, b []byte) []byte {
	p.t.Helper()
	if p.enc != nil {
		var err error
		if b, err = p.enc.EncryptRTP(nil, b, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
	return b
}

func (p *peer) sendRaw(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

var errTimeout = errors.New("nothing received")

// recv waits up to d for an RTP packet (decrypted when the peer speaks SRTP).
func (p *peer) recv(d time.Duration) (*rtp.Packet, netip.AddrPort, error) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(d)
	for {
		_ = p.conn.SetReadDeadline(deadline)
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, from, errTimeout
		}
		b := buf[:n]
		if b[1] >= 192 && b[1] <= 223 {
			continue // RTCP: not what recv is for
		}
		if p.dec != nil {
			if b, err = p.dec.DecryptRTP(nil, b, nil); err != nil {
				return nil, from, fmt.Errorf("SRTP from relay: %w", err)
			}
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(b); err != nil {
			return nil, from, err
		}
		return &pkt, from, nil
	}
}

// mustRecv waits for a packet and checks its sequence number, payload
// type and known payload.
func (p *peer) mustRecv(wantSeq uint16, wantPT uint8) *rtp.Packet {
	p.t.Helper()
	pkt, _, err := p.recv(5 * time.Second)
	if err != nil {
		p.t.Fatalf("waiting for seq %d: %v", wantSeq, err)
	}
	if pkt.SequenceNumber != wantSeq || pkt.PayloadType != wantPT || !bytes.Equal(pkt.Payload, pattern(wantSeq)) {
		p.t.Fatalf("got seq %d pt %d (payload intact %v), want seq %d pt %d",
			pkt.SequenceNumber, pkt.PayloadType, bytes.Equal(pkt.Payload, pattern(pkt.SequenceNumber)), wantSeq, wantPT)
	}
	return pkt
}

// setupCall runs a PBX→Teams offer/answer: pbx offers plain RTP, teams
// answers SRTP. It returns the relay's addresses for each peer.
func setupCall(t testing.TB, c *Call, pbx, teams *peer) (toA, toB netip.AddrPort) {
	t.Helper()
	offerB, err := c.OfferFromA(pbx.plainOffer())
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil {
		t.Fatal(err)
	}
	return relayAddr(t, answerA), relayAddr(t, offerB)
}

// eventually polls cond for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
