package msim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// hc bounds every request of these tests.
var hc = &http.Client{Timeout: 20 * time.Second}

func sandbox(t *testing.T) (*Sim, *httptest.Server) {
	t.Helper()
	s, err := NewSandbox(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func doJSON(t *testing.T, method, u, tok string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func tokenReq(t *testing.T, srv *httptest.Server, tenant string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := hc.PostForm(srv.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func ccForm(id, secret, scope string) url.Values {
	return url.Values{"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"}, "scope": {scope}}
}

func aadsts(m map[string]any) int {
	codes, _ := m["error_codes"].([]any)
	if len(codes) == 0 {
		return 0
	}
	f, _ := codes[0].(float64)
	return int(f)
}

func TestTokenEndpointErrors(t *testing.T) {
	s, srv := sandbox(t)
	const scope = "https://graph.microsoft.com/.default"
	cases := []struct {
		name, tenant string
		form         url.Values
		status       int
		code         string
		aadsts       int
	}{
		{"no consent", SandboxTenantID, ccForm(SandboxSyncClientID, SandboxSyncClientSecret, scope), 401, "invalid_client", 7000229},
		{"wrong secret", SandboxTenantID, ccForm(SandboxSyncClientID, "nope", scope), 401, "invalid_client", 7000215},
		{"unknown client", SandboxTenantID, ccForm("11111111-2222-4333-8444-555555555555", "x", scope), 400, "unauthorized_client", 700016},
		{"unknown tenant", "nowhere.example", ccForm(SandboxSyncClientID, SandboxSyncClientSecret, scope), 400, "invalid_request", 90002},
		{"organizations", "organizations", ccForm(SandboxSyncClientID, SandboxSyncClientSecret, scope), 400, "invalid_request", 50059},
		{"scope without .default", SandboxTenantID, ccForm(SandboxSyncClientID, SandboxSyncClientSecret, "https://graph.microsoft.com/User.Read.All"), 400, "invalid_scope", 1002012},
	}
	for _, c := range cases {
		st, m := tokenReq(t, srv, c.tenant, c.form)
		desc, _ := m["error_description"].(string)
		if st != c.status || m["error"] != c.code || aadsts(m) != c.aadsts || !strings.HasPrefix(desc, "AADSTS") || m["trace_id"] == nil {
			t.Errorf("%s: %d %v", c.name, st, m)
		}
	}
	// Revoked: a different code from "never consented".
	_ = s.GrantConsent(SandboxTenantID, SandboxSyncClientID)
	if st, m := tokenReq(t, srv, "contoso.example", ccForm(SandboxSyncClientID, SandboxSyncClientSecret, scope)); st != 200 || m["token_type"] != "Bearer" || m["expires_in"] == nil {
		t.Fatalf("granted: %d %v", st, m)
	}
	_ = s.RevokeConsent(SandboxTenantID, SandboxSyncClientID)
	if st, m := tokenReq(t, srv, SandboxTenantID, ccForm(SandboxSyncClientID, SandboxSyncClientSecret, scope)); st != 400 || aadsts(m) != 65001 {
		t.Fatalf("revoked: %d %v", st, m)
	}
}

func TestOpenIDMetadataJWKSAndUserToken(t *testing.T) {
	s, srv := sandbox(t)
	st, meta, _ := doJSON(t, "GET", srv.URL+"/"+SandboxTenantID+"/v2.0/.well-known/openid-configuration", "", nil)
	if st != 200 || meta["issuer"] != "https://login.microsoftonline.com/"+SandboxTenantID+"/v2.0" ||
		meta["token_endpoint"] != srv.URL+"/"+SandboxTenantID+"/oauth2/v2.0/token" {
		t.Fatalf("metadata: %d %v", st, meta)
	}
	_, jwks, _ := doJSON(t, "GET", meta["jwks_uri"].(string), "", nil)
	keys := jwks["keys"].([]any)
	k := keys[0].(map[string]any)
	n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}

	aud := "api://localhost/" + SandboxPhoneAppClientID
	tok, err := s.MintUserToken(UserTokenOptions{User: "lee.gu@contoso.example", Audience: aud})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	var hdr map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	_ = json.Unmarshal(hb, &hdr)
	if hdr["alg"] != "RS256" || hdr["kid"] != k["kid"] {
		t.Fatalf("header %v, key %v", hdr, k["kid"])
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify with the published key: %v", err)
	}
	var claims map[string]any
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(cb, &claims)
	if claims["aud"] != aud || claims["scp"] != "access_as_user" || claims["tid"] != SandboxTenantID ||
		claims["oid"] != "a0000001-0000-4000-8000-000000000012" || claims["preferred_username"] != "lee.gu@contoso.example" ||
		claims["iss"] != meta["issuer"] || claims["ver"] != "2.0" {
		t.Fatalf("claims: %v", claims)
	}
	// The same through the admin API.
	st, m, _ := doJSON(t, "POST", srv.URL+"/_sim/tokens/user", "", map[string]string{"user": "lee.gu@contoso.example", "audience": aud})
	if st != 200 || m["token"] == "" {
		t.Fatalf("admin mint: %d %v", st, m)
	}
}

func graphToken(t *testing.T, s *Sim, srv *httptest.Server) string {
	t.Helper()
	if err := s.GrantConsent(SandboxTenantID, SandboxSyncClientID); err != nil {
		t.Fatal(err)
	}
	_, m := tokenReq(t, srv, SandboxTenantID, ccForm(SandboxSyncClientID, SandboxSyncClientSecret, "https://graph.microsoft.com/.default"))
	return m["access_token"].(string)
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	if _, ok := e["innerError"].(map[string]any); !ok {
		return "(no innerError)"
	}
	return c
}

func TestGraphQueriesAndErrors(t *testing.T) {
	s, srv := sandbox(t)
	tok := graphToken(t, s, srv)
	g := srv.URL + "/v1.0"
	q := url.QueryEscape
	cases := []struct {
		name   string
		path   string
		hdr    []string
		status int
		code   string
		count  int // -1: do not check
	}{
		{"no token", "/users", nil, 401, "InvalidAuthenticationToken", -1},
		{"accountEnabled eq false", "/users?$filter=" + q("accountEnabled eq false"), nil, 200, "", 2},
		{"guest", "/users?$filter=" + q("userType eq 'Guest'"), nil, 200, "", 1},
		{"startswith", "/users?$filter=" + q("startswith(displayName,'li')"), nil, 200, "", 1},
		{"in", "/users?$filter=" + q("department in ('Sales','Finance')"), nil, 200, "", 6},
		{"sku any", "/users?$filter=" + q("assignedLicenses/any(x:x/skuId eq 440eaaa8-b3e0-484b-a8be-62870b9ba70a)"), nil, 200, "", 2},
		{"ne needs headers", "/users?$filter=" + q("userType ne 'Member'"), nil, 400, "Request_UnsupportedQuery", -1},
		{"ne with headers", "/users?$count=true&$filter=" + q("userType ne 'Member'"), []string{"ConsistencyLevel", "eventual"}, 200, "", 1},
		{"unknown filter property", "/users?$filter=" + q("favouriteColour eq 'blue'"), nil, 400, "Request_UnsupportedQuery", -1},
		{"unknown select", "/users?$select=favouriteColour", nil, 400, "Request_BadRequest", -1},
		{"top 0", "/users?$top=0", nil, 400, "Request_UnsupportedQuery", -1},
		{"bad skiptoken", "/users?$skiptoken=forged", nil, 400, "Request_BadRequest", -1},
		{"me with app token", "/me", nil, 400, "BadRequest", -1},
		{"unknown segment", "/printers", nil, 400, "BadRequest", -1},
		{"unknown user", "/users/nobody@contoso.example", nil, 404, "Request_ResourceNotFound", -1},
		{"group filter", "/groups?$filter=" + q("groupTypes/any(c:c eq 'Unified')"), nil, 200, "", 1},
		{"group search", "/groups?$search=" + q(`"displayName:phone"`), []string{"ConsistencyLevel", "eventual"}, 200, "", 1},
		{"cast needs headers", "/groups/b0000001-0000-4000-8000-000000000001/transitiveMembers/microsoft.graph.user", nil, 400, "Request_UnsupportedQuery", -1},
		{"direct members", "/groups/b0000001-0000-4000-8000-000000000001/members", nil, 200, "", 9},
		{"catalog filter", "/appCatalogs/teamsApps?$filter=" + q("distributionMethod eq 'organization'"), nil, 200, "", 1},
	}
	for _, c := range cases {
		bearer := tok
		if c.name == "no token" {
			bearer = ""
		}
		st, m, _ := doJSON(t, "GET", g+c.path, bearer, nil, c.hdr...)
		if st != c.status {
			t.Errorf("%s: status %d, want %d: %v", c.name, st, c.status, m)
			continue
		}
		if c.code != "" && errCode(m) != c.code {
			t.Errorf("%s: error %v, want %s", c.name, m, c.code)
		}
		if c.count >= 0 {
			if v, _ := m["value"].([]any); len(v) != c.count {
				t.Errorf("%s: %d results, want %d: %v", c.name, len(v), c.count, m["value"])
			}
		}
	}
	// $count on /users/$count answers text/plain.
	req, _ := http.NewRequest("GET", g+"/users/$count", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("ConsistencyLevel", "eventual")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "21" {
		t.Fatalf("$count = %q", b)
	}
}

func TestAdminAPI(t *testing.T) {
	s, srv := sandbox(t)
	a := srv.URL + "/_sim/tenants/contoso.example"
	// Federation: block the Phone App domain and read it back.
	fed := Federation{AllowFederatedUsers: true, AllowedDomains: []string{"phone.pbx.example"}}
	if st, m, _ := doJSON(t, "PUT", a+"/federation", "", fed); st != 204 {
		t.Fatalf("put federation: %d %v", st, m)
	}
	if ok, _ := s.FederationAllows(SandboxTenantID, "phone.pbx.example"); !ok {
		t.Fatal("allow-listed domain not allowed")
	}
	if ok, _ := s.FederationAllows(SandboxTenantID, "other.example"); ok {
		t.Fatal("domain outside the allow list allowed")
	}
	fed.BlockedDomains = []string{"pbx.example"}
	doJSON(t, "PUT", a+"/federation", "", fed)
	if ok, _ := s.FederationAllows(SandboxTenantID, "phone.pbx.example"); ok {
		t.Fatal("blocked parent domain still allowed")
	}
	// Coexistence mode through PATCH, read through GET.
	if st, m, _ := doJSON(t, "PATCH", a+"/users/lee.gu@contoso.example", "", map[string]string{"coexistenceMode": "SfBOnly"}); st != 204 {
		t.Fatalf("patch: %d %v", st, m)
	}
	st, m, _ := doJSON(t, "GET", a+"/users/lee.gu@contoso.example", "", nil)
	if st != 200 || m["coexistenceMode"] != "SfBOnly" {
		t.Fatalf("user state: %d %v", st, m)
	}
	if st, m, _ := doJSON(t, "PATCH", a+"/users/lee.gu@contoso.example", "", map[string]string{"coexistenceMode": "Teamsish"}); st != 400 {
		t.Fatalf("bad mode: %d %v", st, m)
	}
	// Add a user, see it in Graph; delete it.
	st, m, _ = doJSON(t, "POST", a+"/users", "", UserSpec{UserPrincipalName: "zoe@contoso.example", DisplayName: "Zoe", Licenses: []string{"SPE_E5"}})
	if st != 201 || m["id"] == "" {
		t.Fatalf("add user: %d %v", st, m)
	}
	tok := graphToken(t, s, srv)
	if st, u, _ := doJSON(t, "GET", srv.URL+"/v1.0/users/zoe@contoso.example", tok, nil); st != 200 || u["displayName"] != "Zoe" || u["id"] != m["id"] {
		t.Fatalf("graph user: %d %v", st, u)
	}
	if st, m, _ := doJSON(t, "POST", a+"/users", "", UserSpec{UserPrincipalName: "bad@contoso.example", Licenses: []string{"NOPE"}}); st != 400 || !strings.Contains(m["error"].(string), "NOPE") {
		t.Fatalf("bad licence: %d %v", st, m)
	}
	if st, _, _ := doJSON(t, "DELETE", a+"/users/zoe@contoso.example", "", nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, _ := doJSON(t, "GET", srv.URL+"/v1.0/users/zoe@contoso.example", tok, nil); st != 404 {
		t.Fatalf("deleted user still served: %d", st)
	}
	// Random changes report what they did.
	st, m, _ = doJSON(t, "POST", a+"/changes", "", map[string]int{"count": 10, "seed": 3})
	if st != 200 || m["distinctChanged"].(float64) < 1 {
		t.Fatalf("changes: %d %v", st, m)
	}
	// Faults through the API: one 503 on /v1.0/organization.
	doJSON(t, "POST", srv.URL+"/_sim/faults", "", Fault{PathPrefix: "/v1.0/organization", Status: 503, RetryAfter: 2})
	st, m, h := doJSON(t, "GET", srv.URL+"/v1.0/organization", tok, nil)
	if st != 503 || h.Get("Retry-After") != "2" || errCode(m) != "serviceNotAvailable" {
		t.Fatalf("fault: %d %v %v", st, m, h)
	}
	if st, _, _ := doJSON(t, "GET", srv.URL+"/v1.0/organization", tok, nil); st != 200 {
		t.Fatalf("after the fault: %d", st)
	}
	// Consent state through the API.
	doJSON(t, "PUT", a+"/consent/"+SandboxSyncClientID, "", map[string]string{"state": "revoked"})
	if s.ConsentState(SandboxTenantID, SandboxSyncClientID) != "revoked" {
		t.Fatal("consent not revoked")
	}
	if st, m, _ := doJSON(t, "GET", srv.URL+"/v1.0/organization", tok, nil); st != 401 || errCode(m) != "InvalidAuthenticationToken" {
		t.Fatalf("token after revocation: %d %v", st, m)
	}
}

func TestFixtureValidation(t *testing.T) {
	for _, bad := range []string{
		`{"tenants":[{"displayName":"X","domains":[{"name":"x.example"}],"users":[{"userPrincipalName":"a@x.example","licenses":["NOPE"]}]}]}`,
		`{"tenants":[{"displayName":"X","domains":[{"name":"x.example"}],"groups":[{"displayName":"G","members":["ghost@x.example"]}]}]}`,
		`{"tenants":[{"displayName":"X","domains":[]}]}`,
		`{"tenants":[{"displayName":"X","domains":[{"name":"x.example"}],"colour":"blue"}]}`,
	} {
		if err := New(Options{}).LoadJSON(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestGeneratedTenantMix(t *testing.T) {
	s := New(Options{})
	tid, err := s.Generate("", "", GenerateSpec{Users: 5000, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	tn := s.tenant(tid)
	var rooms, res, guests, phone, disabled int
	for i := range tn.users {
		u := &tn.users[i]
		b, _ := skuBit("MEETING_ROOM")
		v, _ := skuBit("PHONESYSTEM_VIRTUALUSER")
		switch {
		case u.skus&b != 0:
			rooms++
		case u.skus&v != 0:
			res++
		case u.flags&uGuest != 0:
			guests++
		}
		if cur, _ := userPlans(u); cur&(1<<uint(planIdx[PlanTeamsPhone.ID])) != 0 {
			phone++
		}
		if !u.enabled() {
			disabled++
		}
	}
	if len(tn.users) != 5000 || rooms == 0 || res == 0 || guests == 0 || disabled == 0 || phone < 2500 || phone > 3500 {
		t.Fatalf("mix: users %d rooms %d resource %d guests %d phone %d disabled %d", len(tn.users), rooms, res, guests, phone, disabled)
	}
	// Deterministic for a seed.
	s2 := New(Options{})
	tid2, _ := s2.Generate("", "", GenerateSpec{Users: 5000, Seed: 2})
	if s2.tenant(tid2).users[4321].id != tn.users[4321].id {
		t.Fatal("generation is not deterministic")
	}
}

func TestFilterParser(t *testing.T) {
	u := &user{displayName: "Ann O'Neil", upn: "ann@x.example", flags: uEnabled, department: "Sales"}
	u.skus, _ = skuBit("SPE_E5")
	for expr, want := range map[string]bool{
		"displayName eq 'ann o''neil'":                     true,
		"accountEnabled eq true and department eq 'Sales'": true,
		"not (department eq 'Sales')":                      false,
		"endswith(userPrincipalName,'@x.example')":         true,
		"assignedPlans/any(p:p/servicePlanId eq 4828c8ec-dc2e-4779-b502-87ac9ce28ab7 and p/capabilityStatus eq 'Enabled')": true,
		"assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)":                                          false,
		"mail eq null or jobTitle eq 'x'": true,
	} {
		f, err := parseFilter(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got, err := f.match(userObj{u}); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", expr, got, err, want)
		}
	}
	for _, bad := range []string{"displayName eq", "startswith(displayName)", "(accountEnabled eq true", "displayName 'x'"} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestServeStandalone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServeOptions{Addr: "127.0.0.1:0", Generate: 50, Logger: slog.New(slog.DiscardHandler),
			Ready: func(base string, _ *Sim) { ready <- base }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	resp, err := hc.Get(base + "/_sim/tenants")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	var ts []tenantSummary
	_ = json.NewDecoder(resp.Body).Decode(&ts)
	resp.Body.Close()
	if len(ts) != 2 || ts[0].DisplayName != "Contoso" || ts[1].Users != 50 {
		t.Fatalf("tenants: %+v", ts)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
