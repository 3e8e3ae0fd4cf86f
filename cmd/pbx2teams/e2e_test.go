//go:build e2e

package main

// The end-to-end story a new customer lives through, against the service
// as `pbx2teams serve --sandbox` wires it (same open(), real HTTP listener,
// simulated Microsoft 365 and Teams on loopback), Kamailio as the PBX and
// SIPp desk phones, with Chromium for the portal pages. Run it with
// `make e2e` (e2e/run.sh), which counts the steps.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/browser"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
)

const (
	e2eDomain  = "pbx.test"
	alexUPN    = "alex.wilber@contoso.example" // standard user, Teams Phone, +44 20 7946 0102
	alexNumber = "+442079460102"
	johannaUPN = "johanna.lorenz@contoso.example" // Phone App user
)

// e2e is the running story's shared state.
type e2e struct {
	t        *testing.T
	base     string
	app      *app
	graph    *msim.Sim
	api      *http.Client
	csrf     string
	password string
	customer string
	users    map[string]string // UPN → user id
	kam      *kamailio.Server
	desk     *sipp.Process // extension 2000, answers and echoes
}

func TestE2E(t *testing.T) {
	if os.Getenv("CI") == "" && (!kamailio.Available() || !sipp.Available()) {
		t.Skip("kamailio and sipp are needed")
	}
	e := &e2e{t: t, users: map[string]string{}}
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"service_starts", e.start},
		{"operator_creates_customer_with_licences", e.createCustomer},
		{"admin_connects_tenant_enables_and_authorizes_phone_app_and_syncs", e.connectAndSync},
		{"admin_sets_pbx_and_configures_users", e.configure},
		{"users_register_at_the_pbx", e.registered},
		{"desk_phone_calls_standard_user_in_teams", e.pbxToStandard},
		{"standard_user_calls_extension_from_teams", e.standardToPBX},
		{"desk_phone_calls_phone_app_user_in_teams", e.pbxToPhoneApp},
		{"phone_app_user_dials_extension_from_the_tab", e.phoneAppDials},
		{"phone_app_tab_in_teams_dials_holds_sends_tones_and_hangs_up", e.tabInBrowser},
		{"blocked_phone_app_domain_gives_603_and_readiness_advice", e.blockedDomain},
		{"call_log_keeps_calls_and_traces_without_secrets", e.callLog},
		{"portal_shows_readiness_advice_and_call_ladder", e.portalPages},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %s failed: the story stops here", s.name)
		}
	}
}

func (e *e2e) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	e.t.Cleanup(cancel)
	return ctx
}

func freeUDP(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// start opens the service as serve --sandbox does, on free loopback ports,
// and reads the operator's one-time password from its output.
func (e *e2e) start(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + ln.Addr().String()
	sipPort := freeUDP(t)
	c := config{dataDir: e.t.TempDir(), httpAddr: ln.Addr().String(), sandbox: true, logLevel: "warn",
		adminEmail: "operator@provider.example", sipListen: fmt.Sprintf("udp:127.0.0.1:%d,tcp:127.0.0.1:%d", sipPort, sipPort),
		regRate: 50}
	c.calls.mediaPorts = "42000-42999"
	c.calls.mediaTimeout = time.Minute
	r, w, _ := os.Pipe()
	stderr := os.Stderr
	os.Stderr = w
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a, err := open(context.Background(), c, log)
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	e.t.Cleanup(a.close)
	e.app = a
	m := regexp.MustCompile(`password: (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no one-time password printed:\n%s", out)
	}
	e.password = string(m[1])
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	if err := a.start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.handler}
	go srv.Serve(ln)
	e.t.Cleanup(func() { srv.Close() })
	e.graph = a.sandboxGraph
	if e.graph == nil || a.calls == nil || a.calls.link == nil {
		t.Fatal("the sandbox started without the simulated tenant or the call plane")
	}
	res, err := http.Get(e.base + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
}

// signIn signs the operator in over HTTP, as the sign-in form does, for the
// API calls of the story (cookie session + CSRF header).
func (e *e2e) signIn(t *testing.T) {
	jar, _ := cookiejar.New(nil)
	e.api = &http.Client{Jar: jar, Timeout: 60 * time.Second}
	res, err := e.api.Get(e.base + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("sign-in form without CSRF token:\n%s", body)
	}
	form := url.Values{"email": {"operator@provider.example"}, "password": {e.password}, "csrf": {string(m[1])}}
	req, _ := http.NewRequest("POST", e.base+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.base)
	if res, err = e.api.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	e.call(t, "GET", "/api/v1/me", nil, 200, &me)
	if me.CSRFToken == "" {
		t.Fatal("signed in but /api/v1/me has no CSRF token")
	}
	e.csrf = me.CSRFToken
}

// call does an API request and decodes the answer, failing on another status.
func (e *e2e) call(t *testing.T, method, path string, in any, want int, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, body)
	req.Header.Set("Content-Type", "application/json")
	if e.csrf != "" {
		req.Header.Set(pbx2teams.CSRFHeaderName, e.csrf)
	}
	res, err := e.api.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func (e *e2e) createCustomer(t *testing.T) {
	e.signIn(t)
	var acc pbx2teams.Account
	e.call(t, "POST", "/api/v1/accounts", map[string]any{"kind": "customer", "name": "Contoso"}, 201, &acc)
	e.customer = acc.ID
	for sku, n := range map[string]int{"pbx-user": 10, "phone-app-user": 5} {
		e.call(t, "PUT", "/api/v1/accounts/"+acc.ID+"/licences/"+sku, map[string]any{"quantity": n}, 200, nil)
	}
	var ts pbx2teams.TeamsSettings
	e.call(t, "GET", "/api/v1/accounts/"+acc.ID+"/teams", nil, 200, &ts)
	if ts.SBCLabel != "contoso" {
		t.Fatalf("the customer's SBC label is %q, want contoso", ts.SBCLabel)
	}
}

// connectAndSync drives the portal in Chromium: connect the sandbox tenant
// (Microsoft's consent page, Accept), switch Phone App on, authorize it
// (second consent and sign-in), Sync Now.
func (e *e2e) connectAndSync(t *testing.T) {
	b := browser.New(t, browser.Options{Timeout: 3 * time.Minute})
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			page, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("%s: %v\npage: %s", what, err, page)
		}
	}
	teamsTab := e.base + "/a/" + e.customer + "/teams"
	do("sign in", chromedp.Navigate(e.base+"/signin"),
		chromedp.SendKeys(chromedp.ID("email"), "operator@provider.example"),
		chromedp.SendKeys(chromedp.ID("password"), e.password),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS(".topbar")))
	do("connect", chromedp.Navigate(teamsTab), chromedp.Click(chromedp.ID("m365-connect")), chromedp.WaitVisible(chromedp.ID("accept")))
	do("accept consent", chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("m365-state")))
	do("phone app on", chromedp.Click(chromedp.ID("phone-app-switch")), chromedp.Click(chromedp.ID("teams-save")),
		chromedp.WaitVisible(chromedp.ID("phone-app-authorize")))
	do("authorize phone app", chromedp.Click(chromedp.ID("phone-app-authorize")), chromedp.WaitVisible(chromedp.ID("accept")),
		chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("user")))
	do("sign in at Microsoft", chromedp.Click(chromedp.ID("accept")), chromedp.WaitVisible(chromedp.ID("phone-app-authorized")))
	do("sync now", chromedp.Click(chromedp.ID("sync-now")), chromedp.WaitVisible(chromedp.ID("last-job")),
		chromedp.WaitVisible(chromedp.CSS(`#sync-status[data-state="succeeded"]`)))
	var ts pbx2teams.TeamsSettings
	e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/teams", nil, 200, &ts)
	if ts.TenantID != msim.SandboxTenantID || !ts.PhoneAppEnabled || ts.PhoneAppAuthorizedAt == nil {
		t.Fatalf("teams settings after connect: %+v", ts)
	}
	for _, upn := range []string{alexUPN, johannaUPN} {
		var page struct {
			Users []struct {
				ID  string `json:"id"`
				UPN string `json:"upn"`
			} `json:"users"`
		}
		e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/users?q="+url.QueryEscape(upn), nil, 200, &page)
		for _, u := range page.Users {
			if strings.EqualFold(u.UPN, upn) {
				e.users[upn] = u.ID
			}
		}
		if e.users[upn] == "" {
			t.Fatalf("%s not synced: %+v", upn, page)
		}
	}
}

func (e *e2e) configure(t *testing.T) {
	k := kamailio.StartT(e.t, kamailio.Options{Transports: []string{"udp"}, Domain: e2eDomain,
		Subscribers: []kamailio.Subscriber{{Username: "1001", Password: "alex-secret-1"}, {Username: "1002", Password: "johanna-secret-2"},
			{Username: "2000", Password: "desk-2000"}, {Username: "2001", Password: "desk-2001"}, {Username: "2002", Password: "desk-2002"}}})
	e.kam = k
	acct := "/api/v1/accounts/" + e.customer
	e.call(t, "PUT", acct+"/pbx", map[string]any{"domain": e2eDomain, "outbound_proxy": k.Addr(), "transport": "udp",
		"register_expiry": 300, "region": "uk"}, 200, nil)
	pw1, pw2 := "alex-secret-1", "johanna-secret-2"
	e.call(t, "PUT", acct+"/users/"+e.users[alexUPN]+"/config", pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
		SIPUsername: "1001", Password: &pw1, PhoneNumber: alexNumber}, 200, nil)
	e.call(t, "PUT", acct+"/users/"+e.users[johannaUPN]+"/config", pbx2teams.UserConfig{Type: pbx2teams.ServicePhoneApp,
		SIPUsername: "1002", Password: &pw2, PhoneNumber: "+442079460111"}, 200, nil)
	// The password is never given back.
	var u map[string]any
	e.call(t, "GET", acct+"/users/"+e.users[alexUPN], nil, 200, &u)
	if b, _ := json.Marshal(u); strings.Contains(string(b), pw1) {
		t.Fatal("the API returned the SIP password")
	}
}

func (e *e2e) registered(t *testing.T) {
	deadline := time.Now().Add(30 * time.Second)
	for _, upn := range []string{alexUPN, johannaUPN} {
		for {
			var u struct {
				Registration *pbx2teams.RegistrationState `json:"registration"`
			}
			e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/users/"+e.users[upn], nil, 200, &u)
			if u.Registration != nil && u.Registration.State == pbx2teams.RegRegistered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not registered: %+v\nKamailio:\n%s", upn, u.Registration, e.kam.LogTail(30))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	binds, err := e.kam.Bindings(e.ctx(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, b := range binds {
		found[b.AoR] = true
	}
	if !found["1001@"+e2eDomain] && !found["1001"] {
		t.Fatalf("Kamailio has no binding for 1001: %+v", binds)
	}
	// The desk phone at extension 2000: a SIPp phone that answers and
	// echoes, registered at Kamailio.
	e.desk = sipp.StartT(e.t, sipp.Options{ScenarioXML: sipp.Scenario("desk_answers"), Calls: 2, Timeout: 5 * time.Minute, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(freeUDP(t))}})
	e2eRegister(t, e.kam, "2000", "desk-2000", "sip:2000@"+e.desk.Addr())
}

// lastCall returns the newest call of the customer's log for a user.
func (e *e2e) lastCall(t *testing.T, userID string, after time.Time) pbx2teams.CallRecord {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var page pbx2teams.CallPage
		e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/calls?user="+userID+"&limit=5", nil, 200, &page)
		for _, c := range page.Calls {
			if !c.StartedAt.Before(after) {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call of %s after %s in the call log: %+v", userID, after, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pbxToStandard: a desk phone (2002) calls extension 1001 at Kamailio; it
// rings Alex in Teams through Direct Routing, who answers (the sandbox's
// Teams users answer after 2 s and echo); the desk phone's audio goes out
// and comes back.
func (e *e2e) pbxToStandard(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	e.deskCalls(t, "1001")
	rec := e.lastCall(t, e.users[alexUPN], start)
	if rec.Direction != pbx2teams.DirectionInbound || rec.Route != pbx2teams.RouteDirectRouting || rec.Result != pbx2teams.ResultAnswered ||
		rec.Media.PacketsToMS < 50 || rec.Media.PacketsToPBX < 25 {
		t.Fatalf("call record %+v", rec)
	}
}

// deskCalls runs the SIPp caller at extension 2002 calling callee.
func (e *e2e) deskCalls(t *testing.T, callee string) {
	sp := sipp.StartT(t, sipp.Options{ScenarioXML: sipp.DeskCalls(4 * time.Second), Remote: e.kam.Addr(), Calls: 1, Rate: 1,
		Keys: sipp.DeskCallKeys("2002", callee, e2eDomain), Timeout: 40 * time.Second, Messages: true})
	res, err := sp.Wait(e.ctx(60 * time.Second))
	if err != nil || res.Successful != 1 {
		t.Fatalf("desk phone calling %s: %+v %v\n%s", callee, res, err, sp.Messages())
	}
}

// standardToPBX: Alex dials extension 2000 in Teams; the call reaches the
// desk phone through Kamailio as extension 1001; Alex hears the pattern
// echoed back.
func (e *e2e) standardToPBX(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	alex := e.app.sandboxTeams.sim.UserByUPN(alexUPN)
	if alex == nil {
		t.Fatal("Alex is not a Teams user of the sandbox")
	}
	o := alex.Options()
	o.Media = simteams.Pattern
	alex.SetOptions(o)
	ctx := e.ctx(40 * time.Second)
	call, err := alex.Dial(ctx, "2000")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := call.WaitAnswer(ctx); err != nil || st != 200 {
		t.Fatalf("Alex's call answered %d %v", st, err)
	}
	e2eWait(t, 15*time.Second, "the pattern echoed by the desk phone", func() bool { return call.Media().PatternHits >= 25 })
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	rec := e.lastCall(t, e.users[alexUPN], start)
	if rec.Direction != pbx2teams.DirectionOutbound || rec.Result != pbx2teams.ResultAnswered || rec.To != "2000" || rec.PBXStatus != 200 {
		t.Fatalf("call record %+v", rec)
	}
}

// pbxToPhoneApp: the desk phone calls extension 1002; Johanna, a Phone App
// user, rings in Teams through the federation edge and answers.
func (e *e2e) pbxToPhoneApp(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	e.deskCalls(t, "1002")
	rec := e.lastCall(t, e.users[johannaUPN], start)
	if rec.Direction != pbx2teams.DirectionInbound || rec.Route != pbx2teams.RoutePhoneApp || rec.Result != pbx2teams.ResultAnswered ||
		rec.Media.PacketsToMS < 50 {
		t.Fatalf("call record %+v", rec)
	}
	calls := e.app.sandboxTeams.edge.Records("INVITE")
	if len(calls) == 0 || !strings.Contains(calls[len(calls)-1].Request.From().Value(), "2002@"+defaultPhoneAppDomain) {
		t.Fatalf("the federation edge did not see the desk phone's number from the Phone App domain: %+v", calls)
	}
}

// tab calls the Phone App tab's API as Johanna, with the SSO token the
// (simulated) Teams client gives the tab.
func (e *e2e) tab(t *testing.T, method, path string, in any, want int, out any) {
	t.Helper()
	tok, err := e.graph.MintUserToken(msim.UserTokenOptions{User: johannaUPN,
		Audience: "api://" + strings.TrimPrefix(e.base, "http://") + "/" + strings.ToLower(msim.SandboxPhoneAppClientID)})
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+phoneAppPath+path, body)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("tab %s %s = %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("tab %s: %v in %s", path, err, b)
		}
	}
}

// tabCall waits for the tab to show the call in a state, or ended.
func (e *e2e) tabCall(t *testing.T, id string, states ...string) pbx2teams.LiveCall {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []pbx2teams.LiveCall
	for time.Now().Before(deadline) {
		var list struct {
			Calls []pbx2teams.LiveCall `json:"calls"`
		}
		e.tab(t, "GET", "api/calls", nil, 200, &list)
		last = list.Calls
		found := false
		for _, c := range list.Calls {
			if c.ID == id {
				found = true
				for _, s := range states {
					if c.State == s {
						return c
					}
				}
			}
		}
		if !found {
			return pbx2teams.LiveCall{ID: id, State: pbx2teams.CallEnded}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("call %s never reached %v: %+v", id, states, last)
	return pbx2teams.LiveCall{}
}

// phoneAppDials: Johanna dials 2000 in the tab; Teams rings her first (the
// callback), she answers, the service calls the desk phone as extension
// 1002 and joins them; audio flows both ways; she hangs up in the tab.
func (e *e2e) phoneAppDials(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	var me struct {
		User struct {
			UPN string `json:"upn"`
		} `json:"user"`
	}
	e.tab(t, "GET", "api/me", nil, 200, &me)
	// Johanna's Teams plays the known pattern; the desk phone echoes it.
	johanna := e.app.sandboxTeams.sim.UserByUPN(johannaUPN)
	o := johanna.Options()
	o.Media = simteams.Pattern
	johanna.SetOptions(o)
	var lc pbx2teams.LiveCall
	e.tab(t, "POST", "api/calls", map[string]string{"number": "2000"}, 201, &lc)
	c := e.tabCall(t, lc.ID, pbx2teams.CallConnected)
	if c.State != pbx2teams.CallConnected {
		t.Fatalf("the tab's call ended instead of connecting: %+v", c)
	}
	ok := e2eEventually(15*time.Second, func() bool {
		c = e.tabCall(t, lc.ID, pbx2teams.CallConnected)
		return c.PacketsToUser > 25 && c.PacketsFromUser > 25
	})
	if !ok {
		var media []simteams.MediaStats
		for _, x := range johanna.Calls() {
			media = append(media, x.Media())
		}
		t.Fatalf("no audio both ways in the tab's counters: %+v; Johanna's Teams: %+v", c, media)
	}
	var tc *simteams.Call
	for _, c := range johanna.Calls() {
		tc = c
	}
	if tc == nil || tc.Media().PatternHits < 10 {
		t.Fatalf("Johanna's Teams did not hear its pattern echoed by the desk phone: %+v", tc)
	}
	e.tab(t, "POST", "api/calls/"+lc.ID+"/hangup", nil, 200, nil)
	rec := e.lastCall(t, e.users[johannaUPN], start)
	if rec.Direction != pbx2teams.DirectionOutbound || rec.Route != pbx2teams.RoutePhoneApp || rec.Result != pbx2teams.ResultAnswered {
		t.Fatalf("call record %+v", rec)
	}
	if !strings.Contains(e.desk.Messages(), "sip:1002@"+e2eDomain) {
		t.Errorf("the desk phone did not see the call as from extension 1002")
	}
}

// tabInBrowser drives the dialler tab in Chromium inside the sandbox's Teams
// client page, as Johanna: the tab signs in by Teams SSO and shows her line
// registered; she dials extension 2001 (a SIPp phone that answers, echoes
// audio and DTMF, and takes hold and resume), answers the callback in
// Teams, sees packets move both ways, sends tones (heard back in Teams),
// holds (a=inactive at the phone) and resumes, and hangs up.
func (e *e2e) tabInBrowser(t *testing.T) {
	far := sipp.StartT(t, sipp.Options{ScenarioXML: sipp.Scenario("far_answer", "far_hold", "far_bye"), Calls: 1, Timeout: 90 * time.Second, Messages: true,
		Extra: []string{"-rtp_echo", "-mp", fmt.Sprint(freeUDP(t))}})
	e2eRegister(t, e.kam, "2001", "desk-2001", "sip:2001@"+far.Addr())
	johanna := e.app.sandboxTeams.sim.UserByUPN(johannaUPN)

	b := browser.New(t, browser.Options{Timeout: 3 * time.Minute, Width: 1200, Height: 1000})
	const tab = `document.getElementById("tab").contentDocument`
	inTab := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`(function(){ var d = `+tab+`; return String(`+expr+`); })()`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	waitTab := func(what, cond string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(function(){ try { var d = `+tab+`; if (!d || !d.body) return false; return !!(`+cond+`); } catch (e) { return false; } })()`,
			chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			t.Fatalf("%s: %v\ntab: %s\nconsole: %v", what, err, inTab(`d.body ? d.body.innerText : ""`), b.Errors())
		}
	}
	click := func(sel string) {
		t.Helper()
		if v := inTab(`(function(){ var e = d.querySelector(` + jsQuote(sel) + `); if (!e) return "missing"; e.click(); return "ok"; })()`); v != "ok" {
			t.Fatalf("click %s: %s", sel, v)
		}
	}
	// The sandbox's Teams client lists the configured users to act as.
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(e.base+"/_msim/teams/"), chromedp.WaitVisible(chromedp.ID("user-list"))); err != nil {
		t.Fatal(err)
	}
	if people, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.ID("user-list"))); err != nil || !strings.Contains(people, "Johanna") || !strings.Contains(people, "Alex") {
		t.Fatalf("Teams client picker lists %q (%v)", people, err)
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(e.base+"/_msim/teams/client?upn="+url.QueryEscape(johannaUPN)),
		chromedp.WaitReady(chromedp.ID("tab"))); err != nil {
		t.Fatal(err)
	}
	waitTab("the tab signs in by Teams SSO", `d.body.dataset.ready === "yes"`)
	waitTab("the line shows registered", `d.getElementById("line-state").textContent === "Line registered"`)
	inTab(`(function(){ d.getElementById("number").value = "2001"; return "ok"; })()`)
	click("#call")
	callSel := `d.querySelector(".call")`
	waitTab("the tab says Teams is ringing her", callSel+` && `+callSel+`.dataset.state === "ringing_you"`)
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".teams-call .answer")), chromedp.Click(chromedp.CSS(".teams-call .answer")))
	cancel()
	if err != nil {
		t.Fatalf("answering the callback in Teams: %v", err)
	}
	waitTab("connected", callSel+`.dataset.state === "connected"`)
	waitTab("packets both ways", `+`+callSel+`.querySelector(".pk-in").textContent > 25 && +`+callSel+`.querySelector(".pk-out").textContent > 25`)
	var tc *simteams.Call
	for _, c := range johanna.Calls() {
		tc = c
	}
	if tc == nil {
		t.Fatal("no call at Johanna's Teams")
	}
	click(".call .keypad-toggle")
	click(`.call .dtmf-pad button[data-key="4"]`)
	click(`.call .dtmf-pad button[data-key="2"]`)
	e2eWait(t, 15*time.Second, "the tones echoed by the phone back to Teams", func() bool { return tc.Media().DTMF == "42" })
	click(".call .hold")
	waitTab("held", callSel+`.dataset.state === "held"`)
	click(".call .hold")
	waitTab("resumed", callSel+`.dataset.state === "connected"`)
	invs := far.Received("INVITE")
	if len(invs) != 3 || !strings.Contains(invs[1].Text, "a=inactive") || !strings.Contains(invs[2].Text, "a=sendrecv") {
		t.Fatalf("hold and resume at the phone: %d INVITEs", len(invs))
	}
	click(".call .hangup")
	if res, err := far.Wait(e.ctx(30 * time.Second)); err != nil || res.Successful != 1 {
		t.Fatalf("the phone's side of the call: %+v %v\n%s", res, err, far.Messages())
	}
	waitTab("the call leaves the tab", `!d.querySelector(".call") || d.querySelector(".call").dataset.state === "ended"`)
	waitTab("recent calls list it", `d.getElementById("recent").textContent.indexOf("2001") >= 0`)
}

func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// blockedDomain: the tenant's external access blocks the Phone App domain;
// Johanna's next call is declined by Microsoft (603), the tab says why in
// plain words, and her readiness shows the failed check with its fix.
func (e *e2e) blockedDomain(t *testing.T) {
	if err := e.graph.SetFederation(msim.SandboxTenantID, msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true,
		BlockedDomains: []string{defaultPhoneAppDomain}}); err != nil {
		t.Fatal(err)
	}
	// The admin's test call from the portal's API rings nobody and says why.
	var tcr pbx2teams.TestCallResult
	e.call(t, "POST", "/api/v1/accounts/"+e.customer+"/users/"+e.users[johannaUPN]+"/test-call", nil, 200, &tcr)
	t.Logf("test call: %+v", tcr)
	if !strings.Contains(strings.ToLower(tcr.Result+" "+tcr.Advice), "external access") {
		t.Fatalf("test call with the domain blocked: %+v", tcr)
	}
	var lc pbx2teams.LiveCall
	e.tab(t, "POST", "api/calls", map[string]string{"number": "2000"}, 201, &lc)
	e2eWait(t, 20*time.Second, "the refused call to end in the tab", func() bool {
		var list struct {
			Calls []pbx2teams.LiveCall `json:"calls"`
		}
		e.tab(t, "GET", "api/calls", nil, 200, &list)
		for _, c := range list.Calls {
			if c.ID == lc.ID && c.State != pbx2teams.CallEnded {
				return false
			}
		}
		return true
	})
	var rd pbx2teams.Readiness
	e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/users/"+e.users[johannaUPN]+"/readiness", nil, 200, &rd)
	var ext *pbx2teams.Check
	for i, c := range rd.Checks {
		if c.Key == "external_access" {
			ext = &rd.Checks[i]
		}
	}
	if ext == nil || ext.State != pbx2teams.CheckFail || !strings.Contains(ext.Detail, "603") || !strings.Contains(ext.Fix, defaultPhoneAppDomain) {
		t.Fatalf("readiness after a 603: %+v", rd)
	}
	rec := e.lastCall(t, e.users[johannaUPN], time.Now().UTC().Add(-30*time.Second))
	if rec.TeamsStatus != 603 || rec.Advice == "" {
		t.Fatalf("call record of the refused call %+v", rec)
	}
	// Allow it again: the next call connects.
	if err := e.graph.SetFederation(msim.SandboxTenantID, msim.Federation{AllowFederatedUsers: true, AllowAllKnownDomains: true}); err != nil {
		t.Fatal(err)
	}
}

// callLog: the portal's call log shows the story's calls, and a call's page
// shows its SIP ladder.
func (e *e2e) callLog(t *testing.T) {
	var page pbx2teams.CallPage
	e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/calls?limit=50", nil, 200, &page)
	if len(page.Calls) < 5 {
		t.Fatalf("call log has %d calls, want the story's 5", len(page.Calls))
	}
	var tr pbx2teams.CallTrace
	e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/calls/"+page.Calls[len(page.Calls)-1].ID+"/trace", nil, 200, &tr)
	if len(tr.Messages) < 6 || !strings.HasPrefix(tr.Messages[0].Summary, "INVITE ") {
		t.Fatalf("trace %+v", tr)
	}
	for _, m := range tr.Messages {
		if strings.Contains(m.Message, "alex-secret-1") || strings.Contains(m.Message, "response=\"") {
			t.Fatalf("trace keeps credentials: %s", m.Summary)
		}
	}
}

// portalPages: in the portal, Johanna's page shows the external-access
// check failed with the fix (after the 603), the call log lists the calls
// with the refused one's advice, and a call's page draws its SIP ladder.
func (e *e2e) portalPages(t *testing.T) {
	b := browser.New(t, browser.Options{Timeout: 2 * time.Minute})
	text := func(url, sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
		defer cancel()
		var s string
		err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel)))
		if err == nil {
			s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		}
		if err != nil {
			t.Fatalf("%s %s: %v", url, sel, err)
		}
		return s
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(e.base+"/signin"),
		chromedp.SendKeys(chromedp.ID("email"), "operator@provider.example"),
		chromedp.SendKeys(chromedp.ID("password"), e.password),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS(".topbar"))); err != nil {
		t.Fatal(err)
	}
	acc := e.base + "/a/" + e.customer
	if s := text(acc+"/users/"+e.users[johannaUPN], `[data-check="external_access"]`); !strings.Contains(s, "Failed") ||
		!strings.Contains(s, "603") || !strings.Contains(s, "External access") {
		t.Fatalf("Johanna's external access check: %q", s)
	}
	calls := text(acc+"/calls", "#calls-table")
	for _, want := range []string{"2002", "2000", "2001"} {
		if !strings.Contains(calls, want) {
			t.Errorf("call log lacks %s:\n%s", want, calls)
		}
	}
	var page pbx2teams.CallPage
	e.call(t, "GET", "/api/v1/accounts/"+e.customer+"/calls?user="+e.users[alexUPN]+"&limit=1", nil, 200, &page)
	if ladder := text(acc+"/calls/"+page.Calls[0].ID, ".ladder"); !strings.Contains(ladder, "INVITE") || !strings.Contains(ladder, "200 OK") {
		t.Fatalf("ladder: %q", ladder)
	}
}

func e2eEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func e2eWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// e2eRegister registers ext at Kamailio with a Contact of our choice (the
// SIPp phone playing that extension).
func e2eRegister(t *testing.T, k *kamailio.Server, ext, password, contact string) {
	t.Helper()
	if err := k.RegisterContact(context.Background(), ext, password, contact); err != nil {
		t.Fatal(err)
	}
}
