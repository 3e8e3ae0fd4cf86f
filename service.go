package pbx2teams

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams/secrets"
)

// Service is the one place where the rules of the domain live: the portal,
// the API, the Microsoft 365 sync and the SIP engine all go through it, so
// every path gets the same permission checks, licence rules and audit.
type Service struct {
	Store Store
	// Box seals SIP passwords at rest.
	Box *secrets.Box
	// Registrations answers live PBX registration state; may be nil.
	Registrations RegistrationStates
	// Log receives structured logs; never secrets.
	Log *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// SessionTTL is how long a portal session lasts (default 12 h).
	SessionTTL time.Duration
	// CallTraceRetention and CallRecordRetention are how long PruneCalls
	// keeps call traces and call records (defaults 7 and 90 days).
	CallTraceRetention  time.Duration
	CallRecordRetention time.Duration

	mu        sync.Mutex
	listeners []ConfigListener
	limiter   signInLimiter
}

// NewService returns a Service over store with defaults filled in.
func NewService(store Store, box *secrets.Box, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{Store: store, Box: box, Log: log, Now: time.Now, SessionTTL: 12 * time.Hour}
}

// Listen registers l to be told when a customer's PBX configuration changes.
func (s *Service) Listen(l ConfigListener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, l)
}

func (s *Service) changed(accountID string) {
	s.mu.Lock()
	ls := append([]ConfigListener(nil), s.listeners...)
	s.mu.Unlock()
	for _, l := range ls {
		l.CustomerChanged(accountID)
	}
}

// pbxSaved tells listeners that also implement PBXListener that the PBX
// settings were saved, so failed registrations are retried at once.
func (s *Service) pbxSaved(accountID string) {
	s.mu.Lock()
	ls := append([]ConfigListener(nil), s.listeners...)
	s.mu.Unlock()
	for _, l := range ls {
		if pl, ok := l.(PBXListener); ok {
			pl.PBXSettingsSaved(accountID)
		}
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// audit appends an audit entry within q (usually a transaction).
func (s *Service) audit(ctx context.Context, q Queries, p *Principal, accountID, action, target, detail string) error {
	return q.AppendAudit(ctx, &AuditEntry{
		AccountID: accountID, ActorID: firstNonEmpty(p.AdminID, p.APIKeyID), ActorName: p.Name,
		Action: action, Target: target, Detail: detail, At: s.now(),
	})
}

// visibleAccount loads the account and checks that p may see it (and change
// it, if write). An account outside p's subtree is reported as not found, so
// its existence does not leak.
func (s *Service) visibleAccount(ctx context.Context, q Queries, p *Principal, accountID string, write bool) (*Account, error) {
	if p == nil {
		return nil, Errorf(EUnauthenticated, "Sign in first.")
	}
	a, err := q.Account(ctx, accountID)
	if err != nil {
		if ErrorCode(err) == ENotFound {
			return nil, Errorf(ENotFound, "No such account.")
		}
		return nil, err
	}
	if !strings.HasPrefix(a.Path, p.Path) {
		return nil, Errorf(ENotFound, "No such account.")
	}
	if write && !p.Role.CanWrite() {
		return nil, Errorf(EForbidden, "Your role (%s) can only view; ask an administrator to make this change.", p.Role)
	}
	return a, nil
}

func (s *Service) customerAccount(ctx context.Context, q Queries, p *Principal, accountID string, write bool) (*Account, error) {
	a, err := s.visibleAccount(ctx, q, p, accountID, write)
	if err != nil {
		return nil, err
	}
	if a.Kind != KindCustomer {
		return nil, Errorf(EInvalid, "%s is a %s account; this applies to customer accounts only.", a.Name, a.Kind)
	}
	return a, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
