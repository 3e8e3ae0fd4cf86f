package phoneapp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/phoneapp"
)

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends an API request with a bearer token ("" for none).
func (f *fixture) do(t *testing.T, method, path, token string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := reply{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func TestSignInRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	other := msim.New(msim.Options{}) // a different signing key
	if _, err := other.AddTenant(msim.TenantSpec{ID: tenantContoso, DisplayName: "Contoso", Domains: []msim.DomainSpec{{Name: "contoso.example"}},
		Users: []msim.UserSpec{userSpec(oidAlice, "alice@contoso.example", "Alice Archer")}}); err != nil {
		t.Fatal(err)
	}
	forged, err := other.MintUserToken(msim.UserTokenOptions{User: "alice@contoso.example", Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, token string
		status      int
		code, msg   string
	}{
		{"no token", "", 401, pbx2teams.EUnauthenticated, "not signed in"},
		{"not a JWT", "abc.def", 401, pbx2teams.EUnauthenticated, "not a JWT"},
		{"signed by someone else", forged, 401, pbx2teams.EUnauthenticated, "signing key"},
		{"wrong audience", f.token(t, "alice@contoso.example", func(o *msim.UserTokenOptions) { o.Audience = "api://elsewhere/app" }),
			401, pbx2teams.EUnauthenticated, "issued for another application"},
		{"wrong scope", f.token(t, "alice@contoso.example", func(o *msim.UserTokenOptions) { o.Scopes = "User.Read" }),
			401, pbx2teams.EUnauthenticated, "lacks the scope"},
		{"tenant not connected", f.token(t, "ned@northwind.example", nil), 401, pbx2teams.EUnauthenticated, "is not connected"},
		{"standard user", f.token(t, "bob@contoso.example", nil), 403, pbx2teams.EForbidden,
			"The Phone App is not set up for bob@contoso.example. Ask your administrator"},
		{"never synced", f.token(t, "erin@contoso.example", nil), 403, pbx2teams.EForbidden, "not set up for erin@contoso.example"},
		{"disabled Phone App user", f.token(t, "gus@contoso.example", nil), 403, pbx2teams.EForbidden, "suspended"},
		{"Phone App user of another customer", f.token(t, "mallory@contoso.example", nil), 403, pbx2teams.EForbidden,
			"not set up for mallory@contoso.example"},
	}
	for _, c := range cases {
		for _, path := range []string{"/phone/api/me", "/phone/api/calls", "/phone/api/events"} {
			r := f.do(t, "GET", path, c.token, nil)
			if r.status != c.status || r.str("code") != c.code || !strings.Contains(r.str("message"), c.msg) {
				t.Errorf("%s: GET %s = %d %s %q, want %d %s containing %q", c.name, path, r.status, r.str("code"), r.str("message"), c.status, c.code, c.msg)
			}
		}
		// Refused callers change nothing.
		r := f.do(t, "POST", "/phone/api/calls", c.token, map[string]string{"number": "201"})
		if r.status != c.status {
			t.Errorf("%s: dial = %d, want %d", c.name, r.status, c.status)
		}
	}
	if a := f.dialler.Actions(); len(a) != 0 {
		t.Fatalf("refused callers reached the dialler: %v", a)
	}
	if r := f.do(t, "GET", "/phone/api/me", "", nil); !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", r.header)
	}

	// Accepted: Alice (registered) and Frank of the other customer (failing line).
	r := f.do(t, "GET", "/phone/api/me", f.token(t, "alice@contoso.example", nil), nil)
	reg, _ := r.body["registration"].(map[string]any)
	if r.status != 200 || r.str("display_name") != "Alice Archer" || r.str("extension") != "200" || reg["state"] != "registered" {
		t.Fatalf("alice: %d %s", r.status, r.raw)
	}
	r = f.do(t, "GET", "/phone/api/me", f.token(t, "frank@fabrikam.example", nil), nil)
	reg, _ = r.body["registration"].(map[string]any)
	if r.status != 200 || reg["state"] != "failed" || reg["reason"] != "Forbidden: wrong password" || reg["status_code"] != 403.0 {
		t.Fatalf("frank: %d %s", r.status, r.raw)
	}
}

func TestExpiredTokenRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *phoneapp.Config) {
		v := c.Validator.(*m365.SSOValidator)
		v.Now = func() time.Time { return time.Now().Add(3 * time.Hour) } // the token's hour is long over
	})
	r := f.do(t, "GET", "/phone/api/me", f.token(t, "alice@contoso.example", nil), nil)
	if r.status != 401 || !strings.Contains(r.str("message"), "expired") {
		t.Fatalf("expired token: %d %s", r.status, r.raw)
	}
}

func TestPageHeadersAndAssets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *phoneapp.Config) { c.FrameAncestors = []string{"https://sandbox.example:8443"} })
	r := f.do(t, "GET", "/phone/", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %v", r.status, r.header)
	}
	csp := r.header.Get("Content-Security-Policy")
	anc := regexp.MustCompile(`frame-ancestors ([^;]+)`).FindStringSubmatch(csp)
	if anc == nil {
		t.Fatalf("no frame-ancestors in %q", csp)
	}
	for _, o := range []string{"https://teams.microsoft.com", "https://*.teams.microsoft.com", "https://*.cloud.microsoft",
		"https://*.office.com", "https://outlook.office.com", "https://sandbox.example:8443"} {
		if !strings.Contains(" "+anc[1]+" ", " "+o+" ") {
			t.Errorf("frame-ancestors %q lacks %s", anc[1], o)
		}
	}
	for _, want := range []string{"script-src 'self'", "default-src 'none'", "connect-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	if xfo := r.header.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("X-Frame-Options %q would stop Teams from framing the tab", xfo)
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(r.raw) || strings.Contains(r.raw, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(r.raw) {
		t.Errorf("page has inline script or handlers")
	}
	if m := regexp.MustCompile(`(?:src|href)="(https?:)?//`).FindString(r.raw); m != "" {
		t.Errorf("page loads from another host: %s", m)
	}
	if !strings.Contains(r.raw, `https://sandbox.example:8443`) {
		t.Errorf("page does not tell teams.js the extra host origin")
	}
	for path, ct := range map[string]string{"/phone/app.js": "text/javascript", "/phone/teams.js": "text/javascript", "/phone/app.css": "text/css"} {
		r := f.do(t, "GET", path, "", nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), ct) || r.header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: %d %q", path, r.status, r.header.Get("Content-Type"))
		}
		if strings.Contains(r.raw, "//cdn") || strings.Contains(r.raw, "https://") && path == "/phone/app.js" {
			t.Errorf("%s refers to another host", path)
		}
	}
	// Without the trailing slash the tab's relative URLs would break.
	req, _ := http.NewRequest("GET", f.srv.URL+"/phone", nil)
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if (res.StatusCode != 301 && res.StatusCode != 307) || res.Header.Get("Location") != "/phone/" {
		t.Errorf("/phone = %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if r := f.do(t, "GET", "/phone/api/nothing", "", nil); r.status != 404 || r.str("code") != pbx2teams.ENotFound {
		t.Errorf("unknown API path: %d %s", r.status, r.raw)
	}
}

func TestCallControl(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	alice := f.token(t, "alice@contoso.example", nil)
	frank := f.token(t, "frank@fabrikam.example", nil)

	r := f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": " +44 (20) 7946-0000 "})
	if r.status != 201 || r.str("state") != pbx2teams.CallRingingYou || r.str("remote") != "+442079460000" {
		t.Fatalf("dial: %d %s", r.status, r.raw)
	}
	id := r.str("id")
	if !f.dialler.hasAction("dial +442079460000") {
		t.Fatalf("dialler saw %v", f.dialler.Actions())
	}
	r = f.do(t, "GET", "/phone/api/calls", alice, nil)
	if calls, _ := r.body["calls"].([]any); r.status != 200 || len(calls) != 1 {
		t.Fatalf("calls: %d %s", r.status, r.raw)
	}
	if r = f.do(t, "GET", "/phone/api/calls", frank, nil); r.raw != "{\"calls\":[]}\n" {
		t.Fatalf("frank sees %s", r.raw)
	}
	f.dialler.Advance(id)

	steps := []struct {
		path   string
		body   any
		action string
	}{
		{"/hold", map[string]bool{"on": true}, "hold " + id + " true"},
		{"/hold", map[string]bool{"on": false}, "hold " + id + " false"},
		{"/dtmf", map[string]string{"digits": "12#*"}, "dtmf " + id + " 12#*"},
		{"/transfer", map[string]string{"target": "20-2"}, "transfer " + id + " 202"},
	}
	for _, s := range steps {
		if r := f.do(t, "POST", "/phone/api/calls/"+id+s.path, alice, s.body); r.status != 200 {
			t.Fatalf("%s: %d %s", s.path, r.status, r.raw)
		}
		if !f.dialler.hasAction(s.action) {
			t.Fatalf("%s: dialler saw %v", s.path, f.dialler.Actions())
		}
	}
	// The transferred call is in Alice's recent calls.
	r = f.do(t, "GET", "/phone/api/recent", alice, nil)
	calls, _ := r.body["calls"].([]any)
	if r.status != 200 || len(calls) != 1 || calls[0].(map[string]any)["number"] != "+442079460000" {
		t.Fatalf("recent: %d %s", r.status, r.raw)
	}
	if r = f.do(t, "GET", "/phone/api/recent", frank, nil); r.raw != "{\"calls\":[]}\n" {
		t.Fatalf("frank's recent: %s", r.raw)
	}

	// Frank cannot touch Alice's call.
	r = f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": "201"})
	id2 := r.str("id")
	if r := f.do(t, "POST", "/phone/api/calls/"+id2+"/hangup", frank, map[string]string{}); r.status != 404 {
		t.Fatalf("frank hung up alice's call: %d %s", r.status, r.raw)
	}
	// Attended transfer between two calls.
	r = f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": "203"})
	id3 := r.str("id")
	if r := f.do(t, "POST", "/phone/api/calls/"+id2+"/transfer", alice, map[string]string{"call_id": id3}); r.status != 200 ||
		!f.dialler.hasAction("attended "+id2+" "+id3) {
		t.Fatalf("attended transfer: %d %s %v", r.status, r.raw, f.dialler.Actions())
	}

	// Contacts: search narrows the list.
	r = f.do(t, "GET", "/phone/api/contacts?q=cruz", alice, nil)
	cs, _ := r.body["contacts"].([]any)
	if r.status != 200 || len(cs) != 1 || cs[0].(map[string]any)["name"] != "Carlos Cruz" {
		t.Fatalf("contacts: %d %s", r.status, r.raw)
	}
}

func TestCallControlErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	alice := f.token(t, "alice@contoso.example", nil)
	r := f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": "201"})
	id := r.str("id")
	f.dialler.Advance(id)

	plain := func(code, msg string) error { return &pbx2teams.Error{Code: code, Message: msg} }
	cases := []struct {
		method, path string
		body         any
		fail         string // Dialler method made to fail
		err          error
		status       int
		msg          string
	}{
		{"POST", "/phone/api/calls", map[string]string{"number": "201"}, "Dial",
			plain(pbx2teams.EUnavailable, "The PBX did not answer; try again in a minute."), 503, "The PBX did not answer"},
		{"POST", "/phone/api/calls", map[string]string{"number": "201"}, "Dial",
			plain(pbx2teams.EConflict, "You are already in a call."), 409, "already in a call"},
		{"POST", "/phone/api/calls/" + id + "/hangup", map[string]string{}, "Hangup",
			plain(pbx2teams.ENotFound, "That call has already ended."), 404, "already ended"},
		{"POST", "/phone/api/calls/" + id + "/hold", map[string]bool{"on": true}, "Hold",
			plain(pbx2teams.EConflict, "The PBX refused to hold the call (488)."), 409, "refused to hold"},
		{"POST", "/phone/api/calls/" + id + "/transfer", map[string]string{"target": "999"}, "Transfer",
			plain(pbx2teams.EForbidden, "The PBX does not allow transfers for your line."), 403, "does not allow transfers"},
		{"POST", "/phone/api/calls/" + id + "/transfer", map[string]string{"call_id": "c9"}, "AttendedTransfer",
			plain(pbx2teams.EInvalid, "The PBX does not support attended transfer."), 422, "attended transfer"},
		{"POST", "/phone/api/calls/" + id + "/dtmf", map[string]string{"digits": "5"}, "DTMF",
			errors.New("relay socket closed"), 500, "An internal error occurred"},
		{"POST", "/phone/api/calls/" + id + "/dtmf", map[string]string{"digits": "5"}, "DTMF",
			plain(pbx2teams.ERateLimited, "Too many tones; slow down."), 429, "slow down"},
		// Bad input never reaches the dialler.
		{"POST", "/phone/api/calls", map[string]string{"number": "call mum"}, "", nil, 422, "is not a number"},
		{"POST", "/phone/api/calls", map[string]string{"number": "+0123"}, "", nil, 422, "not a valid international number"},
		{"POST", "/phone/api/calls", map[string]string{"number": " "}, "", nil, 422, "Enter a number"},
		{"POST", "/phone/api/calls/" + id + "/hold", map[string]string{}, "", nil, 400, `"on"`},
		{"POST", "/phone/api/calls/" + id + "/dtmf", map[string]string{"digits": "5x"}, "", nil, 422, "0-9, *, # and A-D"},
		{"POST", "/phone/api/calls/" + id + "/transfer", map[string]string{"target": "202", "call_id": "c9"}, "", nil, 400, "not both"},
		{"POST", "/phone/api/calls/" + id + "/transfer", map[string]string{"call_id": id}, "", nil, 422, "itself"},
	}
	for _, c := range cases {
		before := len(f.dialler.Actions())
		if c.fail != "" {
			f.dialler.failNext(c.fail, c.err)
		}
		r := f.do(t, c.method, c.path, alice, c.body)
		if r.status != c.status || !strings.Contains(r.str("message"), c.msg) {
			t.Errorf("%s %s (%s fails): %d %q, want %d with %q", c.method, c.path, c.fail, r.status, r.str("message"), c.status, c.msg)
		}
		if strings.Contains(r.raw, "relay socket") {
			t.Errorf("internal detail leaked: %s", r.raw)
		}
		if c.fail == "" && len(f.dialler.Actions()) != before {
			t.Errorf("%s %s: bad input reached the dialler", c.method, c.path)
		}
	}
	// A body that is not JSON.
	req, _ := http.NewRequest("POST", f.srv.URL+"/phone/api/calls", strings.NewReader("number=201"))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("form body: %d", res.StatusCode)
	}
}

type sseEvent struct {
	name string
	data map[string]any
}

// openEvents opens the event stream and returns its events as they come.
func (f *fixture) openEvents(t *testing.T, ctx context.Context, token string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/phone/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func next(t *testing.T, ctx context.Context, evs <-chan sseEvent, name string) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("stream ended while waiting for %q", name)
			}
			if ev.name == name {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no %q event", name)
		}
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := f.token(t, "alice@contoso.example", nil)
	evs := f.openEvents(t, ctx, alice)
	snap := next(t, ctx, evs, "snapshot")
	if reg, _ := snap.data["registration"].(map[string]any); reg["state"] != "registered" {
		t.Fatalf("snapshot: %v", snap.data)
	}
	r := f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": "201"})
	id := r.str("id")
	ev := next(t, ctx, evs, "call")
	if ev.data["id"] != id || ev.data["state"] != pbx2teams.CallRingingYou {
		t.Fatalf("first change: %v", ev.data)
	}
	go f.dialler.Advance(id)
	for ev.data["state"] != pbx2teams.CallConnected {
		ev = next(t, ctx, evs, "call")
	}
	f.regs.set("u-alice", pbx2teams.RegistrationState{State: pbx2teams.RegFailed, StatusCode: 408, Reason: "The PBX did not answer"})
	reg := next(t, ctx, evs, "registration")
	if reg.data["state"] != "failed" || reg.data["reason"] != "The PBX did not answer" {
		t.Fatalf("registration change: %v", reg.data)
	}

	// A reload: a new stream starts with the call in progress.
	evs2 := f.openEvents(t, ctx, alice)
	snap = next(t, ctx, evs2, "snapshot")
	calls, _ := snap.data["calls"].([]any)
	if len(calls) != 1 || calls[0].(map[string]any)["id"] != id {
		t.Fatalf("snapshot after reload: %v", snap.data)
	}
	// Frank's stream never shows Alice's call.
	evs3 := f.openEvents(t, ctx, f.token(t, "frank@fabrikam.example", nil))
	snap = next(t, ctx, evs3, "snapshot")
	if calls, _ := snap.data["calls"].([]any); len(calls) != 0 {
		t.Fatalf("frank's snapshot: %v", snap.data)
	}

	// The stream ends when the token expires (the page then reconnects).
	short := f.token(t, "alice@contoso.example", func(o *msim.UserTokenOptions) { o.Lifetime = 2 * time.Second })
	evs4 := f.openEvents(t, ctx, short)
	next(t, ctx, evs4, "snapshot")
	next(t, ctx, evs4, "expired")
	select {
	case _, ok := <-evs4:
		if ok {
			t.Fatal("the stream went on after the token expired")
		}
	case <-ctx.Done():
		t.Fatal("the stream did not end at token expiry")
	}
}

func TestNormaliseNumber(t *testing.T) {
	for in, want := range map[string]string{
		"201": "201", " 2 0 1 ": "201", "+44 20 7946-0000": "+442079460000", "(020) 7946.0000": "02079460000",
		"*72#": "*72#", "+1\u00a0555 0100": "+15550100",
	} {
		if got, err := phoneapp.NormaliseNumber(in); err != nil || got != want {
			t.Errorf("NormaliseNumber(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "+", "+0441234", "+1234567890123456", "20 1a", strings.Repeat("1", 33)} {
		if got, err := phoneapp.NormaliseNumber(in); err == nil || pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
			t.Errorf("NormaliseNumber(%q) = %q, %v; want an invalid error", in, got, err)
		}
	}
}

func TestContactHelpers(t *testing.T) {
	gc := m365.Contact{DisplayName: "Carlos Cruz", CompanyName: "Cruz Ltd", MobilePhone: "+44 7700 900123",
		BusinessPhones: []string{"+44 20 7946 0001"}, HomePhones: []string{""}}
	cs := phoneapp.FromGraphContact(gc)
	if len(cs) != 2 || cs[0].Label != "mobile" || cs[1].Number != "+44 20 7946 0001" || cs[0].Source != phoneapp.SourceOutlook || cs[1].Company != "Cruz Ltd" {
		t.Fatalf("FromGraphContact: %+v", cs)
	}
	if cs := phoneapp.FromGraphContact(m365.Contact{DisplayName: "No Number"}); len(cs) != 0 {
		t.Fatalf("a contact without a number: %+v", cs)
	}
	u := pbx2teams.User{DisplayName: "Ann Andrews", Enabled: true, Type: pbx2teams.ServiceStandard, SIPUsername: "203", PhoneNumber: "+441632960203"}
	ds := phoneapp.FromDirectoryUser(u)
	if len(ds) != 2 || ds[0].Number != "203" || ds[0].Label != "extension" || ds[1].Number != "+441632960203" {
		t.Fatalf("FromDirectoryUser: %+v", ds)
	}
	u.Enabled = false
	if ds := phoneapp.FromDirectoryUser(u); len(ds) != 0 {
		t.Fatalf("disabled user listed: %+v", ds)
	}
	if !phoneapp.MatchContact(cs[0], "cruz 7700900") || !phoneapp.MatchContact(cs[0], "") || phoneapp.MatchContact(cs[0], "ann") {
		t.Fatal("MatchContact")
	}
}

// TestEventStreamOutlivesWriteTimeout: a server with a WriteTimeout (as
// production servers have) must not cut the live stream.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.srv.Config.WriteTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := f.token(t, "alice@contoso.example", nil)
	evs := f.openEvents(t, ctx, alice)
	next(t, ctx, evs, "snapshot")
	time.Sleep(time.Second) // well past the write timeout
	r := f.do(t, "POST", "/phone/api/calls", alice, map[string]string{"number": "201"})
	if ev := next(t, ctx, evs, "call"); ev.data["id"] != r.str("id") {
		t.Fatalf("change after the write timeout: %v", ev.data)
	}
}
