package m365

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// AdminConsentURL is where to send a customer's administrator to grant the
// app's application permissions in their tenant (v2.0 admin consent with
// scope=https://graph.microsoft.com/.default). tenant may be a tenant id or
// domain, or "" for "organizations" (the admin's own tenant). state must
// be an unguessable one-time value bound to the admin's session; the
// callback must check it before trusting anything else.
func (c *Client) AdminConsentURL(tenant, redirectURI, state string) string {
	if tenant == "" {
		tenant = "organizations"
	}
	q := url.Values{
		"client_id":    {c.cfg.ClientID},
		"scope":        {GraphDefaultScope},
		"redirect_uri": {redirectURI},
		"state":        {state},
	}
	return c.cfg.LoginURL + "/" + url.PathEscape(tenant) + "/v2.0/adminconsent?" + q.Encode()
}

// ConsentResult is what the admin consent redirect reported.
type ConsentResult struct {
	State   string // to compare with the value the flow started with
	Granted bool
	// Tenant is the id of the tenant that consented. It comes from the
	// browser: prove it by acquiring a token for it (Client.VerifyConsent).
	Tenant           string
	Scope            string
	Error            string // e.g. access_denied
	ErrorDescription string
}

// ParseConsentCallback reads the query of the admin consent redirect. The
// result always carries State; err is a domain error when consent was not
// granted (denied or cancelled) or the callback is malformed.
func ParseConsentCallback(q url.Values) (ConsentResult, error) {
	r := ConsentResult{State: q.Get("state"), Tenant: q.Get("tenant"), Scope: q.Get("scope"),
		Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	// admin_consent=True also appears on errors: check error first.
	if r.Error != "" {
		desc, _, _ := strings.Cut(r.ErrorDescription, "\r\n")
		desc, _, _ = strings.Cut(desc, "\n")
		msg := fmt.Sprintf("Microsoft 365 admin consent was not granted (%s: %s). Nothing was connected; run Connect Microsoft 365 again and accept the permissions.", r.Error, desc)
		if strings.Contains(desc, "AADSTS65004") || r.Error == "access_denied" {
			msg = "The administrator cancelled the Microsoft 365 consent. Nothing was connected; run Connect Microsoft 365 again and choose Accept."
		}
		return r, &pbx2teams.Error{Code: pbx2teams.EForbidden, Message: msg}
	}
	if !strings.EqualFold(q.Get("admin_consent"), "True") || r.Tenant == "" {
		return r, pbx2teams.Errorf(pbx2teams.EInvalid, "The Microsoft 365 consent callback is incomplete (no admin_consent=True and tenant). Run Connect Microsoft 365 again.")
	}
	r.Granted = true
	return r, nil
}

// VerifyConsent proves consent in a tenant: it acquires an app token (fresh)
// and reads /organization, returning the tenant's name and domains.
func (c *Client) VerifyConsent(ctx context.Context, tenantID string) (*Organization, error) {
	c.ForgetToken(tenantID)
	return c.App(tenantID).Organization(ctx)
}

// PKCE is a proof key for one authorization code flow (RFC 7636, S256).
type PKCE struct {
	Verifier  string // keep server-side with the state
	Challenge string // sent in the authorization URL
}

// NewPKCE returns a fresh PKCE pair.
func NewPKCE() PKCE {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return PKCE{Verifier: v, Challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// AuthCodeRequest describes an authorization code sign-in.
type AuthCodeRequest struct {
	Tenant      string // tenant id or domain; "" = organizations
	RedirectURI string
	State       string
	// Scopes, e.g. "https://graph.microsoft.com/AppCatalog.ReadWrite.All";
	// "openid profile offline_access" are added.
	Scopes    []string
	PKCE      *PKCE
	LoginHint string
	Prompt    string // e.g. "select_account" or "consent"
	Nonce     string
}

// AuthCodeURL is where to send the admin to sign in and consent to the
// delegated scopes (e.g. to publish the Phone App to the org catalog).
func (c *Client) AuthCodeURL(r AuthCodeRequest) string {
	tenant := r.Tenant
	if tenant == "" {
		tenant = "organizations"
	}
	q := url.Values{
		"client_id":     {c.cfg.ClientID},
		"response_type": {"code"},
		"redirect_uri":  {r.RedirectURI},
		"response_mode": {"query"},
		"scope":         {strings.Join(withOIDC(r.Scopes), " ")},
		"state":         {r.State},
	}
	if r.PKCE != nil {
		q.Set("code_challenge", r.PKCE.Challenge)
		q.Set("code_challenge_method", "S256")
	}
	if r.LoginHint != "" {
		q.Set("login_hint", r.LoginHint)
	}
	if r.Prompt != "" {
		q.Set("prompt", r.Prompt)
	}
	if r.Nonce != "" {
		q.Set("nonce", r.Nonce)
	}
	return c.cfg.LoginURL + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/authorize?" + q.Encode()
}

func withOIDC(scopes []string) []string {
	out := append([]string(nil), scopes...)
	for _, s := range []string{"openid", "profile", "offline_access"} {
		found := false
		for _, x := range out {
			if x == s {
				found = true
			}
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

// ParseAuthCodeCallback reads the authorization redirect: the code, or a
// domain error when the admin declined. state is returned either way.
func ParseAuthCodeCallback(q url.Values) (code, state string, err error) {
	state = q.Get("state")
	if e := q.Get("error"); e != "" {
		desc, _, _ := strings.Cut(q.Get("error_description"), "\r\n")
		msg := fmt.Sprintf("Microsoft sign-in did not complete (%s: %s). Run the authorization again.", e, desc)
		if e == "access_denied" {
			msg = "The administrator cancelled the Microsoft sign-in. Nothing was authorized; run the authorization again and choose Accept."
		}
		return "", state, &pbx2teams.Error{Code: pbx2teams.EForbidden, Message: msg}
	}
	code = q.Get("code")
	if code == "" {
		return "", state, pbx2teams.Errorf(pbx2teams.EInvalid, "The Microsoft sign-in callback carries no code. Run the authorization again.")
	}
	return code, state, nil
}

// DelegatedToken is a signed-in user's token (authorization code flow).
type DelegatedToken struct {
	AccessToken  string    `json:"-"`
	RefreshToken string    `json:"-"`
	ExpiresAt    time.Time `json:"expires_at"`
	Scopes       []string  `json:"scopes"`
	// From the ID token: who signed in, in which tenant.
	TenantID string `json:"tenant_id"`
	UserID   string `json:"user_id"` // oid
	UPN      string `json:"upn"`
	Name     string `json:"name"`
}

// RedeemCode exchanges an authorization code (with the PKCE verifier used
// for it) for a delegated token. tenant is the one the flow used ("" =
// organizations).
func (c *Client) RedeemCode(ctx context.Context, tenant, code, redirectURI, verifier string, scopes []string) (*DelegatedToken, error) {
	if tenant == "" {
		tenant = "organizations"
	}
	form := url.Values{
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"scope":         {strings.Join(withOIDC(scopes), " ")},
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	tr, err := c.tokenRequest(ctx, tenant, form)
	if err != nil {
		return nil, err
	}
	return c.delegatedFrom(tr), nil
}

// RefreshDelegated renews a delegated token with its refresh token.
func (c *Client) RefreshDelegated(ctx context.Context, t *DelegatedToken) (*DelegatedToken, error) {
	if t.RefreshToken == "" {
		return nil, pbx2teams.Errorf(pbx2teams.EUnauthenticated, "The Microsoft sign-in has expired. Run the authorization again.")
	}
	form := url.Values{
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"grant_type":    {"refresh_token"},
		"refresh_token": {t.RefreshToken},
		"scope":         {strings.Join(t.Scopes, " ")},
	}
	tr, err := c.tokenRequest(ctx, t.TenantID, form)
	if err != nil {
		return nil, err
	}
	nt := c.delegatedFrom(tr)
	if nt.TenantID == "" {
		nt.TenantID, nt.UserID, nt.UPN, nt.Name = t.TenantID, t.UserID, t.UPN, t.Name
	}
	return nt, nil
}

func (c *Client) delegatedFrom(tr *tokenResponse) *DelegatedToken {
	t := &DelegatedToken{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken,
		ExpiresAt: c.now().Add(time.Duration(tr.ExpiresIn) * time.Second), Scopes: strings.Fields(tr.Scope)}
	// The ID token came straight from the token endpoint over TLS, so its
	// claims are read without verifying the signature (OIDC core 3.1.3.7).
	if claims, ok := jwtClaims(tr.IDToken); ok {
		t.TenantID, _ = claims["tid"].(string)
		t.UserID, _ = claims["oid"].(string)
		t.UPN, _ = claims["preferred_username"].(string)
		t.Name, _ = claims["name"].(string)
	}
	return t
}

func jwtClaims(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	return m, true
}
