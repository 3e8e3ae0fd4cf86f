// Package dnsserver is a tiny authoritative DNS server on loopback UDP for
// tests: it answers A, AAAA and SRV questions from tables the test fills,
// NXDOMAIN for unknown names and SERVFAIL for names marked as failing, so
// code using a real *net.Resolver can be tested against DNS behaviour
// (RFC 3263 SRV ordering, failover, lookup failures) without the network.
package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// SRV is one SRV record.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Server is a running DNS server.
type Server struct {
	conn *net.UDPConn
	mu   sync.Mutex
	a    map[string][]netip.Addr
	srv  map[string][]SRV
	fail map[string]bool
	// Queries counts questions received, by "TYPE name".
	queries map[string]int
	done    chan struct{}
}

// Start listens on 127.0.0.1 on a free UDP port.
func Start() (*Server, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s := &Server{conn: c, a: map[string][]netip.Addr{}, srv: map[string][]SRV{},
		fail: map[string]bool{}, queries: map[string]int{}, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Close stops the server.
func (s *Server) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// Resolver returns a pure-Go *net.Resolver that asks only this server.
func (s *Server) Resolver() *net.Resolver {
	addr := s.Addr()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func canon(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// SetA sets the A/AAAA addresses of name. A name "*.zone" answers for
// every name one or more labels under zone that has no records of its own.
func (s *Server) SetA(name string, addrs ...netip.Addr) {
	s.mu.Lock()
	s.a[canon(name)] = addrs
	s.mu.Unlock()
}

// SetSRV sets the SRV records of name (e.g. "_sip._udp.pbx.test").
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	s.srv[canon(name)] = recs
	s.mu.Unlock()
}

// SetFail makes every question about name answer SERVFAIL.
func (s *Server) SetFail(name string, fail bool) {
	s.mu.Lock()
	s.fail[canon(name)] = fail
	s.mu.Unlock()
}

// Queries returns how many questions of type ("A", "AAAA", "SRV") about
// name were received.
func (s *Server) Queries(typ, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[typ+" "+canon(name)]
}

const (
	typeA    = 1
	typeAAAA = 28
	typeSRV  = 33
)

// wildcard finds the closest "*.zone" record above name. Called with s.mu held.
func (s *Server) wildcard(name string) ([]netip.Addr, bool) {
	for rest := name; ; {
		_, after, ok := strings.Cut(rest, ".")
		if !ok {
			return nil, false
		}
		if a, ok := s.a["*."+after]; ok {
			return a, true
		}
		rest = after
	}
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		resp, err := s.answer(buf[:n])
		if err != nil {
			continue
		}
		_, _ = s.conn.WriteToUDP(resp, from)
	}
}

func (s *Server) answer(q []byte) ([]byte, error) {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil, errors.New("need exactly one question")
	}
	name, off, err := readName(q, 12)
	if err != nil || off+4 > len(q) {
		return nil, errors.New("bad question")
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	question := q[12 : off+4]
	name = canon(name)

	s.mu.Lock()
	tname := map[uint16]string{typeA: "A", typeAAAA: "AAAA", typeSRV: "SRV"}[qtype]
	if tname == "" {
		tname = "OTHER"
	}
	s.queries[tname+" "+name]++
	fail := s.fail[name]
	addrs, hasA := s.a[name]
	if !hasA {
		addrs, hasA = s.wildcard(name)
	}
	srvs, hasSRV := s.srv[name]
	s.mu.Unlock()

	rcode := uint16(0)
	var answers [][]byte
	switch {
	case fail:
		rcode = 2 // SERVFAIL
	case !hasA && !hasSRV:
		rcode = 3 // NXDOMAIN
	case qtype == typeA || qtype == typeAAAA:
		for _, a := range addrs {
			if qtype == typeA && a.Is4() {
				answers = append(answers, rr(typeA, a.AsSlice()))
			}
			if qtype == typeAAAA && a.Is6() && !a.Is4In6() {
				answers = append(answers, rr(typeAAAA, a.AsSlice()))
			}
		}
	case qtype == typeSRV:
		for _, r := range srvs {
			d := make([]byte, 6)
			binary.BigEndian.PutUint16(d[0:], r.Priority)
			binary.BigEndian.PutUint16(d[2:], r.Weight)
			binary.BigEndian.PutUint16(d[4:], r.Port)
			d = appendName(d, r.Target)
			answers = append(answers, rr(typeSRV, d))
		}
	}

	out := make([]byte, 12, 512)
	copy(out, q[:2])
	flags := uint16(0x8000 | 0x0400 | 0x0080) // QR, AA, RA
	flags |= binary.BigEndian.Uint16(q[2:]) & 0x0100
	flags |= rcode
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], uint16(len(answers)))
	out = append(out, question...)
	for _, a := range answers {
		out = append(out, a...)
	}
	return out, nil
}

// rr builds an answer record whose owner is the question name (pointer to
// offset 12), class IN, TTL 30 s.
func rr(typ uint16, data []byte) []byte {
	b := []byte{0xC0, 12, 0, 0, 0, 1, 0, 0, 0, 30, 0, 0}
	binary.BigEndian.PutUint16(b[2:], typ)
	binary.BigEndian.PutUint16(b[10:], uint16(len(data)))
	return append(b, data...)
}

func appendName(b []byte, name string) []byte {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func readName(b []byte, off int) (string, int, error) {
	var labels []string
	for {
		if off >= len(b) {
			return "", 0, errors.New("short name")
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l&0xC0 != 0 || off+l > len(b) {
			return "", 0, errors.New("unsupported name")
		}
		labels = append(labels, string(b[off:off+l]))
		off += l
	}
	return strings.Join(labels, "."), off, nil
}
