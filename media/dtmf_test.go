package media

import (
	"errors"
	"testing"
	"time"
)

// TestSendDTMFInjectsRFC4733Events checks injected digits reach each peer
// as telephone-event packets with the peer's payload type: plain toward the
// PBX, SRTP toward Teams, with start marker, end packets and event codes.
func TestSendDTMFInjectsRFC4733Events(t *testing.T) {
	r := testRelay(t, nil)
	c := r.NewCall("dtmf-inject")
	defer c.Close()
	pbx, teams := newPeer(t), newPeer(t)
	offerB, err := c.OfferFromA(pbx.plainOffer()) // PBX: telephone-event 101
	if err != nil {
		t.Fatal(err)
	}
	teams.useRelayKey(offerB)
	answerA, err := c.AnswerFromB(teams.savpSDP(1, "0 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15"))
	if err != nil {
		t.Fatal(err)
	}
	toA, toB := relayAddr(t, answerA), relayAddr(t, offerB)
	// Latch both peers.
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)
	teams.send(toB, teams.packet(0))
	pbx.mustRecv(teams.seq, 0)

	if err := c.SendDTMF(LegA, "1#", 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	got := collectEvents(t, pbx, 101)
	if len(got) != 2 || got[0] != 1 || got[1] != 11 {
		t.Fatalf("events at the PBX = %v, want [1 11]", got)
	}
	if err := c.SendDTMF(LegB, "*", 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := collectEvents(t, teams, 96); len(got) != 1 || got[0] != 10 {
		t.Fatalf("events at Teams = %v, want [10]", got)
	}
	if err := c.SendDTMF(LegA, "1x", 0); !errors.Is(err, ErrBadDigit) {
		t.Fatalf("bad digit: err = %v", err)
	}
}

// collectEvents reads telephone-event packets until the line is quiet and
// returns the events whose end packet arrived, checking each event starts
// with a marked packet.
func collectEvents(t *testing.T, p *peer, pt uint8) []byte {
	t.Helper()
	var events []byte
	started := map[uint32]bool{}
	ended := map[uint32]bool{}
	for {
		pkt, _, err := p.recv(300 * time.Millisecond)
		if err != nil {
			return events
		}
		if pkt.PayloadType != pt || len(pkt.Payload) != 4 {
			t.Fatalf("unexpected packet pt %d len %d", pkt.PayloadType, len(pkt.Payload))
		}
		if pkt.Marker {
			started[pkt.Timestamp] = true
		}
		if pkt.Payload[1]&0x80 != 0 && !ended[pkt.Timestamp] {
			if !started[pkt.Timestamp] {
				t.Fatalf("event %d ended without a marked start", pkt.Payload[0])
			}
			ended[pkt.Timestamp] = true
			events = append(events, pkt.Payload[0])
		}
	}
}
