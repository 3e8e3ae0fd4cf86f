package m365

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// SSOValidator checks Teams SSO tokens (what getAuthToken() gives a tab)
// on the tab's backend: RS256 signature against Microsoft's published keys,
// lifetime, audience, issuer matching the tenant, and the required scope.
// Keys are fetched from {LoginURL}/common/discovery/v2.0/keys and cached;
// an unknown key id triggers one refetch (at most once a minute).
type SSOValidator struct {
	LoginURL string // default DefaultLoginURL
	// Audiences accepted in aud: the tab app's Application ID URI and/or
	// client id. Required.
	Audiences []string
	// RequiredScope in scp; default "access_as_user".
	RequiredScope string
	// Tenants, if set, limits tokens to these tenant ids (onboarded ones).
	Tenants    func(tenantID string) bool
	HTTPClient *http.Client
	Now        func() time.Time

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

// SSOUser is who a valid SSO token speaks for.
type SSOUser struct {
	TenantID string
	UserID   string // oid: the Graph user id
	UPN      string // preferred_username (v2) or upn (v1)
	Name     string
	Expires  time.Time
}

func ssoErr(format string, a ...any) error {
	return &pbx2teams.Error{Code: pbx2teams.EUnauthenticated, Message: "The Teams sign-in token was refused: " + fmt.Sprintf(format, a...)}
}

// Validate checks tok and returns its user.
func (v *SSOValidator) Validate(ctx context.Context, tok string) (*SSOUser, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, ssoErr("not a JWT.")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSeg(parts[0], &hdr); err != nil || hdr.Alg != "RS256" {
		return nil, ssoErr("unsupported header (want RS256).")
	}
	key, err := v.key(ctx, hdr.Kid)
	if err != nil {
		return nil, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, ssoErr("bad signature encoding.")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig) != nil {
		return nil, ssoErr("bad signature.")
	}
	var c struct {
		Aud, Iss, Tid, Oid, Scp, Ver, Name, PreferredUsername, Upn string
		Exp, Nbf                                                   float64
	}
	var raw map[string]any
	if err := decodeSeg(parts[1], &raw); err != nil {
		return nil, ssoErr("bad claims.")
	}
	str := func(k string) string { s, _ := raw[k].(string); return s }
	num := func(k string) float64 { f, _ := raw[k].(float64); return f }
	c.Aud, c.Iss, c.Tid, c.Oid, c.Scp, c.Ver = str("aud"), str("iss"), str("tid"), str("oid"), str("scp"), str("ver")
	c.Name, c.PreferredUsername, c.Upn, c.Exp, c.Nbf = str("name"), str("preferred_username"), str("upn"), num("exp"), num("nbf")
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	const skew = 5 * time.Minute
	t := now()
	if c.Exp == 0 || t.Add(-skew).Unix() > int64(c.Exp) {
		return nil, ssoErr("it has expired; the tab must ask Teams for a new one.")
	}
	if c.Nbf != 0 && t.Add(skew).Unix() < int64(c.Nbf) {
		return nil, ssoErr("it is not valid yet.")
	}
	if !contains(v.Audiences, c.Aud) {
		return nil, ssoErr("it was issued for another application (aud %q).", c.Aud)
	}
	if c.Tid == "" || (c.Iss != "https://login.microsoftonline.com/"+c.Tid+"/v2.0" && c.Iss != "https://sts.windows.net/"+c.Tid+"/") {
		return nil, ssoErr("its issuer does not match its tenant.")
	}
	if v.Tenants != nil && !v.Tenants(c.Tid) {
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnauthenticated, Message: fmt.Sprintf(
			"Your organisation's Microsoft 365 tenant (%s) is not connected to this phone service; ask your administrator to connect it in the portal.", c.Tid)}
	}
	scope := v.RequiredScope
	if scope == "" {
		scope = "access_as_user"
	}
	if !contains(strings.Fields(c.Scp), scope) {
		return nil, ssoErr("it lacks the scope %s.", scope)
	}
	u := &SSOUser{TenantID: c.Tid, UserID: c.Oid, UPN: c.PreferredUsername, Name: c.Name, Expires: time.Unix(int64(c.Exp), 0)}
	if u.UPN == "" {
		u.UPN = c.Upn
	}
	return u, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func decodeSeg(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// key returns the signing key kid, fetching the key set when needed.
func (v *SSOValidator) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	if k := v.keys[kid]; k != nil && now.Sub(v.fetched) < 24*time.Hour {
		return k, nil
	}
	if v.keys != nil && now.Sub(v.fetched) < time.Minute {
		if k := v.keys[kid]; k != nil {
			return k, nil
		}
		return nil, ssoErr("unknown signing key.")
	}
	keys, err := v.fetch(ctx)
	if err != nil {
		if k := v.keys[kid]; k != nil { // keep working on the old set
			return k, nil
		}
		return nil, err
	}
	v.keys, v.fetched = keys, now
	if k := keys[kid]; k != nil {
		return k, nil
	}
	return nil, ssoErr("unknown signing key.")
}

func (v *SSOValidator) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	base := v.LoginURL
	if base == "" {
		base = DefaultLoginURL
	}
	hc := v.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/common/discovery/v2.0/keys", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable, Message: "Microsoft's signing keys could not be fetched.", Err: err}
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kty, Kid, N, E string
		} `json:"keys"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 || json.Unmarshal(b, &set) != nil {
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable, Message: fmt.Sprintf("Microsoft's signing keys could not be read (%d).", resp.StatusCode)}
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			continue
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out, nil
}
