package sdp

import (
	"net/netip"
	"strconv"
	"strings"
)

// Rewrite says how to derive the SDP for one peer from the SDP another
// peer sent: the relay's origin, address, ports, transport, keys, codec
// list and direction replace the source's, and every other line of the
// source is kept byte for byte.
type Rewrite struct {
	Origin Origin
	Addr   netip.Addr     // written as the session-level c= line
	Media  []MediaRewrite // one per m= line to write, in order
}

// MediaRewrite describes one m= section of a rewritten SDP. Entry i
// rewrites the source's m= section i; entries past the source's sections
// produce a bare m= line (only sensible for disabled streams).
type MediaRewrite struct {
	Port  int    // 0 disables the stream (written without attributes)
	Type  string // "" keeps the source's media type
	Proto string // "" keeps the source's transport

	// Codecs become the format list with one rtpmap line each and an fmtp
	// line where Fmtp is set. When nil, Formats (or else the source's
	// formats) are written as they are: for disabled streams.
	Codecs  []Codec
	Formats []string

	Direction Direction
	Crypto    []Crypto // a=crypto lines to write
	RTCPMux   bool     // write a=rtcp-mux
	RTCPPort  int      // write a=rtcp:<port> when not 0
}

// Attributes the relay owns: never copied from a peer's body, because the
// relay writes its own or because they describe a transport the relay does
// not offer (ICE, DTLS, BUNDLE).
var ownedAttributes = map[string]bool{
	"rtpmap": true, "fmtp": true, "crypto": true, "rtcp": true, "rtcp-mux": true,
	"sendrecv": true, "sendonly": true, "recvonly": true, "inactive": true,
	"ice-ufrag": true, "ice-pwd": true, "ice-lite": true, "ice-options": true, "ice-mismatch": true,
	"candidate": true, "remote-candidates": true, "end-of-candidates": true,
	"fingerprint": true, "setup": true, "connection": true, "tls-id": true,
	"group": true, "rtcp-mux-only": true,
}

func attrName(line string) string {
	name, _, _ := strings.Cut(line[2:], ":")
	return strings.ToLower(strings.TrimSpace(name))
}

// Rewrite renders a new SDP body from s as r says. Lines end in CRLF.
func (s *Session) Rewrite(r Rewrite) []byte {
	var b strings.Builder
	b.Grow(1024)
	line := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteString("\r\n")
	}
	addrType := "IP4"
	if r.Addr.Is6() {
		addrType = "IP6"
	}
	origin := r.Origin
	if origin.Address == "" {
		origin.Address, origin.AddrType = r.Addr.String(), addrType
	}

	// Session section: RFC 8866 fixes the order v o s i u e p c b t r z a;
	// peers do not always follow it, so group the kept lines by type.
	groups := map[byte][]string{}
	for _, l := range s.lines[:s.sessEnd] {
		if len(l) < 2 || l[1] != '=' {
			continue
		}
		switch k := l[0]; k {
		case 'v', 'o', 's', 'c', 'k', 'm':
		case 'a':
			if !ownedAttributes[attrName(l)] {
				groups[k] = append(groups[k], l)
			}
		default:
			groups[k] = append(groups[k], l)
		}
	}
	line("v=0")
	line("o=", origin.String())
	if strings.TrimSpace(s.Name) == "" {
		line("s=-")
	} else {
		line("s=", s.Name)
	}
	for _, k := range []byte("iuep") {
		for _, l := range groups[k] {
			line(l)
		}
	}
	line("c=IN ", addrType, " ", r.Addr.String())
	for _, l := range groups['b'] {
		line(l)
	}
	if len(groups['t']) == 0 {
		line("t=0 0")
	}
	for _, k := range []byte("trz") {
		for _, l := range groups[k] {
			line(l)
		}
	}
	for k := byte('a'); k <= 'z'; k++ {
		if strings.IndexByte("iuepbtrza", k) < 0 {
			for _, l := range groups[k] {
				line(l)
			}
		}
	}
	for _, l := range groups['a'] {
		line(l)
	}

	for i, mr := range r.Media {
		var src *Media
		if i < len(s.Media) {
			src = s.Media[i]
		}
		s.writeMedia(line, src, mr)
	}
	return []byte(b.String())
}

func (s *Session) writeMedia(line func(...string), src *Media, mr MediaRewrite) {
	typ, proto := mr.Type, mr.Proto
	var formats []string
	if src != nil {
		if typ == "" {
			typ = src.Type
		}
		if proto == "" {
			proto = src.Proto
		}
		formats = src.Formats
	}
	if mr.Formats != nil {
		formats = mr.Formats
	}
	if typ == "" {
		typ = "audio"
	}
	if proto == "" {
		proto = "RTP/AVP"
	}
	if mr.Codecs != nil {
		formats = make([]string, len(mr.Codecs))
		for i, c := range mr.Codecs {
			formats[i] = strconv.Itoa(int(c.PT))
		}
	}
	if len(formats) == 0 {
		formats = []string{"0"}
	}
	line("m=", typ, " ", strconv.Itoa(mr.Port), " ", proto, " ", strings.Join(formats, " "))
	if mr.Port == 0 {
		return
	}
	kept := map[string]bool{}
	for _, c := range mr.Codecs {
		kept[strconv.Itoa(int(c.PT))] = true
	}
	var attrs []string
	if src != nil {
		for _, l := range s.lines[src.first+1 : src.end] {
			if len(l) < 2 || l[1] != '=' {
				continue
			}
			switch l[0] {
			case 'i', 'b':
				line(l)
			case 'a':
				name := attrName(l)
				if ownedAttributes[name] {
					continue
				}
				if name == "rtcp-fb" {
					_, v, _ := strings.Cut(l, ":")
					pt, _, _ := strings.Cut(strings.TrimSpace(v), " ")
					if pt != "*" && !kept[pt] {
						continue
					}
				}
				attrs = append(attrs, l)
			}
		}
	}
	for _, c := range mr.Codecs {
		line("a=rtpmap:", c.String())
		if c.Fmtp != "" {
			line("a=fmtp:", strconv.Itoa(int(c.PT)), " ", c.Fmtp)
		}
	}
	for _, l := range attrs {
		line(l)
	}
	if mr.RTCPPort != 0 {
		line("a=rtcp:", strconv.Itoa(mr.RTCPPort))
	}
	if mr.RTCPMux {
		line("a=rtcp-mux")
	}
	for _, c := range mr.Crypto {
		line("a=crypto:", c.String())
	}
	line("a=", mr.Direction.String())
}
