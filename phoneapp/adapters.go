package phoneapp

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// TenantUsers is Users over the store: the customers connected to the
// token's tenant, then the user with the token's object id in them.
type TenantUsers struct {
	// Accounts returns the ids of the customer accounts connected to a
	// Microsoft 365 tenant (TeamsSettings.TenantID with consent).
	Accounts func(ctx context.Context, tenantID string) ([]string, error)
	// ByObjectID is pbx2teams.Store.UserByObjectID.
	ByObjectID func(ctx context.Context, accountID, objectID string) (*pbx2teams.User, error)
}

// PhoneAppUser implements Users. When several customers share a tenant,
// the one where the user is a Phone App user wins.
func (t TenantUsers) PhoneAppUser(ctx context.Context, tenantID, objectID string) (*pbx2teams.User, error) {
	accounts, err := t.Accounts(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var found *pbx2teams.User
	for _, a := range accounts {
		u, err := t.ByObjectID(ctx, a, objectID)
		if pbx2teams.ErrorCode(err) == pbx2teams.ENotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		if u.Type == pbx2teams.ServicePhoneApp {
			return u, nil
		}
		if found == nil {
			found = u
		}
	}
	if found == nil {
		return nil, pbx2teams.ErrNotFound
	}
	return found, nil
}

// StoreRecent is RecentCalls over pbx2teams.CallStore.Calls.
func StoreRecent(calls func(ctx context.Context, q pbx2teams.CallQuery) (*pbx2teams.CallPage, error)) RecentCalls {
	return func(ctx context.Context, accountID, userID string, limit int) ([]pbx2teams.CallRecord, error) {
		p, err := calls(ctx, pbx2teams.CallQuery{AccountID: accountID, UserID: userID, Limit: limit})
		if err != nil {
			return nil, err
		}
		return p.Calls, nil
	}
}

// ContactSources is Contacts over the user's Outlook contacts (Graph) and
// the users of the same customer who have a line. Outlook contacts are
// read at most once a minute per user and at most MaxOutlook of them.
type ContactSources struct {
	// Outlook pages through u's Outlook contacts, e.g.
	//	func(ctx, u, fn) error { return graphFor(u.AccountID).Contacts(ctx, u.ObjectID, fn) }
	// with the Phone App's authorization (Contacts.Read). Optional.
	Outlook func(ctx context.Context, u *pbx2teams.User, fn func([]m365.Contact) error) error
	// Directory is pbx2teams.Store.Users. Optional.
	Directory func(ctx context.Context, q pbx2teams.UserQuery) (*pbx2teams.UserPage, error)
	// MaxOutlook bounds the contacts read per user (default 1000).
	MaxOutlook int
	// CacheFor is how long a user's Outlook contacts are reused (default 1 min).
	CacheFor time.Duration
	Logger   *slog.Logger

	mu    sync.Mutex
	cache map[string]outlookEntry
}

type outlookEntry struct {
	at   time.Time
	list []Contact
}

var errEnough = errors.New("enough contacts")

func (s *ContactSources) outlook(ctx context.Context, u *pbx2teams.User) ([]Contact, error) {
	ttl := s.CacheFor
	if ttl <= 0 {
		ttl = time.Minute
	}
	limit := s.MaxOutlook
	if limit <= 0 {
		limit = 1000
	}
	s.mu.Lock()
	if e, ok := s.cache[u.ID]; ok && time.Since(e.at) < ttl {
		s.mu.Unlock()
		return e.list, nil
	}
	s.mu.Unlock()
	var list []Contact
	n := 0
	err := s.Outlook(ctx, u, func(cs []m365.Contact) error {
		for _, c := range cs {
			list = append(list, FromGraphContact(c)...)
			if n++; n >= limit {
				return errEnough
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string]outlookEntry{}
	}
	s.cache[u.ID] = outlookEntry{at: time.Now(), list: list}
	s.mu.Unlock()
	return list, nil
}

// Contacts implements Contacts: matching Outlook contacts first, then
// colleagues, each by name, without repeating a number. When one source
// fails the other's results are still given; when both fail, the error.
func (s *ContactSources) Contacts(ctx context.Context, u *pbx2teams.User, query string, limit int) ([]Contact, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	var mine, colleagues []Contact
	var errs []error
	if s.Outlook != nil {
		list, err := s.outlook(ctx, u)
		if err != nil {
			log.Warn("phoneapp: outlook contacts", "user", u.ID, "err", err)
			errs = append(errs, err)
		}
		for _, c := range list {
			if MatchContact(c, query) {
				mine = append(mine, c)
			}
		}
	}
	if s.Directory != nil {
		// The store searches one string; the other words filter here.
		words := strings.Fields(query)
		search := ""
		if len(words) > 0 {
			search = words[0]
		}
		page, err := s.Directory(ctx, pbx2teams.UserQuery{AccountID: u.AccountID, Search: search, Type: "any", Limit: 200})
		if err != nil {
			log.Warn("phoneapp: directory contacts", "account", u.AccountID, "err", err)
			errs = append(errs, err)
		} else {
			for _, du := range page.Users {
				if du.ID == u.ID {
					continue
				}
				for _, c := range FromDirectoryUser(du) {
					if MatchContact(c, query) {
						colleagues = append(colleagues, c)
					}
				}
			}
		}
	}
	if len(errs) > 0 && len(errs) == btoi(s.Outlook != nil)+btoi(s.Directory != nil) {
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnavailable, Message: "Contacts cannot be read right now; try again in a minute.", Err: errors.Join(errs...)}
	}
	byName := func(l []Contact) {
		sort.SliceStable(l, func(i, j int) bool { return strings.ToLower(l[i].Name) < strings.ToLower(l[j].Name) })
	}
	byName(mine)
	byName(colleagues)
	seen := map[string]bool{}
	var out []Contact
	for _, c := range append(mine, colleagues...) {
		key := separators.Replace(c.Number)
		if seen[key] || len(out) >= limit {
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
