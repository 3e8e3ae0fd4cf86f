package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

const accountCols = "id, parent_id, kind, name, path, created_at"

type scanner interface{ Scan(dest ...any) error }

func scanAccount(s scanner, a *pbx2teams.Account) error {
	var parent sql.NullString
	var kind string
	if err := s.Scan(&a.ID, &parent, &kind, &a.Name, &a.Path, timeDest{&a.CreatedAt}); err != nil {
		return err
	}
	a.ParentID = parent.String
	a.Kind = pbx2teams.AccountKind(kind)
	return nil
}

// CreateAccount inserts a. An empty ID gets a generated one; an empty Path
// is derived from the parent's ("/" + ID + "/" for a root); a zero CreatedAt
// is now. a is updated with what was stored.
func (q *queries) CreateAccount(ctx context.Context, a *pbx2teams.Account) error {
	if a.ID == "" {
		a.ID = newID(prefixAccount)
	}
	if strings.Contains(a.ID, "/") {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "An account ID cannot contain '/'.")
	}
	if a.Path == "" {
		parentPath := "/"
		if a.ParentID != "" {
			err := q.queryRow(ctx, "SELECT path FROM accounts WHERE id = ?", a.ParentID).Scan(&parentPath)
			if err != nil {
				return rowErr(err, "Parent account", "create account")
			}
		}
		a.Path = parentPath + a.ID + "/"
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = norm(a.CreatedAt)
	_, err := q.exec(ctx, "INSERT INTO accounts ("+accountCols+") VALUES (?, ?, ?, ?, ?, ?)",
		a.ID, nullString(a.ParentID), string(a.Kind), a.Name, a.Path, q.d.t(a.CreatedAt))
	return q.writeErr(err, "create account",
		fmt.Sprintf("An account with ID %q or path %q already exists.", a.ID, a.Path),
		"Parent account not found.")
}

// Account returns the account with the ID.
func (q *queries) Account(ctx context.Context, id string) (*pbx2teams.Account, error) {
	var a pbx2teams.Account
	err := scanAccount(q.queryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id), &a)
	if err != nil {
		return nil, rowErr(err, "Account", "account")
	}
	return &a, nil
}

func (q *queries) accounts(ctx context.Context, query string, args ...any) ([]pbx2teams.Account, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: accounts: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.Account{}
	for rows.Next() {
		var a pbx2teams.Account
		if err := scanAccount(rows, &a); err != nil {
			return nil, fmt.Errorf("sqlstore: accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ChildAccounts lists the direct children of parentID by name.
func (q *queries) ChildAccounts(ctx context.Context, parentID string) ([]pbx2teams.Account, error) {
	return q.accounts(ctx, "SELECT "+accountCols+" FROM accounts WHERE parent_id = ? ORDER BY name, id", parentID)
}

// SubtreeAccounts lists the accounts whose path starts with path, by path.
func (q *queries) SubtreeAccounts(ctx context.Context, path string) ([]pbx2teams.Account, error) {
	cond, args := prefixCond("path", path)
	return q.accounts(ctx, "SELECT "+accountCols+" FROM accounts WHERE "+cond+" ORDER BY path", args...)
}

// RenameAccount sets the name of the account.
func (q *queries) RenameAccount(ctx context.Context, id, name string) error {
	err := q.execOne(ctx, notFound("Account"), "UPDATE accounts SET name = ? WHERE id = ?", name, id)
	return q.writeErr(err, "rename account", "", "")
}

// CountAccounts counts all accounts.
func (q *queries) CountAccounts(ctx context.Context) (int, error) {
	var n int
	err := q.queryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n)
	return n, rowErr(err, "", "count accounts")
}

const adminCols = "id, account_id, email, name, role, password_hash, created_at, disabled"

func scanAdmin(s scanner, a *pbx2teams.Admin) error {
	var role string
	if err := s.Scan(&a.ID, &a.AccountID, &a.Email, &a.Name, &role, &a.PasswordHash, timeDest{&a.CreatedAt}, &a.Disabled); err != nil {
		return err
	}
	a.Role = pbx2teams.Role(role)
	return nil
}

func adminConflict(email string) string {
	return fmt.Sprintf("An administrator with the email address %s already exists.", email)
}

// CreateAdmin inserts a; the email must be unique regardless of case.
func (q *queries) CreateAdmin(ctx context.Context, a *pbx2teams.Admin) error {
	if a.ID == "" {
		a.ID = newID(prefixAdmin)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = norm(a.CreatedAt)
	_, err := q.exec(ctx, "INSERT INTO admins ("+adminCols+", email_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		a.ID, a.AccountID, a.Email, a.Name, string(a.Role), a.PasswordHash, q.d.t(a.CreatedAt), a.Disabled,
		strings.ToLower(a.Email))
	return q.writeErr(err, "create admin", adminConflict(a.Email), "Account not found.")
}

// Admin returns the admin with the ID.
func (q *queries) Admin(ctx context.Context, id string) (*pbx2teams.Admin, error) {
	var a pbx2teams.Admin
	err := scanAdmin(q.queryRow(ctx, "SELECT "+adminCols+" FROM admins WHERE id = ?", id), &a)
	if err != nil {
		return nil, rowErr(err, "Administrator", "admin")
	}
	return &a, nil
}

// AdminByEmail returns the admin with the email, matched regardless of case.
func (q *queries) AdminByEmail(ctx context.Context, email string) (*pbx2teams.Admin, error) {
	var a pbx2teams.Admin
	err := scanAdmin(q.queryRow(ctx, "SELECT "+adminCols+" FROM admins WHERE email_key = ?", strings.ToLower(email)), &a)
	if err != nil {
		return nil, rowErr(err, "Administrator", "admin by email")
	}
	return &a, nil
}

// Admins lists the admins of the account by email.
func (q *queries) Admins(ctx context.Context, accountID string) ([]pbx2teams.Admin, error) {
	rows, err := q.query(ctx, "SELECT "+adminCols+" FROM admins WHERE account_id = ? ORDER BY email_key, id", accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: admins: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.Admin{}
	for rows.Next() {
		var a pbx2teams.Admin
		if err := scanAdmin(rows, &a); err != nil {
			return nil, fmt.Errorf("sqlstore: admins: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateAdmin writes the email, name, role, password hash and disabled flag
// of the admin a.ID; its account and creation time do not change.
func (q *queries) UpdateAdmin(ctx context.Context, a *pbx2teams.Admin) error {
	err := q.execOne(ctx, notFound("Administrator"),
		"UPDATE admins SET email = ?, email_key = ?, name = ?, role = ?, password_hash = ?, disabled = ? WHERE id = ?",
		a.Email, strings.ToLower(a.Email), a.Name, string(a.Role), a.PasswordHash, a.Disabled, a.ID)
	return q.writeErr(err, "update admin", adminConflict(a.Email), "")
}
