package portal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/portal"
)

// TestBrowserTestCallJourney: a customer admin opens a Phone App user from
// the Users tab in Chromium, whose external access check cannot be verified
// from Graph, and presses Test call. While the call rings the button is
// disabled and says so (a second press places no second call). Microsoft
// declines with 603; the page then shows the outcome, the advice, and the
// external access check failed with the 603 and the admin-center fix. No
// console errors, so the strict CSP held.
//
// Set PORTAL_SCREENSHOTS to a directory to save screenshots of the pages.
func TestBrowserTestCallJourney(t *testing.T) {
	t.Parallel()
	var caller *declinedCaller
	f := phoneAppCustomer(t, func(svc *pbx2teams.Service) portal.Options {
		caller = &declinedCaller{svc: svc, gate: make(chan struct{})}
		return portal.Options{TestCaller: caller}
	})
	released := false
	release := func() {
		if !released {
			released = true
			close(caller.gate)
		}
	}
	defer release()
	if !strings.HasPrefix(f.srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server is not on loopback: %s", f.srv.URL)
	}
	j := newJourney(t, 90*time.Second, "testcall-failed")
	b, bc := j.b, j.b.Ctx
	shot, do, text := j.shot, j.do, j.text
	class := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bc, chromedp.Evaluate[string](`document.querySelector(`+jsString(sel)+`).className`))
		if err != nil {
			t.Fatalf("class of %s: %v", sel, err)
		}
		return s
	}

	do("sign in", chromedp.Navigate(f.srv.URL+"/signin"),
		chromedp.SendKeys(chromedp.ID("email"), "admin@contoso.example"),
		chromedp.SendKeys(chromedp.ID("password"), f.password("admin@contoso.example")),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS(".topbar")))
	do("users tab", chromedp.Navigate(f.srv.URL+"/a/"+f.custA.ID+"/users"),
		chromedp.Click(chromedp.CSS(`tr[data-user="alice@contoso.example"] a.user-link`)),
		chromedp.WaitVisible(chromedp.ID("test-call-submit")))
	fed := `#readiness li[data-check="external_access"]`
	if c, s := class(fed), text(fed); !strings.Contains(c, "not_verifiable") || !strings.Contains(s, "Not verifiable") {
		t.Fatalf("external access before the test call: %q %q", c, s)
	}
	shot("testcall-01-before")

	// Press Test call: while Teams "rings", the button is disabled and says
	// what is happening, and pressing it again does nothing. (Checked in the
	// page itself, as chromedp waits for a pending navigation to end.)
	busy, err := chromedp.Run(bc, chromedp.Evaluate[[]any](`new Promise(function (resolve) {
		var b = document.getElementById('test-call-submit');
		b.click();
		setTimeout(function () {
			var seen = [b.disabled, b.textContent];
			b.click();
			resolve(seen);
		}, 200);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		shot("testcall-failed")
		t.Fatalf("press test call: %v", err)
	}
	if len(busy) != 2 || busy[0] != true || !strings.Contains(busy[1].(string), "Ringing alice@contoso.example in Teams") {
		t.Fatalf("while ringing the button was %v", busy)
	}
	// The first press reached the service; let Microsoft answer 603.
	for deadline := time.Now().Add(20 * time.Second); len(caller.calls()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the press placed no test call")
		}
	}
	shot("testcall-02-ringing")
	// Microsoft answers 603; the page comes back with the outcome.
	release()
	do("outcome", chromedp.WaitVisible(chromedp.ID("test-call-outcome")))
	if s := text("#test-call-outcome"); !strings.Contains(s, "603 Declined") {
		t.Fatalf("outcome %q", s)
	}
	if s := text("#test-call-advice"); !strings.Contains(s, "external access does not allow phoneapp.pbx2teams.example") {
		t.Fatalf("advice %q", s)
	}
	if c, s := class(fed), text(fed); !strings.Contains(c, "fail") || !strings.Contains(s, "603") ||
		!strings.Contains(s, "External access does not allow phoneapp.pbx2teams.example") ||
		!strings.Contains(s, "Teams admin center go to Users > External access") {
		t.Fatalf("external access after the 603: %q %q", c, s)
	}
	if s := text("#test-call-submit"); s != "Test again" {
		t.Errorf("button after the call: %q", s)
	}
	shot("testcall-03-declined")
	if got := caller.calls(); len(got) != 1 || got[0] != "alice@contoso.example" {
		t.Fatalf("the browser's presses rang %v, want alice once", got)
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("browser console errors: %q", errs)
	}
}
