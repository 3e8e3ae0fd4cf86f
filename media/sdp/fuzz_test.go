package sdp

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzParseSDP feeds arbitrary bodies to the parser and the rewriter: they
// must never panic, errors must be ErrMalformed, and whatever the rewriter
// writes must parse again with the same number of streams.
func FuzzParseSDP(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"))
	f.Add([]byte("v=0\nm=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:1\na=rtcp-mux\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		for _, m := range s.Media {
			m.TelephoneEvent()
			for _, c := range m.Crypto {
				_ = c.String()
				_ = c.MKIBytes()
			}
		}
		media := make([]MediaRewrite, len(s.Media))
		for i, m := range s.Media {
			media[i] = MediaRewrite{Port: m.Port, Codecs: m.Codecs, Direction: m.Direction, Crypto: m.Crypto, RTCPMux: m.RTCPMux}
		}
		out := s.Rewrite(Rewrite{Origin: Origin{Username: "x"}, Addr: netip.MustParseAddr("192.0.2.1"), Media: media})
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("rewritten body does not parse: %v\n%s", err, out)
		}
		if len(back.Media) != len(s.Media) {
			t.Fatalf("rewrite has %d streams, source %d", len(back.Media), len(s.Media))
		}
	})
}
