package msim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const graphResource = "https://graph.microsoft.com"

// graphAppID is Microsoft Graph's well-known application id, also accepted
// as a resource in scopes.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// Well-known client ids of the Teams clients that request SSO tokens.
const (
	TeamsDesktopClientID = "1fec8e78-bce4-4aaf-ab1b-5451cc387264"
	TeamsWebClientID     = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"
)

func (s *Sim) initKeys(k *rsa.PrivateKey) {
	if k == nil {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic("msim: generating signing key: " + err.Error())
		}
	}
	s.key = k
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net (simulated)"},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic("msim: self-signing certificate: " + err.Error())
	}
	s.certDER = der
	sum := sha1.Sum(der)
	s.kid = b64(sum[:]) // Microsoft's kid equals the x5t thumbprint
}

// PublicKey is the key that signs every token the simulator issues.
func (s *Sim) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64(b)
}

// sign returns a compact RS256 JWS of claims.
func (s *Sim) sign(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "x5t": s.kid, "kid": s.kid})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		panic("msim: signing: " + err.Error())
	}
	return in + "." + b64(sig)
}

// VerifyToken checks the signature and lifetime of a token the simulator
// issued and returns its claims.
func (s *Sim) VerifyToken(tok string) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("bad signature encoding")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("signature verification failed")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("bad claims encoding")
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, errors.New("bad claims")
	}
	exp, _ := claims["exp"].(float64)
	if int64(exp) < s.now().Unix() {
		return nil, errors.New("Lifetime validation failed, the token is expired.")
	}
	return claims, nil
}

func (s *Sim) issuerV2(tid string) string {
	return strings.ReplaceAll(s.opts.Issuer, "{tenantid}", tid)
}

func issuerV1(tid string) string { return "https://sts.windows.net/" + tid + "/" }

// serveLogin handles /{tenant}/... login paths.
func (s *Sim) serveLogin(w http.ResponseWriter, r *http.Request, tenantSeg, rest string) {
	switch rest {
	case "oauth2/v2.0/token":
		s.serveToken(w, r, tenantSeg)
	case "adminconsent", "v2.0/adminconsent":
		s.serveAdminConsent(w, r, tenantSeg, rest == "v2.0/adminconsent")
	case "oauth2/v2.0/authorize":
		s.serveAuthorize(w, r, tenantSeg)
	case "v2.0/.well-known/openid-configuration":
		s.serveOpenID(w, r, tenantSeg)
	case "discovery/v2.0/keys", "discovery/keys":
		s.serveJWKS(w)
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) serveOpenID(w http.ResponseWriter, r *http.Request, tenantSeg string) {
	tid := tenantSeg
	if t := s.tenant(tenantSeg); t != nil {
		tid = t.idStr
	} else if tenantSeg != "common" && tenantSeg != "organizations" {
		s.tokenError(w, 400, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantSeg))
		return
	}
	if tenantSeg == "common" || tenantSeg == "organizations" {
		tid = "{tenantid}"
	}
	b := s.base(r) + "/" + tenantSeg
	writeJSON(w, 200, map[string]any{
		"token_endpoint":                        b + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              b + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.issuerV2(tid),
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.base(r) + "/oidc/userinfo",
		"authorization_endpoint":                b + "/oauth2/v2.0/authorize",
		"end_session_endpoint":                  b + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid", "ver", "oid"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

func (s *Sim) serveJWKS(w http.ResponseWriter) {
	pub := s.key.PublicKey
	writeJSON(w, 200, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "kid": s.kid, "x5t": s.kid,
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
		"x5c": []string{base64.StdEncoding.EncodeToString(s.certDER)},
	}}})
}

// tokenError writes the identity platform's error JSON.
func (s *Sim) tokenError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	trace, corr := newGUID().String(), newGUID().String()
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://login.microsoftonline.com/error?code=" + strconv.Itoa(aadsts),
	})
}

// clientAuth authenticates the client of a token request.
func (s *Sim) clientAuth(w http.ResponseWriter, r *http.Request, tenantForMsg string) *App {
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if id == "" {
		s.tokenError(w, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return nil
	}
	a := s.app(id)
	if a == nil {
		s.tokenError(w, 400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", id, tenantForMsg))
		return nil
	}
	if secret == "" {
		s.tokenError(w, 401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(a.ClientSecret)) != 1 {
		s.tokenError(w, 401, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", a.ClientID))
		return nil
	}
	return a
}

func (s *Sim) serveToken(w http.ResponseWriter, r *http.Request, tenantSeg string) {
	if r.Method != http.MethodPost {
		s.tokenError(w, 405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.tokenError(w, 400, "invalid_request", 900144, "The request body could not be parsed.")
		return
	}
	grantType := r.PostForm.Get("grant_type")
	t := s.tenant(tenantSeg)
	tkey := tenantSeg
	if t != nil {
		tkey = t.idStr
	}
	s.count(s.stats.TokenRequests, tkey+" "+grantType)
	if t == nil {
		if tenantSeg == "common" || tenantSeg == "organizations" {
			if grantType == "client_credentials" {
				s.tokenError(w, 400, "invalid_request", 50059, "No tenant-identifying information found in either the request or implied by any provided credentials.")
				return
			}
		} else {
			s.tokenError(w, 400, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantSeg))
			return
		}
	}
	switch grantType {
	case "":
		s.tokenError(w, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	case "client_credentials":
		s.clientCredentials(w, r, t)
	case "authorization_code":
		s.redeemCode(w, r, t)
	case "refresh_token":
		s.redeemRefresh(w, r, t)
	default:
		s.tokenError(w, 400, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grantType))
	}
}

// checkGrant answers the token error for an app without consent in t.
func (s *Sim) checkGrant(w http.ResponseWriter, a *App, t *tenant) (*grant, bool) {
	t.mu.RLock()
	g := t.grants[strings.ToLower(a.ClientID)]
	var cp grant
	if g != nil {
		cp = *g
	}
	t.mu.RUnlock()
	if g == nil {
		s.tokenError(w, 401, "invalid_client", 7000229, fmt.Sprintf("The client application %s is missing service principal in the tenant %s. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119", a.ClientID, t.idStr))
		return nil, false
	}
	if cp.state != "granted" {
		s.tokenError(w, 400, "invalid_grant", 65001, fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", a.ClientID, a.DisplayName))
		return nil, false
	}
	return &cp, true
}

func (s *Sim) clientCredentials(w http.ResponseWriter, r *http.Request, t *tenant) {
	a := s.clientAuth(w, r, t.idStr)
	if a == nil {
		return
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		s.tokenError(w, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	if !strings.HasSuffix(scope, "/.default") || strings.Contains(scope, " ") {
		s.tokenError(w, 400, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	res := strings.TrimSuffix(scope, "/.default")
	if res != graphResource && res != graphAppID {
		s.tokenError(w, 400, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", res, t.name))
		return
	}
	g, ok := s.checkGrant(w, a, t)
	if !ok {
		return
	}
	now := s.now()
	life := s.opts.TokenLifetime
	claims := map[string]any{
		"aud": graphResource, "iss": issuerV1(t.idStr), "idp": issuerV1(t.idStr),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(life).Unix(),
		"aio": randToken(24), "app_displayname": a.DisplayName, "appid": a.ClientID, "appidacr": "1",
		"idtyp": "app", "oid": g.spID.String(), "sub": g.spID.String(), "tid": t.idStr,
		"uti": randToken(16), "ver": "1.0", "tenant_region_scope": "EU",
	}
	if len(a.Roles) > 0 && g.spID != (guid{}) && g.state == "granted" && s.hasRoles(t, a) {
		claims["roles"] = a.Roles
	}
	s.count(s.stats.TokensIssued, t.idStr)
	writeJSON(w, 200, map[string]any{
		"token_type": "Bearer", "expires_in": int(life.Seconds()), "ext_expires_in": int(life.Seconds()),
		"access_token": s.sign(claims),
	})
}

// hasRoles reports whether the app's application permissions were granted
// in t (by admin consent; an authorization-code sign-in grants only
// delegated permissions).
func (s *Sim) hasRoles(t *tenant, a *App) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.grants["roles:"+strings.ToLower(a.ClientID)]
	return ok
}

type authCode struct {
	client    string
	redirect  string
	tenant    *tenant
	user      int32
	scopes    []string
	challenge string
	method    string
	nonce     string
	expires   time.Time
}

type refreshGrant struct {
	client string
	tenant *tenant
	user   int32
	scopes []string
}

func (s *Sim) redeemCode(w http.ResponseWriter, r *http.Request, t *tenant) {
	code := r.PostForm.Get("code")
	s.mu.Lock()
	c := s.codes[code]
	delete(s.codes, code)
	s.mu.Unlock()
	if code == "" {
		s.tokenError(w, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
		return
	}
	if c == nil {
		s.tokenError(w, 400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
		return
	}
	a := s.clientAuth(w, r, c.tenant.idStr)
	if a == nil {
		return
	}
	if !strings.EqualFold(a.ClientID, c.client) {
		s.tokenError(w, 400, "invalid_grant", 70000, "Provided grant is invalid or malformed: the code was issued to another client.")
		return
	}
	if t != nil && t != c.tenant {
		s.tokenError(w, 400, "invalid_grant", 50194, "The code was issued for another tenant.")
		return
	}
	if s.now().After(c.expires) {
		s.tokenError(w, 400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
		return
	}
	if r.PostForm.Get("redirect_uri") != c.redirect {
		s.tokenError(w, 400, "invalid_grant", 50148, "The redirect_uri does not match the one used in the authorization request.")
		return
	}
	if c.challenge != "" {
		v := r.PostForm.Get("code_verifier")
		want := v
		if c.method == "S256" {
			sum := sha256.Sum256([]byte(v))
			want = b64(sum[:])
		}
		if v == "" || want != c.challenge {
			s.tokenError(w, 400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
			return
		}
	}
	s.issueDelegated(w, a, c.tenant, c.user, c.scopes, c.nonce)
}

func (s *Sim) redeemRefresh(w http.ResponseWriter, r *http.Request, t *tenant) {
	rt := r.PostForm.Get("refresh_token")
	s.mu.RLock()
	g := s.refresh[rt]
	s.mu.RUnlock()
	if g == nil {
		s.tokenError(w, 400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is unknown.")
		return
	}
	a := s.clientAuth(w, r, g.tenant.idStr)
	if a == nil {
		return
	}
	if !strings.EqualFold(a.ClientID, g.client) || (t != nil && t != g.tenant) {
		s.tokenError(w, 400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
		return
	}
	if _, ok := s.checkGrant(w, a, g.tenant); !ok {
		return
	}
	s.mu.Lock()
	delete(s.refresh, rt) // refresh tokens rotate
	s.mu.Unlock()
	s.issueDelegated(w, a, g.tenant, g.user, g.scopes, "")
}

func (s *Sim) issueDelegated(w http.ResponseWriter, a *App, t *tenant, ui int32, scopes []string, nonce string) {
	t.mu.RLock()
	u := t.users[ui]
	t.mu.RUnlock()
	if u.deleted() || !u.enabled() {
		s.tokenError(w, 400, "invalid_grant", 50057, "The user account is disabled.")
		return
	}
	now := s.now()
	life := s.opts.TokenLifetime
	var graphScopes, oidc []string
	for _, sc := range scopes {
		switch sc {
		case "openid", "profile", "email", "offline_access":
			oidc = append(oidc, sc)
		default:
			graphScopes = append(graphScopes, sc)
		}
	}
	oid := u.id.String()
	claims := map[string]any{
		"aud": graphResource, "iss": issuerV1(t.idStr), "idp": issuerV1(t.idStr),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(life).Unix(),
		"acr": "1", "amr": []string{"pwd"}, "app_displayname": a.DisplayName, "appid": a.ClientID, "appidacr": "1",
		"idtyp": "user", "name": u.displayName, "given_name": u.givenName, "family_name": u.surname,
		"oid": oid, "sub": randToken(16), "tid": t.idStr, "unique_name": u.upn, "upn": u.upn,
		"scp": strings.Join(graphScopes, " "), "uti": randToken(16), "ver": "1.0",
	}
	resp := map[string]any{
		"token_type": "Bearer", "scope": strings.Join(append(append([]string{}, graphScopes...), oidc...), " "),
		"expires_in": int(life.Seconds()), "ext_expires_in": int(life.Seconds()),
		"access_token": s.sign(claims),
	}
	if contains(oidc, "offline_access") {
		rt := randToken(48)
		s.mu.Lock()
		s.refresh[rt] = &refreshGrant{client: a.ClientID, tenant: t, user: ui, scopes: scopes}
		s.mu.Unlock()
		resp["refresh_token"] = rt
	}
	if contains(oidc, "openid") {
		idc := map[string]any{
			"aud": a.ClientID, "iss": s.issuerV2(t.idStr), "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(life).Unix(), "name": u.displayName, "oid": oid, "preferred_username": u.upn,
			"sub": randToken(16), "tid": t.idStr, "ver": "2.0",
		}
		if nonce != "" {
			idc["nonce"] = nonce
		}
		resp["id_token"] = s.sign(idc)
	}
	s.count(s.stats.TokensIssued, t.idStr)
	writeJSON(w, 200, resp)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// UserTokenOptions describe a Teams-SSO-style token for a user, as Teams'
// getAuthToken() hands to a tab.
type UserTokenOptions struct {
	Tenant   string // tenant id or domain; default the first tenant
	User     string // user id or userPrincipalName (required)
	Audience string // the tab app's Application ID URI or client id (required)
	Scopes   string // default "access_as_user"
	// ClientAppID is the requesting Teams client (azp); default Teams desktop.
	ClientAppID string
	// Version "2.0" (default; iss = Issuer template) or "1.0"
	// (iss = https://sts.windows.net/{tid}/).
	Version  string
	Lifetime time.Duration // default the simulator's TokenLifetime
}

// MintUserToken returns a signed token for a user of a simulated tenant, the
// kind Teams gives a tab through SSO (aud = the app, scp = access_as_user,
// tid, oid, preferred_username, name).
func (s *Sim) MintUserToken(o UserTokenOptions) (string, error) {
	var t *tenant
	if o.Tenant == "" {
		t = s.defaultTenant()
	} else {
		t = s.tenant(o.Tenant)
	}
	if t == nil {
		return "", badSpec("no tenant %q", o.Tenant)
	}
	if o.Audience == "" {
		return "", badSpec("a user token needs an audience")
	}
	t.mu.RLock()
	ui, ok := t.findUser(o.User)
	var u user
	if ok {
		u = t.users[ui]
	}
	t.mu.RUnlock()
	if !ok {
		return "", badSpec("no user %q in tenant %s", o.User, t.idStr)
	}
	if o.Scopes == "" {
		o.Scopes = "access_as_user"
	}
	if o.ClientAppID == "" {
		o.ClientAppID = TeamsDesktopClientID
	}
	if o.Lifetime <= 0 {
		o.Lifetime = s.opts.TokenLifetime
	}
	now := s.now()
	c := map[string]any{
		"aud": o.Audience, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(o.Lifetime).Unix(),
		"name": u.displayName, "oid": u.id.String(), "preferred_username": u.upn, "scp": o.Scopes,
		"sub": randToken(16), "tid": t.idStr, "uti": randToken(16), "rh": randToken(12),
	}
	if o.Version == "1.0" {
		c["iss"], c["ver"], c["appid"], c["upn"] = issuerV1(t.idStr), "1.0", o.ClientAppID, u.upn
	} else {
		c["iss"], c["ver"], c["azp"], c["azpacr"] = s.issuerV2(t.idStr), "2.0", o.ClientAppID, "0"
	}
	return s.sign(c), nil
}

// ---- consent and sign-in pages ----

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:Segoe UI,system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
.box{border:1px solid #ccc;padding:1.5rem}button{padding:.5rem 1.5rem;margin-right:.5rem}ul{padding-left:1.2rem}
.sim{color:#666;font-size:.8rem}</style></head>
<body><div class="box">
<p class="sim">Microsoft 365 simulator</p>
<h1>{{.Title}}</h1>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{else}}
<p><strong id="app-name">{{.AppName}}</strong> {{.Lead}}</p>
<form method="post" action="{{.Action}}">
{{if .Tenants}}<p><label>Organization <select name="tenant" id="tenant">{{range .Tenants}}<option value="{{.ID}}"{{if .Selected}} selected{{end}}>{{.Name}}</option>{{end}}</select></label></p>{{end}}
{{if .Users}}<p><label>Signed in as <select name="user" id="user">{{range .Users}}<option value="{{.ID}}"{{if .Selected}} selected{{end}}>{{.Name}}</option>{{end}}</select></label></p>{{end}}
<p>It will be able to:</p><ul id="permissions">{{range .Permissions}}<li>{{.}}</li>{{end}}</ul>
<button type="submit" name="action" value="accept" id="accept">Accept</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
</form>{{end}}
</div></body></html>`))

type option struct {
	ID, Name string
	Selected bool
}

type pageData struct {
	Title, AppName, Lead, Action, Error string
	Tenants, Users                      []option
	Permissions                         []string
}

func (s *Sim) errorPage(w http.ResponseWriter, aadsts int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(400)
	_ = pageTmpl.Execute(w, pageData{Title: "Sign in", Error: fmt.Sprintf("AADSTS%d: %s", aadsts, msg)})
}

// redirectOK checks redirect_uri against the app registration.
func redirectOK(a *App, uri string) bool {
	if uri == "" {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() {
		return false
	}
	return a.AnyRedirectURI || contains(a.RedirectURIs, uri)
}

func redirectWith(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, _ := url.Parse(target)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// pageTenant resolves the tenant of a consent or sign-in page: a tenant in
// the path, or the one chosen on the page for organizations/common.
func (s *Sim) pageTenant(tenantSeg, chosen string) (*tenant, bool) {
	if tenantSeg == "organizations" || tenantSeg == "common" {
		if chosen != "" {
			t := s.tenant(chosen)
			return t, t != nil
		}
		t := s.defaultTenant()
		return t, t != nil
	}
	t := s.tenant(tenantSeg)
	return t, t != nil
}

func (s *Sim) tenantOptions(sel *tenant) []option {
	var out []option
	for _, t := range s.allTenants() {
		out = append(out, option{ID: t.idStr, Name: t.name + " (" + t.defaultDomain() + ")", Selected: t == sel})
	}
	return out
}

func (s *Sim) serveAdminConsent(w http.ResponseWriter, r *http.Request, tenantSeg string, v2 bool) {
	q := r.URL.Query()
	a := s.app(q.Get("client_id"))
	if a == nil {
		s.errorPage(w, 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", q.Get("client_id")))
		return
	}
	redirect := q.Get("redirect_uri")
	if !redirectOK(a, redirect) {
		s.errorPage(w, 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", redirect, a.ClientID))
		return
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, 900144, "The request could not be parsed.")
		return
	}
	t, ok := s.pageTenant(tenantSeg, r.PostForm.Get("tenant"))
	if !ok {
		s.errorPage(w, 90002, fmt.Sprintf("Tenant '%s' not found.", tenantSeg))
		return
	}
	state := q.Get("state")
	scope := q.Get("scope")
	if v2 && scope == "" {
		redirectWith(w, r, redirect, url.Values{"error": {"invalid_request"}, "state": {state},
			"error_description": {"AADSTS900144: The request body must contain the following parameter: 'scope'."}})
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		multi := tenantSeg == "organizations" || tenantSeg == "common"
		d := pageData{Title: "Permissions requested", AppName: a.DisplayName, Action: s.basePath() + r.URL.RequestURI(),
			Lead:        "is requesting permissions for your whole organization. Accepting lets it use them for every user.",
			Permissions: a.Roles}
		if multi {
			d.Tenants = s.tenantOptions(t)
		}
		_ = pageTmpl.Execute(w, d)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", 405)
		return
	}
	params := url.Values{"state": {state}}
	if v2 {
		params.Set("admin_consent", "True")
	}
	if r.PostForm.Get("action") != "accept" {
		params.Set("error", "access_denied")
		params.Set("error_description", "AADSTS65004: User declined to consent to access the app.")
		redirectWith(w, r, redirect, params)
		return
	}
	s.grant(t, a, true)
	params.Set("admin_consent", "True")
	params.Set("tenant", t.idStr)
	if v2 {
		params.Set("scope", scope)
	}
	redirectWith(w, r, redirect, params)
}

// grant records consent for a in t; withRoles grants its application
// permissions too (admin consent), not just delegated ones.
func (s *Sim) grant(t *tenant, a *App, withRoles bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := strings.ToLower(a.ClientID)
	g := t.grants[k]
	if g == nil {
		g = &grant{spID: newGUID()}
		t.grants[k] = g
	}
	g.state, g.at = "granted", s.now()
	if withRoles {
		t.grants["roles:"+k] = g
	}
	s.forgetTokens()
}

func (s *Sim) serveAuthorize(w http.ResponseWriter, r *http.Request, tenantSeg string) {
	q := r.URL.Query()
	a := s.app(q.Get("client_id"))
	if a == nil {
		s.errorPage(w, 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", q.Get("client_id")))
		return
	}
	redirect := q.Get("redirect_uri")
	if !redirectOK(a, redirect) {
		s.errorPage(w, 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", redirect, a.ClientID))
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		redirectWith(w, r, redirect, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "AADSTS700054: response_type '"+q.Get("response_type")+"' is not supported; use 'code'.")
		return
	}
	m := q.Get("code_challenge_method")
	if q.Get("code_challenge") != "" && m != "S256" && m != "plain" && m != "" {
		fail("invalid_request", "AADSTS501491: Invalid code_challenge_method.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, 900144, "The request could not be parsed.")
		return
	}
	chosen := r.PostForm.Get("tenant")
	hint := q.Get("login_hint")
	if chosen == "" && hint != "" {
		if _, dom, ok := strings.Cut(hint, "@"); ok {
			chosen = dom
		}
	}
	t, ok := s.pageTenant(tenantSeg, chosen)
	if !ok {
		s.errorPage(w, 90002, fmt.Sprintf("Tenant '%s' not found.", tenantSeg))
		return
	}
	var scopes []string
	for _, sc := range strings.Fields(q.Get("scope")) {
		sc = strings.TrimPrefix(strings.TrimPrefix(sc, graphResource+"/"), graphAppID+"/")
		if sc == ".default" {
			scopes = append(scopes, a.Scopes...)
			continue
		}
		if !contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if r.Method == http.MethodGet {
		t.mu.RLock()
		var users []option
		sel := int32(-1)
		if hint != "" {
			sel, _ = t.findUser(hint)
		}
		for i := range t.users {
			u := &t.users[i]
			if u.deleted() || !u.enabled() || u.flags&uGuest != 0 {
				continue
			}
			if sel < 0 && u.flags&uAdmin != 0 {
				sel = int32(i)
			}
			if len(users) < 200 || int32(i) == sel {
				users = append(users, option{ID: u.upn, Name: u.displayName + " <" + u.upn + ">", Selected: int32(i) == sel})
			}
		}
		t.mu.RUnlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		d := pageData{Title: "Sign in and accept", AppName: a.DisplayName, Action: s.basePath() + r.URL.RequestURI(),
			Lead: "wants to sign you in and act on your behalf.", Users: users, Permissions: scopes}
		if tenantSeg == "organizations" || tenantSeg == "common" {
			d.Tenants = s.tenantOptions(t)
		}
		_ = pageTmpl.Execute(w, d)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", 405)
		return
	}
	if r.PostForm.Get("action") != "accept" {
		fail("access_denied", "AADSTS65004: User declined to consent to access the app.")
		return
	}
	login := r.PostForm.Get("user")
	if login == "" {
		login = hint
	}
	t.mu.RLock()
	ui, found := t.findUser(login)
	enabled := found && t.users[ui].enabled()
	t.mu.RUnlock()
	if !found {
		s.errorPage(w, 50034, fmt.Sprintf("The user account %s does not exist in the %s directory.", login, t.defaultDomain()))
		return
	}
	if !enabled {
		fail("access_denied", "AADSTS50057: The user account is disabled.")
		return
	}
	s.grant(t, a, false)
	code := randToken(48)
	s.mu.Lock()
	s.codes[code] = &authCode{client: a.ClientID, redirect: redirect, tenant: t, user: ui, scopes: scopes,
		challenge: q.Get("code_challenge"), method: m, nonce: q.Get("nonce"), expires: s.now().Add(10 * time.Minute)}
	s.mu.Unlock()
	redirectWith(w, r, redirect, url.Values{"code": {code}, "state": {state}, "session_state": {newGUID().String()}})
}

// GrantConsent records admin consent for the app in a tenant, as if an
// admin had accepted the consent page.
func (s *Sim) GrantConsent(tenantKey, clientID string) error {
	t, a := s.tenant(tenantKey), s.app(clientID)
	if t == nil || a == nil {
		return badSpec("no tenant %q or app %q", tenantKey, clientID)
	}
	s.grant(t, a, true)
	return nil
}

// RevokeConsent withdraws the app's consent in a tenant: token requests then
// fail with AADSTS65001 and Graph rejects tokens already issued to it.
func (s *Sim) RevokeConsent(tenantKey, clientID string) error {
	t := s.tenant(tenantKey)
	if t == nil {
		return badSpec("no tenant %q", tenantKey)
	}
	t.mu.Lock()
	k := strings.ToLower(clientID)
	if g := t.grants[k]; g != nil {
		g.state = "revoked"
	}
	delete(t.grants, "roles:"+k)
	t.mu.Unlock()
	s.forgetTokens()
	return nil
}

// RemoveServicePrincipal deletes the app's service principal from the
// tenant, as if it had never been consented (AADSTS7000229 afterwards).
func (s *Sim) RemoveServicePrincipal(tenantKey, clientID string) error {
	t := s.tenant(tenantKey)
	if t == nil {
		return badSpec("no tenant %q", tenantKey)
	}
	t.mu.Lock()
	k := strings.ToLower(clientID)
	delete(t.grants, k)
	delete(t.grants, "roles:"+k)
	t.mu.Unlock()
	s.forgetTokens()
	return nil
}

// ConsentState returns "granted", "revoked" or "none" for the app in a tenant.
func (s *Sim) ConsentState(tenantKey, clientID string) string {
	t := s.tenant(tenantKey)
	if t == nil {
		return "none"
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if g := t.grants[strings.ToLower(clientID)]; g != nil {
		return g.state
	}
	return "none"
}

func (s *Sim) forgetTokens() {
	s.mu.Lock()
	s.verified = map[string]*principal{}
	s.mu.Unlock()
}

// principal is who a Graph request acts as.
type principal struct {
	tenant    *tenant
	appID     string
	roles     []string
	scopes    []string
	user      string // oid of a delegated user
	delegated bool
	exp       int64
}

func (p *principal) has(roles, scopes []string) bool {
	if p.delegated {
		for _, s := range scopes {
			if contains(p.scopes, s) {
				return true
			}
		}
		return false
	}
	for _, r := range roles {
		if contains(p.roles, r) {
			return true
		}
	}
	return false
}

// authenticate validates the bearer token of a Graph request; on failure it
// has written the 401.
func (s *Sim) authenticate(w http.ResponseWriter, r *http.Request) *principal {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token is empty.")
		return nil
	}
	s.mu.RLock()
	p := s.verified[tok]
	s.mu.RUnlock()
	if p != nil && p.exp >= s.now().Unix() {
		return p
	}
	claims, err := s.VerifyToken(tok)
	if err != nil {
		graphError(w, 401, "InvalidAuthenticationToken", err.Error())
		return nil
	}
	if aud, _ := claims["aud"].(string); aud != graphResource && aud != graphAppID {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return nil
	}
	tid, _ := claims["tid"].(string)
	t := s.tenant(tid)
	if t == nil {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Unknown tenant.")
		return nil
	}
	appID, _ := claims["appid"].(string)
	t.mu.RLock()
	g := t.grants[strings.ToLower(appID)]
	granted := g != nil && g.state == "granted"
	t.mu.RUnlock()
	if !granted {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure: the application's consent in this tenant has been revoked.")
		return nil
	}
	exp, _ := claims["exp"].(float64)
	p = &principal{tenant: t, appID: appID, exp: int64(exp)}
	if typ, _ := claims["idtyp"].(string); typ == "user" {
		p.delegated = true
		scp, _ := claims["scp"].(string)
		p.scopes = strings.Fields(scp)
		p.user, _ = claims["oid"].(string)
	} else if rs, ok := claims["roles"].([]any); ok {
		for _, x := range rs {
			if s, ok := x.(string); ok {
				p.roles = append(p.roles, s)
			}
		}
	}
	s.mu.Lock()
	if len(s.verified) > 10000 {
		s.verified = map[string]*principal{}
	}
	s.verified[tok] = p
	s.mu.Unlock()
	return p
}
