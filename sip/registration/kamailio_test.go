package registration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// Users register with Kamailio over UDP, Kamailio holds their bindings
// with our Contacts, refreshes come before the (short) granted expiry and
// reuse the nonce, and Remove deletes the binding at Kamailio.
func TestKamailioUDPRegisterRefreshRemove(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{MaxExpires: 4, DefaultExpires: 4, LogRegisters: true})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	const n = 20
	accs := kamAccounts(t, k, "udp", "udp", n)
	var ids []string
	for _, a := range accs {
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UserID)
	}
	waitFor(t, 10*time.Second, "all registered", func() bool { return allRegistered(e, ids...) })

	bs := bindingsByAoR(t, k)
	if len(bs) != n {
		t.Fatalf("kamailio has %d bindings, want %d", len(bs), n)
	}
	firstCSeq, firstCallID := map[string]int{}, map[string]string{}
	for _, a := range accs {
		b, ok := bs[a.Username]
		want := "sip:" + a.ContactUser + "@127.0.0.1:" + strconv.Itoa(st.Port("udp")) + ";transport=udp"
		if !ok || b.Contact != want {
			t.Fatalf("binding of %s = %+v, want contact %s", a.Username, b, want)
		}
		if b.Expires > 4 {
			t.Errorf("binding of %s expires in %d s, Kamailio grants at most 4", a.Username, b.Expires)
		}
		if b.UserAgent != "pbx2teams" {
			t.Errorf("User-Agent %q", b.UserAgent)
		}
		firstCSeq[a.Username] = b.CSeq
		firstCallID[a.Username] = b.CallID
		s := state(t, e, a.UserID)
		if s.LastSuccess == nil || s.NextRefresh == nil || s.NextRefresh.Sub(*s.LastSuccess) >= 4*time.Second {
			t.Errorf("%s: next refresh %v not before the 4 s expiry after %v", a.UserID, s.NextRefresh, s.LastSuccess)
		}
		if s.PBXAddress != "udp:"+k.Addr() {
			t.Errorf("PBX address %q", s.PBXAddress)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var aors []string
	for _, a := range accs {
		aors = append(aors, a.Username)
	}
	if m, err := k.LookupAll(ctx, aors); err != nil || len(m) != n || m[accs[1].Username][0].CallID != bs[accs[1].Username].CallID {
		t.Fatalf("ul.lookup: %d AoRs, %v", len(m), err)
	}

	// Over one and a half expiry periods every binding stays alive and is
	// refreshed (same Call-ID, higher CSeq).
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		bs = bindingsByAoR(t, k)
		for _, a := range accs {
			if b, ok := bs[a.Username]; !ok || b.Expires < 0 || b.CallID != firstCallID[a.Username] {
				t.Fatalf("binding of %s lapsed or changed: %+v", a.Username, b)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, a := range accs {
		if b := bs[a.Username]; b.CSeq <= firstCSeq[a.Username] {
			t.Errorf("%s not refreshed: CSeq %d", a.Username, b.CSeq)
		}
	}
	// Refreshes answered the last challenge pre-emptively: only a user's
	// first REGISTER came without credentials.
	accepted := kamStat(t, k, "registrar:accepted_regs")
	if accepted < 2*n {
		t.Fatalf("only %d accepted registrations for %d users over 1.5 expiry periods", accepted, n)
	}
	bare := map[string]int{}
	for _, r := range k.Registers() {
		if r.AuthUser == "" {
			bare[r.User]++
		}
	}
	for u, c := range bare {
		if c > 1 {
			t.Errorf("%s sent %d REGISTERs without credentials: refreshes are not pre-authenticated", u, c)
		}
	}
	st0 := e.Stats()
	if st0.ByState[pbx2teams.RegRegistered] != n || st0.RegistersSent < uint64(accepted) {
		t.Errorf("stats %+v", st0)
	}

	// Remove: the binding goes away, the others stay.
	e.Remove(accs[0].UserID)
	waitFor(t, 5*time.Second, "binding removed", func() bool {
		_, ok := bindingsByAoR(t, k)[accs[0].Username]
		return !ok
	})
	if _, ok := e.State(accs[0].UserID); ok {
		t.Error("removed user still has a state")
	}
	if bs := bindingsByAoR(t, k); len(bs) != n-1 {
		t.Errorf("%d bindings after one removal", len(bs))
	}
}

// TCP transport, SHA-256 digest and nonce-count checking at Kamailio.
func TestKamailioTCPSHA256(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"tcp"}, Algorithm: "SHA-256",
		NonceCount: true, MaxExpires: 2, DefaultExpires: 2, LogRegisters: true})
	st := newStack(t, sipx.StackConfig{}, "tcp")
	e := newEngine(t, Config{Stack: st})
	accs := kamAccounts(t, k, "tcp", "tcp", 5)
	for _, a := range accs {
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "registered", func() bool {
		for _, a := range accs {
			if !allRegistered(e, a.UserID) {
				return false
			}
		}
		return true
	})
	bs := bindingsByAoR(t, k)
	for _, a := range accs {
		b := bs[a.Username]
		if !strings.HasSuffix(b.Contact, ";transport=tcp") || !strings.HasPrefix(b.Socket, "tcp:") {
			t.Errorf("binding %+v is not over TCP", b)
		}
	}
	// Refreshes with nc=2,3,... are accepted by Kamailio's nonce-count check.
	acc0 := kamStat(t, k, "registrar:accepted_regs")
	waitFor(t, 10*time.Second, "two refresh rounds", func() bool {
		return kamStat(t, k, "registrar:accepted_regs") >= acc0+2*int64(len(accs))
	})
	regs := k.Registers()
	acc := kamStat(t, k, "registrar:accepted_regs")
	if refused := int64(len(regs)) - acc; refused > int64(len(accs)) {
		t.Errorf("%d REGISTERs, %d accepted: refreshes were challenged", len(regs), acc)
	}
}

// A wrong password stops after one answered challenge, with the PBX's
// status; fixing the password re-registers at once.
func TestKamailioWrongPassword(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{LogRegisters: true})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	acc := kamAccounts(t, k, "wp", "udp", 1)[0]
	good := acc.Password
	acc.Password = "wrong"
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "failed", func() bool { return state(t, e, acc.UserID).State == pbx2teams.RegFailed })
	s := state(t, e, acc.UserID)
	if s.StatusCode != 401 || s.Reason != "Unauthorized" || s.NextRefresh != nil {
		t.Fatalf("state %+v, want 401 Unauthorized and no retry", s)
	}
	// Well past several backoff periods, Kamailio saw just the challenged
	// REGISTER and the refused answer.
	time.Sleep(3 * time.Second)
	if got := k.Registers(); len(got) != 2 || got[0].AuthUser != "" || got[1].AuthUser != acc.Username {
		t.Fatalf("Kamailio received %+v, want one bare and one authenticated REGISTER (no retry storm)", got)
	}
	if e.Stats().Failures["401"] != 1 {
		t.Errorf("failures %v", e.Stats().Failures)
	}
	acc.Password = good
	if err := e.Set(acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "registered after the fix", func() bool { return allRegistered(e, acc.UserID) })
	if s := state(t, e, acc.UserID); s.StatusCode != 200 || s.Reason != "" {
		t.Errorf("state after fix %+v", s)
	}
}

// Kamailio dies and comes back on the same port: users recover, and while
// it is down the engine backs off instead of hammering it.
func TestKamailioDownAndBack(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{MaxExpires: 2, DefaultExpires: 2})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st, Timeout: 500 * time.Millisecond, BackoffMin: time.Second, BackoffMax: 2 * time.Second})
	accs := kamAccounts(t, k, "dn", "udp", 10)
	var ids []string
	for _, a := range accs {
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UserID)
	}
	waitFor(t, 10*time.Second, "registered", func() bool { return allRegistered(e, ids...) })

	k.Kill()
	sent0 := e.Stats().RegistersSent
	const down = 4 * time.Second
	time.Sleep(down)
	sent := e.Stats().RegistersSent - sent0
	failing, noResponse := 0, 0
	for _, id := range ids {
		s := state(t, e, id)
		if s.State == pbx2teams.RegFailed {
			failing++
			if s.Reason == "" {
				t.Errorf("failed without a reason: %+v", s)
			}
			if strings.Contains(s.Reason, "No response from the PBX at udp:"+k.Addr()) {
				noResponse++
			}
		}
	}
	if failing == 0 || noResponse == 0 {
		t.Errorf("%d users failing, %d with the PBX not answering", failing, noResponse)
	}
	// Each user refreshes once, then retries with backoff of at least
	// BackoffMin/2: at most down/(0.5 s)+1 attempts, each at most one
	// REGISTER per target.
	if limit := uint64(len(ids)) * uint64(down/(500*time.Millisecond)+1); sent > limit {
		t.Errorf("%d REGISTERs in %v of downtime for %d users (limit %d)", sent, down, len(ids), limit)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "all bindings back at Kamailio", func() bool {
		return len(bindingsByAoR(t, k)) == len(ids) && allRegistered(e, ids...)
	})
}

// Settings changes: moving users to another PBX unregisters them at the
// old one; a new password re-registers at once; Refresh re-registers a
// customer's users (e.g. after the PBX lost its bindings); RemoveAccount
// unregisters them all.
func TestKamailioSettingsChanges(t *testing.T) {
	peers(t)
	k1 := kamailio.StartT(t, kamailio.Options{})
	k2 := kamailio.StartT(t, kamailio.Options{})
	st := newStack(t, sipx.StackConfig{}, "udp")
	e := newEngine(t, Config{Stack: st})
	accs := kamAccounts(t, k1, "mv", "udp", 3)
	other := kamAccounts(t, k1, "stay", "udp", 1)[0]
	var subs []kamailio.Subscriber
	var ids []string
	for _, a := range append(accs, other) {
		subs = append(subs, kamailio.Subscriber{Username: a.Username, Password: a.Password})
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UserID)
	}
	if err := k2.AddSubscribers(subs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "registered at the first PBX", func() bool { return allRegistered(e, ids...) })

	for i := range accs {
		accs[i].OutboundProxy = k2.Addr()
		if err := e.Set(accs[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "moved to the second PBX", func() bool {
		b1, b2 := bindingsByAoR(t, k1), bindingsByAoR(t, k2)
		return len(b1) == 1 && len(b2) == len(accs) && allRegistered(e, ids...)
	})
	if _, ok := bindingsByAoR(t, k1)[other.Username]; !ok {
		t.Error("the user that did not move lost its binding")
	}
	for _, a := range accs {
		if s := state(t, e, a.UserID); s.PBXAddress != "udp:"+k2.Addr() {
			t.Errorf("PBX address %q", s.PBXAddress)
		}
	}

	// New password at the PBX and in the settings: registers again now.
	cseq := bindingsByAoR(t, k2)[accs[0].Username].CSeq
	if err := k2.AddSubscribers(kamailio.Subscriber{Username: accs[0].Username, Password: "new-secret"}); err != nil {
		t.Fatal(err)
	}
	accs[0].Password = "new-secret"
	if err := e.Set(accs[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "re-registered with the new password", func() bool {
		return bindingsByAoR(t, k2)[accs[0].Username].CSeq > cseq && allRegistered(e, accs[0].UserID)
	})

	// The PBX forgets everything; the admin saves the settings.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(bindingsByAoR(t, k2)); n != 0 {
		t.Fatalf("%d bindings after restart", n)
	}
	e.Refresh("acct-mv")
	waitFor(t, 5*time.Second, "re-registered on Refresh", func() bool { return len(bindingsByAoR(t, k2)) == len(accs) })

	e.RemoveAccount("acct-mv")
	waitFor(t, 5*time.Second, "account unregistered", func() bool { return len(bindingsByAoR(t, k2)) == 0 })
	for _, a := range accs {
		if _, ok := e.State(a.UserID); ok {
			t.Errorf("%s still known", a.UserID)
		}
	}
	if !allRegistered(e, other.UserID) {
		t.Error("the other customer's user was affected")
	}
	if s := e.Stats(); s.Registrations != 1 || s.ByState[pbx2teams.RegRegistered] != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Over TCP, a PBX restart closes the connection; the keep-alive notices
// and the users re-register at once instead of at their next refresh (the
// PBX could not reach them over a dead connection).
func TestKamailioTCPFlowRecovery(t *testing.T) {
	peers(t)
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"tcp"}})
	st := newStack(t, sipx.StackConfig{}, "tcp")
	e := newEngine(t, Config{Stack: st, KeepAlive: 300 * time.Millisecond})
	accs := kamAccounts(t, k, "flow", "tcp", 3)
	var ids []string
	for _, a := range accs {
		if err := e.Set(a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UserID)
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return allRegistered(e, ids...) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Granted 3600 s: only flow recovery brings the bindings back soon.
	waitFor(t, 10*time.Second, "bindings back after the restart", func() bool {
		return len(bindingsByAoR(t, k)) == len(accs)
	})
}

// Users of one customer answer the nonce an earlier user got: one REGISTER
// each instead of two. A PBX binding nonces to the Call-ID refuses that,
// and after three refusals the engine stops sharing with it.
func TestKamailioSharedNonce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		authChecks int
	}{{"accepted", 0}, {"refused", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			peers(t)
			k := kamailio.StartT(t, kamailio.Options{LogRegisters: true, AuthChecks: tc.authChecks})
			st := newStack(t, sipx.StackConfig{}, "udp")
			e := newEngine(t, Config{Stack: st, MaxInFlightPerPBX: 1}) // one user at a time
			accs := kamAccounts(t, k, "sh"+tc.name, "udp", 10)
			var ids []string
			for _, a := range accs {
				if err := e.Set(a); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, a.UserID)
			}
			waitFor(t, 10*time.Second, "registered", func() bool { return allRegistered(e, ids...) })
			per := map[string]int{}
			firstWithCredentials := 0 // users whose first REGISTER answered a shared nonce
			for _, r := range k.Registers() {
				if per[r.User] == 0 && r.AuthUser != "" {
					firstWithCredentials++
				}
				per[r.User]++
			}
			total := 0
			for _, a := range accs {
				total += per[a.Username]
			}
			switch tc.name {
			case "accepted": // only the first user is challenged
				if total != len(accs)+1 || firstWithCredentials != len(accs)-1 {
					t.Errorf("%d REGISTERs for %d users, %d pre-authenticated: %v", total, len(accs), firstWithCredentials, per)
				}
			case "refused": // three users try a shared nonce, which costs nothing extra
				if total != 2*len(accs) || firstWithCredentials != 3 {
					t.Errorf("%d REGISTERs for %d users, %d tried a shared nonce: %v", total, len(accs), firstWithCredentials, per)
				}
			}
		})
	}
}
