package phoneapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/browser"
	"github.com/pbx2teams/pbx2teams/msim/teamsclient"
)

// testPhones is a test double of the simulated Teams endpoints for the
// sandbox client page: a call placed through the test dialler rings the
// user here; Answer lets the dialler go on to the PBX leg.
type testPhones struct {
	d     *testDialler
	mu    sync.Mutex
	calls map[string]teamsclient.Call // by LiveCall id
	upns  map[string]string           // LiveCall id → UPN
}

func newTestPhones(d *testDialler) *testPhones {
	p := &testPhones{d: d, calls: map[string]teamsclient.Call{}, upns: map[string]string{}}
	d.OnDial = func(u *pbx2teams.User, lc pbx2teams.LiveCall) {
		p.mu.Lock()
		p.calls[lc.ID] = teamsclient.Call{ID: lc.ID, Inbound: true, Federated: true, State: "ringing",
			RemoteUser: lc.Remote, StartedAt: time.Now()}
		p.upns[lc.ID] = u.UPN
		p.mu.Unlock()
	}
	d.OnEnd = func(lc pbx2teams.LiveCall) {
		p.mu.Lock()
		delete(p.calls, lc.ID)
		p.mu.Unlock()
	}
	return p
}

func (p *testPhones) Calls(upn string) ([]teamsclient.Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []teamsclient.Call
	for id, c := range p.calls {
		if p.upns[id] == upn {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) }) // oldest first, as Teams lists them
	return out, nil
}

func (p *testPhones) find(upn, id string) (teamsclient.Call, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.calls[id]
	if !ok || p.upns[id] != upn {
		return c, errors.New("no such call")
	}
	return c, nil
}

func (p *testPhones) Answer(ctx context.Context, upn, id string) error {
	c, err := p.find(upn, id)
	if err != nil {
		return err
	}
	c.State = "active"
	p.mu.Lock()
	p.calls[id] = c
	p.mu.Unlock()
	go p.d.Advance(id)
	return nil
}

func (p *testPhones) Decline(ctx context.Context, upn, id string) error {
	if _, err := p.find(upn, id); err != nil {
		return err
	}
	p.d.End(id, pbx2teams.CallEnded, "You declined the call in Teams.")
	return nil
}

func (p *testPhones) Hangup(ctx context.Context, upn, id string) error {
	if _, err := p.find(upn, id); err != nil {
		return err
	}
	p.d.End(id, pbx2teams.CallEnded, "You hung up in Teams.")
	return nil
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowserJourney drives the Phone App tab in Debian's Chromium inside
// the sandbox's Teams client page, as a simulated Teams user: Teams SSO
// through the page's TeamsJS host, typing on the dial pad, a call placed,
// answered in Teams and shown live, hold and resume, keypad tones, reload,
// transfer, hang up, recent calls, contacts, and a refused user.
//
// Set PHONEAPP_SCREENSHOTS to a directory to save screenshots.
func TestBrowserJourney(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	phones := newTestPhones(f.dialler)
	client, err := teamsclient.New(teamsclient.Config{Identity: f.sim, Audience: audience, TabURL: "/phone/", Phones: phones,
		Users: func() []teamsclient.User {
			return []teamsclient.User{{UPN: "alice@contoso.example", Name: "Alice Archer"}, {UPN: "bob@contoso.example", Name: "Bob Baker"}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.mux.Handle("/_msim/teams/", client)

	b := browser.New(t, browser.Options{Timeout: 120 * time.Second, Width: 1200, Height: 1000})
	bc := b.Ctx
	shots := os.Getenv("PHONEAPP_SCREENSHOTS")
	shot := func(name string) {
		if shots != "" {
			if err := b.Screenshot(filepath.Join(shots, name+".png")); err != nil {
				t.Log(err)
			}
		}
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bc, actions...); err != nil {
			t.Fatalf("%s: %v\nconsole: %v", what, err, b.Errors())
		}
	}
	// The tab is same-origin with the client page here (as in the
	// sandbox), so its document is reachable from the page's script.
	const tab = `document.getElementById("tab").contentDocument`
	// inTab evaluates a JS expression in the tab's document (as `d`).
	inTab := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bc, chromedp.Evaluate[string](`(function(){ var d = `+tab+`; return String(`+expr+`); })()`))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	// waitTab polls until a condition on the tab's document holds.
	waitTab := func(what, cond string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bc, 30*time.Second)
		defer cancel()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(function(){ try { var d = `+tab+`; if (!d || !d.body) return false; return !!(`+cond+`); } catch (e) { return false; } })()`,
			chromedp.WithPollingInterval(50*time.Millisecond)))
		if err != nil {
			t.Fatalf("%s: %v\ntab text: %s\nconsole: %v\ndialler: %v", what, err, inTab(`d.body ? d.body.innerText : ""`), b.Errors(), f.dialler.Actions())
		}
	}
	waitDialler := func(action string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !f.dialler.hasAction(action) {
			if time.Now().After(deadline) {
				t.Fatalf("the dialler never saw %q: %v", action, f.dialler.Actions())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	click := func(what, sel string) {
		t.Helper()
		if v := inTab(`(function(){ var e = d.querySelector(` + jsString(sel) + `); if (!e) return "missing"; e.click(); return "ok"; })()`); v != "ok" {
			t.Fatalf("%s: %s is %s", what, sel, v)
		}
	}
	focus := func(sel string) {
		t.Helper()
		if v := inTab(`(function(){ var e = d.querySelector(` + jsString(sel) + `); if (!e) return "missing"; d.defaultView.focus(); e.focus(); return d.activeElement === e ? "ok" : "not focused"; })()`); v != "ok" {
			t.Fatalf("focus %s: %s", sel, v)
		}
	}
	keys := func(what, k string) { do(what, chromedp.KeyEvent(k)) }
	callSel := `d.querySelector(".call")`
	start := time.Now()

	t.Logf("step 1 at %v", time.Since(start).Round(time.Millisecond))
	// 1. The user picker lists simulated users; Alice opens Teams and the
	// tab signs her in through TeamsJS.
	do("open the picker", chromedp.Navigate(f.srv.URL+"/_msim/teams/"))
	if v, err := chromedp.Run(bc, chromedp.Text(chromedp.ID("user-list"))); err != nil || !strings.Contains(v, "Alice Archer") {
		t.Fatalf("picker: %q %v", v, err)
	}
	do("sign in as Alice", chromedp.SendKeys(chromedp.ID("upn"), "alice@contoso.example"), chromedp.Click(chromedp.ID("open")),
		chromedp.WaitReady(chromedp.ID("tab")))
	waitTab("the tab signs in", `d.body.dataset.ready === "yes"`)
	shot("01-signed-in")
	if name := inTab(`d.getElementById("me-name").textContent`); name != "Alice Archer" {
		t.Fatalf("signed in as %q", name)
	}
	if line := inTab(`d.getElementById("me-line").textContent`); line != "Extension 200 · +441632960200" {
		t.Fatalf("line: %q", line)
	}
	waitTab("line state", `d.getElementById("line-state").textContent === "Line registered"`)
	// The line state follows the registration live.
	f.regs.set("u-alice", pbx2teams.RegistrationState{State: pbx2teams.RegFailed, StatusCode: 408, Reason: "The PBX did not answer"})
	waitTab("line failing", `d.getElementById("line-state").textContent === "Line failing: The PBX did not answer (408)"`)
	f.regs.set("u-alice", pbx2teams.RegistrationState{State: pbx2teams.RegRegistered})
	waitTab("line registered again", `d.getElementById("line-state").textContent === "Line registered"`)
	hostLog, _ := chromedp.Run(bc, chromedp.Evaluate[string](`document.getElementById("host-log").textContent`))
	for _, m := range []string{"tab → initialize", "tab → getContext", "tab → authentication.getAuthToken", "host → authentication.getAuthToken (token)"} {
		if !strings.Contains(hostLog, m) {
			t.Fatalf("TeamsJS exchange lacks %q: %s", m, hostLog)
		}
	}

	t.Logf("step 2 at %v", time.Since(start).Round(time.Millisecond))
	// 2. Recent calls and contacts are listed; searching narrows them.
	waitTab("contacts", `d.querySelectorAll("#contacts li .dial-this").length === 2`)
	if v := inTab(`d.getElementById("contacts").textContent`); !strings.Contains(v, "Ann Andrews") || !strings.Contains(v, "Carlos Cruz") {
		t.Fatalf("contacts: %q", v)
	}
	if v := inTab(`d.getElementById("recent").textContent`); v != "No calls yet." {
		t.Fatalf("recent before any call: %q", v)
	}

	t.Logf("step 3 at %v", time.Since(start).Round(time.Millisecond))
	// 3. Digits typed anywhere go to the dial pad; clicks on the pad too;
	// Enter dials.
	focus("#call")
	keys("type 2 0", "20")
	click("pad key", `#dialpad button[data-key="9"]`)
	click("backspace", "#backspace")
	keys("type 1", "1")
	if v := inTab(`d.getElementById("number").value`); v != "201" {
		t.Fatalf("dial pad shows %q", v)
	}
	if v := inTab(`d.activeElement.id`); v != "number" {
		t.Fatalf("focus after typing is on %q", v)
	}
	// Tab moves on in reading order: number, delete, then the pad.
	keys("tab", "\t")
	if v := inTab(`d.activeElement.id`); v != "backspace" {
		t.Fatalf("Tab from the number went to %q", v)
	}
	keys("tab", "\t")
	if v := inTab(`d.activeElement.dataset.key`); v != "1" {
		t.Fatalf("Tab from delete went to key %q", v)
	}
	focus("#number")
	keys("Enter dials", "\r")
	waitDialler("dial 201")
	waitTab("call shows ringing you", callSel+` && `+callSel+`.dataset.state === "ringing_you"`)
	if v := inTab(callSel + `.querySelector(".state").textContent`); !strings.Contains(v, "answer there") {
		t.Fatalf("state text: %q", v)
	}
	shot("02-ringing-you")

	t.Logf("step 4 at %v", time.Since(start).Round(time.Millisecond))
	// 4. Teams rings Alice (the client page); she answers there and the tab
	// shows the call connect, its timer and packets moving both ways.
	ctx, cancel := context.WithTimeout(bc, 20*time.Second)
	err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".teams-call .answer")))
	cancel()
	if err != nil {
		t.Fatalf("the Teams client never rang: %v", err)
	}
	if v, _ := chromedp.Run(bc, chromedp.Text(chromedp.CSS(".teams-call .who"))); !strings.Contains(v, "201") {
		t.Fatalf("Teams shows the caller as %q", v)
	}
	do("answer in Teams", chromedp.Click(chromedp.CSS(".teams-call .answer")))
	waitTab("call connected", callSel+`.dataset.state === "connected"`)
	waitTab("packets both ways", `+`+callSel+`.querySelector(".pk-in").textContent > 0 && +`+callSel+`.querySelector(".pk-out").textContent > 0`)
	waitTab("timer runs", callSel+`.querySelector(".timer").textContent !== "0:00"`)
	shot("03-connected")
	id := inTab(callSel + `.dataset.id`)

	t.Logf("step 5 at %v", time.Since(start).Round(time.Millisecond))
	// 5. Hold and resume.
	click("hold", ".call .hold")
	waitDialler("hold " + id + " true")
	waitTab("held", callSel+`.dataset.state === "held" && `+callSel+`.querySelector(".hold").textContent === "Resume"`)
	click("resume", ".call .hold")
	waitDialler("hold " + id + " false")
	waitTab("resumed", callSel+`.dataset.state === "connected" && `+callSel+`.querySelector(".hold").textContent === "Hold"`)

	t.Logf("step 6 at %v", time.Since(start).Round(time.Millisecond))
	// 6. Keypad tones: typed digits go to the call, and the keypad too.
	focus(".call .hold")
	keys("type tones", "5#")
	waitDialler("dtmf " + id + " #")
	var tones []string
	for _, a := range f.dialler.Actions() {
		if strings.HasPrefix(a, "dtmf ") {
			tones = append(tones, a)
		}
	}
	if len(tones) != 2 || tones[0] != "dtmf "+id+" 5" {
		t.Fatalf("tones reached the dialler as %v, want 5 then #", tones)
	}
	click("open the keypad", ".call .keypad-toggle")
	click("keypad 9", `.call .dtmf-pad button[data-key="9"]`)
	waitDialler("dtmf " + id + " 9")
	waitTab("tones shown", callSel+`.querySelector(".dtmf-sent").textContent === "5#9"`)
	if v := inTab(`d.getElementById("number").value`); v != "" {
		t.Fatalf("tones leaked into the dial pad: %q", v)
	}

	t.Logf("step 7 at %v", time.Since(start).Round(time.Millisecond))
	// 7. A reload keeps the call shown, live.
	inTab(`d.body.dataset.old = "yes"`) // tells the old document from the reloaded one
	do("reload the tab", chromedp.Click(chromedp.ID("reload-tab")))
	waitTab("the reloaded tab signs in", `d.body.dataset.old !== "yes" && d.body.dataset.ready === "yes" && d.body.dataset.live === "yes"`)
	waitTab("call shown after reload", callSel+` && `+callSel+`.dataset.id === `+jsString(id)+` && `+callSel+`.dataset.state === "connected"`)
	waitTab("packets still move after reload", `+`+callSel+`.querySelector(".pk-in").textContent > 0`)
	shot("04-after-reload")

	t.Logf("step 8 at %v", time.Since(start).Round(time.Millisecond))
	// 8. Blind transfer to 202 from the transfer field (Enter sends it).
	click("open transfer", ".call .transfer-toggle")
	if v := inTab(`d.activeElement.className`); v != "transfer-target" {
		t.Fatalf("focus after opening transfer: %q", v)
	}
	keys("type the target", "20 2")
	keys("Enter transfers", "\r")
	waitDialler("transfer " + id + " 202")
	waitTab("transferred", callSel+`.dataset.state === "transferred"`)
	if v := inTab(callSel + `.querySelector(".reason").textContent`); v != "Transferred to 202." {
		t.Fatalf("reason: %q", v)
	}

	t.Logf("step 9 at %v", time.Since(start).Round(time.Millisecond))
	// 9. A second call typed as a spaced international number; answered,
	// then hung up from the tab. Recent calls then list both calls.
	focus("#number")
	keys("type a number", "+44 20 7946-0000\r")
	waitDialler("dial +442079460000")
	ctx, cancel = context.WithTimeout(bc, 20*time.Second)
	err = chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".teams-call .answer")))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	do("answer the second call", chromedp.Click(chromedp.CSS(".teams-call .answer")))
	second := `d.querySelector('.call:not([data-id=` + jsString(id) + `])')`
	waitTab("second call connected", second+` && `+second+`.dataset.state === "connected"`)
	id2 := inTab(second + `.dataset.id`)
	click("hang up", `.call[data-id=`+jsString(id2)+`] .hangup`)
	waitDialler("hangup " + id2)
	waitTab("ended", second+`.dataset.state === "ended"`)
	waitTab("recent calls", `d.querySelectorAll("#recent li .dial-this").length === 2`)
	if v := inTab(`d.getElementById("recent").textContent`); !strings.Contains(v, "+442079460000") || !strings.Contains(v, "201") {
		t.Fatalf("recent: %q", v)
	}
	shot("05-recent")

	t.Logf("step 10 at %v", time.Since(start).Round(time.Millisecond))
	// 10. Contacts: search, then click to dial.
	focus("#contacts-q")
	keys("search contacts", "ann")
	waitTab("search narrows", `d.querySelectorAll("#contacts li .dial-this").length === 1 && d.getElementById("contacts").textContent.indexOf("Ann Andrews") >= 0`)
	click("call Ann", "#contacts li .dial-this")
	waitDialler("dial 203")
	waitTab("calling Ann", `d.querySelector(".call[data-state=ringing_you]")`)
	ctx, cancel = context.WithTimeout(bc, 20*time.Second)
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`(function(){ var e = document.querySelector(".teams-call .who"); return !!e && e.textContent === "203"; })()`))
	cancel()
	if err != nil {
		v, _ := chromedp.Run(bc, chromedp.Evaluate[string](`document.querySelector(".teams-calls").innerText`))
		t.Fatalf("Teams does not ring for the contact's call: %v; Teams shows %q; phones %+v", err, v, phones.calls)
	}

	t.Logf("step 11 at %v", time.Since(start).Round(time.Millisecond))
	// Alice declines it in Teams: the tab says so.
	do("decline in Teams", chromedp.Click(chromedp.CSS(".teams-call .decline")))
	waitTab("declined", `!d.getElementById("message").hidden && d.getElementById("message").textContent === "You declined the call in Teams."`)

	// 11. An error from the dialler is shown in plain words.
	f.dialler.failNext("Dial", pbx2teams.Errorf(pbx2teams.EConflict, "You already have a call ringing in Teams."))
	focus("#number")
	keys("dial again", "204\r")
	waitTab("error shown", `!d.getElementById("message").hidden && d.getElementById("message").textContent === "You already have a call ringing in Teams."`)

	t.Logf("step 12 at %v", time.Since(start).Round(time.Millisecond))
	// Attended transfer: two calls connected, the first joined to the
	// second from its transfer panel.
	byRemote := func(n string) string {
		return `Array.prototype.find.call(d.querySelectorAll(".call"), function (e) { return e.querySelector(".remote").textContent === "` + n + `"; })`
	}
	inTab(`d.getElementById("number").value = ""`) // 204 stayed after the failed call, for a retry
	for _, n := range []string{"205", "206"} {
		focus("#number")
		keys("dial "+n, n+"\r")
		waitDialler("dial " + n)
		ctx, cancel = context.WithTimeout(bc, 20*time.Second)
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`Array.prototype.some.call(document.querySelectorAll(".teams-call"), function (e) { return e.querySelector(".who").textContent === "`+n+`" && !!e.querySelector(".answer"); })`))
		cancel()
		if err != nil {
			t.Fatalf("Teams does not ring for %s: %v", n, err)
		}
		do("answer "+n, chromedp.Click(chromedp.CSS(".teams-call .answer")))
		waitTab(n+" connected", byRemote(n)+` && `+byRemote(n)+`.dataset.state === "connected"`)
	}
	idA, idB := inTab(byRemote("205")+`.dataset.id`), inTab(byRemote("206")+`.dataset.id`)
	if v := inTab(`(function(){ var e = ` + byRemote("205") + `; e.querySelector(".transfer-toggle").click(); var j = e.querySelector(".attended .join"); if (!j) return "no join button"; var label = j.textContent; j.click(); return label; })()`); v != "Connect with 206" {
		t.Fatalf("attended transfer button: %q", v)
	}
	waitDialler("attended " + idA + " " + idB)
	waitTab("both calls handed over", `d.querySelector('.call[data-id=`+jsString(idA)+`]').dataset.state === "transferred" && d.querySelector('.call[data-id=`+jsString(idB)+`]').dataset.state === "transferred"`)

	// 12. Teams switches to its dark theme: the tab follows. Then a narrow
	// tab (Teams' smallest): nothing overflows sideways.
	lightBg := inTab(`d.defaultView.getComputedStyle(d.body).backgroundColor`)
	do("dark theme", chromedp.SetValue(chromedp.ID("theme"), "dark"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("theme").dispatchEvent(new Event("change"))`))
	waitTab("dark theme applied", `d.documentElement.dataset.theme === "dark"`)
	if darkBg := inTab(`d.defaultView.getComputedStyle(d.body).backgroundColor`); darkBg == lightBg || darkBg != "rgb(31, 31, 31)" {
		t.Fatalf("background light %s, dark %s", lightBg, darkBg)
	}
	shot("06-dark")
	do("narrow window", chromedp.EmulateViewport(340, 900))
	waitTab("narrow layout", `d.documentElement.clientWidth < 340`)
	if v := inTab(`d.documentElement.scrollWidth <= d.documentElement.clientWidth`); v != "true" {
		wide := inTab(`Array.prototype.filter.call(d.querySelectorAll("body *"), function (e) { return e.getBoundingClientRect().right > d.documentElement.clientWidth + 0.5; }).map(function (e) { return e.tagName + "." + e.className + "#" + e.id + "=" + Math.round(e.getBoundingClientRect().right) + " " + (e.textContent || "").slice(0, 40); }).join(" | ")`)
		t.Fatalf("the tab overflows at %s px: scrollWidth %s; too wide: %s", inTab(`d.documentElement.clientWidth`), inTab(`d.documentElement.scrollWidth`), wide)
	}
	shot("07-narrow")
	do("wide window", chromedp.EmulateViewport(1200, 1000))

	t.Logf("step 13 at %v", time.Since(start).Round(time.Millisecond))
	// 13. Bob is a standard user: the tab refuses him in plain words.
	do("sign in as Bob", chromedp.Navigate(f.srv.URL+"/_msim/teams/client?upn=bob%40contoso.example"), chromedp.WaitReady(chromedp.ID("tab")))
	waitTab("Bob refused", `!d.getElementById("refused").hidden`)
	if v := inTab(`d.getElementById("refused-message").textContent`); !strings.Contains(v, "The Phone App is not set up for bob@contoso.example") {
		t.Fatalf("refusal: %q", v)
	}
	if v := inTab(`d.getElementById("app").hidden`); v != "true" {
		t.Fatal("the dialler is shown to a refused user")
	}
	shot("08-refused")
	t.Logf("refused at %v", time.Since(start).Round(time.Millisecond))

	// No script errors and no Content-Security-Policy violations; the
	// only console errors allowed are the refused API calls' statuses.
	for _, e := range b.Errors() {
		if !strings.Contains(e, "status of 403") && !strings.Contains(e, "status of 409") {
			t.Errorf("console: %s", e)
		}
	}
}
