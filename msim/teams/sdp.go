package teams

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
)

// The audio formats Microsoft's Media Processor offers, in its order:
// SILK wide and narrow band, G.722, SIREN, G.729, G.711, RED,
// telephone-event and comfort noise. An SBC picks what it can pass.
var mpOfferFormats = []struct {
	pt   uint8
	name string
	rate int
	fmtp string
}{
	{104, "SILK", 16000, "useinbandfec=1; usedtx=0"},
	{9, "G722", 8000, ""},
	{103, "SILK", 8000, "useinbandfec=1; usedtx=0"},
	{111, "SIREN", 16000, "bitrate=16000"},
	{18, "G729", 8000, ""},
	{0, "PCMU", 8000, ""},
	{8, "PCMA", 8000, ""},
	{97, "RED", 8000, ""},
	{101, "telephone-event", 8000, "0-16"},
	{13, "CN", 8000, ""},
	{118, "CN", 16000, ""},
}

// sdpBuilder writes the descriptions of one simulated call.
type sdpBuilder struct {
	ip        string
	sessionID uint64
	version   uint64
	ufrag     string
	pwd       string
}

func newSDPBuilder(ip string) *sdpBuilder {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &sdpBuilder{ip: ip, sessionID: binary.BigEndian.Uint64(b[:]) >> 2, ufrag: randHex(4), pwd: randHex(12)}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func (s *sdpBuilder) head(b *strings.Builder) {
	s.version++
	fmt.Fprintf(b, "v=0\r\no=- %d %d IN IP4 %s\r\ns=session\r\nc=IN IP4 %s\r\nb=CT:10000000\r\nt=0 0\r\n",
		s.sessionID, s.version, s.ip, s.ip)
}

// ice writes ICE attributes as the Media Processor does; an SBC that does
// not do ICE ignores them.
func (s *sdpBuilder) ice(b *strings.Builder, port int) {
	fmt.Fprintf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", s.ufrag, s.pwd)
	fmt.Fprintf(b, "a=candidate:1 1 UDP 2130706431 %s %d typ host\r\n", s.ip, port)
}

// offer writes a Teams-style offer: RTP/SAVP, two SDES keys (the first
// with an MKI, as the Media Processor writes them), rtcp-mux and the
// MP's codec list.
func (s *sdpBuilder) offer(port int, keys []msdp.Crypto, dir msdp.Direction) []byte {
	var b strings.Builder
	s.head(&b)
	pts := make([]string, len(mpOfferFormats))
	for i, f := range mpOfferFormats {
		pts[i] = strconv.Itoa(int(f.pt))
	}
	fmt.Fprintf(&b, "m=audio %d RTP/SAVP %s\r\n", port, strings.Join(pts, " "))
	s.ice(&b, port)
	for _, k := range keys {
		fmt.Fprintf(&b, "a=crypto:%s\r\n", k.String())
	}
	b.WriteString("a=rtcp-mux\r\n")
	for _, f := range mpOfferFormats {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", f.pt, f.name, f.rate)
		if f.fmtp != "" {
			fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", f.pt, f.fmtp)
		}
	}
	fmt.Fprintf(&b, "a=%s\r\na=ptime:20\r\n", dir)
	return []byte(b.String())
}

// answer writes an answer with one codec (and telephone-event when
// offered), our key under the offer's tag and rtcp-mux.
func (s *sdpBuilder) answer(port int, codec msdp.Codec, dtmf *msdp.Codec, key msdp.Crypto, dir msdp.Direction) []byte {
	var b strings.Builder
	s.head(&b)
	pts := strconv.Itoa(int(codec.PT))
	if dtmf != nil {
		pts += " " + strconv.Itoa(int(dtmf.PT))
	}
	fmt.Fprintf(&b, "m=audio %d RTP/SAVP %s\r\n", port, pts)
	s.ice(&b, port)
	fmt.Fprintf(&b, "a=crypto:%s\r\n", key.String())
	b.WriteString("a=rtcp-mux\r\n")
	fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", codec.PT, codec.Name, codec.ClockRate)
	if dtmf != nil {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\na=fmtp:%d 0-16\r\n", dtmf.PT, dtmf.Name, dtmf.ClockRate, dtmf.PT)
	}
	fmt.Fprintf(&b, "a=%s\r\na=ptime:20\r\n", dir)
	return []byte(b.String())
}

// sdpProblem is why an SBC's description is refused, with the SIP status
// and Microsoft's diagnostic code.
type sdpProblem struct {
	status int
	code   int
	reason string
}

func (p *sdpProblem) Error() string { return p.reason }

// negotiated is what an offer and our choice settle on.
type negotiated struct {
	remote netip.AddrPort
	codec  msdp.Codec
	dtmf   *msdp.Codec
	key    msdp.Crypto // the peer's key
	dir    msdp.Direction
}

// checkSBCDescription applies Microsoft's media rules to an SBC's offer or
// answer: SDP present, an audio stream over RTP/SAVP with an
// AES_CM_128_HMAC_SHA1_80 key, no c=0.0.0.0, and a codec the Media
// Processor speaks.
func checkSBCDescription(body []byte) (*negotiated, *sdpProblem) {
	if len(body) == 0 {
		return nil, &sdpProblem{488, 531000, "SDP required: Direct Routing does not support delayed offer"}
	}
	s, err := msdp.Parse(body)
	if err != nil {
		return nil, &sdpProblem{488, 531000, "unreadable SDP: " + err.Error()}
	}
	var m *msdp.Media
	for _, x := range s.Media {
		if x.Type == "audio" && x.Port != 0 {
			m = x
			break
		}
	}
	if m == nil {
		return nil, &sdpProblem{488, 531000, "no media acceptable: no audio stream"}
	}
	if !m.Secure() {
		return nil, &sdpProblem{488, 531000, "SrtpEncryptionRequired: " + m.Proto + " is not accepted"}
	}
	if !m.Addr.IsValid() || m.Addr.IsUnspecified() {
		return nil, &sdpProblem{488, 531052, "Cannot negotiate a new modality with blackhole media (c=0.0.0.0)"}
	}
	var key *msdp.Crypto
	for i := range m.Crypto {
		if m.Crypto[i].Suite == "AES_CM_128_HMAC_SHA1_80" && len(m.Crypto[i].Key) == 30 {
			key = &m.Crypto[i]
			break
		}
	}
	if key == nil {
		return nil, &sdpProblem{488, 531000, "SrtpEncryptionRequired: no AES_CM_128_HMAC_SHA1_80 key"}
	}
	n := &negotiated{remote: netip.AddrPortFrom(m.Addr, uint16(m.Port)), key: *key, dir: m.Direction}
	found := false
	for _, c := range m.Codecs {
		switch {
		case !found && (c.Is("PCMU") || c.Is("PCMA") || c.Is("G722") || c.Is("G729") || c.Is("SILK")):
			n.codec, found = c, true
		case c.Is("telephone-event") && n.dtmf == nil && c.ClockRate == 8000:
			cc := c
			n.dtmf = &cc
		}
	}
	if !found {
		return nil, &sdpProblem{488, 531000, "no media acceptable: no common codec"}
	}
	return n, nil
}
