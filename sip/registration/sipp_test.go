package registration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// sippRegistrar starts SIPp with a registrar scenario from testdata;
// %CODE% and %REASON% in it are replaced by code and reason (SIPp checks
// status codes before it substitutes keywords).
func sippRegistrar(t *testing.T, scenario string, keys map[string]string, codeReason ...string) *sipp.Process {
	t.Helper()
	b, err := os.ReadFile("testdata/" + scenario)
	if err != nil {
		t.Fatal(err)
	}
	xml := string(b)
	if len(codeReason) == 2 {
		xml = strings.ReplaceAll(strings.ReplaceAll(xml, "%CODE%", codeReason[0]), "%REASON%", codeReason[1])
	}
	return sipp.StartT(t, sipp.Options{ScenarioXML: xml, Calls: 1, Keys: keys,
		Messages: true, Timeout: 30 * time.Second})
}

func sippAccount(p *sipp.Process, id string) Account {
	return Account{UserID: id, AccountID: "acct-sipp", Domain: "sipp.test", OutboundProxy: p.Addr(),
		Transport: "udp", Username: "100", Password: "secret", ContactUser: "c" + id + "q7"}
}

// sippPassed waits for the scenario to end and checks that every check in
// it passed (SIPp exits 0).
func sippPassed(t *testing.T, p *sipp.Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.Wait(ctx)
	if err != nil || res.ExitCode != 0 || res.Successful != 1 {
		t.Fatalf("SIPp scenario failed: exit %d, %d successful, %v", res.ExitCode, res.Successful, err)
	}
}

// A registrar that does not answer: the engine reports it, backs off and
// registers on the next attempt.
func TestSippNoAnswer(t *testing.T) {
	peers(t)
	p := sippRegistrar(t, "reg_no_answer.xml", nil)
	st := newStack(t, sipx.StackConfig{}, "udp")
	// The failed state lasts until the retry, at least BackoffMin/2.
	e := newEngine(t, Config{Stack: st, Timeout: 1500 * time.Millisecond, BackoffMin: 4 * time.Second})
	acc := sippAccount(p, "noans")
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "failure noticed", func() bool { return state(t, e, acc.UserID).State == pbx2teams.RegFailed })
	s := state(t, e, acc.UserID)
	if s.StatusCode != 0 || !strings.Contains(s.Reason, "No response from the PBX at udp:"+p.Addr()) || s.NextRefresh == nil {
		t.Fatalf("state %+v", s)
	}
	waitFor(t, 10*time.Second, "registered on retry", func() bool { return allRegistered(e, acc.UserID) })
	sippPassed(t, p)
	if e.Stats().Failures["timeout"] != 1 {
		t.Errorf("failures %v", e.Stats().Failures)
	}
}

var sippCreds = map[string]string{"username": "100", "password": "secret"}

// 423 Interval Too Brief with Min-Expires: the engine asks again with the
// minimum and keeps to it.
func TestSipp423MinExpires(t *testing.T) {
	peers(t)
	p := sippRegistrar(t, "reg_423.xml", nil)
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	acc := sippAccount(p, "brief")
	acc.Expiry = 60
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, acc.UserID) })
	sippPassed(t, p) // the second REGISTER asked for Expires: 120
	s := state(t, e, acc.UserID)
	if d := s.NextRefresh.Sub(*s.LastSuccess); d < 60*time.Second || d > 110*time.Second {
		t.Errorf("refresh in %v, want 75-85%% of the 120 s granted", d)
	}
}

// 403 and 404 after authentication stop the registration with the PBX's
// status and reason, and nothing is retried.
func TestSippRejected(t *testing.T) {
	peers(t)
	for _, tc := range []struct {
		code, reason string
	}{{"403", "Forbidden"}, {"404", "Not Found"}} {
		t.Run(tc.code, func(t *testing.T) {
			p := sippRegistrar(t, "reg_reject.xml", sippCreds, tc.code, tc.reason)
			st := newStack(t, sipx.StackConfig{}, "udp")
			e := newEngine(t, Config{Stack: st, BackoffMin: 200 * time.Millisecond})
			acc := sippAccount(p, "rej"+tc.code)
			if err := e.Set(acc); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "failed", func() bool { return state(t, e, acc.UserID).State == pbx2teams.RegFailed })
			s := state(t, e, acc.UserID)
			if s.StatusCode != atoi(tc.code) || s.Reason != tc.reason || s.NextRefresh != nil {
				t.Fatalf("state %+v", s)
			}
			sippPassed(t, p) // valid digest answer, then 3 s without a retry
			if n := len(p.Received("REGISTER")); n != 2 {
				t.Errorf("registrar received %d REGISTERs, want 2", n)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// 500 and 503 with Retry-After: the engine waits at least that long.
func TestSippRetryAfter(t *testing.T) {
	peers(t)
	for _, tc := range []struct{ code, reason string }{{"503", "Service Unavailable"}, {"500", "Server Internal Error"}} {
		t.Run(tc.code, func(t *testing.T) {
			p := sippRegistrar(t, "reg_retry_after.xml", nil, tc.code, tc.reason)
			st := newStack(t, sipx.StackConfig{}, "udp")
			e := newEngine(t, Config{Stack: st, BackoffMin: 100 * time.Millisecond})
			acc := sippAccount(p, "ra"+tc.code)
			if err := e.Set(acc); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "failed", func() bool { return state(t, e, acc.UserID).State == pbx2teams.RegFailed })
			if s := state(t, e, acc.UserID); s.StatusCode != atoi(tc.code) || s.Reason != tc.reason || s.NextRefresh == nil {
				t.Fatalf("state %+v", s)
			}
			waitFor(t, 10*time.Second, "registered", func() bool { return allRegistered(e, acc.UserID) })
			sippPassed(t, p)
			regs := p.Received("REGISTER")
			if len(regs) != 2 {
				t.Fatalf("%d REGISTERs", len(regs))
			}
			if gap := regs[1].At.Sub(regs[0].At); gap < 2*time.Second {
				t.Errorf("retried after %v despite Retry-After: 2", gap)
			}
		})
	}
}

// A nonce that went stale between challenge and answer is not a
// credential failure: the engine answers the new nonce.
func TestSippStaleNonce(t *testing.T) {
	peers(t)
	p := sippRegistrar(t, "reg_stale_nonce.xml", sippCreds)
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	acc := sippAccount(p, "stale")
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, acc.UserID) })
	sippPassed(t, p) // both digest answers verified by SIPp
	regs := p.Received("REGISTER")
	if len(regs) != 3 {
		t.Fatalf("%d REGISTERs, want 3", len(regs))
	}
	// Sent to the outbound proxy with it as a pre-loaded route, for the
	// domain.
	if !strings.HasPrefix(regs[0].Text, "REGISTER sip:sipp.test SIP/2.0") || !strings.Contains(regs[0].Text, "\nRoute: <sip:"+p.Addr()+";lr>") {
		t.Errorf("request:\n%s", regs[0].Text)
	}
}

// A registrar granting 4 s (instead of the 3600 s asked for), with another
// device listed first: the engine refreshes within the 4 s, pre-emptively
// authenticated with the next nonce count.
func TestSippShorterExpiry(t *testing.T) {
	peers(t)
	p := sippRegistrar(t, "reg_short_expiry.xml", sippCreds)
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	acc := sippAccount(p, "short")
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, acc.UserID) })
	sippPassed(t, p)
	regs := p.Received("REGISTER")
	if len(regs) != 3 {
		t.Fatalf("%d REGISTERs, want 3", len(regs))
	}
	if gap := regs[2].At.Sub(regs[1].At); gap >= 4*time.Second {
		t.Errorf("refresh came %v after a 4 s grant", gap)
	}
	if !strings.Contains(regs[2].Text, "Expires: 3600") {
		t.Errorf("refresh should still ask for the configured expiry:\n%s", regs[2].Text)
	}
}
