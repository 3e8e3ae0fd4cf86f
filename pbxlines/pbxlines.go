// Package pbxlines keeps the registration engine in step with the store:
// every configured, licensed, enabled user with a password gets a PBX
// registration; everyone else gets none. It is the seam between the control
// plane (Service, Store) and the signalling plane (sip/registration).
package pbxlines

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/registration"
)

// Registrar is what the feeder drives; *registration.Engine implements it.
type Registrar interface {
	Set(acc registration.Account) error
	Remove(userID string)
	Refresh(accountID string)
}

// Feeder loads registrations from the store at start, after every change a
// customer admin makes, and periodically (to pick up changes made on other
// nodes and licence expiry).
type Feeder struct {
	svc *pbx2teams.Service
	reg Registrar
	log *slog.Logger
	// Reconcile is the interval of a full reload (default 5 min).
	Reconcile time.Duration

	mu      sync.Mutex
	known   map[string]map[string]struct{} // account → users in the engine
	dirty   map[string]bool                // accounts to reload
	refresh map[string]bool                // accounts whose PBX settings were saved
	wake    chan struct{}
}

// New returns a feeder; register it with svc.Listen and start Run.
func New(svc *pbx2teams.Service, reg Registrar, log *slog.Logger) *Feeder {
	if log == nil {
		log = slog.Default()
	}
	return &Feeder{svc: svc, reg: reg, log: log, Reconcile: 5 * time.Minute,
		known: map[string]map[string]struct{}{}, dirty: map[string]bool{}, refresh: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// CustomerChanged implements pbx2teams.ConfigListener. It never blocks the
// admin's request: the reload happens in Run.
func (f *Feeder) CustomerChanged(accountID string) {
	f.mu.Lock()
	f.dirty[accountID] = true
	f.mu.Unlock()
	f.signal()
}

// PBXSettingsSaved implements pbx2teams.PBXListener.
func (f *Feeder) PBXSettingsSaved(accountID string) {
	f.mu.Lock()
	f.dirty[accountID] = true
	f.refresh[accountID] = true
	f.mu.Unlock()
	f.signal()
}

func (f *Feeder) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run loads every registration, then follows changes until ctx ends.
func (f *Feeder) Run(ctx context.Context) error {
	if err := f.loadAll(ctx); err != nil {
		f.log.Error("loading registrations", "err", err)
	}
	tick := time.NewTicker(f.Reconcile)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := f.loadAll(ctx); err != nil {
				f.log.Error("reconciling registrations", "err", err)
			}
		case <-f.wake:
			f.mu.Lock()
			dirty, refresh := f.dirty, f.refresh
			f.dirty, f.refresh = map[string]bool{}, map[string]bool{}
			f.mu.Unlock()
			for id := range dirty {
				if err := f.loadAccount(ctx, id); err != nil {
					f.log.Error("reloading registrations", "account", id, "err", err)
					continue
				}
				if refresh[id] {
					f.reg.Refresh(id)
				}
			}
		}
	}
}

// customer caches what decides whether a customer's users register.
type customer struct {
	pbx               *pbx2teams.PBXSettings // nil: no PBX configured
	pbxOK, phoneAppOK bool                   // licences active
}

func (f *Feeder) customer(ctx context.Context, accountID string) (*customer, error) {
	st := f.svc.Store
	c := &customer{}
	ps, err := st.PBXSettings(ctx, accountID)
	if err != nil && pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
		return nil, err
	}
	if err == nil && ps.Domain != "" {
		c.pbx = ps
	}
	ls, err := st.Licences(ctx, accountID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range ls {
		switch ls[i].SKU {
		case pbx2teams.SKUPBXUser:
			c.pbxOK = ls[i].Active(now)
		case pbx2teams.SKUPhoneAppUser:
			c.phoneAppOK = ls[i].Active(now)
		}
	}
	return c, nil
}

// account builds the engine's view of u, or reports that u must not register.
func (f *Feeder) account(c *customer, u *pbx2teams.User) (registration.Account, bool) {
	if c.pbx == nil || !c.pbxOK || !u.ConsumesLicences() || !u.HasPassword || u.ContactUser == "" {
		return registration.Account{}, false
	}
	if u.Type == pbx2teams.ServicePhoneApp && !c.phoneAppOK {
		return registration.Account{}, false
	}
	pw, err := f.svc.SIPPassword(u)
	if err != nil {
		f.log.Error("cannot open a SIP password; the user is not registered", "user", u.ID, "err", err)
		return registration.Account{}, false
	}
	return registration.Account{
		UserID: u.ID, AccountID: u.AccountID, Domain: c.pbx.Domain, OutboundProxy: c.pbx.OutboundProxy,
		Transport: string(c.pbx.Transport), Username: u.SIPUsername, AuthUsername: u.AuthUsername, Password: pw,
		Expiry: c.pbx.RegisterExpiry, ContactUser: u.ContactUser,
	}, true
}

// loadAll walks every configured user of every customer.
func (f *Feeder) loadAll(ctx context.Context) error {
	customers := map[string]*customer{}
	seen := map[string]map[string]struct{}{}
	after := ""
	for {
		users, err := f.svc.Store.ConfiguredUsers(ctx, after, 1000)
		if err != nil {
			return err
		}
		for i := range users {
			u := &users[i]
			c := customers[u.AccountID]
			if c == nil {
				if c, err = f.customer(ctx, u.AccountID); err != nil {
					return err
				}
				customers[u.AccountID] = c
			}
			if acc, ok := f.account(c, u); ok {
				if err := f.reg.Set(acc); err != nil {
					f.log.Warn("registration refused", "user", u.ID, "err", err)
					continue
				}
				if seen[u.AccountID] == nil {
					seen[u.AccountID] = map[string]struct{}{}
				}
				seen[u.AccountID][u.ID] = struct{}{}
			}
		}
		if len(users) < 1000 {
			break
		}
		after = users[len(users)-1].ID
	}
	f.mu.Lock()
	old := f.known
	f.known = seen
	f.mu.Unlock()
	for acc, ids := range old {
		for id := range ids {
			if _, ok := seen[acc][id]; !ok {
				f.reg.Remove(id)
			}
		}
	}
	return nil
}

// loadAccount reloads one customer's users.
func (f *Feeder) loadAccount(ctx context.Context, accountID string) error {
	c, err := f.customer(ctx, accountID)
	if err != nil {
		return err
	}
	seen := map[string]struct{}{}
	q := pbx2teams.UserQuery{AccountID: accountID, Type: "any", Limit: 500}
	for {
		page, err := f.svc.Store.Users(ctx, q)
		if err != nil {
			return err
		}
		for i := range page.Users {
			u := &page.Users[i]
			if acc, ok := f.account(c, u); ok {
				if err := f.reg.Set(acc); err != nil {
					f.log.Warn("registration refused", "user", u.ID, "err", err)
					continue
				}
				seen[u.ID] = struct{}{}
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	f.mu.Lock()
	old := f.known[accountID]
	f.known[accountID] = seen
	f.mu.Unlock()
	for id := range old {
		if _, ok := seen[id]; !ok {
			f.reg.Remove(id)
		}
	}
	return nil
}
