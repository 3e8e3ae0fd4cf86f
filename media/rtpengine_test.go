//go:build linux

package media

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/media/ng"
	"github.com/pbx2teams/pbx2teams/media/sdp"
)

// startRtpengine starts a userspace rtpengine on loopback, skipping the
// test when it is not installed (failing under CI, which installs it).
func startRtpengine(t *testing.T) *ng.Rtpengine {
	t.Helper()
	if _, err := ng.FindRtpengine(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rtpengine is required under CI: %v", err)
		}
		t.Skipf("rtpengine not installed: %v", err)
	}
	r := testRelay(t, nil) // only to reserve a port slice for rtpengine
	min := r.cfg.PortMin
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := ng.StartRtpengine(ctx, ng.RtpengineOptions{Dir: t.TempDir(), PortMin: min, PortMax: min + 99, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop() })
	return e
}

// TestInteropRtpengineSDES: rtpengine turns a plain RTP/AVP offer into
// RTP/SAVP with SDES keys; the relay takes that as its SRTP (Teams) side,
// decrypts what rtpengine encrypts, and encrypts what rtpengine decrypts.
//
//	phone P --RTP--> rtpengine --SRTP--> relay leg B | relay leg A --RTP--> PBX Q
func TestInteropRtpengineSDES(t *testing.T) {
	eng := startRtpengine(t)
	cl, err := ng.Dial(eng.NG)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	phone, pbx := newPeer(t), newPeer(t)
	res, err := cl.Command(ctx, ng.Dict{
		"command": "offer", "call-id": "interop-1", "from-tag": "p",
		"sdp":                string(phone.plainOffer()),
		"transport-protocol": "RTP/SAVP",
		"replace":            []string{"origin", "session-connection"},
	})
	if err != nil {
		t.Fatal(err)
	}
	engOffer := ng.String(res, "sdp")
	if !strings.Contains(engOffer, "RTP/SAVP") || !strings.Contains(engOffer, "AES_CM_128_HMAC_SHA1_80") {
		t.Fatalf("rtpengine did not offer SDES:\n%s", engOffer)
	}

	r := testRelay(t, nil)
	c := r.NewCall("interop-1")
	defer c.Close()
	offerA, err := c.OfferFromB([]byte(engOffer))
	if err != nil {
		t.Fatal(err)
	}
	mustNotContain(t, offerA, "a=crypto", "a=fingerprint", "a=setup")
	pbxAnswer := []byte("v=0\r\no=pbx 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
		strconv.Itoa(pbx.port()) + " RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
	answerB, err := c.AnswerFromA(pbxAnswer)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := sdp.Parse(answerB)
	if m := s.Media[0]; !m.Secure() || len(m.Crypto) != 1 || m.Crypto[0].Suite != "AES_CM_128_HMAC_SHA1_80" {
		t.Fatalf("relay answer to rtpengine:\n%s", answerB)
	}
	res, err = cl.Command(ctx, ng.Dict{
		"command": "answer", "call-id": "interop-1", "from-tag": "p", "to-tag": "q",
		"sdp":     string(answerB),
		"replace": []string{"origin", "session-connection"},
	})
	if err != nil {
		t.Fatal(err)
	}
	engAnswer := []byte(ng.String(res, "sdp"))
	t.Logf("rtpengine offer:\n%s\nrelay offer to the PBX:\n%s\nrelay answer to rtpengine:\n%s", engOffer, offerA, answerB)
	mustContain(t, engAnswer, "RTP/AVP")
	defer cl.Command(context.Background(), ng.Dict{"command": "delete", "call-id": "interop-1", "from-tag": "p"})

	toEngine, toRelayA := relayAddr(t, engAnswer), relayAddr(t, offerA)
	for i := 0; i < 5; i++ {
		phone.send(toEngine, phone.packet(0))
		pbx.mustRecv(phone.seq, 0)
		pbx.send(toRelayA, pbx.packet(0))
		phone.mustRecv(pbx.seq, 0)
	}
	st := c.Stats()
	if st.B.PacketsIn != 5 || st.B.PacketsOut != 5 || !st.B.SRTP || st.B.AuthFailures != 0 {
		t.Errorf("relay counters toward rtpengine: %+v", st.B)
	}
}
