package portal_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/portal"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

// TestBrowserCallLogJourney: the B2BUA records two calls of Alice (one
// answered with its SIP trace, one declined by Teams with advice); the
// customer admin finds them in Chromium from the Users tab, reads the
// advice, and reads the answered call's ladder: one arrow per message, on
// the right lane and pointing the right way, with the full INVITE behind a
// click and its SRTP key removed. The Teams services tab shows the SBC FQDN
// and changes the label. No console errors, so the strict CSP held.
//
// Set PORTAL_SCREENSHOTS to a directory to save screenshots of the pages.
func TestBrowserCallLogJourney(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "p2t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	box, err := secrets.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	svc := pbx2teams.NewService(st, box, nil)
	if _, _, err := svc.Bootstrap(ctx, "Operator", "ops@provider.example"); err != nil {
		t.Fatal(err)
	}
	cust, err := svc.CreateAccount(ctx, pbx2teams.System, mustOperatorID(t, svc), pbx2teams.KindCustomer, "Contoso")
	if err != nil {
		t.Fatal(err)
	}
	const adminPW = "calls-journey-password"
	if _, _, err := svc.CreateAdmin(ctx, pbx2teams.System, cust.ID, "it@contoso.example", "IT", "", adminPW); err != nil {
		t.Fatal(err)
	}
	alice := &pbx2teams.User{AccountID: cust.ID, ObjectID: "obj-alice", UPN: "alice@contoso.example", DisplayName: "Alice Archer",
		Enabled: true, Kind: pbx2teams.KindPerson}
	if err := st.UpsertDirectoryUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	answered, failed := recordCalls(t, svc, cust.ID, alice)

	srv := httptest.NewServer(portal.New(svc, portal.Options{SBCBaseFQDN: "sbc.provider.example"}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server is not on loopback: %s", srv.URL)
	}
	j := newJourney(t, 90*time.Second, "calls-failed")
	b, bc := j.b, j.b.Ctx
	shot, do, text := j.shot, j.do, j.text
	click := func(what, sel string) {
		t.Helper()
		res, err := chromedp.RunResponse(bc, chromedp.Click(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Status != http.StatusOK {
			t.Fatalf("%s: page status %d", what, res.Status)
		}
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bc, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	do("sign in", chromedp.Navigate(srv.URL+"/signin"),
		chromedp.SendKeys(chromedp.ID("email"), "it@contoso.example"), chromedp.SendKeys(chromedp.ID("password"), adminPW))
	click("sign in", "#signin")

	// From the Users tab to Alice's calls.
	click("Alice's calls", `tr[data-user="alice@contoso.example"] a.user-calls`)
	if who := text("#call-filter-user"); !strings.Contains(who, "Alice Archer") {
		t.Fatalf("filter shows %q", who)
	}
	if n := count("#calls-table tbody tr"); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	row := text(`tr[data-call="` + answered.ID + `"]`)
	for _, want := range []string{"Alice Archer", "Inbound", "Direct Routing", "Reception", "+441632960900", "+441632960201", "Answered", "2:00", "200 OK"} {
		if !strings.Contains(row, want) {
			t.Errorf("answered row %q lacks %q", row, want)
		}
	}
	row = text(`tr[data-call="` + failed.ID + `"]`)
	for _, want := range []string{"Declined", "PBX 603 Decline", "Teams 403 Forbidden", "—"} {
		if !strings.Contains(row, want) {
			t.Errorf("failed row %q lacks %q", row, want)
		}
	}
	shot("calls-01-list")

	// The failed call: its advice in plain words, no trace.
	click("open the failed call", `tr[data-call="`+failed.ID+`"] a.call-link`)
	if advice := text("#call-advice"); !strings.Contains(advice, "no Teams Phone licence") || !strings.Contains(advice, "Teams admin center") {
		t.Fatalf("advice %q", advice)
	}
	if note := text("#no-trace"); !strings.Contains(note, "No SIP trace is kept") {
		t.Fatalf("no-trace note %q", note)
	}
	shot("calls-02-failed")

	// The answered call: media counters and the ladder.
	do("back to the list", chromedp.Navigate(srv.URL+"/a/"+cust.ID+"/calls"))
	click("open the answered call", `tr[data-call="`+answered.ID+`"] a.call-link`)
	if m := text("#media-pbx"); !strings.Contains(m, "6000") || !strings.Contains(m, "5990") || !strings.Contains(m, "1.2 ms") {
		t.Errorf("PBX media row %q", m)
	}
	if n := count("#ladder .step .arrow"); n != 8 {
		t.Fatalf("%d arrows, want 8", n)
	}
	for sel, want := range map[string]int{
		".step.lane-pbx.to-right":   1, // INVITE from the PBX
		".step.lane-pbx.to-left":    3, // 100, 180, 200 to the PBX
		".step.lane-teams.to-right": 1, // INVITE to Teams
		".step.lane-teams.to-left":  3, // 180, 200, BYE from Teams
	} {
		if n := count("#ladder " + sel); n != want {
			t.Errorf("%s: %d arrows, want %d", sel, n, want)
		}
	}
	if first := text(`#ladder .step[data-n="1"] .arrow-label`); first != "INVITE sip:+441632960201@contoso.sbc.example SIP/2.0" {
		t.Errorf("first arrow %q", first)
	}
	// An arrow toward Teams is drawn in the right half, its head on the
	// right; an arrow toward the PBX in the left half, its head on the left.
	geom, err := chromedp.Run(bc, chromedp.Evaluate[[]float64](`(function () {
		var a = document.querySelector('#ladder .step[data-n="3"] .arrow').getBoundingClientRect();
		var p = document.querySelector('#ladder .step[data-n="2"] .arrow').getBoundingClientRect();
		var head3 = getComputedStyle(document.querySelector('#ladder .step[data-n="3"] .arrow'), '::after');
		var head2 = getComputedStyle(document.querySelector('#ladder .step[data-n="2"] .arrow'), '::after');
		var lad = document.getElementById('ladder').getBoundingClientRect();
		return [a.left - lad.left, p.right - lad.left, lad.width, parseFloat(head3.borderLeftWidth), parseFloat(head2.borderRightWidth)];
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if teamsLeft, pbxRight, width := geom[0], geom[1], geom[2]; teamsLeft < width/2 || pbxRight > width*0.75 || geom[3] == 0 || geom[4] == 0 {
		t.Errorf("ladder geometry %v: the Teams arrow should start past the middle, the PBX arrow end before it, both with heads", geom)
	}
	// The full INVITE is one click away, its SRTP key removed.
	do("expand the INVITE", chromedp.Click(chromedp.CSS(`#ladder .step[data-n="3"] .step-full summary`)),
		chromedp.WaitVisible(chromedp.CSS(`#ladder .step[data-n="3"] pre.sip-message`)))
	if full := text(`#ladder .step[data-n="3"] pre.sip-message`); !strings.Contains(full, "inline:[removed]") || strings.Contains(full, "WVNfX19zZW1jdGw") {
		t.Errorf("full INVITE %q", full)
	}
	shot("calls-03-ladder")

	// The Teams services tab: the SBC FQDN, and a new label.
	do("teams services", chromedp.Navigate(srv.URL+"/a/"+cust.ID+"/teams"))
	if fqdn := text("#sbc-fqdn"); fqdn != "contoso.sbc.provider.example" {
		t.Fatalf("SBC FQDN %q", fqdn)
	}
	if _, err := chromedp.Run(bc, chromedp.Evaluate[bool](`(document.getElementById('sbc-label').value = '') === ''`)); err != nil {
		t.Fatal(err)
	}
	do("type a label", chromedp.SendKeys(chromedp.ID("sbc-label"), "contoso-eu"))
	click("save the label", "#sbc-save")
	if fqdn := text("#sbc-fqdn"); fqdn != "contoso-eu.sbc.provider.example" {
		t.Fatalf("SBC FQDN after the change %q", fqdn)
	}
	if acc, err := svc.AccountBySBCLabel(ctx, "contoso-eu"); err != nil || acc.ID != cust.ID {
		t.Fatalf("AccountBySBCLabel = %+v, %v", acc, err)
	}
	shot("calls-04-sbc")

	if errs := b.Errors(); len(errs) > 0 {
		t.Fatalf("browser console errors: %q", errs)
	}
}

func mustOperatorID(t *testing.T, svc *pbx2teams.Service) string {
	t.Helper()
	accs, err := svc.Accounts(context.Background(), pbx2teams.System)
	if err != nil || len(accs) == 0 {
		t.Fatalf("no operator account: %v", err)
	}
	return accs[0].ID
}
