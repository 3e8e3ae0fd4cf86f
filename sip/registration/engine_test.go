package registration

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

func TestSetValidates(t *testing.T) {
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	good := Account{UserID: "v1", Domain: "pbx.example.com", Username: "100", Password: "p", ContactUser: "cv1"}
	bad := []struct {
		field string
		mod   func(*Account)
	}{
		{"user_id", func(a *Account) { a.UserID = "" }},
		{"domain", func(a *Account) { a.Domain = "sip:pbx" }},
		{"outbound_proxy", func(a *Account) { a.OutboundProxy = "a b:5060" }},
		{"transport", func(a *Account) { a.Transport = "sctp" }},
		{"transport", func(a *Account) { a.Transport = "tcp" }}, // the stack has no TCP listener
		{"sip_username", func(a *Account) { a.Username = "100@evil" }},
		{"sip_username", func(a *Account) { a.Username = "" }},
		{"auth_username", func(a *Account) { a.AuthUsername = "x\"y" }},
		{"password", func(a *Account) { a.Password = "a\r\nVia: x" }},
		{"register_expiry", func(a *Account) { a.Expiry = -1 }},
		{"contact_user", func(a *Account) { a.ContactUser = "c;x=1" }},
	}
	for _, tc := range bad {
		a := good
		tc.mod(&a)
		err := e.Set(a)
		var pe *pbx2teams.Error
		if !errors.As(err, &pe) || pe.Code != pbx2teams.EInvalid || len(pe.Details) == 0 || pe.Details[0].Field != tc.field {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	if s := e.Stats(); s.Registrations != 0 {
		t.Errorf("invalid accounts were added: %+v", s)
	}
	if err := e.Set(good); err != nil {
		t.Fatal(err)
	}
	if s, ok := e.State("v1"); !ok || s.State != pbx2teams.RegRegistering {
		t.Errorf("state %+v %v", s, ok)
	}
}

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	var all []*reg
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		x := &reg{due: r.Int64N(1000), heapIdx: -1}
		all = append(all, x)
		h.push(x)
	}
	for i := 0; i < 100; i++ { // remove some, move some
		h.remove(all[i])
		all[i+100].due = r.Int64N(1000)
		h.fix(all[i+100])
	}
	var got []int64
	for len(h) > 0 {
		got = append(got, h.pop().due)
	}
	if len(got) != 400 || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }) {
		t.Fatalf("heap order broken: %d items", len(got))
	}
	for _, x := range all {
		if x.heapIdx != -1 {
			t.Fatal("heap index not cleared")
		}
	}
}

func TestBackoffAndRefresh(t *testing.T) {
	e := &Engine{cfg: Config{BackoffMin: 30 * time.Second, BackoffMax: 30 * time.Minute}}
	for f := uint8(1); f < 20; f++ {
		base := min(30*time.Second<<(f-1), 30*time.Minute)
		if f > 7 {
			base = 30 * time.Minute
		}
		for i := 0; i < 50; i++ {
			d := e.backoff(f)
			if d < base/2 || d > base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", f, d, base/2, base)
			}
		}
	}
	for _, g := range []uint32{1, 2, 60, 3600} {
		for i := 0; i < 50; i++ {
			d := time.Duration(refreshDelay(g))
			full := time.Duration(g) * time.Second
			if d >= full || (g >= 2 && d < full*3/4) {
				t.Fatalf("refresh after %v for a %v grant", d, full)
			}
		}
	}
}

func TestResponseParsing(t *testing.T) {
	parse := func(raw string) *sip.Response {
		m, err := sip.NewParser().ParseSIP([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return m.(*sip.Response)
	}
	res := parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:other@h>;expires=10, <sip:me@h:5060;transport=udp>;Expires=55\r\n" +
		"Contact: <sip:third@h>\r\nExpires: 99\r\nRetry-After: 120 (busy);duration=10\r\nMin-Expires: 30\r\nContent-Length: 0\r\n\r\n")
	if g := grantedExpiry(res, "me", 3600); g != 55 {
		t.Errorf("granted %d, want 55 from our contact", g)
	}
	if g := grantedExpiry(res, "nobody", 3600); g != 99 {
		t.Errorf("granted %d, want the Expires header", g)
	}
	if d := retryAfter(res); d != 120*time.Second {
		t.Errorf("retry after %v", d)
	}
	if m := headerUint(res, "Min-Expires"); m != 30 {
		t.Errorf("min-expires %d", m)
	}
	bare := parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 REGISTER\r\nExpires: 9999999999\r\nContent-Length: 0\r\n\r\n")
	if g := grantedExpiry(bare, "me", 3600); g != maxExpiry {
		t.Errorf("huge grant %d not capped", g)
	}
	two := parse("SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 REGISTER\r\n" +
		"WWW-Authenticate: Digest realm=\"r\", nonce=\"md5\", algorithm=MD5\r\n" +
		"WWW-Authenticate: Digest realm=\"r\", nonce=\"sha\", algorithm=SHA-256, qop=\"auth\"\r\n" +
		"WWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n")
	c, err := bestChallenge(two, false)
	if err != nil || c.Nonce != "sha" || c.Algorithm != sipx.AlgSHA256 {
		t.Errorf("best challenge %+v %v", c, err)
	}
	if _, err := bestChallenge(two, true); err == nil {
		t.Error("a 401 has no Proxy-Authenticate")
	}
	for in, want := range map[string]uint32{"": 0, "x": 0, " 42;x": 42, "-5": 0, "99999999999999": 1 << 31} {
		if got := parseUint(in); got != want {
			t.Errorf("parseUint(%q) = %d", in, got)
		}
	}
}
