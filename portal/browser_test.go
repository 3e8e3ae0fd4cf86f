package portal_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
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

// TestBrowserProvisioningJourney drives the portal in Debian's Chromium the
// way the people who use it do: the operator adds a partner, the partner
// adds a customer with licences and an admin, and the customer admin gives
// users their PBX lines. It checks what they see: the saved settings, never
// the SIP password, the licence message when pbx-user licences run out, and
// no Phone App switch without a Phone App licence.
//
// Set PORTAL_SCREENSHOTS to a directory to save screenshots of the pages.
func TestBrowserProvisioningJourney(t *testing.T) {
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
	created, opPW, err := svc.Bootstrap(ctx, "Operator", "ops@provider.example")
	if err != nil || !created {
		t.Fatalf("Bootstrap: %v %v", created, err)
	}
	srv := httptest.NewServer(portal.New(svc, portal.Options{ProductName: "pbx2teams"}))
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server is not on loopback: %s", srv.URL)
	}

	j := newJourney(t, 120*time.Second, "failed")
	b, bc := j.b, j.b.Ctx
	shot, do, text, exists := j.shot, j.do, j.text, j.exists
	// submit clicks a button that loads a new page and returns its status.
	submit := func(what string, sel string) int64 {
		t.Helper()
		res, err := chromedp.RunResponse(bc, chromedp.Click(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return res.Status
	}
	pageHTML := func() string {
		t.Helper()
		s, err := chromedp.Run(bc, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(bc, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(s, srv.URL)
	}
	signIn := func(email, pw string) {
		t.Helper()
		do("open sign-in", chromedp.Navigate(srv.URL+"/signin"),
			chromedp.SendKeys(chromedp.ID("email"), email), chromedp.SendKeys(chromedp.ID("password"), pw))
		if status := submit("sign in as "+email, "#signin"); status != http.StatusOK {
			t.Fatalf("sign in as %s: page status %d", email, status)
		}
	}
	signOut := func() {
		t.Helper()
		do("open the account menu", chromedp.Click(chromedp.CSS(".me > summary")))
		submit("sign out", "#signout")
		if !strings.HasPrefix(location(), "/signin") {
			t.Fatalf("after sign-out at %s", location())
		}
	}

	// 1. The operator adds a partner with its first admin.
	shot("01-signin")
	signIn("ops@provider.example", opPW)
	if !strings.Contains(text(".tabs"), "Partners & customers") {
		t.Fatalf("operator landed on %s", location())
	}
	do("fill the partner form",
		chromedp.Click(chromedp.CSS(`input[name=kind][value=partner]`)),
		chromedp.SendKeys(chromedp.ID("acc-name"), "Blue Telecom"),
		chromedp.SendKeys(chromedp.ID("admin-email"), "admin@blue.example"),
		chromedp.SendKeys(chromedp.ID("admin-name"), "Blue admin"))
	if status := submit("create partner", "#create-account-submit"); status != http.StatusOK {
		t.Fatalf("create partner: status %d", status)
	}
	if h := text("#created h2"); !strings.Contains(h, "Partner “Blue Telecom” created") {
		t.Fatalf("after creating the partner: %q", h)
	}
	partnerPW := text("#new-admin-password")
	shot("02-partner-created")
	signOut()

	// 2. The partner adds a customer with one pbx-user licence, no Phone
	// App licence, and a customer admin.
	signIn("admin@blue.example", partnerPW)
	if !strings.Contains(text("h1"), "Blue Telecom") {
		t.Fatalf("partner landed on %s", location())
	}
	do("fill the customer form",
		chromedp.SendKeys(chromedp.ID("acc-name"), "Contoso"),
		chromedp.SendKeys(chromedp.ID("pbx-users"), "1"),
		chromedp.SendKeys(chromedp.ID("app-users"), "0"),
		chromedp.SendKeys(chromedp.ID("admin-email"), "it@contoso.example"))
	shot("03-new-customer-form")
	if status := submit("create customer", "#create-account-submit"); status != http.StatusOK {
		t.Fatalf("create customer: status %d", status)
	}
	if facts := text("#created .facts"); !strings.Contains(facts, "1 × pbx-user") || strings.Contains(facts, "phone-app-user") {
		t.Fatalf("customer created with: %q", facts)
	}
	customerPW := text("#new-admin-password")
	open, err := chromedp.Run(bc, chromedp.AttributeValue(chromedp.CSS("#created a.btn.primary"), "href"))
	if err != nil {
		t.Fatal(err)
	}
	custID := strings.Trim(strings.TrimPrefix(open.Value, "/a/"), "/")
	shot("04-customer-created")
	signOut()

	// Sync is a later part: seed two directory users as it would.
	var users []*pbx2teams.User
	for i, name := range []string{"Alice Archer", "Bob Baker"} {
		u := &pbx2teams.User{AccountID: custID, ObjectID: "obj-" + name, UPN: strings.ToLower(strings.Fields(name)[0]) + "@contoso.example",
			DisplayName: name, Mail: strings.ToLower(strings.Fields(name)[0]) + "@contoso.example", Enabled: true,
			Kind: pbx2teams.KindPerson, HasTeamsPhone: i == 0}
		if err := svc.Store.UpsertDirectoryUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	room := &pbx2teams.User{AccountID: custID, ObjectID: "obj-room", UPN: "boardroom@contoso.example", DisplayName: "Boardroom",
		Enabled: true, Kind: pbx2teams.KindMeetingRoom}
	if err := svc.Store.UpsertDirectoryUser(ctx, room); err != nil {
		t.Fatal(err)
	}

	// 3. The customer admin gives Alice her PBX line.
	signIn("it@contoso.example", customerPW)
	if loc := location(); loc != "/a/"+custID+"/users" {
		t.Fatalf("customer admin landed on %s", loc)
	}
	if tbl := text("#users-table"); !strings.Contains(tbl, "Alice Archer") || !strings.Contains(tbl, "Bob Baker") || !strings.Contains(tbl, "Meeting room") {
		t.Fatalf("users table: %q", tbl)
	}
	shot("05-users")
	const secret1 = "Alice-SIP-p4ss!word"
	if status := submit("open Alice", `tr[data-user="alice@contoso.example"] a.user-link`); status != http.StatusOK {
		t.Fatalf("open Alice: %d", status)
	}
	if exists("#type-phone-app") {
		t.Fatal("the Phone App type is offered without a phone-app-user licence")
	}
	do("fill Alice's line",
		chromedp.SendKeys(chromedp.ID("sip-username"), "201"),
		chromedp.SendKeys(chromedp.ID("sip-password"), secret1),
		chromedp.SendKeys(chromedp.ID("phone-number"), "+441632960201"))
	if status := submit("save Alice", "#user-save"); status != http.StatusOK {
		t.Fatalf("save Alice: page status %d: %s", status, text("main"))
	}
	if flash := text(".alert.ok"); !strings.Contains(flash, "User settings saved") {
		t.Fatalf("after save: %q", flash)
	}
	for sel, want := range map[string]string{"#sip-username": "201", "#phone-number": "+441632960201", "#sip-password": ""} {
		got, err := chromedp.Run(bc, chromedp.Value(chromedp.CSS(sel)))
		if err != nil || got != want {
			t.Fatalf("%s = %q (%v), want %q", sel, got, err, want)
		}
	}
	if hint := text("#password-hint"); !strings.Contains(hint, "A password is set — leave empty to keep it") {
		t.Fatalf("password hint %q", hint)
	}
	if cur := text("#current-type"); cur != "Standard" {
		t.Fatalf("type shown %q", cur)
	}
	if h := pageHTML(); strings.Contains(h, secret1) {
		t.Fatal("the user page contains the SIP password")
	}
	shot("06-user-saved")
	saved, err := svc.Store.User(ctx, custID, users[0].ID)
	if err != nil || saved.Type != pbx2teams.ServiceStandard || saved.SIPUsername != "201" || saved.PhoneNumber != "+441632960201" {
		t.Fatalf("stored Alice = %+v, %v", saved, err)
	}
	if pw, err := svc.SIPPassword(saved); err != nil || pw != secret1 {
		t.Fatal("the stored SIP password is not the one typed")
	}

	// 4. Bob would need a second pbx-user licence: refused with the
	// licence message, and Bob stays unconfigured.
	const secret2 = "Bob-SIP-s3cret"
	do("open Bob", chromedp.Navigate(srv.URL+"/a/"+custID+"/users/"+users[1].ID),
		chromedp.SendKeys(chromedp.ID("sip-username"), "202"),
		chromedp.SendKeys(chromedp.ID("sip-password"), secret2),
		chromedp.SendKeys(chromedp.ID("phone-number"), "+441632960202"))
	if status := submit("save Bob", "#user-save"); status != http.StatusPaymentRequired {
		t.Fatalf("save Bob over quota: status %d", status)
	}
	msg := text("#page-error")
	if !strings.Contains(msg, "Licence needed") || !strings.Contains(msg, "pbx-user") || !strings.Contains(msg, "licensing provider") {
		t.Fatalf("over-quota message %q", msg)
	}
	if got, _ := chromedp.Run(bc, chromedp.Value(chromedp.ID("sip-username"))); got != "202" {
		t.Fatalf("the form lost what was typed: sip username %q", got)
	}
	if h := pageHTML(); strings.Contains(h, secret2) || strings.Contains(h, secret1) {
		t.Fatal("the refused form shows a SIP password")
	}
	shot("07-over-quota")
	if bob, err := svc.Store.User(ctx, custID, users[1].ID); err != nil || bob.Configured() || bob.HasPassword {
		t.Fatalf("Bob after the refusal = %+v, %v", bob, err)
	}

	// 5. The users list shows Alice's line and the type icons.
	do("users list", chromedp.Navigate(srv.URL+"/a/"+custID+"/users"))
	alice := text(`tr[data-user="alice@contoso.example"]`)
	if !strings.Contains(alice, "201") || !strings.Contains(alice, "+441632960201") || !strings.Contains(alice, "Standard") {
		t.Fatalf("Alice's row: %q", alice)
	}
	for sel, label := range map[string]string{
		`tr[data-user="alice@contoso.example"] svg.type-icon`:     "Standard user",
		`tr[data-user="bob@contoso.example"] svg.type-icon`:       "Not configured",
		`tr[data-user="boardroom@contoso.example"] svg.type-icon`: "Meeting room",
	} {
		a, err := chromedp.Run(bc, chromedp.AttributeValue(chromedp.CSS(sel), "aria-label"))
		if err != nil || a.Value != label {
			t.Fatalf("%s aria-label %q (%v), want %q", sel, a.Value, err, label)
		}
	}
	if h := pageHTML(); strings.Contains(h, secret1) {
		t.Fatal("the users list contains the SIP password")
	}
	shot("08-users-after")

	// 6. No Phone App switch without the licence: the licensing note.
	do("teams services", chromedp.Navigate(srv.URL+"/a/"+custID+"/teams"))
	if exists("#phone-app-switch") {
		t.Fatal("Phone App switch shown without a phone-app-user licence")
	}
	if note := text("#phone-app-unlicensed"); !strings.Contains(note, "needs to be enabled via your licensing provider") {
		t.Fatalf("Phone App note %q", note)
	}
	shot("09-teams")
	do("licences", chromedp.Navigate(srv.URL+"/a/"+custID+"/licences"))
	if row := text("#licence-pbx-user"); !strings.Contains(row, "1") || !strings.Contains(row, "Active") {
		t.Fatalf("pbx-user licence row %q", row)
	}
	shot("10-licences")
	if os.Getenv("PORTAL_SCREENSHOTS") != "" {
		do("pbx", chromedp.Navigate(srv.URL+"/a/"+custID+"/pbx"))
		shot("11-pbx")
		do("audit", chromedp.Navigate(srv.URL+"/a/"+custID+"/audit"))
		shot("12-audit")
	}

	// The pages ran without script errors or Content-Security-Policy
	// violations. (Chromium logs the refused save's 402 as an error.)
	var errs []string
	for _, e := range b.Errors() {
		if !strings.Contains(e, "status of 402") {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		t.Fatalf("browser console errors: %q", errs)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}
