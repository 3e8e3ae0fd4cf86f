package portal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/portal"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

// fixture: an operator, two partners with one customer each, an admin per
// account (with their passwords) and three directory users in customer A.
type fixture struct {
	t            *testing.T
	svc          *pbx2teams.Service
	store        pbx2teams.Store
	srv          *httptest.Server
	op           *pbx2teams.Principal
	opEmail      string
	opPW         string
	partA, partB *pbx2teams.Account
	custA, custB *pbx2teams.Account
	pw           map[string]string // admin email -> password, once made
	admins       map[string]adminSpec
	usersA       []*pbx2teams.User
	userB        *pbx2teams.User
}

func newFixture(t *testing.T, opts portal.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "portal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := pbx2teams.NewService(st, box, nil)
	f := &fixture{t: t, svc: svc, store: st, pw: map[string]string{}, opEmail: "ops@example.com"}
	created, pw, err := svc.Bootstrap(ctx, "Operator", f.opEmail)
	if err != nil || !created {
		t.Fatalf("Bootstrap: %v %v", created, err)
	}
	f.opPW = pw
	tok, _, err := svc.SignIn(ctx, f.opEmail, pw, "198.51.100.1")
	must(t, err)
	f.op, _, err = svc.Authenticate(ctx, tok)
	must(t, err)
	f.partA, err = svc.CreateAccount(ctx, f.op, f.op.AccountID, pbx2teams.KindPartner, "Partner A")
	must(t, err)
	f.partB, err = svc.CreateAccount(ctx, f.op, f.op.AccountID, pbx2teams.KindPartner, "Partner B")
	must(t, err)
	f.custA, err = svc.CreateAccount(ctx, f.op, f.partA.ID, pbx2teams.KindCustomer, "Contoso")
	must(t, err)
	f.custB, err = svc.CreateAccount(ctx, f.op, f.partB.ID, pbx2teams.KindCustomer, "Fabrikam")
	must(t, err)
	// Admins are made when a test first needs them: each costs an argon2id
	// hash.
	f.admins = map[string]adminSpec{
		"a@partner.example":      {f.partA.ID, ""},
		"b@partner.example":      {f.partB.ID, ""},
		"admin@contoso.example":  {f.custA.ID, ""},
		"admin@fabrikam.example": {f.custB.ID, ""},
		"viewer@contoso.example": {f.custA.ID, pbx2teams.RoleViewer},
	}
	for i, name := range []string{"Alice", "Bob", "Carol"} {
		u := &pbx2teams.User{AccountID: f.custA.ID, ObjectID: fmt.Sprintf("obj-a-%d", i), UPN: strings.ToLower(name) + "@contoso.example",
			DisplayName: name, Enabled: true, Kind: pbx2teams.KindPerson}
		must(t, st.UpsertDirectoryUser(ctx, u))
		f.usersA = append(f.usersA, u)
	}
	f.userB = &pbx2teams.User{AccountID: f.custB.ID, ObjectID: "obj-b-0", UPN: "dave@fabrikam.example", DisplayName: "Dave", Enabled: true, Kind: pbx2teams.KindPerson}
	must(t, st.UpsertDirectoryUser(ctx, f.userB))
	f.srv = httptest.NewServer(portal.New(svc, opts))
	t.Cleanup(f.srv.Close)
	return f
}

type adminSpec struct {
	account string
	role    pbx2teams.Role
}

// password returns the password of the admin email, creating the admin
// on first use.
func (f *fixture) password(email string) string {
	f.t.Helper()
	if email == f.opEmail {
		return f.opPW
	}
	if pw, ok := f.pw[email]; ok {
		return pw
	}
	spec, ok := f.admins[email]
	if !ok {
		f.t.Fatalf("no admin %s in the fixture", email)
	}
	_, pw, err := f.svc.CreateAdmin(context.Background(), f.op, spec.account, email, "", spec.role, "")
	must(f.t, err)
	f.pw[email] = pw
	return pw
}

func (f *fixture) licence(acc string, sku pbx2teams.SKU, n int) {
	f.t.Helper()
	_, err := f.svc.SetLicence(context.Background(), f.op, acc, sku, n, nil)
	must(f.t, err)
}

// client is a browser stand-in: a cookie jar, no automatic redirects, and
// the CSRF token of the last page it read.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (f *fixture) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: f.t, base: f.srv.URL, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signedIn returns a client signed in as email.
func (f *fixture) signedIn(email string) *client {
	f.t.Helper()
	pw := f.password(email)
	c := f.client()
	res, _ := c.signIn(email, pw)
	if res.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("sign in as %s: status %d", email, res.StatusCode)
	}
	return c
}

func (c *client) signIn(email, pw string) (*http.Response, string) {
	c.t.Helper()
	c.get("/signin")
	return c.post("/signin", url.Values{"email": {email}, "password": {pw}})
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.t.Helper()
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	body := string(b)
	if m := csrfRE.FindStringSubmatch(body); m != nil {
		c.csrf = m[1]
	}
	return res, body
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

// post sends a form with the client's CSRF token unless the form has one.
func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if !form.Has("csrf") {
		form.Set("csrf", c.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) upload(path, field, name string, content []byte) (*http.Response, string) {
	c.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", c.csrf)
	fw, _ := mw.CreateFormFile(field, name)
	_, _ = fw.Write(content)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantStatus(t *testing.T, res *http.Response, body string, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d\n%s", res.Request.Method, res.Request.URL.Path, res.StatusCode, status, excerpt(body))
	}
}

func wantContains(t *testing.T, body string, parts ...string) {
	t.Helper()
	text := html.UnescapeString(body)
	for _, p := range parts {
		if !strings.Contains(body, p) && !strings.Contains(text, p) {
			t.Fatalf("page lacks %q\n%s", p, excerpt(body))
		}
	}
}

func wantLacks(t *testing.T, body string, parts ...string) {
	t.Helper()
	text := html.UnescapeString(body)
	for _, p := range parts {
		if strings.Contains(body, p) || strings.Contains(text, p) {
			t.Fatalf("page contains %q", p)
		}
	}
}

// excerpt returns the main part of a page for failure messages.
func excerpt(body string) string {
	if i := strings.Index(body, `<main`); i >= 0 {
		body = body[i:]
	}
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return body
}

func TestSignInAndOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{ProductName: "Acme Teams Connect"})
	c := f.client()

	// Pages need a session.
	res, _ := c.get("/a/" + f.custA.ID + "/users")
	wantStatus(t, res, "", http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/signin?next="+url.QueryEscape("/a/"+f.custA.ID+"/users") {
		t.Fatalf("redirect to %q", loc)
	}

	res, body := c.get("/signin")
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "Acme Teams Connect", `name="password"`, `type="password"`)

	res, body = c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {"not the password"}})
	wantStatus(t, res, body, http.StatusUnauthorized)
	wantContains(t, body, "Wrong email or password.")

	res, body = c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")},
		"next": {"/a/" + f.custA.ID + "/pbx"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/a/"+f.custA.ID+"/pbx" {
		t.Fatalf("after sign-in, redirect to %q", loc)
	}
	var session *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == pbx2teams.SessionCookieName {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/" {
		t.Fatalf("session cookie = %+v; want HttpOnly, SameSite=Lax, not Secure on http, Path=/", session)
	}

	res, body = c.get("/")
	wantStatus(t, res, body, http.StatusSeeOther)
	res, body = c.get("/a/" + f.custA.ID + "/pbx")
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "admin@contoso.example", "Contoso", "PBX connection", `id="signout"`)

	// A "next" that leaves the site is ignored.
	c2 := f.client()
	c2.get("/signin")
	res, _ = c2.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")}, "next": {"//evil.example/x"}})
	if loc := res.Header.Get("Location"); loc != "/" {
		t.Fatalf("open redirect: Location %q", loc)
	}

	res, _ = c.post("/signout", url.Values{})
	wantStatus(t, res, "", http.StatusSeeOther)
	res, _ = c.get("/a/" + f.custA.ID + "/pbx")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/signin") {
		t.Fatalf("after sign-out: status %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	// The old token is dead even if replayed.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/a/"+f.custA.ID+"/pbx", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	res, _ = f.client().do(req)
	wantStatus(t, res, "", http.StatusSeeOther)
}

func TestSecureCookieOption(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{Secure: true})
	c := f.client()
	res, _ := c.get("/signin")
	// The jar does not return Secure cookies over http: send the sign-in
	// CSRF cookie by hand.
	var pre *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == "p2t_signin" {
			pre = ck
		}
	}
	if pre == nil || !pre.Secure || !pre.HttpOnly {
		t.Fatalf("sign-in CSRF cookie = %+v", pre)
	}
	form := url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")}, "csrf": {pre.Value}}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre)
	res, body := c.do(req)
	wantStatus(t, res, body, http.StatusSeeOther)
	for _, ck := range res.Cookies() {
		if ck.Name == pbx2teams.SessionCookieName && (!ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode) {
			t.Fatalf("session cookie = %+v; want Secure, HttpOnly, SameSite=Lax", ck)
		}
	}
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatal("no HSTS header with Secure")
	}
}

func TestSignInRateLimitedMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.client()
	c.get("/signin")
	for i := 0; i < 5; i++ {
		res, body := c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {"guess"}})
		wantStatus(t, res, body, http.StatusUnauthorized)
	}
	// Even the right password is refused while the address is blocked.
	res, body := c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")}})
	wantStatus(t, res, body, http.StatusTooManyRequests)
	wantContains(t, body, "Too many failed sign-in attempts", "Try again in")
}

func TestSignInFormNeedsItsCSRFCookie(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.client() // never loaded the sign-in page: no cookie
	res, body := c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")}, "csrf": {"forged-token-forged-token"}})
	wantStatus(t, res, body, http.StatusForbidden)
	for _, ck := range res.Cookies() {
		if ck.Name == pbx2teams.SessionCookieName && ck.Value != "" {
			t.Fatal("a session was opened without the sign-in CSRF cookie")
		}
	}
}

func TestCSRFRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("a@partner.example")
	path := "/a/" + f.partA.ID + "/accounts"
	res, body := c.get(path)
	wantStatus(t, res, body, http.StatusOK)
	good := c.csrf
	if good == "" {
		t.Fatal("no CSRF token on the page")
	}
	for name, form := range map[string]url.Values{
		"missing": {"csrf": {""}, "kind": {"customer"}, "name": {"Forged 1"}},
		"wrong":   {"csrf": {good[:len(good)-2] + "xx"}, "kind": {"customer"}, "name": {"Forged 2"}},
	} {
		res, body := c.post(path, form)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("%s token: status %d", name, res.StatusCode)
		}
		wantContains(t, body, "Nothing was changed")
	}
	// The right token from another site's page is refused too.
	form := url.Values{"csrf": {good}, "kind": {"customer"}, "name": {"Forged 3"}}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	res, _ = c.do(req)
	wantStatus(t, res, "", http.StatusForbidden)

	kids, err := f.svc.ChildAccounts(context.Background(), f.op, f.partA.ID)
	must(t, err)
	for _, k := range kids {
		if strings.HasPrefix(k.Name, "Forged") {
			t.Fatalf("account %q created by a forged form", k.Name)
		}
	}
	// And the real form works.
	res, body = c.post(path, url.Values{"kind": {"customer"}, "name": {"Northwind"}})
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "Customer “Northwind” created")
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("admin@contoso.example")
	for _, path := range []string{"/signin", "/a/" + f.custA.ID + "/users", "/static/app.css", "/no/such/page"} {
		res, _ := c.get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	res, body := c.get("/no/such/page")
	wantStatus(t, res, body, http.StatusNotFound)
	res, body = c.get("/a/" + f.custA.ID + "/users")
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("account page Cache-Control %q", res.Header.Get("Cache-Control"))
	}
	// No inline scripts or styles: the CSP would block them.
	wantLacks(t, body, "<script>", "style=", "onclick=")
	res, _ = c.get("/static/")
	wantStatus(t, res, "", http.StatusNotFound)
}

// TestPasswordNeverRendered sets a SIP password through the portal and
// checks that neither it nor its ciphertext appears on any page or export,
// also when the form is shown again after an error.
func TestPasswordNeverRendered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 5)
	const secret = "Tr0ub4dor&3-sip-secret"
	c := f.signedIn("admin@contoso.example")
	u := f.usersA[0]
	userPath := "/a/" + f.custA.ID + "/users/" + u.ID
	c.get(userPath)

	// An error re-renders the form: the password typed is not echoed.
	res, body := c.post(userPath, url.Values{"type": {"standard"}, "sip_username": {"201"}, "password": {secret}, "phone_number": {"01632 960123"}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "national number", "+441632960123")
	wantLacks(t, body, secret)

	res, body = c.post(userPath, url.Values{"type": {"standard"}, "sip_username": {"201"}, "password": {secret}, "phone_number": {"+441632960123"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	stored, err := f.store.User(context.Background(), f.custA.ID, u.ID)
	must(t, err)
	if !stored.HasPassword || len(stored.PasswordEnc) == 0 {
		t.Fatal("password not stored")
	}
	leaks := []string{secret, base64.StdEncoding.EncodeToString(stored.PasswordEnc), base64.RawURLEncoding.EncodeToString(stored.PasswordEnc),
		hex.EncodeToString(stored.PasswordEnc), string(stored.PasswordEnc)}

	res, body = c.get(userPath + "?done=user-saved")
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "User settings saved", `value="201"`, "+441632960123", "A password is set — leave empty to keep it.")
	if !regexp.MustCompile(`<input id="sip-password" name="password" type="password" value=""`).MatchString(body) {
		t.Fatal("the password field is not an empty password input")
	}
	pages := []string{userPath, "/a/" + f.custA.ID + "/users", "/a/" + f.custA.ID + "/audit", "/a/" + f.custA.ID + "/users.csv", "/a/" + f.op.AccountID + "/audit"}
	for _, p := range pages {
		cl := c
		if strings.Contains(p, f.op.AccountID) {
			cl = f.signedIn(f.opEmail)
		}
		res, body := cl.get(p)
		wantStatus(t, res, body, http.StatusOK)
		for _, l := range leaks {
			if l != "" && strings.Contains(body, l) {
				t.Fatalf("%s shows the SIP password or its ciphertext", p)
			}
		}
	}
	// Saving with the field empty keeps the password.
	res, body = c.post(userPath, url.Values{"type": {"standard"}, "sip_username": {"202"}, "password": {""}, "phone_number": {"+441632960123"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	pw, err := f.svc.SIPPassword(mustUser(t, f, u.ID))
	must(t, err)
	if pw != secret {
		t.Fatal("an empty password field changed the stored password")
	}
}

func mustUser(t *testing.T, f *fixture, id string) *pbx2teams.User {
	t.Helper()
	u, err := f.store.User(context.Background(), f.custA.ID, id)
	must(t, err)
	return u
}

func TestViewerCannotPost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 5)
	c := f.signedIn("viewer@contoso.example")
	u := f.usersA[0]
	userPath := "/a/" + f.custA.ID + "/users/" + u.ID
	res, body := c.get(userPath)
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "Read-only", "Alice")
	wantLacks(t, body, `id="user-form"`)

	res, body = c.post(userPath, url.Values{"type": {"standard"}, "sip_username": {"201"}, "password": {"pw-123456"}, "phone_number": {"+441632960123"}})
	wantStatus(t, res, body, http.StatusForbidden)
	wantContains(t, body, "can only view")
	if mustUser(t, f, u.ID).Configured() {
		t.Fatal("a viewer configured a user")
	}
	res, body = c.post("/a/"+f.custA.ID+"/pbx", url.Values{"domain": {"pbx.example.com"}, "transport": {"udp"}, "register_expiry": {"600"}, "region": {"uk"}})
	wantStatus(t, res, body, http.StatusForbidden)
	ps, err := f.svc.PBXSettings(context.Background(), f.op, f.custA.ID)
	must(t, err)
	if ps.Domain != "" {
		t.Fatal("a viewer changed the PBX settings")
	}
	res, body = c.post("/a/"+f.custA.ID+"/apikeys", url.Values{"name": {"sneaky"}})
	wantStatus(t, res, body, http.StatusForbidden)
	res, body = c.upload("/a/"+f.custA.ID+"/users/import", "file", "u.csv", []byte("email,sip_username,password,phone_number\nalice@contoso.example,201,x,+441632960123\n"))
	wantStatus(t, res, body, http.StatusForbidden)
	if mustUser(t, f, u.ID).Configured() {
		t.Fatal("a viewer imported users")
	}
}

func TestOtherCustomersPagesAreNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	b := "/a/" + f.custB.ID
	for _, who := range []string{"admin@contoso.example", "a@partner.example"} {
		c := f.signedIn(who)
		c.get("/a/" + f.custA.ID + "/users") // for a valid CSRF token
		for _, p := range []string{b + "/", b + "/users", b + "/users/" + f.userB.ID, b + "/pbx", b + "/teams", b + "/licences",
			b + "/admins", b + "/apikeys", b + "/audit", b + "/users.csv", "/a/" + f.partB.ID + "/accounts", "/a/" + f.custA.ID + "/users/" + f.userB.ID} {
			res, body := c.get(p)
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("%s GET %s: status %d", who, p, res.StatusCode)
			}
			wantLacks(t, body, "Fabrikam", "dave@fabrikam.example")
		}
		for _, p := range []string{b + "/pbx", b + "/users/" + f.userB.ID, b + "/admins", b + "/licences"} {
			res, _ := c.post(p, url.Values{"domain": {"evil.example"}, "type": {"standard"}, "sip_username": {"1"}, "password": {"x"},
				"phone_number": {"+441632960199"}, "email": {"intruder@evil.example"}, "sku": {"pbx-user"}, "quantity": {"9"}})
			if res.StatusCode != http.StatusNotFound {
				t.Fatalf("%s POST %s: status %d", who, p, res.StatusCode)
			}
		}
	}
	if u, err := f.store.User(context.Background(), f.custB.ID, f.userB.ID); err != nil || u.Configured() {
		t.Fatalf("customer B's user changed: %+v %v", u, err)
	}
	if _, err := f.store.AdminByEmail(context.Background(), "intruder@evil.example"); pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
		t.Fatalf("an admin was added to customer B: %v", err)
	}
}

func TestAccountSwitcherAndBreadcrumbs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn(f.opEmail)
	res, body := c.get("/a/" + f.custA.ID + "/users")
	wantStatus(t, res, body, http.StatusOK)
	// Breadcrumbs: Operator / Partner A / Contoso; the switcher lists the tree.
	crumbs := regexp.MustCompile(`(?s)<nav class="crumbs".*?</nav>`).FindString(body)
	for _, n := range []string{"Operator", "Partner A", "Contoso"} {
		wantContains(t, crumbs, n)
	}
	sw := regexp.MustCompile(`(?s)<ul id="switch-list".*?</ul>`).FindString(body)
	for _, id := range []string{f.partA.ID, f.partB.ID, f.custA.ID, f.custB.ID} {
		wantContains(t, sw, "/a/"+id+"/")
	}
	// A partner sees only its subtree; a customer admin has no switcher.
	c = f.signedIn("a@partner.example")
	_, body = c.get("/a/" + f.custA.ID + "/users")
	sw = regexp.MustCompile(`(?s)<ul id="switch-list".*?</ul>`).FindString(body)
	wantContains(t, sw, f.custA.ID)
	wantLacks(t, sw, f.custB.ID, f.partB.ID, "Operator")
	crumbs = regexp.MustCompile(`(?s)<nav class="crumbs".*?</nav>`).FindString(body)
	wantLacks(t, crumbs, "Operator")
	c = f.signedIn("admin@contoso.example")
	_, body = c.get("/a/" + f.custA.ID + "/users")
	wantLacks(t, body, `id="switch-list"`)
}

func TestPartnerCreatesCustomerWithLicencesAndAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("a@partner.example")
	path := "/a/" + f.partA.ID + "/accounts"
	c.get(path)
	res, body := c.post(path, url.Values{"kind": {"customer"}, "name": {"Northwind"}, "pbx_users": {"x"}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "Enter a whole number of licences")
	res, body = c.post(path, url.Values{"kind": {"customer"}, "name": {"Northwind"}, "pbx_users": {"10"}, "phone_app_users": {"2"},
		"trial_until": {"2031-03-01"}, "admin_email": {"it@northwind.example"}, "admin_name": {"IT"}})
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "Customer “Northwind” created", "10 × pbx-user (trial until 1 Mar 2031)", "2 × phone-app-user", "it@northwind.example")
	m := regexp.MustCompile(`<code id="new-admin-password">([^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no one-time password shown")
	}
	// The password works once given, and is not shown again.
	n := f.client()
	res, _ = n.signIn("it@northwind.example", m[1])
	wantStatus(t, res, "", http.StatusSeeOther)
	_, body = c.get(path)
	wantLacks(t, body, m[1])
	wantContains(t, body, "Northwind")
}

func TestAdminsTabShowsPasswordOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("admin@contoso.example")
	path := "/a/" + f.custA.ID + "/admins"
	c.get(path)
	res, body := c.post(path, url.Values{"email": {"not-an-email"}, "role": {"customer_admin"}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "is not an email address")
	res, body = c.post(path, url.Values{"email": {"helpdesk@contoso.example"}, "name": {"Help desk"}, "role": {"viewer"}})
	wantStatus(t, res, body, http.StatusOK)
	m := regexp.MustCompile(`<code id="new-admin-password">([^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no one-time password shown")
	}
	_, body = c.get(path)
	wantContains(t, body, "helpdesk@contoso.example", "Viewer (read-only)")
	wantLacks(t, body, m[1])
}

func TestAPIKeysCreateListRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("admin@contoso.example")
	path := "/a/" + f.custA.ID + "/apikeys"
	c.get(path)
	res, body := c.post(path, url.Values{"name": {""}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	res, body = c.post(path, url.Values{"name": {"provisioning"}})
	wantStatus(t, res, body, http.StatusOK)
	m := regexp.MustCompile(`<code id="new-api-key">(p2t_[^<]+)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no key shown")
	}
	if _, err := f.svc.AuthenticateAPIKey(context.Background(), m[1]); err != nil {
		t.Fatalf("the shown key does not work: %v", err)
	}
	_, body = c.get(path)
	wantLacks(t, body, m[1], ">Never<") // used once above
	wantContains(t, body, "provisioning", m[1][:10]+"…")
	keys, err := f.svc.APIKeys(context.Background(), f.op, f.custA.ID)
	must(t, err)
	res, body = c.post(path+"/"+keys[0].ID+"/revoke", url.Values{})
	wantStatus(t, res, body, http.StatusSeeOther)
	_, body = c.get(path + "?done=key-revoked")
	wantContains(t, body, "API key revoked", "Revoked")
	if _, err := f.svc.AuthenticateAPIKey(context.Background(), m[1]); err == nil {
		t.Fatal("a revoked key still works")
	}
}

func TestPBXSettingsFieldErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("admin@contoso.example")
	path := "/a/" + f.custA.ID + "/pbx"
	c.get(path)
	res, body := c.post(path, url.Values{"domain": {"pbx example"}, "outbound_proxy": {"sbc.example.com"}, "transport": {"udp"},
		"register_expiry": {"5"}, "region": {"mars"}})
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "nothing was saved",
		"Enter the PBX&#39;s SIP domain", "host:port", "between 60 and 86400", "Choose a region",
		`value="pbx example"`, `value="sbc.example.com"`)
	// Each reason sits right after its field.
	if !regexp.MustCompile(`(?s)id="proxy".{0,400}?class="ferr">Enter the outbound proxy`).MatchString(body) {
		t.Fatal("the proxy error is not next to the proxy field")
	}
	res, body = c.post(path, url.Values{"domain": {"pbx.contoso.example"}, "outbound_proxy": {"sbc.contoso.example:5070"}, "transport": {"tcp"},
		"register_expiry": {"600"}, "region": {"uk"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	_, body = c.get(path + "?done=pbx-saved")
	wantContains(t, body, "PBX settings saved", `value="pbx.contoso.example"`, `value="sbc.contoso.example:5070"`, `<option value="tcp" selected>`, `<option value="uk" selected>`, `value="600"`)
}

func TestPhoneAppOfferedOnlyWhenLicensed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 5)
	c := f.signedIn("admin@contoso.example")
	teams := "/a/" + f.custA.ID + "/teams"
	userPath := "/a/" + f.custA.ID + "/users/" + f.usersA[0].ID
	_, body := c.get(teams)
	wantContains(t, body, "needs to be enabled via your licensing provider", "Large Tenant Mode")
	wantLacks(t, body, `id="phone-app-switch"`, `name="phone_app_group_id"`)
	_, body = c.get(userPath)
	wantLacks(t, body, `value="phone_app"`)
	wantContains(t, body, "needs to be enabled via your licensing provider")

	// Forcing the option without a licence is refused by the service.
	res, body := c.post(userPath, url.Values{"type": {"phone_app"}, "sip_username": {"201"}, "password": {"pw-1"}})
	wantStatus(t, res, body, http.StatusPaymentRequired)
	wantContains(t, body, "phone-app-user licence")

	f.licence(f.custA.ID, pbx2teams.SKUPhoneAppUser, 2)
	_, body = c.get(teams)
	wantContains(t, body, `id="phone-app-switch"`, `name="phone_app_group_id"`)
	wantLacks(t, body, "needs to be enabled via your licensing provider")
	res, body = c.post(teams, url.Values{"phone_app_shown": {"1"}, "phone_app": {"on"}, "large_tenant_mode": {"on"},
		"group_id": {"g-std-1", ""}, "group_name": {"Sales", ""}, "phone_app_group_id": {"g-app"}, "phone_app_group_name": {"Phone App users"},
		"sync_interval": {"30"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	ts, err := f.svc.TeamsSettings(context.Background(), f.op, f.custA.ID)
	must(t, err)
	if !ts.PhoneAppEnabled || !ts.LargeTenantMode || len(ts.StandardGroups) != 1 || ts.StandardGroups[0].DisplayName != "Sales" ||
		ts.PhoneAppGroup == nil || ts.PhoneAppGroup.ID != "g-app" || ts.SyncIntervalMinutes != 30 {
		t.Fatalf("teams settings = %+v", ts)
	}
	_, body = c.get(teams)
	wantContains(t, body, `value="g-std-1"`, `value="Sales"`, `value="g-app"`, `value="30"`)
	_, body = c.get(userPath)
	wantContains(t, body, `value="phone_app"`)
	res, body = c.post(userPath, url.Values{"type": {"phone_app"}, "sip_username": {"201"}, "password": {"pw-1"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	_, body = c.get("/a/" + f.custA.ID + "/users")
	wantContains(t, body, `aria-label="Phone App user"`)
}

func TestLicencesTab(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 1)
	path := "/a/" + f.custA.ID + "/licences"
	cust := f.signedIn("admin@contoso.example")
	_, body := cust.get(path)
	wantContains(t, body, "provisioned by your licensing provider", "pbx-user", "phone-app-user")
	wantLacks(t, body, `id="licence-form-pbx-user"`)
	res, body := cust.post(path, url.Values{"sku": {"pbx-user"}, "quantity": {"100"}})
	wantStatus(t, res, body, http.StatusForbidden)

	part := f.signedIn("a@partner.example")
	_, body = part.get(path)
	wantContains(t, body, `id="licence-form-pbx-user"`)
	res, body = part.post(path, url.Values{"sku": {"pbx-user"}, "quantity": {"3"}, "expires": {"2032-01-31"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	ls, err := f.svc.Licences(context.Background(), f.op, f.custA.ID)
	must(t, err)
	if ls[0].Quantity != 3 || ls[0].ExpiresAt == nil || ls[0].ExpiresAt.Format("2006-01-02") != "2032-01-31" {
		t.Fatalf("licence = %+v", ls[0])
	}
	_, body = cust.get(path)
	wantContains(t, body, "31 Jan 2032", "Trial")
}

func TestOverQuotaShowsLicenceMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 1)
	c := f.signedIn("admin@contoso.example")
	p1 := "/a/" + f.custA.ID + "/users/" + f.usersA[0].ID
	p2 := "/a/" + f.custA.ID + "/users/" + f.usersA[1].ID
	c.get(p1)
	res, body := c.post(p1, url.Values{"type": {"standard"}, "sip_username": {"201"}, "password": {"pw-1"}, "phone_number": {"+441632960201"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	res, body = c.post(p2, url.Values{"type": {"standard"}, "sip_username": {"202"}, "password": {"pw-2"}, "phone_number": {"+441632960202"}})
	wantStatus(t, res, body, http.StatusPaymentRequired)
	wantContains(t, body, "Licence needed.", "pbx-user", `value="202"`)
	if mustUser(t, f, f.usersA[1].ID).Configured() {
		t.Fatal("the over-quota user was configured")
	}
}

func TestUsersSearchAndPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	ctx := context.Background()
	for i := 0; i < 117; i++ {
		u := &pbx2teams.User{AccountID: f.custA.ID, ObjectID: fmt.Sprintf("obj-p-%03d", i), UPN: fmt.Sprintf("user%03d@contoso.example", i),
			DisplayName: fmt.Sprintf("User %03d", i), Enabled: true, Kind: pbx2teams.KindPerson}
		if i == 5 {
			u.Kind = pbx2teams.KindMeetingRoom
		}
		must(t, f.store.UpsertDirectoryUser(ctx, u))
	}
	c := f.signedIn("admin@contoso.example")
	rowRE := regexp.MustCompile(`<tr data-user="([^"]+)">`)
	linkRE := func(id string) *regexp.Regexp { return regexp.MustCompile(`href="([^"]+)" id="` + id + `"`) }
	seen := map[string]bool{}
	path := "/a/" + f.custA.ID + "/users"
	var pages []string
	for n := 0; path != "" && n < 5; n++ {
		res, body := c.get(path)
		wantStatus(t, res, body, http.StatusOK)
		rows := rowRE.FindAllStringSubmatch(body, -1)
		if len(rows) > 50 {
			t.Fatalf("page %d has %d rows", n+1, len(rows))
		}
		for _, r := range rows {
			if seen[r[1]] {
				t.Fatalf("user %s on two pages", r[1])
			}
			seen[r[1]] = true
		}
		pages = append(pages, body)
		path = ""
		if m := linkRE("users-next").FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(pages) != 3 || len(seen) != 120 {
		t.Fatalf("%d pages, %d users; want 3 pages and 120 users", len(pages), len(seen))
	}
	wantContains(t, pages[0], "1–50 of 120", `aria-label="Meeting room"`)
	wantContains(t, pages[2], "101–120 of 120")
	// Previous from the last page is the second page.
	m := linkRE("users-prev").FindStringSubmatch(pages[2])
	if m == nil {
		t.Fatal("no previous link on the last page")
	}
	_, body := c.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	wantContains(t, body, "51–100 of 120")
	if rowRE.FindAllStringSubmatch(body, -1)[0][1] != rowRE.FindAllStringSubmatch(pages[1], -1)[0][1] {
		t.Fatal("previous page differs from the second page")
	}
	// Search.
	_, body = c.get("/a/" + f.custA.ID + "/users?q=" + url.QueryEscape("user04"))
	rows := rowRE.FindAllStringSubmatch(body, -1)
	if len(rows) != 10 {
		t.Fatalf("search user04: %d rows", len(rows))
	}
	wantContains(t, body, "1–10 of 10")
	// A broken cursor starts over instead of failing.
	res, _ := c.get("/a/" + f.custA.ID + "/users?cursor=%21%21&page=3")
	wantStatus(t, res, "", http.StatusSeeOther)
}

func TestCSVImportAndExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 5)
	c := f.signedIn("admin@contoso.example")
	c.get("/a/" + f.custA.ID + "/users")
	bad := "email,sip_username,auth_username,password,phone_number,external_id\n" +
		"alice@contoso.example,201,,pw-a,+441632960201,\n" +
		"nobody@contoso.example,202,,pw-n,+441632960202,\n" +
		"bob@contoso.example,203,,pw-b,441632960203,\n"
	res, body := c.upload("/a/"+f.custA.ID+"/users/import", "file", "users.csv", []byte(bad))
	wantStatus(t, res, body, http.StatusUnprocessableEntity)
	wantContains(t, body, "The CSV file was not imported", "nothing was imported",
		`<td class="num">3</td><td>no user nobody@contoso.example`, `<td class="num">4</td><td>phone number: Phone number`, "no leading +")
	if mustUser(t, f, f.usersA[0].ID).Configured() {
		t.Fatal("a refused file changed a user")
	}
	good := "email,sip_username,password,phone_number\nalice@contoso.example,201,pw-a,+441632960201\nbob@contoso.example,203,pw-b,+441632960203\n"
	res, body = c.upload("/a/"+f.custA.ID+"/users/import", "file", "users.csv", []byte(good))
	wantStatus(t, res, body, http.StatusSeeOther)
	_, body = c.get(res.Header.Get("Location"))
	wantContains(t, body, "CSV imported: 2 users updated.")
	res, body = c.get("/a/" + f.custA.ID + "/users.csv")
	wantStatus(t, res, body, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(res.Header.Get("Content-Disposition"), "users-contoso.csv") {
		t.Fatalf("export headers %q %q", ct, res.Header.Get("Content-Disposition"))
	}
	wantContains(t, body, "email,sip_username", "alice@contoso.example,201,201,,+441632960201", "bob@contoso.example,203")
	wantLacks(t, body, "pw-a", "pw-b")

	// A file over the upload limit is refused before it is read.
	huge := bytes.Repeat([]byte("x"), 18<<20)
	res, body = c.upload("/a/"+f.custA.ID+"/users/import", "file", "huge.csv", huge)
	wantStatus(t, res, body, http.StatusRequestEntityTooLarge)
	wantContains(t, body, "nothing was changed")
}

func TestExpiredSessionGoesToSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	c := f.signedIn("admin@contoso.example")
	path := "/a/" + f.custA.ID + "/pbx"
	res, body := c.get(path)
	wantStatus(t, res, body, http.StatusOK)
	later := time.Now().Add(13 * time.Hour)
	f.svc.Now = func() time.Time { return later }
	res, _ = c.get(path)
	wantStatus(t, res, "", http.StatusSeeOther)
	loc := res.Header.Get("Location")
	if loc != "/signin?next="+url.QueryEscape(path)+"&ended=1" {
		t.Fatalf("expired session sent to %q", loc)
	}
	_, body = c.get(loc)
	wantContains(t, body, "Your session has ended", `name="next" value="`+path+`"`)
	// Signing in again returns to the page.
	res, _ = c.post("/signin", url.Values{"email": {"admin@contoso.example"}, "password": {f.password("admin@contoso.example")}, "next": {path}})
	if res.Header.Get("Location") != path {
		t.Fatalf("after signing in again: %q", res.Header.Get("Location"))
	}
}

func TestRemoveConfiguration(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 1)
	c := f.signedIn("admin@contoso.example")
	p := "/a/" + f.custA.ID + "/users/" + f.usersA[0].ID
	c.get(p)
	res, body := c.post(p, url.Values{"type": {"standard"}, "sip_username": {"201"}, "password": {"pw"}, "phone_number": {"+441632960201"}})
	wantStatus(t, res, body, http.StatusSeeOther)
	_, body = c.get(p)
	wantContains(t, body, `id="user-remove"`)
	res, body = c.post(p+"/remove", url.Values{})
	wantStatus(t, res, body, http.StatusSeeOther)
	if mustUser(t, f, f.usersA[0].ID).Configured() {
		t.Fatal("configuration not removed")
	}
	_, body = c.get(res.Header.Get("Location"))
	wantContains(t, body, "Configuration removed", "Not configured")
	// The licence is free again for another user.
	p2 := "/a/" + f.custA.ID + "/users/" + f.usersA[1].ID
	res, body = c.post(p2, url.Values{"type": {"standard"}, "sip_username": {"202"}, "password": {"pw"}, "phone_number": {"+441632960202"}})
	wantStatus(t, res, body, http.StatusSeeOther)
}

func TestAuditPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	ctx := context.Background()
	for i := 0; i < 60; i++ {
		n := i
		_, err := f.svc.SetTeamsOptions(ctx, f.op, f.custA.ID, pbx2teams.TeamsOptions{SyncIntervalMinutes: &n})
		must(t, err)
	}
	c := f.signedIn("admin@contoso.example")
	res, body := c.get("/a/" + f.custA.ID + "/audit")
	wantStatus(t, res, body, http.StatusOK)
	wantContains(t, body, "sync interval=59m")
	m := regexp.MustCompile(`id="audit-older" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no link to older entries")
	}
	_, body = c.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	wantContains(t, body, "sync interval=0m")
	wantLacks(t, body, "sync interval=59m")
}

func TestRegistrationStateShown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, portal.Options{})
	f.licence(f.custA.ID, pbx2teams.SKUPBXUser, 5)
	ctx := context.Background()
	for i, u := range f.usersA[:2] {
		pw := "pw"
		_, err := f.svc.ConfigureUser(ctx, f.op, f.custA.ID, u.ID, pbx2teams.UserConfig{Type: pbx2teams.ServiceStandard,
			SIPUsername: fmt.Sprint(201 + i), Password: &pw, PhoneNumber: fmt.Sprintf("+44163296020%d", i)})
		must(t, err)
	}
	f.svc.Registrations = regStates{
		f.usersA[0].ID: {State: pbx2teams.RegRegistered, PBXAddress: "192.0.2.10:5060"},
		f.usersA[1].ID: {State: pbx2teams.RegFailed, StatusCode: 403, Reason: "Forbidden"},
	}
	c := f.signedIn("admin@contoso.example")
	_, body := c.get("/a/" + f.custA.ID + "/users")
	wantContains(t, body, ">Registered<", "Failing · 403 Forbidden")
	_, body = c.get("/a/" + f.custA.ID + "/users/" + f.usersA[1].ID)
	wantContains(t, body, "403 Forbidden")
}

type regStates map[string]pbx2teams.RegistrationState

func (r regStates) RegistrationState(id string) (pbx2teams.RegistrationState, bool) {
	st, ok := r[id]
	return st, ok
}
