package pbx2teams

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/pbx2teams/pbx2teams/secrets"
)

// CreateAccount creates a partner or customer account under parentID.
// Operators create partners and customers; partners create sub-partners and
// customers; customers have no children.
func (s *Service) CreateAccount(ctx context.Context, p *Principal, parentID string, kind AccountKind, name string) (*Account, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return nil, Errorf(EInvalid, "An account needs a name of 1 to 200 characters.")
	}
	if kind != KindPartner && kind != KindCustomer {
		return nil, Errorf(EInvalid, "An account is either a partner or a customer, not %q.", kind)
	}
	var acc *Account
	err := s.Store.InTx(ctx, func(q Queries) error {
		parent, err := s.visibleAccount(ctx, q, p, parentID, true)
		if err != nil {
			return err
		}
		if parent.Kind == KindCustomer {
			return Errorf(EInvalid, "%s is a customer; accounts can only be created under a partner or the operator.", parent.Name)
		}
		if p.Role == RoleCustomerAdmin {
			return Errorf(EForbidden, "Customer admins cannot create accounts.")
		}
		acc = &Account{ID: secrets.NewID("acc_"), ParentID: parent.ID, Kind: kind, Name: name, CreatedAt: s.now()}
		acc.Path = parent.Path + acc.ID + "/"
		if err := q.CreateAccount(ctx, acc); err != nil {
			return err
		}
		if kind == KindCustomer {
			ts := &TeamsSettings{AccountID: acc.ID, SyncIntervalMinutes: 60, UpdatedAt: s.now()}
			if _, err := ensureSBCLabel(ctx, q, acc, ts); err != nil {
				return err
			}
			if err := q.PutTeamsSettings(ctx, ts); err != nil {
				return err
			}
		}
		return s.audit(ctx, q, p, parent.ID, "account.create", acc.ID, fmt.Sprintf("%s %q created", kind, name))
	})
	return acc, err
}

// Account returns an account visible to p.
func (s *Service) Account(ctx context.Context, p *Principal, id string) (*Account, error) {
	return s.visibleAccount(ctx, s.Store, p, id, false)
}

// Accounts lists every account p can see (its own and its subtree), by path.
func (s *Service) Accounts(ctx context.Context, p *Principal) ([]Account, error) {
	if p == nil {
		return nil, Errorf(EUnauthenticated, "Sign in first.")
	}
	return s.Store.SubtreeAccounts(ctx, p.Path)
}

// ChildAccounts lists the direct children of an account visible to p.
func (s *Service) ChildAccounts(ctx context.Context, p *Principal, id string) ([]Account, error) {
	if _, err := s.visibleAccount(ctx, s.Store, p, id, false); err != nil {
		return nil, err
	}
	return s.Store.ChildAccounts(ctx, id)
}

// CreateAdmin adds an administrator to an account. If password is empty a
// one-time password is generated and returned; it is not stored in clear.
func (s *Service) CreateAdmin(ctx context.Context, p *Principal, accountID, email, name string, role Role, password string) (*Admin, string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return nil, "", Errorf(EInvalid, "%q is not an email address; use the form name@example.com.", email)
	}
	if password != "" && len(password) < 12 {
		return nil, "", Errorf(EInvalid, "A password needs at least 12 characters; leave it empty to generate one.")
	}
	var adm *Admin
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.visibleAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		if role == "" {
			role = adminRoleFor(acc.Kind)
		}
		if !role.FitsKind(acc.Kind) {
			return Errorf(EInvalid, "Role %q does not fit a %s account; use %s or viewer.", role, acc.Kind, adminRoleFor(acc.Kind))
		}
		if password == "" {
			password = secrets.NewToken("")
		}
		adm = &Admin{ID: secrets.NewID("adm_"), AccountID: acc.ID, Email: email, Name: strings.TrimSpace(name), Role: role,
			PasswordHash: secrets.HashPassword(password), CreatedAt: s.now()}
		if err := q.CreateAdmin(ctx, adm); err != nil {
			if ErrorCode(err) == EConflict {
				return Errorf(EConflict, "An administrator with email %s already exists.", email)
			}
			return err
		}
		return s.audit(ctx, q, p, acc.ID, "admin.create", adm.ID, fmt.Sprintf("admin %s role %s", email, role))
	})
	if err != nil {
		return nil, "", err
	}
	return adm, password, nil
}

// Admins lists the administrators of an account.
func (s *Service) Admins(ctx context.Context, p *Principal, accountID string) ([]Admin, error) {
	if _, err := s.visibleAccount(ctx, s.Store, p, accountID, false); err != nil {
		return nil, err
	}
	return s.Store.Admins(ctx, accountID)
}

// Audit lists the audit log of an account's subtree, newest first.
func (s *Service) Audit(ctx context.Context, p *Principal, accountID string, beforeID int64, limit int) ([]AuditEntry, error) {
	acc, err := s.visibleAccount(ctx, s.Store, p, accountID, false)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	return s.Store.Audit(ctx, acc.Path, beforeID, limit)
}
