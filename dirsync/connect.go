package dirsync

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// The steps a consent state can stand for.
const (
	stepConnect      = "connect"       // admin consent of the sync app
	stepPhoneConsent = "phone-consent" // admin consent of the Phone App app
	stepPhoneSignIn  = "phone-signin"  // admin sign-in to publish the Phone App
)

// publishScopes are the delegated scopes of the Phone App publishing.
var publishScopes = []string{"https://graph.microsoft.com/AppCatalog.ReadWrite.All"}

// stateClaims is the signed payload of a consent state.
type stateClaims struct {
	Account string `json:"a"`
	Step    string `json:"s"`
	Expires int64  `json:"e"`
	Nonce   string `json:"n"`
}

const stateTTL = 15 * time.Minute

func randomKey() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// newState returns a state bound to the admin's session: the MAC covers
// the session's CSRF token, which only that session knows, so a state
// stolen or planted in another browser is refused.
func (e *Engine) newState(sess *pbx2teams.Session, accountID, step string) string {
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	c := stateClaims{Account: accountID, Step: step, Expires: e.now().Add(stateTTL).Unix(),
		Nonce: base64.RawURLEncoding.EncodeToString(nonce)}
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + e.mac(sess, payload)
}

func (e *Engine) mac(sess *pbx2teams.Session, payload string) string {
	m := hmac.New(sha256.New, e.cfg.StateKey)
	m.Write([]byte(sess.CSRFToken))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifier derives the PKCE verifier of a sign-in from its state, so it
// never leaves the server and needs no storage.
func (e *Engine) verifier(state string) m365.PKCE {
	m := hmac.New(sha256.New, e.cfg.StateKey)
	m.Write([]byte("pkce\x00" + state))
	v := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	sum := sha256.Sum256([]byte(v))
	return m365.PKCE{Verifier: v, Challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (e *Engine) checkState(sess *pbx2teams.Session, state string) (*stateClaims, error) {
	bad := pbx2teams.Errorf(pbx2teams.EForbidden, "This Microsoft 365 sign-in did not start from your portal session (or it expired). Nothing was changed; start again from Teams services.")
	payload, sig, ok := strings.Cut(state, ".")
	if !ok || sess == nil || !hmac.Equal([]byte(sig), []byte(e.mac(sess, payload))) {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, bad
	}
	var c stateClaims
	if json.Unmarshal(b, &c) != nil || e.now().Unix() > c.Expires {
		return nil, bad
	}
	return &c, nil
}

func (e *Engine) redirectURI() string { return e.cfg.PublicURL + CallbackPath }

// ConnectURL starts "Connect Microsoft 365": the Microsoft admin consent
// page of the sync app, to which the portal redirects the admin.
func (e *Engine) ConnectURL(ctx context.Context, p *pbx2teams.Principal, sess *pbx2teams.Session, accountID string) (string, error) {
	ts, err := e.svc.TeamsSettings(ctx, p, accountID)
	if err != nil {
		return "", err
	}
	if !p.Role.CanWrite() {
		return "", pbx2teams.Errorf(pbx2teams.EForbidden, "Your role (%s) can only view; ask an administrator to connect Microsoft 365.", p.Role)
	}
	return e.cfg.Sync.AdminConsentURL(ts.TenantID, e.redirectURI(), e.newState(sess, ts.AccountID, stepConnect)), nil
}

// AuthorizePhoneAppURL starts "Authorize Phone App for my Organization":
// the admin consent of the Phone App registration, followed (in the
// callback) by the admin's sign-in that publishes the app.
func (e *Engine) AuthorizePhoneAppURL(ctx context.Context, p *pbx2teams.Principal, sess *pbx2teams.Session, accountID string) (string, error) {
	if e.cfg.PhoneApp == nil {
		return "", pbx2teams.Errorf(pbx2teams.EUnavailable, "The Phone App is not configured on this service.")
	}
	ts, err := e.svc.TeamsSettings(ctx, p, accountID)
	if err != nil {
		return "", err
	}
	if !p.Role.CanWrite() {
		return "", pbx2teams.Errorf(pbx2teams.EForbidden, "Your role (%s) can only view; ask an administrator to authorize the Phone App.", p.Role)
	}
	if ts.ConsentedAt == nil {
		return "", pbx2teams.Errorf(pbx2teams.EInvalid, "Connect Microsoft 365 first, then authorize the Phone App.")
	}
	if !ts.PhoneAppEnabled {
		return "", pbx2teams.Errorf(pbx2teams.EInvalid, "Enable Phone App and save the Teams services settings first, then authorize it.")
	}
	return e.cfg.PhoneApp.AdminConsentURL(ts.TenantID, e.redirectURI(), e.newState(sess, ts.AccountID, stepPhoneConsent)), nil
}

// CallbackResult is what the portal does after a callback: go to
// Redirect (the next step at Microsoft, or back to the Teams services tab),
// showing Notice (success) or Err (what went wrong and how to fix it).
type CallbackResult struct {
	AccountID string
	Redirect  string
	Notice    string // "m365-connected", "phone-app-authorized"
	Err       error
}

// HandleCallback completes a consent or sign-in step from the redirect's
// query. The state must have been issued to this session.
func (e *Engine) HandleCallback(ctx context.Context, p *pbx2teams.Principal, sess *pbx2teams.Session, q url.Values) CallbackResult {
	c, err := e.checkState(sess, q.Get("state"))
	if err != nil {
		return CallbackResult{Err: err}
	}
	back := "/a/" + c.Account + "/teams"
	res := CallbackResult{AccountID: c.Account, Redirect: back}
	switch c.Step {
	case stepConnect:
		r, err := m365.ParseConsentCallback(q)
		if err != nil {
			_ = e.svc.TenantConsentFailed(ctx, p, c.Account, pbx2teams.ErrorMessage(err), false)
			res.Err = err
			return res
		}
		org, err := e.cfg.Sync.VerifyConsent(ctx, r.Tenant)
		if err != nil {
			msg := "Microsoft 365 reported consent, but the service could not read the tenant with it: " + pbx2teams.ErrorMessage(err) + " Run Connect Microsoft 365 again."
			_ = e.svc.TenantConsentFailed(ctx, p, c.Account, msg, false)
			res.Err = pbx2teams.Errorf(pbx2teams.EForbidden, "%s", msg)
			return res
		}
		if _, err := e.svc.ConnectTenant(ctx, p, c.Account, org.ID, org.DisplayName); err != nil {
			res.Err = err
			return res
		}
		if err := e.ensureState(ctx, c.Account); err != nil {
			res.Err = err
			return res
		}
		res.Notice = "m365-connected"
	case stepPhoneConsent:
		r, err := m365.ParseConsentCallback(q)
		if err != nil {
			res.Err = pbx2teams.Errorf(pbx2teams.EForbidden, "%s", strings.Replace(pbx2teams.ErrorMessage(err), "Connect Microsoft 365", "Authorize Phone App for my Organization", 1))
			return res
		}
		st := e.newState(sess, c.Account, stepPhoneSignIn)
		pk := e.verifier(st)
		res.Redirect = e.cfg.PhoneApp.AuthCodeURL(m365.AuthCodeRequest{Tenant: r.Tenant, RedirectURI: e.redirectURI(),
			State: st, Scopes: publishScopes, PKCE: &pk})
	case stepPhoneSignIn:
		code, _, err := m365.ParseAuthCodeCallback(q)
		if err != nil {
			res.Err = err
			return res
		}
		ts, err := e.svc.TeamsSettings(ctx, p, c.Account)
		if err != nil {
			res.Err = err
			return res
		}
		tok, err := e.cfg.PhoneApp.RedeemCode(ctx, ts.TenantID, code, e.redirectURI(), e.verifier(q.Get("state")).Verifier, publishScopes)
		if err != nil {
			res.Err = err
			return res
		}
		if tok.TenantID != "" && tok.TenantID != ts.TenantID {
			res.Err = pbx2teams.Errorf(pbx2teams.EForbidden, "You signed in to another Microsoft 365 tenant (%s) than the connected one (%s). Sign in with an administrator of %s.", tok.TenantID, ts.TenantID, ts.TenantName)
			return res
		}
		if err := e.publish(ctx, c.Account, e.cfg.PhoneApp.Delegated(tok)); err != nil {
			res.Err = err
			return res
		}
		now := e.now()
		if err := e.svc.SetPhoneAppAuthorized(ctx, p, c.Account, &now); err != nil {
			res.Err = err
			return res
		}
		res.Notice = "phone-app-authorized"
	default:
		res.Err = pbx2teams.Errorf(pbx2teams.EInvalid, "Unknown sign-in step; start again from Teams services.")
	}
	return res
}

// ensureState creates the account's sync bookkeeping (so the scheduler
// sees it) if missing.
func (e *Engine) ensureState(ctx context.Context, accountID string) error {
	st, err := e.state(ctx, accountID)
	if err != nil {
		return err
	}
	return e.svc.Store.PutSyncState(ctx, st)
}

func (e *Engine) state(ctx context.Context, accountID string) (*pbx2teams.SyncState, error) {
	st, err := e.svc.Store.SyncState(ctx, accountID)
	if pbx2teams.ErrorCode(err) == pbx2teams.ENotFound {
		return &pbx2teams.SyncState{AccountID: accountID, UpdatedAt: e.now()}, nil
	}
	return st, err
}

// publish puts the Phone App in the tenant's catalog with the admin's
// delegated token (Graph refuses app-only publishing), or updates it when
// this service carries a newer version, and records its catalog id.
func (e *Engine) publish(ctx context.Context, accountID string, g *m365.Graph) error {
	pkg, err := e.AppPackage()
	if err != nil {
		return err
	}
	app, err := g.FindTeamsApp(ctx, e.cfg.PhoneAppManifestID)
	if err != nil {
		return err
	}
	switch {
	case app == nil:
		if app, err = g.PublishTeamsApp(ctx, pkg); err != nil {
			return err
		}
	case app.Latest() == nil || app.Latest().Version != e.cfg.PhoneAppVersion:
		if _, err := g.UpdateTeamsApp(ctx, app.ID, pkg); err != nil {
			return err
		}
	}
	st, err := e.state(ctx, accountID)
	if err != nil {
		return err
	}
	st.PhoneAppCatalogID, st.PhoneAppError, st.UpdatedAt = app.ID, "", e.now()
	return e.svc.Store.PutSyncState(ctx, st)
}
