package b2bua_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
	"github.com/pbx2teams/pbx2teams/sip/registration"
)

const pcapPath = "/usr/share/sip-tester/g711a.pcap"

// pbxDomain is the SIP domain of the Kamailio PBX.
const pbxDomain = "pbx.test"

// pcapPayloads reads the RTP payloads of an Ethernet/IPv4/UDP pcap file.
func pcapPayloads(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s is not a little-endian Ethernet pcap", path)
	}
	out := map[string]bool{}
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		pkt := b[off+16 : min(off+16+n, len(b))]
		off += 16 + n
		if len(pkt) < 14+20+8+12 || pkt[12] != 0x08 || pkt[13] != 0x00 {
			continue
		}
		ihl := int(pkt[14]&0x0f) * 4
		udp := pkt[14+ihl:]
		if len(udp) < 8+12 {
			continue
		}
		rtpPkt := udp[8:]
		hl := 12 + int(rtpPkt[0]&0x0f)*4
		if len(rtpPkt) > hl {
			out[string(rtpPkt[hl:])] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no RTP in the pcap")
	}
	return out
}

// engineRegs reports live registrations from the registration engine.
func useEngine(t *testing.T, e *env) *registration.Engine {
	t.Helper()
	eng, err := registration.New(registration.Config{Stack: e.PBX, Timeout: 2 * time.Second, BackoffMin: time.Second,
		BackoffMax: 2 * time.Second, StartJitter: 10 * time.Millisecond, RateLimit: 100, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); eng.Close(); <-done })
	e.Regs.mu.Lock()
	e.Regs.src = b2bua.RegistrationsFromStates(eng)
	e.Regs.mu.Unlock()
	return eng
}

// register registers u with the engine at Kamailio and waits until it is
// registered.
func register(t *testing.T, eng *registration.Engine, k *kamailio.Server, u *pbx2teams.User, password string) {
	t.Helper()
	err := eng.Set(registration.Account{UserID: u.ID, AccountID: u.AccountID, Domain: pbxDomain, OutboundProxy: k.Addr(), Transport: "udp",
		Username: u.SIPUsername, Password: password, ContactUser: u.ContactUser, Expiry: 300})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "registration at Kamailio", func() bool {
		st, ok := eng.State(u.ID)
		return ok && st.State == pbx2teams.RegRegistered
	})
}

// An extension-to-extension call on a real PBX: a SIPp desk phone (2002)
// calls extension 1001 at Kamailio; Kamailio routes it to our
// registration's Contact; the B2BUA rings the user in Teams; the pcap's
// audio arrives at the Teams user unchanged.
func TestKamailioExtensionCallsTeams(t *testing.T) {
	// The domain is a name: with the default "127.0.0.1" Kamailio takes
	// every loopback port for itself and cannot loose-route in-dialog
	// requests to our Contact.
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "p1001"}, {Username: "2002", Password: "p2002"}}})
	pcap := pcapPayloads(t, pcapPath)
	e := newEnv(t, envOptions{})
	eng := useEngine(t, e)
	u := e.addUser("1001", "+442071230001", netip.Addr{})
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Echo})
	register(t, eng, k, u, "p1001")

	sp := sipp.StartT(t, sipp.Options{ScenarioXML: sipp.DeskCalls(3 * time.Second), Remote: k.Addr(), Calls: 1, Rate: 1,
		Keys: sipp.DeskCallKeys("2002", "1001", pbxDomain), Timeout: 30 * time.Second, Messages: true})
	ctx := ctxT(t, 40*time.Second)
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := tc.Invite().From(); f.Address.User != "2002" || f.DisplayName != "Desk 2002" {
		t.Errorf("caller shown in Teams: %s", f.Value())
	}
	res, err := sp.Wait(ctx)
	if err != nil || res.Successful != 1 {
		t.Fatalf("SIPp: %+v %v\nmessages:\n%s", res, err, sp.Messages())
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatal("Teams leg not released after the desk phone hung up")
	}
	m := tc.Media()
	if m.Codec != "PCMA" || m.Packets < 50 {
		t.Fatalf("Teams user received %+v, want PCMA audio from the pcap", m)
	}
	for i, p := range tc.Payloads() {
		if !pcap[string(p)] {
			t.Fatalf("payload %d received by Teams is not in the pcap", i)
		}
	}
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultAnswered || rec.EndedBy != "pbx" || rec.Media.PacketsToMS < 50 {
		t.Errorf("record %+v", rec)
	}
}

// kamailioWithInviteAuth starts the Kamailio PBX and makes it challenge
// every INVITE (proxy authentication against its subscribers), as a PBX
// does for calls from its extensions.
func kamailioWithInviteAuth(t *testing.T, subs ...kamailio.Subscriber) *kamailio.Server {
	t.Helper()
	return kamailioInviteAuth(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain, Subscribers: subs})
}

// kamailioInviteAuth is kamailioWithInviteAuth with options.
func kamailioInviteAuth(t *testing.T, o kamailio.Options) *kamailio.Server {
	t.Helper()
	k := kamailio.StartT(t, o)
	path := filepath.Join(k.Dir(), "kamailio.cfg")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "\tif (is_method(\"INVITE\")) {\n"
	if !strings.Contains(string(b), anchor) {
		t.Fatal("Kamailio test configuration changed; cannot add INVITE authentication")
	}
	cfg := strings.Replace(string(b), anchor, anchor+
		"\t\tif (!proxy_authorize(\"$fd\", \"subscriber\")) { proxy_challenge(\"$fd\", \"1\"); exit; }\n"+
		"\t\tif ($au != $fU) { sl_send_reply(\"403\", \"Wrong caller\"); exit; }\n"+
		"\t\tconsume_credentials();\n", 1)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

// registerContact registers ext at Kamailio with a Contact of our choice
// (the SIPp UAS playing that extension's phone).
func registerContact(t *testing.T, k *kamailio.Server, ext, password, contact string) {
	t.Helper()
	if err := k.RegisterContact(context.Background(), ext, password, contact); err != nil {
		t.Fatal(err)
	}
}

// A Teams user calls extension 2002: the call reaches Kamailio as
// extension 1001 with 1001's digest credentials (Kamailio challenges and
// checks them), Kamailio routes it to the SIPp phone of 2002, which
// echoes the audio: the Teams user hears its own pattern back.
func TestKamailioTeamsCallsExtension(t *testing.T) {
	k := kamailioWithInviteAuth(t, kamailio.Subscriber{Username: "1001", Password: "p1001"},
		kamailio.Subscriber{Username: "2002", Password: "p2002"})
	e := newEnv(t, envOptions{})
	u := e.addUser("1001", "+442071230001", lo)
	e.Dir.pbx[acct] = &pbx2teams.PBXSettings{AccountID: acct, Domain: pbxDomain, OutboundProxy: k.Addr(), Transport: pbx2teams.TransportUDP}
	e.cfgPassword("1001", "p1001")
	mediaPort := freeUDPPort(t)
	uas := sipp.StartT(t, sipp.Options{ScenarioXML: sipp.Scenario("desk_answers"), Calls: 1, Timeout: 40 * time.Second, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(mediaPort)}})
	registerContact(t, k, "2002", "p2002", "sip:2002@"+uas.Addr())
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{Media: simteams.Pattern})
	ctx := ctxT(t, 40*time.Second)
	call, err := tu.Dial(ctx, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := call.WaitAnswer(ctx); err != nil || st != 200 {
		t.Fatalf("call answered %d %v", st, err)
	}
	waitUntil(t, 10*time.Second, "the pattern echoed by the desk phone", func() bool { return call.Media().PatternHits >= 25 })
	call.SendDTMF("42")
	waitUntil(t, 10*time.Second, "DTMF echoed by the desk phone", func() bool { return call.Media().DTMF == "42" })
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := uas.Wait(ctx); err != nil || res.Successful != 1 {
		t.Fatalf("SIPp UAS: %+v %v", res, err)
	}
	if !strings.Contains(uas.Messages(), "From: \"User 1001\" <sip:1001@"+pbxDomain+">") {
		t.Errorf("the desk phone did not see the call as from extension 1001:\n%s", tail(uas.Messages(), 40))
	}
	rec := e.Rec.next(t)
	if rec.Result != b2bua.ResultAnswered || rec.PBXStatus != 200 {
		t.Errorf("record %+v", rec)
	}

	// Wrong credentials: Kamailio refuses, Teams gets 403.
	e.cfgPassword("1001", "wrong")
	call, err = tu.Dial(ctx, "2002")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call.WaitAnswer(ctx); st != 403 {
		t.Errorf("bad credentials gave Teams %d, want 403", st)
	}
	rec = e.Rec.next(t)
	if rec.PBXStatus != 407 || !strings.Contains(rec.Advice, "credentials") {
		t.Errorf("record %+v", rec)
	}
	// A failed call keeps its full messages, without credentials.
	full := 0
	for _, m := range e.Rec.trace(rec.ID).Messages {
		if m.Message != "" {
			full++
		}
		if strings.Contains(m.Message, "response=") {
			t.Errorf("trace keeps digest credentials: %s", m.Summary)
		}
	}
	if full == 0 {
		t.Error("failed call's trace has no message text")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A desk phone with SRTP (baresip, SDES, media encryption mandatory)
// calls extension 1001 through Kamailio: the relay decrypts the phone's
// SRTP and re-keys it toward Teams; the Teams user receives the audio.
func TestBaresipSRTPCallsTeams(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("baresip is not installed (CI requires it: apt-get install baresip-core)")
		}
		t.Skip("baresip is not installed")
	}
	k := kamailio.StartT(t, kamailio.Options{Transports: []string{"udp"}, Domain: pbxDomain,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "p1001"}}})
	e := newEnv(t, envOptions{})
	eng := useEngine(t, e)
	u := e.addUser("1001", "+442071230001", netip.Addr{})
	tu := e.Tenant.AddUser(u.PhoneNumber, simteams.UserOptions{AnswerAfter: 100 * time.Millisecond, Media: simteams.Echo})
	register(t, eng, k, u, "p1001")

	dir := t.TempDir()
	cfg := "sip_listen 127.0.0.1:" + fmt.Sprint(freeUDPPort(t)) + "\nsip_trans_def udp\n" +
		"audio_source ausine,1000\nausrc_srate 48000\nausrc_channels 2\naudio_player aufile,/dev/null\naudio_alert aufile,/dev/null\n" +
		"module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\nmodule aufile.so\nmodule srtp.so\n" +
		"module_app account.so\nmodule_app menu.so\n"
	acc := "<sip:2002@" + pbxDomain + ";transport=udp>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU\n"
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(acc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-f", dir, "-t", "6", "-e", "/dial sip:1001@"+k.Addr())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tc, err := tu.Incoming(ctx)
	if err != nil {
		t.Fatalf("%v; baresip:\n%s", err, out.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for tc.Media().Packets < 50 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if tc.Media().Packets < 50 {
		t.Fatalf("no SRTP audio from the desk phone at the Teams user: %+v %+v\nbaresip:\n%s", tc.Media(), e.Relay.ActiveCalls(), out.String())
	}
	if m := tc.Media(); m.AuthFailures != 0 || m.Codec != "PCMU" {
		t.Errorf("Teams user media %+v", m)
	}
	select {
	case <-tc.Done():
	case <-ctx.Done():
		t.Fatalf("call not released after baresip quit; baresip:\n%s", out.String())
	}
	rec := e.Rec.next(t)
	// A stray packet at set-up may fail authentication; the stream must not.
	if rec.Result != b2bua.ResultAnswered || rec.Media.PacketsFromPBX < 50 || rec.Media.SRTPFailures*100 > rec.Media.PacketsFromPBX ||
		!rec.Media.SRTPPBX {
		t.Errorf("record %+v", rec)
	}
}
