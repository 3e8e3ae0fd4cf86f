// Package sdp reads and rewrites the session descriptions (RFC 8866) that
// the media relay exchanges with its peers.
//
// Real SIP equipment writes SDP in many slightly wrong ways: lines in an
// unusual order, a missing t= line, bare LF line ends, attributes nobody
// documented. The parser here is therefore line based and lenient: it
// extracts what a relay needs (addresses, ports, transport, codecs,
// direction, SDES keys, RTCP placement, ptime) and remembers every line, so
// that a rewrite for the other call leg can keep the lines it does not
// understand byte for byte. It never panics on any input; a body that
// cannot describe a media session yields an error.
package sdp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits that bound the work done on a peer's body.
const (
	MaxSize  = 64 << 10 // bytes of one body
	MaxMedia = 32       // m= sections
	MaxLines = 2048     // lines in one body
)

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("malformed SDP")

// Direction is the media direction attribute of a stream, as declared by
// the author of the SDP.
type Direction uint8

// The four directions of RFC 3264. SendRecv is the default when no
// attribute is present.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

var directionNames = [...]string{"sendrecv", "sendonly", "recvonly", "inactive"}

// String returns the attribute name, e.g. "sendonly".
func (d Direction) String() string {
	if int(d) < len(directionNames) {
		return directionNames[d]
	}
	return "sendrecv"
}

// Sends reports whether the author of the SDP will send media.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether the author of the SDP wants to receive media.
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// Reverse swaps sendonly and recvonly: the direction seen from the other end.
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

// Make returns the direction with the given send and receive abilities.
func Make(send, recv bool) Direction {
	switch {
	case send && recv:
		return SendRecv
	case send:
		return SendOnly
	case recv:
		return RecvOnly
	}
	return Inactive
}

// ParseDirection maps an attribute name to a Direction.
func ParseDirection(s string) (Direction, bool) {
	for i, n := range directionNames {
		if s == n {
			return Direction(i), true
		}
	}
	return SendRecv, false
}

// Codec is one payload format of an RTP stream.
type Codec struct {
	PT        uint8  // payload type number
	Name      string // encoding name as written, e.g. "PCMU", "telephone-event"
	ClockRate uint32 // RTP clock rate in Hz
	Channels  int    // 0 when not given
	Fmtp      string // format parameters (the text after "a=fmtp:<pt> "), "" when none
}

// Key identifies the codec independently of its payload type number:
// lower-case name and clock rate, e.g. "pcmu/8000".
func (c Codec) Key() string {
	return strings.ToLower(c.Name) + "/" + strconv.FormatUint(uint64(c.ClockRate), 10)
}

// Is reports whether the codec has the given encoding name (case-insensitive).
func (c Codec) Is(name string) bool { return strings.EqualFold(c.Name, name) }

// String renders the codec as in an rtpmap attribute, e.g. "0 PCMU/8000".
func (c Codec) String() string {
	s := strconv.Itoa(int(c.PT)) + " " + c.Name + "/" + strconv.FormatUint(uint64(c.ClockRate), 10)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(c.Channels)
	}
	return s
}

// staticCodecs are the RFC 3551 static payload types a relay may meet
// without an rtpmap line.
var staticCodecs = map[uint8]Codec{
	0:  {PT: 0, Name: "PCMU", ClockRate: 8000},
	3:  {PT: 3, Name: "GSM", ClockRate: 8000},
	4:  {PT: 4, Name: "G723", ClockRate: 8000},
	8:  {PT: 8, Name: "PCMA", ClockRate: 8000},
	9:  {PT: 9, Name: "G722", ClockRate: 8000},
	13: {PT: 13, Name: "CN", ClockRate: 8000},
	18: {PT: 18, Name: "G729", ClockRate: 8000},
}

// StaticCodec returns the RFC 3551 codec of a static payload type.
func StaticCodec(pt uint8) (Codec, bool) {
	c, ok := staticCodecs[pt]
	return c, ok
}

// Origin is the o= line.
type Origin struct {
	Username  string
	SessionID string
	Version   uint64
	NetType   string // "IN"
	AddrType  string // "IP4" or "IP6"
	Address   string
}

// String renders the value of an o= line (without "o=").
func (o Origin) String() string {
	return fmt.Sprintf("%s %s %d %s %s %s", orDash(o.Username), orDash(o.SessionID), o.Version,
		orDefault(o.NetType, "IN"), orDefault(o.AddrType, "IP4"), orDefault(o.Address, "0.0.0.0"))
}

func orDash(s string) string { return orDefault(s, "-") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Media is one m= section.
type Media struct {
	Type      string   // "audio", "video", ...
	Port      int      // 0 for a disabled stream
	PortCount int      // the "/n" of "port/n"; 0 when absent
	Proto     string   // e.g. "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVP"
	Formats   []string // the format tokens of the m= line, in order

	// Addr is the connection address for this stream: the media-level c=
	// line, else the session-level one. It is the zero Addr when neither
	// holds an IP address (absent, or a host name).
	Addr netip.Addr

	Codecs    []Codec   // one per numeric format with a known mapping, in m= order
	Direction Direction // media-level attribute, else the session-level one
	Crypto    []Crypto  // a=crypto lines that could be read, in order
	RTCPPort  int       // from a=rtcp, 0 when absent
	RTCPAddr  netip.Addr
	RTCPMux   bool // a=rtcp-mux present
	Ptime     int  // a=ptime in ms, 0 when absent

	first, end int // line range in Session.lines: the m= line and one past the last
}

// Secure reports whether the transport is a secure RTP profile (SAVP/SAVPF).
func (m *Media) Secure() bool { return strings.Contains(strings.ToUpper(m.Proto), "SAVP") }

// RTP reports whether the transport carries RTP (as opposed to e.g. T.38 over UDPTL).
func (m *Media) RTP() bool { return strings.Contains(strings.ToUpper(m.Proto), "RTP/") }

// Codec returns the codec of payload type pt.
func (m *Media) Codec(pt uint8) (Codec, bool) {
	for _, c := range m.Codecs {
		if c.PT == pt {
			return c, true
		}
	}
	return Codec{}, false
}

// TelephoneEvent returns the RFC 4733 telephone-event format, preferring
// one at 8000 Hz.
func (m *Media) TelephoneEvent() (Codec, bool) {
	var found Codec
	ok := false
	for _, c := range m.Codecs {
		if c.Is("telephone-event") {
			if c.ClockRate == 8000 {
				return c, true
			}
			if !ok {
				found, ok = c, true
			}
		}
	}
	return found, ok
}

// Session is a parsed SDP body.
type Session struct {
	Origin    Origin
	Name      string     // s=
	Addr      netip.Addr // session-level c= (zero when absent or not an IP)
	Direction Direction  // session-level direction attribute
	Media     []*Media

	lines   []string // every line, without line ends
	sessEnd int      // index of the first m= line
}

// Parse reads an SDP body. It accepts CRLF or LF line ends, lines in any
// order and unknown lines; it fails only when the body is too large or a
// line the relay depends on (v=, m=) is unusable.
func Parse(body []byte) (*Session, error) {
	if len(body) > MaxSize {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMalformed, len(body), MaxSize)
	}
	text := string(body)
	s := &Session{}
	for len(text) > 0 {
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(s.lines) >= MaxLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrMalformed, MaxLines)
		}
		s.lines = append(s.lines, line)
	}
	if len(s.lines) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if !strings.HasPrefix(s.lines[0], "v=") {
		// Tolerate junk before v=, but there must be one.
		found := false
		for _, l := range s.lines {
			if strings.HasPrefix(l, "v=") {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: no v= line", ErrMalformed)
		}
	}

	s.sessEnd = len(s.lines)
	var sessDir *Direction
	var cur *Media
	var curDir *Direction
	var curConn bool
	finish := func(end int) {
		if cur == nil {
			return
		}
		cur.end = end
		switch {
		case curDir != nil:
			cur.Direction = *curDir
		case sessDir != nil:
			cur.Direction = *sessDir
		}
		if !curConn {
			cur.Addr = s.Addr
		}
	}
	for i, line := range s.lines {
		if len(line) < 2 || line[1] != '=' {
			continue // not an SDP line: kept in place, interpreted as nothing
		}
		key, val := line[0], line[2:]
		if key == 'm' {
			finish(i)
			if len(s.Media) >= MaxMedia {
				return nil, fmt.Errorf("%w: more than %d m= lines", ErrMalformed, MaxMedia)
			}
			m, err := parseMediaLine(val)
			if err != nil {
				return nil, err
			}
			m.first = i
			if s.sessEnd == len(s.lines) {
				s.sessEnd = i
			}
			s.Media = append(s.Media, m)
			cur, curDir, curConn = m, nil, false
			continue
		}
		switch key {
		case 'o':
			if cur == nil {
				s.Origin = parseOrigin(val)
			}
		case 's':
			if cur == nil {
				s.Name = val
			}
		case 'c':
			addr := parseConnection(val)
			if cur == nil {
				s.Addr = addr
			} else {
				cur.Addr, curConn = addr, true
			}
		case 'a':
			name, value, _ := strings.Cut(val, ":")
			if d, ok := ParseDirection(name); ok {
				if cur == nil {
					sessDir = &d
				} else {
					curDir = &d
				}
				continue
			}
			if cur != nil {
				cur.attribute(name, value)
			}
		}
	}
	finish(len(s.lines))
	if sessDir != nil {
		s.Direction = *sessDir
	}
	for _, m := range s.Media {
		m.resolveCodecs(s.lines[m.first:m.end])
	}
	return s, nil
}

func parseMediaLine(val string) (*Media, error) {
	f := strings.Fields(val)
	if len(f) < 3 {
		return nil, fmt.Errorf("%w: m= line %q has fewer than 3 fields", ErrMalformed, clip(val))
	}
	m := &Media{Type: f[0], Proto: f[2], Formats: append([]string(nil), f[3:]...)}
	port, count, hasCount := strings.Cut(f[1], "/")
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("%w: m= line %q has a bad port", ErrMalformed, clip(val))
	}
	m.Port = p
	if hasCount {
		if n, err := strconv.Atoi(count); err == nil && n > 0 && n < 65536 {
			m.PortCount = n
		}
	}
	return m, nil
}

func parseOrigin(val string) Origin {
	f := strings.Fields(val)
	var o Origin
	get := func(i int) string {
		if i < len(f) {
			return f[i]
		}
		return ""
	}
	o.Username, o.SessionID = get(0), get(1)
	o.Version, _ = strconv.ParseUint(get(2), 10, 64)
	o.NetType, o.AddrType, o.Address = get(3), get(4), get(5)
	return o
}

// parseConnection reads "IN IP4 1.2.3.4[/ttl]" leniently.
func parseConnection(val string) netip.Addr {
	f := strings.Fields(val)
	if len(f) < 3 {
		return netip.Addr{}
	}
	host, _, _ := strings.Cut(f[2], "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func (m *Media) attribute(name, value string) {
	switch strings.ToLower(name) {
	case "crypto":
		if c, err := ParseCrypto(value); err == nil {
			m.Crypto = append(m.Crypto, c)
		}
	case "rtcp":
		f := strings.Fields(value)
		if len(f) > 0 {
			if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p < 65536 {
				m.RTCPPort = p
				if len(f) >= 4 {
					if a, err := netip.ParseAddr(f[3]); err == nil {
						m.RTCPAddr = a.Unmap()
					}
				}
			}
		}
	case "rtcp-mux":
		m.RTCPMux = true
	case "ptime":
		if p, err := strconv.Atoi(strings.TrimSpace(value)); err == nil && p > 0 && p < 10000 {
			m.Ptime = p
		}
	}
}

// resolveCodecs builds Codecs from the m= formats, rtpmap and fmtp lines.
func (m *Media) resolveCodecs(lines []string) {
	rtpmap := map[uint8]Codec{}
	fmtp := map[uint8]string{}
	for _, l := range lines {
		if !strings.HasPrefix(l, "a=") {
			continue
		}
		name, value, ok := strings.Cut(l[2:], ":")
		if !ok {
			continue
		}
		switch strings.ToLower(name) {
		case "rtpmap":
			ptText, enc, _ := strings.Cut(strings.TrimSpace(value), " ")
			pt, err := parsePT(ptText)
			if err != nil {
				continue
			}
			parts := strings.Split(strings.TrimSpace(enc), "/")
			if len(parts) < 2 || parts[0] == "" {
				continue
			}
			rate, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil || rate == 0 {
				continue
			}
			c := Codec{PT: pt, Name: parts[0], ClockRate: uint32(rate)}
			if len(parts) > 2 {
				if ch, err := strconv.Atoi(parts[2]); err == nil && ch > 0 && ch < 256 {
					c.Channels = ch
				}
			}
			if _, dup := rtpmap[pt]; !dup {
				rtpmap[pt] = c
			}
		case "fmtp":
			ptText, params, _ := strings.Cut(strings.TrimSpace(value), " ")
			if pt, err := parsePT(ptText); err == nil {
				if _, dup := fmtp[pt]; !dup {
					fmtp[pt] = strings.TrimSpace(params)
				}
			}
		}
	}
	seen := map[uint8]bool{}
	for _, f := range m.Formats {
		pt, err := parsePT(f)
		if err != nil || seen[pt] {
			continue
		}
		seen[pt] = true
		c, ok := rtpmap[pt]
		if !ok {
			c, ok = staticCodecs[pt]
		}
		if !ok {
			continue
		}
		c.Fmtp = fmtp[pt]
		m.Codecs = append(m.Codecs, c)
	}
}

func parsePT(s string) (uint8, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 127 {
		return 0, fmt.Errorf("bad payload type %q", clip(s))
	}
	return uint8(n), nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
