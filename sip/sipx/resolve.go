package sipx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolver is the part of *net.Resolver the SIP locator uses; tests inject
// a *net.Resolver pointed at a loopback DNS server.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Target is one place to send a request to: a transport and an address.
type Target struct {
	Transport string // "udp", "tcp" or "tls"
	Addr      netip.AddrPort
	// Name is the host name the target was found under (the SIP domain or
	// proxy the user configured), used to check a TLS certificate.
	Name string
}

func (t Target) String() string { return t.Transport + ":" + t.Addr.String() }

// DefaultPort is the SIP default port of a transport.
func DefaultPort(transport string) uint16 {
	if transport == "tls" {
		return 5061
	}
	return 5060
}

// SplitHostPort splits "host", "host:port", "[v6]" or "[v6]:port"; port is
// 0 when absent. It rejects empty hosts, bad ports and URI-ish input.
func SplitHostPort(s string) (host string, port uint16, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, errors.New("empty host")
	}
	if strings.ContainsAny(s, " \t;,<>@/\"") {
		return "", 0, fmt.Errorf("%q is not a host or host:port", s)
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%q: missing ]", s)
		}
		host = s[1:end]
		rest := s[end+1:]
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, fmt.Errorf("%q: bad IPv6 address", s)
		}
		if rest == "" {
			return host, 0, nil
		}
		if rest[0] != ':' {
			return "", 0, fmt.Errorf("%q is not a host or host:port", s)
		}
		p, err := parsePort(rest[1:])
		return host, p, err
	}
	if strings.Count(s, ":") > 1 { // bare IPv6
		if _, err := netip.ParseAddr(s); err != nil {
			return "", 0, fmt.Errorf("%q is not a host or host:port", s)
		}
		return s, 0, nil
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		p, err := parsePort(s[i+1:])
		if err != nil {
			return "", 0, fmt.Errorf("%q: %w", s, err)
		}
		host = s[:i]
		if host == "" {
			return "", 0, errors.New("empty host")
		}
		return host, p, nil
	}
	return s, 0, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// Resolve finds the ordered targets for a SIP server per RFC 3263 §4. The
// transport is always known here (it is configured per PBX), which RFC 3263
// §4.1 treats like an explicit transport parameter: NAPTR is skipped. Then:
// an IP literal is used as is; with an explicit port only A/AAAA records
// are looked up; otherwise SRV (_sip._udp, _sip._tcp or _sips._tcp) gives
// the ordered servers and ports, falling back to A/AAAA on the default port
// when there are no SRV records. Addresses of one name keep DNS order, IPv4
// first.
func Resolve(ctx context.Context, r Resolver, host string, port uint16, transport string) ([]Target, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if port == 0 {
			port = DefaultPort(transport)
		}
		return []Target{{Transport: transport, Addr: netip.AddrPortFrom(ip.Unmap(), port), Name: host}}, nil
	}
	if port != 0 {
		return lookupHost(ctx, r, host, host, port, transport, nil)
	}
	service, proto := "sip", transport
	if transport == "tls" {
		service, proto = "sips", "tcp"
	}
	_, srvs, srvErr := r.LookupSRV(ctx, service, proto, host)
	if srvErr == nil && len(srvs) > 0 {
		var out []Target
		var lastErr error
		for _, s := range srvs {
			name := strings.TrimSuffix(s.Target, ".")
			if name == "" || s.Port == 0 {
				continue // "." target: service decidedly not available
			}
			out, lastErr = lookupHost(ctx, r, name, host, s.Port, transport, out)
		}
		if len(out) > 0 {
			return out, nil
		}
		if lastErr != nil {
			return nil, dnsError(host, lastErr)
		}
		return nil, fmt.Errorf("DNS: SRV records of %s name no usable server", host)
	}
	if srvErr != nil && isTemporary(srvErr) {
		return nil, dnsError(host, srvErr)
	}
	return lookupHost(ctx, r, host, host, DefaultPort(transport), transport, nil)
}

func lookupHost(ctx context.Context, r Resolver, lookup, name string, port uint16, transport string, out []Target) ([]Target, error) {
	ips, err := r.LookupNetIP(ctx, "ip", lookup)
	if err != nil {
		return out, dnsError(lookup, err)
	}
	if len(ips) == 0 {
		return out, fmt.Errorf("DNS lookup of %s returned no addresses", lookup)
	}
	n := len(out)
	for _, ip := range ips { // IPv4 first, DNS order kept within a family
		if ip.Unmap().Is4() {
			out = append(out, Target{Transport: transport, Addr: netip.AddrPortFrom(ip.Unmap(), port), Name: name})
		}
	}
	for _, ip := range ips {
		if !ip.Unmap().Is4() {
			out = append(out, Target{Transport: transport, Addr: netip.AddrPortFrom(ip, port), Name: name})
		}
	}
	if len(out) == n {
		return out, fmt.Errorf("DNS lookup of %s returned no addresses", lookup)
	}
	return out, nil
}

func isTemporary(err error) bool {
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTimeout || (de.IsTemporary && !de.IsNotFound)
	}
	return false
}

// dnsError words a resolver failure for a person.
func dnsError(host string, err error) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			return fmt.Errorf("DNS lookup of %s failed: no such host", host)
		case de.IsTimeout:
			return fmt.Errorf("DNS lookup of %s failed: timeout", host)
		}
		return fmt.Errorf("DNS lookup of %s failed: %s", host, de.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("DNS lookup of %s failed: timeout", host)
	}
	return fmt.Errorf("DNS lookup of %s failed: %v", host, err)
}
