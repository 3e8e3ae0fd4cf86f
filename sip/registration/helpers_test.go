package registration

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/registrar"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("REG_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// heavy limits how many tests run real peers (Kamailio, SIPp) at once, so
// that parallel tests do not starve each other on a small machine.
var heavy = make(chan struct{}, 3)

// peers marks a test as running real peers: it runs in parallel with
// other tests, at most three such tests at a time.
func peers(t *testing.T) {
	t.Helper()
	t.Parallel()
	heavy <- struct{}{}
	t.Cleanup(func() { <-heavy })
}

// newStack listens on 127.0.0.1 free ports for the given transports.
func newStack(t testing.TB, cfg sipx.StackConfig, transports ...string) *sipx.Stack {
	t.Helper()
	for _, tr := range transports {
		l := sipx.Listen{Transport: tr, Addr: "127.0.0.1:0"}
		if tr == "tls" {
			_, cert := registrar.Certificate(t, "127.0.0.1")
			l.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		}
		cfg.Listen = append(cfg.Listen, l)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	st, err := sipx.NewStack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.Start()
	t.Cleanup(func() { st.Close() })
	return st
}

// newEngine runs an engine with test-friendly timers; fields set in cfg win.
func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second // a loaded machine can be slow to answer
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 4 * time.Second
	}
	if cfg.StartJitter == 0 {
		cfg.StartJitter = 50 * time.Millisecond
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine stats at failure: %+v", e.Stats())
			e.mu.Lock()
			n := 0
			for id, r := range e.regs {
				if n++; n > 3 {
					break
				}
				t.Logf("reg %s: state %d flags %b due %v (now %v) failures %d status %d %q heapIdx %d",
					id, r.state, r.flags, time.Duration(r.due), time.Duration(e.clock()), r.failures, r.status, r.reason, r.heapIdx)
			}
			t.Logf("heap %d, ready hops %d, inflight %d", len(e.heap), len(e.ready), e.inflight)
			inflight := e.inflight
			e.mu.Unlock()
			if inflight > 0 {
				buf := make([]byte, 1<<22)
				buf = buf[:runtime.Stack(buf, true)]
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "registration.(*attempt)") {
						t.Logf("attempt goroutine:\n%s", g)
					}
				}
			}
		}
		cancel()
		e.Close()
		<-done
	})
	return e
}

// waitFor polls cond until it holds or the deadline passes. Deadlines are
// generous (three times d): they only bound a failing test, and a loaded
// CI machine must not turn them into failures.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", 3*d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(t testing.TB, e *Engine, id string) pbx2teams.RegistrationState {
	t.Helper()
	s, ok := e.State(id)
	if !ok {
		t.Fatalf("no state for %s", id)
	}
	return s
}

func allRegistered(e *Engine, ids ...string) bool {
	for _, id := range ids {
		s, ok := e.State(id)
		if !ok || s.State != pbx2teams.RegRegistered {
			return false
		}
	}
	return true
}

// kamAccounts makes n subscribers on k and matching accounts.
func kamAccounts(t testing.TB, k *kamailio.Server, prefix, transport string, n int) []Account {
	t.Helper()
	var subs []kamailio.Subscriber
	var accs []Account
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("%s%d", prefix, 100+i)
		pass := fmt.Sprintf("pw-%s-%d", prefix, i)
		subs = append(subs, kamailio.Subscriber{Username: user, Password: pass})
		accs = append(accs, Account{UserID: "u-" + user, AccountID: "acct-" + prefix, Domain: k.Domain(),
			OutboundProxy: k.Addr(), Transport: transport, Username: user, Password: pass,
			ContactUser: "c" + strings.ReplaceAll(user, "-", "") + "x9f3"})
	}
	if err := k.AddSubscribers(subs...); err != nil {
		t.Fatal(err)
	}
	return accs
}

func bindingsByAoR(t testing.TB, k *kamailio.Server) map[string]kamailio.Binding {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bs, err := k.Bindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]kamailio.Binding{}
	for _, b := range bs {
		if _, dup := m[b.AoR]; dup {
			t.Errorf("two bindings for %s", b.AoR)
		}
		m[b.AoR] = b
	}
	return m
}

func kamStat(t testing.TB, k *kamailio.Server, name string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := k.Stat(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
