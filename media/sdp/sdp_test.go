package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func crlf(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

func TestParseTypicalPBXOffer(t *testing.T) {
	s, err := Parse(crlf(
		"v=0",
		"o=- 3912 3913 IN IP4 192.0.2.10",
		"s=Asterisk",
		"c=IN IP4 192.0.2.10",
		"t=0 0",
		"m=audio 16000 RTP/AVP 8 0 9 101 13",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=ptime:20",
		"a=maxptime:150",
		"a=sendrecv",
	))
	if err != nil {
		t.Fatal(err)
	}
	if s.Origin.Version != 3913 || s.Name != "Asterisk" {
		t.Errorf("origin/name: %+v %q", s.Origin, s.Name)
	}
	m := s.Media[0]
	if m.Port != 16000 || m.Proto != "RTP/AVP" || m.Addr != netip.MustParseAddr("192.0.2.10") {
		t.Errorf("media: %+v", m)
	}
	var names []string
	for _, c := range m.Codecs {
		names = append(names, c.String())
	}
	want := "8 PCMA/8000,0 PCMU/8000,9 G722/8000,101 telephone-event/8000,13 CN/8000"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("codecs %s, want %s", got, want)
	}
	te, ok := m.TelephoneEvent()
	if !ok || te.PT != 101 || te.Fmtp != "0-16" {
		t.Errorf("telephone-event: %+v %v", te, ok)
	}
	if m.Ptime != 20 || m.Direction != SendRecv || m.Secure() || m.RTCPMux {
		t.Errorf("ptime %d dir %v secure %v mux %v", m.Ptime, m.Direction, m.Secure(), m.RTCPMux)
	}
}

func TestParseTeamsStyleOffer(t *testing.T) {
	s, err := Parse(crlf(
		"v=0",
		"o=- 0 1 IN IP4 52.114.0.1",
		"s=session",
		"c=IN IP4 52.114.0.1",
		"b=CT:10000000",
		"t=0 0",
		"m=audio 54056 RTP/SAVP 0 8 101 13",
		"c=IN IP4 52.114.0.2",
		"a=rtcp:54057",
		"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WnD7c1ksDGs+dIefCEo8omPg4uO8DYIinNGL5yxQ|2^31|1:1",
		"a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:MvD7c1ksDGs+dIefCEo8omPg4uO8DYIinNGL5yxQ|2^31",
		"a=rtcp-mux",
		"a=label:main-audio",
		"a=x-ssrc-range:2516574464-2516574464",
		"a=inactive",
	))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	if m.Addr != netip.MustParseAddr("52.114.0.2") {
		t.Errorf("media-level c= should win: %v", m.Addr)
	}
	if !m.Secure() || !m.RTCPMux || m.RTCPPort != 54057 || m.Direction != Inactive {
		t.Errorf("secure %v mux %v rtcp %d dir %v", m.Secure(), m.RTCPMux, m.RTCPPort, m.Direction)
	}
	if len(m.Crypto) != 2 {
		t.Fatalf("crypto lines: %d", len(m.Crypto))
	}
	c := m.Crypto[0]
	if c.Tag != 2 || c.Suite != "AES_CM_128_HMAC_SHA1_80" || len(c.Key) != 30 || c.Lifetime != "2^31" || c.MKI != 1 || c.MKILen != 1 {
		t.Errorf("crypto: %+v", c)
	}
	if !bytes.Equal(c.MKIBytes(), []byte{1}) {
		t.Errorf("MKI bytes %v", c.MKIBytes())
	}
}

func TestParseOddOrderings(t *testing.T) {
	cases := map[string][]byte{
		// t= before c=, LF line ends, no trailing newline.
		"lf and order": []byte("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\na=sendonly"),
		// attributes before c= inside the media section, session-level direction.
		"attrs first": crlf("v=0", "o=- 1 1 IN IP4 10.0.0.1", "s=-", "a=sendonly", "t=0 0",
			"m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "c=IN IP4 10.0.0.1"),
		// missing t= and s=, junk line, blank lines.
		"sparse": []byte("v=0\r\n\r\nthis is junk\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n\r\na=sendonly\r\n"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			m := s.Media[0]
			if m.Port != 4000 || m.Addr != netip.MustParseAddr("10.0.0.1") || m.Direction != SendOnly {
				t.Errorf("port %d addr %v dir %v", m.Port, m.Addr, m.Direction)
			}
			if len(m.Codecs) != 1 || !m.Codecs[0].Is("pcmu") {
				t.Errorf("codecs %+v", m.Codecs)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for name, body := range map[string]string{
		"empty":      "",
		"blank":      "\r\n\r\n",
		"no v":       "o=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
		"bad port":   "v=0\r\nm=audio port RTP/AVP 0\r\n",
		"short m":    "v=0\r\nm=audio 4000\r\n",
		"huge port":  "v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
		"oversized":  "v=0\r\n" + strings.Repeat("a=x\r\n", MaxSize/5+1),
		"many media": "v=0\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", MaxMedia+1),
	} {
		if _, err := Parse([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseToleratesBrokenAttributes(t *testing.T) {
	s, err := Parse(crlf("v=0", "c=IN IP4 host.example.com", "m=audio 4000/2 RTP/AVP 0 xx 300 96 8",
		"a=rtpmap:96", "a=rtpmap:300 foo/8000", "a=rtpmap:96 opus/abc", "a=fmtp:", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
		"a=crypto:x", "a=rtcp:abc", "a=ptime:-5", "a=", "x"))
	if err != nil {
		t.Fatal(err)
	}
	m := s.Media[0]
	if m.Addr.IsValid() || m.PortCount != 2 || len(m.Crypto) != 0 || m.RTCPPort != 0 || m.Ptime != 0 {
		t.Errorf("unexpected: %+v", m)
	}
	if len(m.Codecs) != 2 { // 0 and 8: 96 has no usable rtpmap, xx/300 are not payload types
		t.Errorf("codecs %+v", m.Codecs)
	}
}

func TestCryptoRoundTrip(t *testing.T) {
	for _, v := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
		"7 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4",
		"3 AEAD_AES_128_GCM inline:4YkTxlBa7zU5Gx70DoWSsGcsSNcS9VlxMLKDiA==",
		"2 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj WSH=128",
	} {
		c, err := ParseCrypto(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if c.String() != v {
			t.Errorf("round trip: %q became %q", v, c.String())
		}
	}
	// Unpadded base64, as rtpengine writes GCM keys.
	c, err := ParseCrypto("3 AEAD_AES_128_GCM inline:4YkTxlBa7zU5Gx70DoWSsGcsSNcS9VlxMLKDiA")
	if err != nil || len(c.Key) != 28 {
		t.Errorf("unpadded key: %v %d", err, len(c.Key))
	}
	for _, bad := range []string{"", "1", "1 AES", "x AES_CM inline:AAAA", "1 S key:AAAA", "1 S inline:AAAA|1:99",
		"1 S inline:AAAA|a|b|c", "1 S inline:AAAA||", "1 S inline:AAAA|256:1"} {
		if _, err := ParseCrypto(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestRewriteKeepsUnknownLines(t *testing.T) {
	src := crlf(
		"v=0",
		"o=teams 1 1 IN IP4 52.114.0.1",
		"s=session",
		"t=0 0",
		"c=IN IP4 52.114.0.1",
		"b=CT:10000000",
		"a=ice-lite",
		"a=x-vendor:something odd",
		"m=audio 54056 UDP/TLS/RTP/SAVP 0 8 96 101",
		"i=main audio",
		"a=rtpmap:96 SILK/16000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=rtcp-fb:96 nack",
		"a=rtcp-fb:* x-message app",
		"a=ice-ufrag:abcd",
		"a=candidate:1 1 UDP 1 52.114.0.1 54056 typ host",
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
		"a=label:main-audio",
		"a=ptime:20",
		"a=sendrecv",
		"m=video 0 RTP/SAVP 34",
	)
	s, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 30)
	out := s.Rewrite(Rewrite{
		Origin: Origin{Username: "pbx2teams", SessionID: "42", Version: 3},
		Addr:   netip.MustParseAddr("198.51.100.7"),
		Media: []MediaRewrite{
			{Port: 40000, Proto: "RTP/AVP", Direction: Inactive, RTCPPort: 40001,
				Codecs: []Codec{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"}},
				Crypto: []Crypto{{Tag: 1, Suite: "AES_CM_128_HMAC_SHA1_80", Key: key}}},
			{Port: 0},
		},
	})
	want := strings.Join([]string{
		"v=0",
		"o=pbx2teams 42 3 IN IP4 198.51.100.7",
		"s=session",
		"c=IN IP4 198.51.100.7",
		"b=CT:10000000",
		"t=0 0",
		"a=x-vendor:something odd",
		"m=audio 40000 RTP/AVP 0 101",
		"i=main audio",
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16",
		"a=rtcp-fb:* x-message app",
		"a=label:main-audio",
		"a=ptime:20",
		"a=rtcp:40001",
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"a=inactive",
		"m=video 0 RTP/SAVP 34",
	}, "\r\n") + "\r\n"
	if string(out) != want {
		t.Errorf("rewrite:\n%s\nwant:\n%s", out, want)
	}
	// The result parses back to what was asked for.
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if m := back.Media[0]; m.Port != 40000 || m.Direction != Inactive || len(m.Codecs) != 2 || len(m.Crypto) != 1 || m.RTCPPort != 40001 {
		t.Errorf("parsed back: %+v", m)
	}
}

func TestDirection(t *testing.T) {
	for _, d := range []Direction{SendRecv, SendOnly, RecvOnly, Inactive} {
		if Make(d.Sends(), d.Receives()) != d {
			t.Errorf("%v does not round trip", d)
		}
		if p, ok := ParseDirection(d.String()); !ok || p != d {
			t.Errorf("parse %v", d)
		}
	}
	if SendOnly.Reverse() != RecvOnly || Inactive.Reverse() != Inactive {
		t.Error("reverse")
	}
}
