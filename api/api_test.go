package api

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

func acct(id string) string { return Prefix + "/accounts/" + id }

// TestCRUDFlow walks a partner and a customer admin through the API: create
// a customer, licence it, add its admin, set PBX and Teams settings, list and
// configure users, export, remove a configuration, read the audit log.
func TestCRUDFlow(t *testing.T) {
	f := newFixture(t)
	pa := f.partnerASess

	var me meResponse
	pa.ok(200, "GET", Prefix+"/me", nil, &me)
	if me.Auth != "session" || me.Account.ID != f.partnerA.ID || me.Role != pbx2teams.RolePartner || me.CSRFToken == "" {
		t.Fatalf("me = %+v", me)
	}

	var cust pbx2teams.Account
	r := pa.ok(201, "POST", Prefix+"/accounts", createAccountRequest{Kind: "customer", Name: "Customer Alpha Two"}, &cust)
	if cust.ParentID != f.partnerA.ID || cust.Kind != pbx2teams.KindCustomer || r.header.Get("Location") != acct(cust.ID) {
		t.Fatalf("created %+v, Location %q", cust, r.header.Get("Location"))
	}
	var got pbx2teams.Account
	pa.ok(200, "GET", acct(cust.ID), nil, &got)
	if got.Name != "Customer Alpha Two" {
		t.Fatalf("get account = %+v", got)
	}
	var children accountList
	pa.ok(200, "GET", acct(f.partnerA.ID)+"/children", nil, &children)
	if len(children.Accounts) != 2 {
		t.Fatalf("children = %+v", children)
	}
	var all accountList
	pa.ok(200, "GET", Prefix+"/accounts", nil, &all)
	if len(all.Accounts) != 3 || all.Accounts[0].ID != f.partnerA.ID {
		t.Fatalf("partner A sees %+v", all.Accounts)
	}

	var lic pbx2teams.Licence
	pa.ok(200, "PUT", acct(cust.ID)+"/licences/pbx-user", m{"quantity": 5}, &lic)
	if lic.Quantity != 5 || lic.SKU != pbx2teams.SKUPBXUser {
		t.Fatalf("licence = %+v", lic)
	}
	trial := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	pa.ok(200, "PUT", acct(cust.ID)+"/licences/phone-app-user", m{"quantity": 2, "expires_at": trial}, &lic)
	if lic.ExpiresAt == nil || !lic.ExpiresAt.Equal(trial) {
		t.Fatalf("trial licence = %+v", lic)
	}
	var ll licenceList
	pa.ok(200, "GET", acct(cust.ID)+"/licences", nil, &ll)
	if len(ll.Licences) != 2 || ll.Licences[0].Quantity != 5 || ll.Licences[1].Quantity != 2 {
		t.Fatalf("licences = %+v", ll)
	}

	var ca createAdminResponse
	pa.ok(201, "POST", acct(cust.ID)+"/admins", m{"email": "Admin@A2.example", "name": "Ann Admin"}, &ca)
	if ca.Admin.Email != "admin@a2.example" || ca.Admin.Role != pbx2teams.RoleCustomerAdmin || len(ca.InitialPassword) < 12 {
		t.Fatalf("created admin %+v", ca)
	}
	var admins adminList
	r = pa.ok(200, "GET", acct(cust.ID)+"/admins", nil, &admins)
	if bytes.Contains(r.body, []byte("argon2")) {
		t.Fatal("the admin list shows the password hash")
	}
	if len(admins.Admins) != 1 || admins.Admins[0].ID != ca.Admin.ID {
		t.Fatalf("admins = %+v", admins)
	}
	// The new admin signs in with the generated password.
	tok, sess, err := f.svc.SignIn(f.ctx, "admin@a2.example", ca.InitialPassword, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ann := &client{e: f.env, name: "ann", cookie: tok, csrf: sess.CSRFToken}
	u1 := f.dirUser(&cust, "carl@a2.example", "Carl Cole", pbx2teams.KindPerson)
	f.dirUser(&cust, "dora@a2.example", "Dora Dean", pbx2teams.KindPerson)

	var pbx pbx2teams.PBXSettings
	ann.ok(200, "PUT", acct(cust.ID)+"/pbx", m{"domain": "PBX.A2.example", "outbound_proxy": "sbc.a2.example:5061", "transport": "tls"}, &pbx)
	if pbx.Domain != "pbx.a2.example" || pbx.Transport != pbx2teams.TransportTLS || pbx.RegisterExpiry != 3600 || pbx.AccountID != cust.ID {
		t.Fatalf("pbx = %+v", pbx)
	}
	r = ann.call("PUT", acct(cust.ID)+"/pbx", m{"domain": "bad domain!", "outbound_proxy": "nohost", "transport": "sctp"})
	if r.status != 422 {
		t.Fatalf("bad PBX settings: %s", r)
	}
	if eb := r.err(t); len(eb.Details) != 3 {
		t.Fatalf("want one detail per bad field, got %+v", eb.Details)
	}
	ann.ok(200, "GET", acct(cust.ID)+"/pbx", nil, &pbx)
	if pbx.Domain != "pbx.a2.example" {
		t.Fatalf("bad settings changed the PBX: %+v", pbx)
	}

	var ts pbx2teams.TeamsSettings
	ann.ok(200, "PATCH", acct(cust.ID)+"/teams", m{"phone_app_enabled": true, "large_tenant_mode": true,
		"standard_groups": []m{{"id": "g1", "display_name": "Voice"}}}, &ts)
	if !ts.PhoneAppEnabled || !ts.LargeTenantMode || len(ts.StandardGroups) != 1 {
		t.Fatalf("teams = %+v", ts)
	}
	ann.ok(200, "PATCH", acct(cust.ID)+"/teams", m{"sync_interval_minutes": 15}, &ts)
	if !ts.LargeTenantMode || ts.SyncIntervalMinutes != 15 {
		t.Fatalf("a partial PATCH reset other fields: %+v", ts)
	}

	var page userPage
	ann.ok(200, "GET", acct(cust.ID)+"/users", nil, &page)
	if page.Total != 2 || len(page.Users) != 2 || page.Users[0].DisplayName != "Carl Cole" {
		t.Fatalf("users = %+v", page)
	}
	var uv userView
	ann.ok(200, "PUT", acct(cust.ID)+"/users/"+u1.ID+"/config",
		m{"type": "phone_app", "sip_username": "2001", "password": "pw-carl-2001", "phone_number": "+44 1632 960 201"}, &uv)
	if uv.Type != pbx2teams.ServicePhoneApp || uv.PhoneNumber != "+441632960201" || !uv.HasPassword || uv.AuthUsername != "2001" {
		t.Fatalf("configured %+v", uv.User)
	}
	ann.ok(200, "GET", acct(cust.ID)+"/users?type=any", nil, &page)
	if page.Total != 1 || page.Users[0].ID != u1.ID {
		t.Fatalf("configured users = %+v", page)
	}
	ann.ok(200, "GET", acct(cust.ID)+"/users?type=none", nil, &page)
	if page.Total != 1 || page.Users[0].UPN != "dora@a2.example" {
		t.Fatalf("unconfigured users = %+v", page)
	}
	ann.ok(200, "GET", acct(cust.ID)+"/licences", nil, &ll)
	if ll.Licences[0].Used != 1 || ll.Licences[1].Used != 1 {
		t.Fatalf("licence use = %+v", ll)
	}
	// Changing the number keeps the stored password.
	ann.ok(200, "PUT", acct(cust.ID)+"/users/"+u1.ID+"/config",
		m{"type": "phone_app", "sip_username": "2001", "phone_number": "+441632960202"}, &uv)
	if !uv.HasPassword || uv.PhoneNumber != "+441632960202" {
		t.Fatalf("reconfigured %+v", uv.User)
	}
	r = ann.raw("GET", acct(cust.ID)+"/users.csv", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(string(r.body), "carl@a2.example,2001,2001,,+441632960202,,phone_app") {
		t.Fatalf("export: %s", r)
	}
	var removed userView
	ann.ok(200, "DELETE", acct(cust.ID)+"/users/"+u1.ID+"/config", nil, &removed)
	if removed.Type != "" || removed.HasPassword || removed.SIPUsername != "" {
		t.Fatalf("after delete %+v", removed.User)
	}
	stored, err := f.store.User(f.ctx, cust.ID, u1.ID)
	if err != nil || stored.Type != "" || len(stored.PasswordEnc) != 0 || stored.SIPUsername != "" {
		t.Fatalf("stored after delete: %+v %v", stored, err)
	}

	var audit auditPage
	ann.ok(200, "GET", acct(cust.ID)+"/audit?limit=2", nil, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != "user.configure" || audit.NextBefore == 0 {
		t.Fatalf("audit = %+v", audit)
	}
	var older auditPage
	ann.ok(200, "GET", acct(cust.ID)+"/audit?limit=500&before="+itoa(audit.NextBefore), nil, &older)
	if len(older.Entries) == 0 || older.Entries[0].ID >= audit.NextBefore || older.NextBefore != 0 {
		t.Fatalf("older audit = %+v", older)
	}
	for _, e := range append(audit.Entries, older.Entries...) {
		if strings.Contains(e.Detail, "pw-carl-2001") {
			t.Fatalf("audit holds the password: %+v", e)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestPasswordWriteOnly sets a SIP password and then reads every GET
// endpoint, the write responses, the CSV export and the logs: the password
// appears nowhere. In the database it is sealed: the row holds no plaintext
// and opens with the key to the password.
func TestPasswordWriteOnly(t *testing.T) {
	f := newFixture(t)
	const secret = "Zebra-Quartz-7731-secret"
	var seen [][]byte
	r := f.a1Key.ok(200, "PUT", acct(f.a1.ID)+"/users/"+f.alice.ID+"/config",
		m{"type": "standard", "sip_username": "1001", "password": secret, "phone_number": "+441632960101"}, nil)
	seen = append(seen, r.body)
	csv := "email,sip_username,password,phone_number\nbob@a1.example,1002," + secret + "-bob,+441632960102\n"
	r = f.a1Key.raw("POST", acct(f.a1.ID)+"/users.csv", "text/csv", []byte(csv))
	if r.status != 200 {
		t.Fatalf("import: %s", r)
	}
	seen = append(seen, r.body)
	for _, rt := range (&server{}).routes() {
		if rt.method != "GET" {
			continue
		}
		path := strings.NewReplacer("{id}", f.a1.ID, "{uid}", f.alice.ID, "{job}", f.job.ID, "{call}", f.call.ID).Replace(rt.path)
		r := f.a1Key.raw("GET", path, "", nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %s", path, r)
		}
		seen = append(seen, r.body)
		if strings.HasSuffix(path, "/users/"+f.alice.ID) {
			var uv userView
			_ = json.Unmarshal(r.body, &uv)
			if !uv.HasPassword {
				t.Fatalf("has_password is false: %s", r.body)
			}
		}
	}
	for _, b := range seen {
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("a response contains the SIP password: %s", b)
		}
	}
	if strings.Contains(f.logs.String(), secret) {
		t.Fatal("the logs contain the SIP password")
	}

	// The row holds the sealed password, which opens with the key.
	db, err := sql.Open("sqlite", "file:"+f.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var enc []byte
	if err := db.QueryRowContext(f.ctx, "SELECT password_enc FROM users WHERE id = ?", f.alice.ID).Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if len(enc) == 0 || bytes.Contains(enc, []byte(secret)) {
		t.Fatalf("stored password is empty or plaintext: %q", enc)
	}
	pt, err := f.box.Open(enc, []byte(f.alice.ID))
	if err != nil || string(pt) != secret {
		t.Fatalf("sealed password opens to %q, %v", pt, err)
	}
	// Nor is it anywhere in the database files (main file, WAL).
	files, _ := filepath.Glob(f.dbPath + "*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds the SIP password in clear", name)
		}
	}
}

// TestOverQuota fills the pbx-user licence and tries one more user: refused
// with the licence message and nothing changes.
func TestOverQuota(t *testing.T) {
	f := newFixture(t)
	f.partnerAKey.ok(200, "PUT", acct(f.a1.ID)+"/licences/pbx-user", m{"quantity": 1}, nil)
	f.a1Key.ok(200, "PUT", acct(f.a1.ID)+"/users/"+f.alice.ID+"/config",
		m{"type": "standard", "sip_username": "1001", "password": "pw-1001", "phone_number": "+441632960101"}, nil)
	before := f.snapshot()
	r := f.a1Key.call("PUT", acct(f.a1.ID)+"/users/"+f.bob.ID+"/config",
		m{"type": "standard", "sip_username": "1002", "password": "pw-1002", "phone_number": "+441632960102"})
	if r.status != http.StatusPaymentRequired {
		t.Fatalf("over quota: %s", r)
	}
	eb := r.err(t)
	if eb.Code != pbx2teams.ELicence || !strings.Contains(eb.Message, "pbx-user") || !strings.Contains(eb.Message, "holds 1") {
		t.Fatalf("licence message = %+v", eb)
	}
	f.assertUnchanged(before, "an over-quota configure")
	if u := f.user(f.bob.ID); u.Configured() || u.HasPassword {
		t.Fatalf("bob was configured: %+v", u)
	}
	if u := f.user(f.alice.ID); u.SIPUsername != "1001" {
		t.Fatalf("alice changed: %+v", u)
	}
	// The partner may not lower the quantity below use either.
	r = f.partnerAKey.call("PUT", acct(f.a1.ID)+"/licences/pbx-user", m{"quantity": 0})
	if r.status != 409 || r.err(t).Code != pbx2teams.EConflict {
		t.Fatalf("quantity below use: %s", r)
	}
}

// TestPhoneAppNeedsLicence configures a Phone App user in a customer
// without a phone-app-user licence.
func TestPhoneAppNeedsLicence(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot()
	r := f.a1Key.call("PUT", acct(f.a1.ID)+"/users/"+f.alice.ID+"/config",
		m{"type": "phone_app", "sip_username": "1001", "password": "pw-1001"})
	if r.status != http.StatusPaymentRequired || !strings.Contains(r.err(t).Message, "phone-app-user") {
		t.Fatalf("phone app without licence: %s", r)
	}
	r = f.a1Key.call("PATCH", acct(f.a1.ID)+"/teams", m{"phone_app_enabled": true})
	if r.status != http.StatusPaymentRequired || !strings.Contains(r.err(t).Message, "phone-app-user") {
		t.Fatalf("enabling phone app without licence: %s", r)
	}
	f.assertUnchanged(before, "phone app without licence")
}

// TestPhoneNumberForm sends numbers that are not E.164 and expects the
// message to show the expected form.
func TestPhoneNumberForm(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot()
	for _, n := range []string{"020 7946 0018", "0044 20 7946 0018", "+44-abc", "441632960101"} {
		r := f.a1Key.call("PUT", acct(f.a1.ID)+"/users/"+f.alice.ID+"/config",
			m{"type": "standard", "sip_username": "1001", "password": "pw-1001", "phone_number": n})
		if r.status != 422 {
			t.Fatalf("%q: %s", n, r)
		}
		eb := r.err(t)
		var found bool
		for _, d := range eb.Details {
			if d.Field == "phone_number" && strings.Contains(d.Reason, "E.164") && strings.Contains(d.Reason, "+") {
				found = true
			}
		}
		if !found {
			t.Fatalf("%q: no E.164 explanation in %+v", n, eb)
		}
	}
	f.assertUnchanged(before, "invalid phone numbers")
}

// TestCSVImportBadRows imports a file with good and bad rows: nothing is
// applied and every bad row is listed by line.
func TestCSVImportBadRows(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot()
	csv := strings.Join([]string{
		"email,sip_username,auth_username,password,phone_number,external_id",
		"alice@a1.example,1001,,pw-1001,+441632960101,",     // 2: good
		"nobody@a1.example,1002,,pw-1002,+441632960102,",    // 3: no such user
		"bob@a1.example,1003,,pw-1003,020 7946 0018,",       // 4: national number
		"boardroom@a1.example,1004,,pw-1004,+441632960104,", // 5: a meeting room
		"alice@a1.example,1005,,pw-1005,+441632960105,",     // 6: duplicate user
	}, "\n") + "\n"
	r := f.a1Key.raw("POST", acct(f.a1.ID)+"/users.csv", "text/csv; charset=utf-8", []byte(csv))
	if r.status != 422 {
		t.Fatalf("import: %s", r)
	}
	eb := r.err(t)
	lines := map[int]string{}
	for _, d := range eb.Details {
		lines[d.Line] += d.Reason
	}
	want := map[int]string{3: "no user nobody@a1.example", 4: "E.164", 5: "meeting room", 6: "line 2"}
	for line, text := range want {
		if !strings.Contains(lines[line], text) {
			t.Errorf("line %d: want %q in %q", line, text, lines[line])
		}
	}
	if _, ok := lines[2]; ok || len(lines) != 4 {
		t.Errorf("bad lines = %v", lines)
	}
	f.assertUnchanged(before, "a CSV with bad rows")
	if strings.Contains(string(r.body), "pw-100") {
		t.Fatal("the error echoes a password")
	}
}

// TestCSVLostPlus explains numbers whose leading + a spreadsheet removed.
func TestCSVLostPlus(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot()
	csv := "Email,SIP Username,Password,Phone Number\r\nalice@a1.example,1001,pw-1001,441632960101\r\n"
	r := f.a1Key.raw("POST", acct(f.a1.ID)+"/users.csv", "text/csv", []byte(csv))
	if r.status != 422 {
		t.Fatalf("import: %s", r)
	}
	eb := r.err(t)
	if len(eb.Details) != 1 || eb.Details[0].Line != 2 || !strings.Contains(eb.Details[0].Reason, "leading +") ||
		!strings.Contains(eb.Details[0].Reason, "+441632960101") {
		t.Fatalf("details = %+v", eb.Details)
	}
	f.assertUnchanged(before, "a CSV with a lost +")

	// The same file with the + restored imports, and exports back.
	csv = strings.Replace(csv, ",441632960101", ",+441632960101", 1)
	var res pbx2teams.ImportResult
	r = f.a1Key.raw("POST", acct(f.a1.ID)+"/users.csv", "text/csv", []byte(csv))
	if r.status != 200 || json.Unmarshal(r.body, &res) != nil || res.Changed != 1 {
		t.Fatalf("import: %s", r)
	}
	if u := f.user(f.alice.ID); u.PhoneNumber != "+441632960101" || u.Type != pbx2teams.ServiceStandard || !u.HasPassword {
		t.Fatalf("alice after import: %+v", u)
	}
	r = f.a1Key.raw("GET", acct(f.a1.ID)+"/users.csv", "", nil)
	if !strings.Contains(string(r.body), "alice@a1.example,1001,1001,,+441632960101,,standard") {
		t.Fatalf("export: %s", r.body)
	}
}

// TestAPIKeyLifecycle creates a key, uses it, revokes it: then it gets 401.
func TestAPIKeyLifecycle(t *testing.T) {
	f := newFixture(t)
	var created createAPIKeyResponse
	f.a1Admin.ok(201, "POST", acct(f.a1.ID)+"/apikeys", m{"name": "billing export", "role": "viewer"}, &created)
	if !strings.HasPrefix(created.Key, "p2t_") || created.APIKey.Role != pbx2teams.RoleViewer ||
		!strings.HasPrefix(created.Key, created.APIKey.Prefix) {
		t.Fatalf("created %+v", created)
	}
	k := &client{e: f.env, name: "new key", bearer: created.Key}
	var me meResponse
	k.ok(200, "GET", Prefix+"/me", nil, &me)
	if me.Auth != "api_key" || me.APIKeyID != created.APIKey.ID || me.Role != pbx2teams.RoleViewer || me.CSRFToken != "" {
		t.Fatalf("me = %+v", me)
	}
	var list apiKeyList
	f.a1Admin.ok(200, "GET", acct(f.a1.ID)+"/apikeys", nil, &list)
	var listed bool
	for _, ak := range list.APIKeys {
		listed = listed || ak.ID == created.APIKey.ID && ak.LastUsedAt != nil
	}
	if !listed {
		t.Fatalf("key not listed with its last use: %+v", list)
	}
	r := f.a1Admin.call("GET", acct(f.a1.ID)+"/apikeys", nil)
	if strings.Contains(string(r.body), created.Key) {
		t.Fatal("the list shows the key")
	}
	// A viewer key cannot revoke itself; the admin can.
	if r := k.call("DELETE", acct(f.a1.ID)+"/apikeys/"+created.APIKey.ID, nil); r.status != 403 {
		t.Fatalf("viewer revoke: %s", r)
	}
	r = f.a1Admin.call("DELETE", acct(f.a1.ID)+"/apikeys/"+created.APIKey.ID, nil)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("revoke: %s", r)
	}
	r = k.call("GET", Prefix+"/me", nil)
	if r.status != 401 || r.err(t).Code != pbx2teams.EUnauthenticated || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("revoked key: %s", r)
	}
	// Malformed and unknown credentials are 401 too.
	for _, h := range []string{"Basic abc", "Bearer", "Bearer p2t_nope"} {
		req, _ := http.NewRequestWithContext(f.ctx, "GET", f.srv.URL+Prefix+"/me", nil)
		req.Header.Set("Authorization", h)
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("%q: %d", h, res.StatusCode)
		}
	}
}

// TestCSRF: with the session cookie, unsafe requests need the CSRF token.
func TestCSRF(t *testing.T) {
	f := newFixture(t)
	noToken := &client{e: f.env, name: "no csrf", cookie: f.a1Admin.cookie}
	wrong := &client{e: f.env, name: "wrong csrf", cookie: f.a1Admin.cookie, csrf: "not-the-token"}
	before := f.snapshot()
	body := m{"domain": "pbx.a1.example"}
	for _, c := range []*client{noToken, wrong} {
		r := c.call("PUT", acct(f.a1.ID)+"/pbx", body)
		if r.status != 403 || !strings.Contains(r.err(t).Message, pbx2teams.CSRFHeaderName) {
			t.Fatalf("%s: %s", c.name, r)
		}
		r = c.call("POST", acct(f.a1.ID)+"/apikeys", m{"name": "x"})
		if r.status != 403 {
			t.Fatalf("%s: %s", c.name, r)
		}
	}
	f.assertUnchanged(before, "requests without the CSRF token")
	// Reads need no token; the token from /me makes writes work.
	var me meResponse
	noToken.ok(200, "GET", Prefix+"/me", nil, &me)
	withToken := &client{e: f.env, name: "csrf from me", cookie: f.a1Admin.cookie, csrf: me.CSRFToken}
	withToken.ok(200, "PUT", acct(f.a1.ID)+"/pbx", body, nil)
	// An ended session is 401.
	if err := f.svc.SignOut(f.ctx, f.a1Admin.cookie); err != nil {
		t.Fatal(err)
	}
	if r := withToken.call("GET", Prefix+"/me", nil); r.status != 401 {
		t.Fatalf("after sign-out: %s", r)
	}
}

// TestRequestErrors checks the API's own refusals: each is a JSON error
// with the right status, and none changes anything.
func TestRequestErrors(t *testing.T) {
	f := newFixture(t)
	c := f.a1Key
	pbx := acct(f.a1.ID) + "/pbx"
	before := f.snapshot()
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code, text                   string
	}{
		{"unknown field", "PUT", pbx, "application/json", `{"domain":"pbx.example.com","domian":"x"}`, 400, "invalid", `Unknown field "domian"`},
		{"read-only field", "PUT", pbx, "application/json", `{"domain":"pbx.example.com","account_id":"x"}`, 400, "invalid", `Unknown field "account_id"`},
		{"wrong type", "PUT", pbx, "application/json", `{"domain":"pbx.example.com","register_expiry":"soon"}`, 400, "invalid", `"register_expiry" must be a whole number`},
		{"not JSON", "PUT", pbx, "application/json", `{"domain":`, 400, "invalid", "ends in the middle"},
		{"two values", "PUT", pbx, "application/json", `{"domain":"pbx.example.com"} {}`, 400, "invalid", "exactly one JSON object"},
		{"array body", "PUT", pbx, "application/json", `[1]`, 400, "invalid", "must be a JSON object"},
		{"empty body", "PUT", pbx, "application/json", ``, 400, "invalid", "empty"},
		{"no content type", "PUT", pbx, "", `{"domain":"pbx.example.com"}`, 415, "invalid", "application/json"},
		{"form content type", "PUT", pbx, "application/x-www-form-urlencoded", `domain=x`, 415, "invalid", "application/json"},
		{"CSV as JSON", "POST", acct(f.a1.ID) + "/users.csv", "application/json", `{}`, 415, "invalid", "text/csv"},
		{"too large", "PUT", pbx, "application/json", `{"domain":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "invalid", "larger than"},
		{"bad limit", "GET", acct(f.a1.ID) + "/users?limit=0", "", "", 400, "invalid", "limit"},
		{"bad type", "GET", acct(f.a1.ID) + "/users?type=robots", "", "", 400, "invalid", "type"},
		{"bad before", "GET", acct(f.a1.ID) + "/audit?before=-1", "", "", 400, "invalid", "before"},
		{"bad cursor", "GET", acct(f.a1.ID) + "/users?cursor=not-a-cursor", "", "", 422, "invalid", ""},
		{"unknown SKU", "PUT", acct(f.a1.ID) + "/licences/gold", "application/json", `{"quantity":1}`, 422, "invalid", "pbx-user"},
		{"no endpoint", "GET", Prefix + "/nothing", "", "", 404, "not_found", "openapi.json"},
		{"no account", "GET", acct("acc_missing"), "", "", 404, "not_found", "No such account"},
		{"wrong method", "DELETE", acct(f.a1.ID) + "/pbx", "", "", 405, "invalid", "GET, HEAD, PUT"},
		{"PUT without type", "PUT", acct(f.a1.ID) + "/users/" + f.alice.ID + "/config", "application/json", `{"sip_username":"1"}`, 422, "invalid", "DELETE"},
	}
	for _, tc := range cases {
		r := c.raw(tc.method, tc.path, tc.ct, []byte(tc.body))
		if r.status != tc.status {
			t.Errorf("%s: got %s, want %d", tc.name, r, tc.status)
			continue
		}
		eb := r.err(t)
		if eb.Code != tc.code || !strings.Contains(eb.Message, tc.text) {
			t.Errorf("%s: got %+v, want code %s and %q", tc.name, eb, tc.code, tc.text)
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: content type %q", tc.name, r.header.Get("Content-Type"))
		}
	}
	if r := c.raw("DELETE", acct(f.a1.ID)+"/pbx", "", nil); r.header.Get("Allow") != "GET, HEAD, PUT" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	anon := &client{e: f.env, name: "anonymous"}
	if r := anon.call("GET", acct(f.a1.ID), nil); r.status != 401 || r.err(t).Code != "unauthenticated" {
		t.Errorf("anonymous: %s", r)
	}
	f.assertUnchanged(before, "refused requests")
}

// TestRateLimit gives a credential a small budget: beyond it, 429 with
// Retry-After; another credential is not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, Options{RateLimit: 0.5, RateBurst: 3})
	ctx := e.ctx
	created, pw, err := e.svc.Bootstrap(ctx, "Op", "ops@operator.example")
	if err != nil || !created {
		t.Fatal(err)
	}
	tok, _, err := e.svc.SignIn(ctx, "ops@operator.example", pw, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	op, _, _ := e.svc.Authenticate(ctx, tok)
	k1, _, _ := e.svc.CreateAPIKey(ctx, op, op.AccountID, "one", "")
	k2, _, _ := e.svc.CreateAPIKey(ctx, op, op.AccountID, "two", "")
	c1 := &client{e: e, name: "k1", bearer: k1}
	c2 := &client{e: e, name: "k2", bearer: k2}
	for i := 0; i < 3; i++ {
		c1.ok(200, "GET", Prefix+"/me", nil, nil)
	}
	r := c1.call("GET", Prefix+"/me", nil)
	// 0.5 tokens a second: the next one is 1 to 2 seconds away.
	if ra := r.header.Get("Retry-After"); r.status != 429 || r.err(t).Code != pbx2teams.ERateLimited || (ra != "1" && ra != "2") {
		t.Fatalf("over the limit: %s (Retry-After %q)", r, r.header.Get("Retry-After"))
	}
	c2.ok(200, "GET", Prefix+"/me", nil, nil)
}

// TestCSVTooLarge: an upload over MaxCSVBytes is refused with 413 and
// changes nothing.
func TestCSVTooLarge(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot()
	csv := "email,sip_username,password,phone_number\n" +
		strings.Repeat("alice@a1.example,1001,pw-1001,+441632960101\n", 1000)
	// The fixture's handler has the default limit; mount one with a small one.
	small := httptest.NewServer(New(f.svc, Options{MaxCSVBytes: 4096, RateLimit: -1, Log: slog.New(slog.NewTextHandler(f.logs, nil))}))
	defer small.Close()
	req, _ := http.NewRequestWithContext(f.ctx, "POST", small.URL+acct(f.a1.ID)+"/users.csv", strings.NewReader(csv))
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+f.a1Key.bearer)
	res, err := small.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var eb errorBody
	if err := json.NewDecoder(res.Body).Decode(&eb); err != nil || res.StatusCode != 413 || !strings.Contains(eb.Message, "4096") {
		t.Fatalf("large CSV: %d %+v %v", res.StatusCode, eb, err)
	}
	f.assertUnchanged(before, "a too large CSV")
}

// TestInternalError: a failure inside the service is a 500 with a generic
// message and a request ID; the cause is logged, not returned.
func TestInternalError(t *testing.T) {
	f := newFixture(t)
	f.store.Close() // every query now fails with "sql: database is closed"
	r := f.a1Key.call("GET", acct(f.a1.ID), nil)
	if r.status != 500 {
		t.Fatalf("closed store: %s", r)
	}
	eb := r.err(t)
	id := r.header.Get("X-Request-ID")
	if eb.Code != "internal" || strings.Contains(eb.Message, "closed") || id == "" || !strings.Contains(eb.Message, id) {
		t.Fatalf("internal error body: %+v (request id %q)", eb, id)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "closed") || !strings.Contains(logs, id) {
		t.Fatalf("cause not logged with the request id:\n%s", logs)
	}
}

// fakeRegistrations stands for the SIP engine's registration state.
type fakeRegistrations map[string]pbx2teams.RegistrationState

func (f fakeRegistrations) RegistrationState(id string) (pbx2teams.RegistrationState, bool) {
	s, ok := f[id]
	return s, ok
}

// TestUserListRegistration: users carry their live registration state, and
// search, type filter and cursors page through them.
func TestUserListRegistration(t *testing.T) {
	f := newFixture(t)
	f.svc.Registrations = fakeRegistrations{f.alice.ID: {State: pbx2teams.RegFailed, StatusCode: 403, Reason: "Forbidden (bad password)"}}
	var page userPage
	f.a1Viewer.ok(200, "GET", acct(f.a1.ID)+"/users?limit=2", nil, &page)
	if page.Total != 3 || len(page.Users) != 2 || page.NextCursor == "" || page.Users[0].UPN != "alice@a1.example" {
		t.Fatalf("first page = %+v", page)
	}
	if reg := page.Users[0].Registration; reg == nil || reg.State != "failed" || reg.Reason != "Forbidden (bad password)" {
		t.Fatalf("alice's registration = %+v", reg)
	}
	if page.Users[1].Registration != nil {
		t.Fatalf("the board room has a registration: %+v", page.Users[1].Registration)
	}
	var next userPage
	f.a1Viewer.ok(200, "GET", acct(f.a1.ID)+"/users?limit=2&cursor="+page.NextCursor, nil, &next)
	if len(next.Users) != 1 || next.Users[0].UPN != "bob@a1.example" || next.NextCursor != "" {
		t.Fatalf("second page = %+v", next)
	}
	f.a1Viewer.ok(200, "GET", acct(f.a1.ID)+"/users?search=BAKER", nil, &page)
	if page.Total != 1 || page.Users[0].ID != f.bob.ID {
		t.Fatalf("search = %+v", page)
	}
	var uv userView
	f.a1Viewer.ok(200, "GET", acct(f.a1.ID)+"/users/"+f.alice.ID, nil, &uv)
	if uv.Registration == nil || uv.Registration.StatusCode != 403 {
		t.Fatalf("user = %+v", uv)
	}
	if r := f.a1Viewer.call("GET", acct(f.a1.ID)+"/users/usr_nope", nil); r.status != 404 {
		t.Fatalf("missing user: %s", r)
	}
}
