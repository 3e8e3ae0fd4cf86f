package sipx

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams/internal/testpeer/dnsserver"
)

func TestResolve(t *testing.T) {
	dns, err := dnsserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.SetSRV("_sip._udp.pbx.test",
		dnsserver.SRV{Priority: 20, Weight: 1, Port: 5070, Target: "b.pbx.test"},
		dnsserver.SRV{Priority: 10, Weight: 1, Port: 5080, Target: "a.pbx.test"},
	)
	dns.SetSRV("_sips._tcp.pbx.test", dnsserver.SRV{Priority: 1, Port: 5061, Target: "a.pbx.test"})
	dns.SetA("a.pbx.test", netip.MustParseAddr("127.0.0.2"))
	dns.SetA("b.pbx.test", netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("::1"))
	dns.SetA("pbx.test", netip.MustParseAddr("127.0.0.9"))
	dns.SetA("plain.test", netip.MustParseAddr("127.0.0.4"))
	dns.SetFail("broken.test", true)
	r := dns.Resolver()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	str := func(ts []Target) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.String()+"/"+t.Name)
		}
		return strings.Join(s, " ")
	}
	cases := []struct {
		host      string
		port      uint16
		transport string
		want      string
		wantErr   string
	}{
		{"pbx.test", 0, "udp", "udp:127.0.0.2:5080/pbx.test udp:127.0.0.3:5070/pbx.test udp:[::1]:5070/pbx.test", ""},
		{"pbx.test", 0, "tls", "tls:127.0.0.2:5061/pbx.test", ""},
		{"pbx.test", 0, "tcp", "tcp:127.0.0.9:5060/pbx.test", ""}, // no SRV: A on the default port
		{"pbx.test", 5099, "udp", "udp:127.0.0.9:5099/pbx.test", ""},
		{"plain.test", 0, "tls", "tls:127.0.0.4:5061/plain.test", ""},
		{"127.0.0.1", 0, "udp", "udp:127.0.0.1:5060/127.0.0.1", ""},
		{"::1", 7000, "tcp", "tcp:[::1]:7000/::1", ""},
		{"nowhere.test", 0, "udp", "", "DNS lookup of nowhere.test failed: no such host"},
		{"broken.test", 0, "udp", "", "DNS lookup of broken.test failed"},
	}
	for _, tc := range cases {
		got, err := Resolve(ctx, r, tc.host, tc.port, tc.transport)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want %q", tc.host, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s/%s: %v", tc.host, tc.transport, err)
			continue
		}
		if str(got) != tc.want {
			t.Errorf("%s/%s: got %s, want %s", tc.host, tc.transport, str(got), tc.want)
		}
	}
	if dns.Queries("SRV", "_sip._udp.pbx.test") == 0 {
		t.Error("no SRV query reached the DNS server")
	}
}

func TestSplitHostPort(t *testing.T) {
	ok := map[string]struct {
		h string
		p uint16
	}{
		"pbx.example":      {"pbx.example", 0},
		"pbx.example:5070": {"pbx.example", 5070},
		"10.0.0.1:5060":    {"10.0.0.1", 5060},
		"[2001:db8::1]:5":  {"2001:db8::1", 5},
		"[2001:db8::1]":    {"2001:db8::1", 0},
		"2001:db8::1":      {"2001:db8::1", 0},
	}
	for in, want := range ok {
		h, p, err := SplitHostPort(in)
		if err != nil || h != want.h || p != want.p {
			t.Errorf("SplitHostPort(%q) = %q %d %v", in, h, p, err)
		}
	}
	for _, in := range []string{"", ":5060", "pbx:0", "pbx:70000", "pbx:x", "sip:pbx", "a b", "[::1", "[zz]:1", "pbx;transport=tcp"} {
		if _, _, err := SplitHostPort(in); err == nil {
			t.Errorf("SplitHostPort(%q) accepted", in)
		}
	}
}
