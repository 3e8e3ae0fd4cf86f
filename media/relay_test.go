//go:build linux

package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media/sdp"
)

func mustContain(t *testing.T, body []byte, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !bytes.Contains(body, []byte(p)) {
			t.Errorf("SDP lacks %q:\n%s", p, body)
		}
	}
}

func mustNotContain(t *testing.T, body []byte, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if bytes.Contains(body, []byte(p)) {
			t.Errorf("SDP should not contain %q:\n%s", p, body)
		}
	}
}

func TestRelayPlainRTPToSRTPAndBack(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("c1")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)

	offerB, err := c.OfferFromA(pbx.plainOffer())
	if err != nil {
		t.Fatal(err)
	}
	toB := relayAddr(t, offerB)
	mustContain(t, offerB, fmt.Sprintf("m=audio %d RTP/SAVP 0 8 101\r\n", toB.Port()),
		"c=IN IP4 127.0.0.1", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", "a=rtcp-mux", "a=sendrecv",
		"a=x-pbx-private:42", "a=ptime:20", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "o=pbx2teams ")
	mustNotContain(t, offerB, "a=rtcp:", "o=pbx ")
	teams.useRelayKey(offerB)

	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv"))
	if err != nil {
		t.Fatal(err)
	}
	toA := relayAddr(t, answerA)
	mustContain(t, answerA, fmt.Sprintf("m=audio %d RTP/AVP 0 101\r\n", toA.Port()),
		fmt.Sprintf("a=rtcp:%d", toA.Port()+1), "a=sendrecv", "a=label:main-audio")
	mustNotContain(t, answerA, "a=crypto", "a=rtcp-mux", "SAVP")

	for i := 0; i < 5; i++ {
		pbx.send(toA, pbx.packet(0))
		teams.mustRecv(pbx.seq, 0)
	}
	for i := 0; i < 5; i++ {
		teams.send(toB, teams.packet(0))
		pbx.mustRecv(teams.seq, 0)
	}
	st := c.Stats()
	if st.A.PacketsIn != 5 || st.A.PacketsOut != 5 || st.B.PacketsIn != 5 || st.B.PacketsOut != 5 {
		t.Errorf("packet counters: %+v", st)
	}
	if st.A.BytesIn != 5*172 || st.B.BytesOut != 5*182 || st.B.BytesIn != 5*182 || st.A.BytesOut != 5*172 {
		t.Errorf("byte counters: A in %d out %d, B in %d out %d", st.A.BytesIn, st.A.BytesOut, st.B.BytesIn, st.B.BytesOut)
	}
	if st.A.SRTP || !st.B.SRTP || st.A.Codec != "PCMU/8000" || st.A.Lost != 0 || st.B.Lost != 0 {
		t.Errorf("leg state: %+v", st)
	}
	if st.A.Remote != pbx.addr || st.B.Remote != teams.addr || st.A.Local != toA || st.B.Local != toB {
		t.Errorf("addresses: %+v", st)
	}
}

func TestLossCountedFromSequenceGap(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("loss")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	toA, _ := setupCall(t, c, pbx, teams)
	for i := 0; i < 6; i++ {
		pkt := pbx.packet(0)
		if i == 2 || i == 3 {
			continue // two packets lost on the way
		}
		pbx.send(toA, pkt)
		teams.mustRecv(pbx.seq, 0)
	}
	st := c.Stats()
	if st.A.Lost != 2 || st.A.PacketsIn != 4 || st.B.Lost != 0 {
		t.Errorf("loss: A lost %d in %d, B lost %d", st.A.Lost, st.A.PacketsIn, st.B.Lost)
	}
	// The packets carry 20 ms of timestamp each but arrived back to back:
	// RFC 3550 interarrival jitter sees that.
	if st.A.Jitter <= 0 || st.A.Jitter > 20*time.Millisecond {
		t.Errorf("jitter %v", st.A.Jitter)
	}
}

func TestReplayedAndForgedSRTPDropped(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("replay")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	_, toB := setupCall(t, c, pbx, teams)

	wire := teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0)
	teams.sendRaw(toB, wire) // replayed
	forged := append([]byte(nil), teams.send(toB, teams.packet(0))...)
	pbx.mustRecv(teams.seq, 0)
	forged[2], forged[3] = 0x7f, 0x00 // another sequence number, stale tag
	teams.sendRaw(toB, forged)
	teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0) // the next good one, not the replay or the forgery

	eventually(t, "drop counters", func() bool {
		st := c.Stats()
		return st.B.Replays == 1 && st.B.AuthFailures == 1
	})
	if st := c.Stats(); st.B.PacketsIn != 3 || st.A.PacketsOut != 3 {
		t.Errorf("counters: B in %d, A out %d", st.B.PacketsIn, st.A.PacketsOut)
	}
}

func TestLatchingToActualSource(t *testing.T) {
	r := testRelay(t, func(c *Config) { c.RelatchAfter = 100 * time.Millisecond })
	c := r.NewCall("latch")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	toA, toB := setupCall(t, c, pbx, teams)

	// Until the PBX sends anything, media goes to its SDP address.
	teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0)

	// The PBX is behind NAT: its packets come from another port. The
	// relay latches to it.
	nat := newPeer(t)
	nat.seq, nat.ts, nat.ssrc = pbx.seq, pbx.ts, pbx.ssrc
	nat.send(toA, nat.packet(0))
	teams.mustRecv(nat.seq, 0)
	teams.send(toB, teams.packet(0))
	nat.mustRecv(teams.seq, 0)

	// Another source is ignored while the latched one is active.
	intruder := newPeer(t)
	intruder.send(toA, intruder.packet(0))
	nat.send(toA, nat.packet(0))
	teams.mustRecv(nat.seq, 0) // the intruder's packet was not relayed before it
	teams.send(toB, teams.packet(0))
	nat.mustRecv(teams.seq, 0)
	if st := c.Stats(); st.A.Foreign != 1 || st.A.Remote != nat.addr {
		t.Errorf("foreign %d remote %v", st.A.Foreign, st.A.Remote)
	}

	// Once the latched source has been quiet longer than RelatchAfter,
	// the relay follows the new one (the PBX moved).
	time.Sleep(300 * time.Millisecond)
	moved := newPeer(t)
	moved.send(toA, moved.packet(0))
	teams.mustRecv(moved.seq, 0)
	teams.send(toB, teams.packet(0))
	moved.mustRecv(teams.seq, 0)
	if st := c.Stats(); st.A.Remote != moved.addr {
		t.Errorf("remote %v, want %v", st.A.Remote, moved.addr)
	}
}

func TestDTMFPayloadTypeMapping(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("dtmf")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	offerB, err := c.OfferFromA(pbx.plainOffer()) // telephone-event at 101
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	// Teams numbers telephone-event 96.
	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, answerA, "RTP/AVP 0 101\r\n", "a=rtpmap:101 telephone-event/8000")
	toA, toB := relayAddr(t, answerA), relayAddr(t, offerB)

	pbx.send(toA, pbx.packet(101))
	teams.mustRecv(pbx.seq, 96)
	teams.send(toB, teams.packet(96))
	pbx.mustRecv(teams.seq, 101)
	teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0)
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)
}

func TestHoldStopsForwardingAndResume(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("hold")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	toA, toB := setupCall(t, c, pbx, teams)
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)

	// The PBX holds with sendonly (it plays music); Teams only
	// understands a=inactive.
	reofferB, err := c.OfferFromA(pbx.plainOffer("a=sendonly"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, reofferB, "a=inactive", " 2 IN IP4 127.0.0.1") // origin version went up
	mustNotContain(t, reofferB, "a=sendonly")
	if relayAddr(t, reofferB) != toB {
		t.Error("re-offer moved the relay's port")
	}
	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000", "a=inactive"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, answerA, "a=inactive")
	if !c.Held() || !c.Stats().Held {
		t.Error("call should be held")
	}
	for i := 0; i < 3; i++ {
		pbx.send(toA, pbx.packet(0))
		teams.send(toB, teams.packet(0))
	}
	eventually(t, "held packets to arrive at the relay", func() bool {
		st := c.Stats()
		return st.A.PacketsIn == 4 && st.B.PacketsIn == 3
	})

	// Resume.
	if _, err := c.OfferFromA(pbx.plainOffer("a=sendrecv")); err != nil {
		t.Fatal(err)
	}
	answerA, err = c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, answerA, "a=sendrecv")
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0) // the first to arrive: none of the held ones was relayed
	teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0)
	if st := c.Stats(); st.B.PacketsOut != 2 || st.A.PacketsOut != 1 {
		t.Errorf("relayed during hold: B out %d, A out %d", st.B.PacketsOut, st.A.PacketsOut)
	}

	// The B2BUA can hold Teams by itself.
	hold, err := c.OfferTo(LegB, sdp.Inactive)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, hold, "a=inactive", "a=crypto:1 AES_CM_128_HMAC_SHA1_80")
	if relayAddr(t, hold) != toB {
		t.Error("hold offer moved the port")
	}
	out, err := c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000", "a=inactive"))
	if err != nil || out != nil {
		t.Fatalf("answer to the relay's own offer: %q %v", out, err)
	}
	pbx.send(toA, pbx.packet(0))
	eventually(t, "the held packet to reach the relay", func() bool { return c.Stats().A.PacketsIn == 6 })
	resume, err := c.OfferTo(LegB, sdp.SendRecv)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, resume, "a=sendrecv")
	if _, err := c.AnswerFromB(teams.savpSDP(1, "0 101", "a=rtpmap:101 telephone-event/8000")); err != nil {
		t.Fatal(err)
	}
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0) // not the one sent while held
}

func TestMediaTimeoutFires(t *testing.T) {
	r := testRelay(t, func(c *Config) { c.MediaTimeout = 150 * time.Millisecond })
	c := r.NewCall("dead")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	toA, _ := setupCall(t, c, pbx, teams)
	fired := make(chan struct{})
	c.OnTimeout(func() { close(fired) })
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("media timeout did not fire")
	}
}

func TestCodecNegotiation(t *testing.T) {
	ours := []sdp.Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 8, Name: "PCMA", ClockRate: 8000},
		{PT: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"}, {PT: 13, Name: "CN", ClockRate: 8000}}
	theirs := []sdp.Codec{{PT: 18, Name: "G729", ClockRate: 8000}, {PT: 8, Name: "pcma", ClockRate: 8000},
		{PT: 96, Name: "telephone-event", ClockRate: 8000}}
	got, err := Intersect(ours, theirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PT != 8 || got[1].PT != 101 || got[1].Fmtp != "0-16" {
		t.Errorf("intersection %+v", got)
	}
	_, err = Intersect(ours, []sdp.Codec{{PT: 9, Name: "G722", ClockRate: 8000}, {PT: 101, Name: "telephone-event", ClockRate: 8000}})
	if !errors.Is(err, ErrNoCommonCodec) || pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
		t.Errorf("DTMF alone is no call: %v", err)
	}

	r := testRelay(t, nil)
	pbx, teams := newPeer(t), newPeer(t)
	c := r.NewCall("g729")
	defer c.Close()
	_, err = c.OfferFromA([]byte(fmt.Sprintf("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio %d RTP/AVP 18 4\r\n", pbx.port())))
	if !errors.Is(err, ErrNoCommonCodec) || !strings.Contains(pbx2teams.ErrorMessage(err), "G729") {
		t.Errorf("G.729-only offer: %v", err)
	}

	c2 := r.NewCall("g722")
	defer c2.Close()
	offerB, err := c2.OfferFromA(pbx.plainOffer())
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	_, err = c2.AnswerFromB(teams.savpSDP(1, "9"))
	if !errors.Is(err, ErrNoCommonCodec) {
		t.Errorf("answer with no common codec: %v", err)
	}
}

func TestSRTPRequiredTowardTeams(t *testing.T) {
	r := testRelay(t, nil)
	pbx, teams := newPeer(t), newPeer(t)
	c := r.NewCall("plain-teams")
	defer c.Close()
	_, err := c.OfferFromB(pbx.plainOffer())
	if !errors.Is(err, ErrSRTPRequired) {
		t.Errorf("plain offer from Teams: %v", err)
	}
	offerB, err := c.OfferFromA(pbx.plainOffer())
	if err != nil {
		t.Fatal(err)
	}
	_ = offerB
	_, err = c.AnswerFromB([]byte(fmt.Sprintf("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio %d RTP/AVP 0\r\n", teams.port())))
	if !errors.Is(err, ErrSRTPRequired) {
		t.Errorf("plain answer from Teams: %v", err)
	}
	_, err = c.OfferFromA([]byte("not sdp"))
	if !errors.Is(err, ErrBadSDP) {
		t.Errorf("garbage: %v", err)
	}
}

// TestTeamsToPBXCall runs the reverse direction: Teams offers SRTP with
// two suites and an MKI, the PBX answers plain RTP.
func TestTeamsToPBXCall(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("inbound")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	c32 := sdp.Crypto{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_32", Key: make([]byte, 30)}
	c80 := sdp.Crypto{Tag: 2, Suite: "AES_CM_128_HMAC_SHA1_80", Key: teams.key, Lifetime: "2^31", MKI: 1, MKILen: 1}
	offer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d UDP/TLS/RTP/SAVP 8 0 101 13\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\n"+
		"a=crypto:%s\r\na=crypto:%s\r\na=ice-ufrag:x\r\na=candidate:1 1 UDP 1 127.0.0.1 %d typ host\r\n",
		teams.port(), c32, c80, teams.port())
	offerA, err := c.OfferFromB([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, offerA, "RTP/AVP 8 0 101 13\r\n", "a=sendrecv", "a=rtcp-mux",
		fmt.Sprintf("a=rtcp:%d", relayAddr(t, offerA).Port()+1))
	mustNotContain(t, offerA, "a=crypto", "a=ice-ufrag", "a=candidate", "SAVP")
	answerB, err := c.AnswerFromA([]byte(fmt.Sprintf("v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n", pbx.port())))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, answerB, "UDP/TLS/RTP/SAVP 8 101\r\n", "a=crypto:2 AES_CM_128_HMAC_SHA1_80 ", "a=rtcp-mux")
	mustNotContain(t, answerB, "a=rtcp:", "HMAC_SHA1_32")
	teams.useRelayKey(answerB)
	teams.enc, err = srtp.CreateContext(teams.key[:16], teams.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80, srtp.MasterKeyIndicator([]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	toA, toB := relayAddr(t, offerA), relayAddr(t, answerB)
	teams.send(toB, teams.packet(8))
	pbx.mustRecv(teams.seq, 8)
	pbx.send(toA, pbx.packet(8))
	teams.mustRecv(pbx.seq, 8)
}

func TestRTCPRelayed(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("rtcp")
	defer c.Close()
	pbx, teams, pbxRTCP := newPeer(t), newPeer(t), newPeer(t)
	offerB, err := c.OfferFromA(pbx.plainOffer(fmt.Sprintf("a=rtcp:%d", pbxRTCP.port())))
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0"))
	if err != nil {
		t.Fatal(err)
	}
	toA, toB := relayAddr(t, answerA), relayAddr(t, offerB)
	toARTCP := netip.AddrPortFrom(toA.Addr(), toA.Port()+1)

	rr, _ := (&rtcp.ReceiverReport{SSRC: pbx.ssrc, Reports: []rtcp.ReceptionReport{{SSRC: teams.ssrc, LastSequenceNumber: 7}}}).Marshal()
	pbxRTCP.sendRaw(toARTCP, rr)
	got := recvRaw(t, teams.conn)
	plain, err := teams.dec.DecryptRTCP(nil, got, nil)
	if err != nil || !bytes.Equal(plain, rr) {
		t.Fatalf("SRTCP toward Teams: %v", err)
	}

	sr, _ := (&rtcp.SenderReport{SSRC: teams.ssrc, PacketCount: 3}).Marshal()
	enc, err := teams.enc.EncryptRTCP(nil, sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	teams.sendRaw(toB, enc)
	if got := recvRaw(t, pbxRTCP.conn); !bytes.Equal(got, sr) {
		t.Fatalf("plain RTCP toward the PBX differs")
	}
	if st := c.Stats(); st.A.RTCPIn != 1 || st.B.RTCPOut != 1 || st.B.RTCPIn != 1 || st.A.RTCPOut != 1 {
		t.Errorf("RTCP counters %+v", st)
	}
}

func recvRaw(t *testing.T, conn *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestRepeatedAnswerAndPortRelease(t *testing.T) {
	r := testRelay(t, nil)
	free := r.FreePorts()
	c := r.NewCall("early")
	pbx, teams := newPeer(t), newPeer(t)
	offerB, err := c.OfferFromA(pbx.plainOffer())
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	answer := teams.savpSDP(1, "0")
	a1, err := c.AnswerFromB(answer) // 183
	if err != nil {
		t.Fatal(err)
	}
	a2, err := c.AnswerFromB(answer) // 200 with the same SDP
	if err != nil || !bytes.Equal(a1, a2) {
		t.Fatalf("repeated answer: %v\n%s\n%s", err, a1, a2)
	}
	if _, err := c.AnswerFromA(answer); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("answer without offer: %v", err)
	}
	if r.FreePorts() != free-2 || r.ActiveCalls() != 1 {
		t.Errorf("ports in use: %d free of %d, calls %d", r.FreePorts(), free, r.ActiveCalls())
	}
	c.Close()
	eventually(t, "ports released", func() bool { return r.FreePorts() == free })
	if r.ActiveCalls() != 0 {
		t.Error("call still active")
	}
	if _, err := c.OfferFromA(pbx.plainOffer()); !errors.Is(err, ErrClosed) {
		t.Errorf("offer after close: %v", err)
	}
}

func TestPortExhaustion(t *testing.T) {
	r := testRelay(t, func(c *Config) { c.PortMax = c.PortMin + 7 }) // 4 pairs: 2 calls
	pbx := newPeer(t)
	for i := 0; i < 2; i++ {
		c := r.NewCall(fmt.Sprint(i))
		defer c.Close()
		if _, err := c.OfferFromA(pbx.plainOffer()); err != nil {
			t.Fatal(err)
		}
	}
	c := r.NewCall("third")
	defer c.Close()
	_, err := c.OfferFromA(pbx.plainOffer())
	if !errors.Is(err, ErrNoPorts) || pbx2teams.ErrorCode(err) != pbx2teams.EUnavailable {
		t.Errorf("third call: %v", err)
	}
}

// TestPacketPathDoesNotAllocate relays real packets both ways through the
// worker's packet function and counts heap allocations.
func TestPacketPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := testRelay(t, func(c *Config) { c.Workers = 1 })
	c := r.NewCall("allocs")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	setupCall(t, c, pbx, teams)
	w, err := newWorker(r) // a private worker: its buffers, not its loop
	if err != nil {
		t.Fatal(err)
	}
	const runs = 200
	var fromA, fromB [runs + 1][]byte
	for i := range fromA {
		fromA[i] = pbx.packet(0)
		fromB[i], _ = teams.enc.EncryptRTP(nil, teams.packet(0), nil)
	}
	var fromPBX, fromTeams sockaddr
	fromPBX.set(r.family, pbx.addr)
	fromTeams.set(r.family, teams.addr)
	feed := func(s *socket, from sockaddr, pkt []byte) {
		w.rx.from[0] = from
		w.rx.hdrs[0].Len = uint32(copy(w.rx.bufs[0], pkt))
		w.rx.hdrs[0].Hdr.Flags = 0
		w.process(s, 1)
	}
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		feed(c.legs[LegA].rtp, fromPBX, fromA[i])
		feed(c.legs[LegB].rtp, fromTeams, fromB[i])
		i++
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per relayed packet pair", allocs)
	}
	if st := c.Stats(); st.A.PacketsIn != runs+1 || st.B.PacketsIn != runs+1 || st.B.PacketsOut != runs+1 {
		t.Errorf("not all relayed: %+v", st)
	}
}

// TestCallsReleaseEverything sets up, uses and closes calls repeatedly:
// every port pair comes back and no descriptor leaks (without a pool
// every socket is closed with its call; with one, idle pairs stay open
// until the relay closes).
func TestCallsReleaseEverything(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("pool=%v", pooled), func(t *testing.T) {
			pbx, teams := newPeer(t), newPeer(t)
			fds0 := openFDs(t)
			r := testRelay(t, func(c *Config) {
				if !pooled {
					c.SocketPool = -1
				}
			})
			free := r.FreePorts()
			fds := openFDs(t)
			for round := 0; round < 3; round++ {
				var calls []*Call
				for i := 0; i < 10; i++ {
					c := r.NewCall(fmt.Sprintf("c%d-%d", round, i))
					calls = append(calls, c)
					toA, _ := setupCall(t, c, pbx, teams)
					pbx.send(toA, pbx.packet(0))
					teams.mustRecv(pbx.seq, 0)
				}
				for _, c := range calls {
					c.Close()
				}
				eventually(t, "ports back", func() bool { return r.FreePorts() == free })
			}
			if !pooled {
				eventually(t, "descriptors closed", func() bool { return openFDs(t) <= fds })
			}
			if r.ActiveCalls() != 0 {
				t.Errorf("%d calls still active", r.ActiveCalls())
			}
			r.Close()
			eventually(t, "descriptors closed with the relay", func() bool { return openFDs(t) <= fds0 })
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc")
	}
	return len(ents)
}
