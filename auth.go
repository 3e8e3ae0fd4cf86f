package pbx2teams

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams/secrets"
)

const settingBootstrapped = "bootstrapped"

// Bootstrap creates the operator account and its first admin on an empty
// store. It returns the admin's email and a one-time password to show once;
// on a store that is already set up it returns created=false and nothing else.
func (s *Service) Bootstrap(ctx context.Context, operatorName, email string) (created bool, password string, err error) {
	err = s.Store.InTx(ctx, func(q Queries) error {
		done, err := q.Setting(ctx, settingBootstrapped)
		if err != nil || done != "" {
			return err
		}
		acc := &Account{ID: secrets.NewID("acc_"), Kind: KindOperator, Name: operatorName, CreatedAt: s.now()}
		acc.Path = "/" + acc.ID + "/"
		if err := q.CreateAccount(ctx, acc); err != nil {
			return err
		}
		password = secrets.NewToken("")
		adm := &Admin{ID: secrets.NewID("adm_"), AccountID: acc.ID, Email: strings.ToLower(email), Name: "Operator",
			Role: RoleOperator, PasswordHash: secrets.HashPassword(password), CreatedAt: s.now()}
		if err := q.CreateAdmin(ctx, adm); err != nil {
			return err
		}
		created = true
		if err := s.audit(ctx, q, System, acc.ID, "account.bootstrap", acc.ID, "operator account and first admin "+adm.Email+" created"); err != nil {
			return err
		}
		return q.PutSetting(ctx, settingBootstrapped, s.now().Format(time.RFC3339))
	})
	return created, password, err
}

// SignIn checks an admin's email and password and opens a session. Repeated
// failures for one email or from one client address are slowed down.
func (s *Service) SignIn(ctx context.Context, email, password, clientAddr string) (token string, sess *Session, err error) {
	email = strings.ToLower(strings.TrimSpace(email))
	now := s.now()
	if wait := s.limiter.blocked(now, "e:"+email, "a:"+clientAddr); wait > 0 {
		return "", nil, Errorf(ERateLimited, "Too many failed sign-in attempts. Try again in %d minutes.", int(wait.Minutes())+1)
	}
	adm, err := s.Store.AdminByEmail(ctx, email)
	if err != nil && ErrorCode(err) != ENotFound {
		return "", nil, err
	}
	if adm == nil || adm.Disabled || !secrets.VerifyPassword(adm.PasswordHash, password) {
		if adm == nil {
			// Spend the same time as a real check so that timing does not
			// tell which emails exist.
			secrets.VerifyPassword(dummyHash(), password)
		}
		s.limiter.fail(now, "e:"+email, "a:"+clientAddr)
		return "", nil, Errorf(EUnauthenticated, "Wrong email or password.")
	}
	s.limiter.reset("e:" + email)
	token = secrets.NewToken("s_")
	sess = &Session{TokenHash: secrets.HashToken(token), AdminID: adm.ID, CSRFToken: secrets.NewToken(""),
		CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL())}
	if err := s.Store.CreateSession(ctx, sess); err != nil {
		return "", nil, err
	}
	return token, sess, nil
}

var dummyHash = sync.OnceValue(func() string { return secrets.HashPassword("not a real password") })

func (s *Service) sessionTTL() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return 12 * time.Hour
}

// SignOut ends the session with the token.
func (s *Service) SignOut(ctx context.Context, token string) error {
	return s.Store.DeleteSession(ctx, secrets.HashToken(token))
}

// Authenticate returns the principal of a portal session token and the
// session (for its CSRF token).
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, *Session, error) {
	bad := Errorf(EUnauthenticated, "Your session has ended. Sign in again.")
	if token == "" {
		return nil, nil, bad
	}
	sess, err := s.Store.SessionByHash(ctx, secrets.HashToken(token))
	if err != nil {
		if ErrorCode(err) == ENotFound {
			return nil, nil, bad
		}
		return nil, nil, err
	}
	if !s.now().Before(sess.ExpiresAt) {
		_ = s.Store.DeleteSession(ctx, sess.TokenHash)
		return nil, nil, bad
	}
	adm, err := s.Store.Admin(ctx, sess.AdminID)
	if err != nil || adm.Disabled {
		return nil, nil, bad
	}
	acc, err := s.Store.Account(ctx, adm.AccountID)
	if err != nil {
		return nil, nil, err
	}
	return &Principal{AdminID: adm.ID, Name: adm.Email, AccountID: acc.ID, Path: acc.Path, Role: adm.Role}, sess, nil
}

// AuthenticateAPIKey returns the principal of an API key ("p2t_…").
func (s *Service) AuthenticateAPIKey(ctx context.Context, key string) (*Principal, error) {
	bad := Errorf(EUnauthenticated, "The API key is unknown or revoked. Create a key in the portal under API keys.")
	if !strings.HasPrefix(key, apiKeyPrefix) {
		return nil, bad
	}
	k, err := s.Store.APIKeyByHash(ctx, secrets.HashToken(key))
	if err != nil {
		if ErrorCode(err) == ENotFound {
			return nil, bad
		}
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, bad
	}
	acc, err := s.Store.Account(ctx, k.AccountID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		_ = s.Store.TouchAPIKey(ctx, k.ID, now)
	}
	return &Principal{APIKeyID: k.ID, Name: "api key " + k.Name, AccountID: acc.ID, Path: acc.Path, Role: k.Role}, nil
}

const apiKeyPrefix = "p2t_"

// CreateAPIKey makes a key for accountID with the given role (which must fit
// the account and not exceed the creator's). The key is returned once.
func (s *Service) CreateAPIKey(ctx context.Context, p *Principal, accountID, name string, role Role) (string, *APIKey, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", nil, Errorf(EInvalid, "Give the key a name of 1 to 100 characters, e.g. \"billing export\".")
	}
	var key string
	var k *APIKey
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.visibleAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		if role == "" {
			role = adminRoleFor(acc.Kind)
		}
		if !role.FitsKind(acc.Kind) {
			return Errorf(EInvalid, "Role %q does not fit a %s account.", role, acc.Kind)
		}
		key = apiKeyPrefix + secrets.NewToken("")
		k = &APIKey{ID: secrets.NewID("key_"), AccountID: acc.ID, Name: name, Prefix: key[:10], Hash: secrets.HashToken(key),
			Role: role, CreatedBy: p.Name, CreatedAt: s.now()}
		if err := q.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		return s.audit(ctx, q, p, acc.ID, "apikey.create", k.ID, fmt.Sprintf("key %q (%s) role %s", name, k.Prefix, role))
	})
	if err != nil {
		return "", nil, err
	}
	return key, k, nil
}

// APIKeys lists the keys of an account.
func (s *Service) APIKeys(ctx context.Context, p *Principal, accountID string) ([]APIKey, error) {
	if _, err := s.visibleAccount(ctx, s.Store, p, accountID, false); err != nil {
		return nil, err
	}
	return s.Store.APIKeys(ctx, accountID)
}

// RevokeAPIKey revokes a key of an account.
func (s *Service) RevokeAPIKey(ctx context.Context, p *Principal, accountID, keyID string) error {
	return s.Store.InTx(ctx, func(q Queries) error {
		if _, err := s.visibleAccount(ctx, q, p, accountID, true); err != nil {
			return err
		}
		if err := q.RevokeAPIKey(ctx, accountID, keyID, s.now()); err != nil {
			return err
		}
		return s.audit(ctx, q, p, accountID, "apikey.revoke", keyID, "key revoked")
	})
}

func adminRoleFor(k AccountKind) Role {
	switch k {
	case KindOperator:
		return RoleOperator
	case KindPartner:
		return RolePartner
	}
	return RoleCustomerAdmin
}

// signInLimiter counts recent sign-in failures per key (email, client
// address) and blocks a key after too many within the window.
type signInLimiter struct {
	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n     int
	first time.Time
}

const (
	signInMaxFailures = 5
	signInWindow      = 15 * time.Minute
)

func (l *signInLimiter) blocked(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		f := l.m[k]
		if f == nil {
			continue
		}
		if now.Sub(f.first) > signInWindow {
			delete(l.m, k)
			continue
		}
		if f.n >= signInMaxFailures {
			if w := signInWindow - now.Sub(f.first); w > wait {
				wait = w
			}
		}
	}
	return wait
}

func (l *signInLimiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*failures{}
	}
	if len(l.m) > 100000 { // bound memory under a spray attack
		for k, f := range l.m {
			if now.Sub(f.first) > signInWindow {
				delete(l.m, k)
			}
		}
	}
	for _, k := range keys {
		f := l.m[k]
		if f == nil || now.Sub(f.first) > signInWindow {
			f = &failures{first: now}
			l.m[k] = f
		}
		f.n++
	}
}

func (l *signInLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// SessionCookieName is the portal session cookie, shared by the portal and
// the API (which also accepts a session, with its CSRF token in a header).
const SessionCookieName = "p2t_session"

// CSRFHeaderName carries the session's CSRF token on unsafe API requests
// authenticated by the session cookie.
const CSRFHeaderName = "X-CSRF-Token"
