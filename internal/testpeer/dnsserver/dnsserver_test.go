package dnsserver

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestWildcardAndExactRecords(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetA("*.sbc.test", netip.MustParseAddr("127.0.0.1"))
	s.SetA("special.sbc.test", netip.MustParseAddr("127.0.0.9"))
	r := s.Resolver()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, want := range map[string]string{"contoso.sbc.test": "127.0.0.1", "a.b.sbc.test": "127.0.0.1", "special.sbc.test": "127.0.0.9"} {
		got, err := r.LookupNetIP(ctx, "ip4", name)
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("%s: %v %v, want %s", name, got, err, want)
		}
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "sbc.test"); err == nil {
		t.Error("the zone itself matched its wildcard")
	}
}
