package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

const apiKeyCols = "id, account_id, name, prefix, hash, role, created_by, created_at, last_used_at, revoked_at"

func scanAPIKey(s scanner, k *pbx2teams.APIKey) error {
	var role string
	if err := s.Scan(&k.ID, &k.AccountID, &k.Name, &k.Prefix, &k.Hash, &role, &k.CreatedBy,
		timeDest{&k.CreatedAt}, nullTimeDest{&k.LastUsedAt}, nullTimeDest{&k.RevokedAt}); err != nil {
		return err
	}
	k.Role = pbx2teams.Role(role)
	return nil
}

// CreateAPIKey inserts k; an empty ID gets a generated one.
func (q *queries) CreateAPIKey(ctx context.Context, k *pbx2teams.APIKey) error {
	if k.ID == "" {
		k.ID = newID(prefixAPIKey)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	k.CreatedAt = norm(k.CreatedAt)
	k.LastUsedAt = normPtr(k.LastUsedAt)
	k.RevokedAt = normPtr(k.RevokedAt)
	_, err := q.exec(ctx, "INSERT INTO api_keys ("+apiKeyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		k.ID, k.AccountID, k.Name, k.Prefix, k.Hash, string(k.Role), k.CreatedBy,
		q.d.t(k.CreatedAt), q.d.nt(k.LastUsedAt), q.d.nt(k.RevokedAt))
	return q.writeErr(err, "create api key", "An API key with this ID or hash already exists.", "Account not found.")
}

// APIKeyByHash returns the key with the hash, revoked or not.
func (q *queries) APIKeyByHash(ctx context.Context, hash string) (*pbx2teams.APIKey, error) {
	var k pbx2teams.APIKey
	if err := scanAPIKey(q.queryRow(ctx, "SELECT "+apiKeyCols+" FROM api_keys WHERE hash = ?", hash), &k); err != nil {
		return nil, rowErr(err, "API key", "api key by hash")
	}
	return &k, nil
}

// APIKeys lists the keys of the account, oldest first.
func (q *queries) APIKeys(ctx context.Context, accountID string) ([]pbx2teams.APIKey, error) {
	rows, err := q.query(ctx, "SELECT "+apiKeyCols+" FROM api_keys WHERE account_id = ? ORDER BY created_at, id", accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: api keys: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.APIKey{}
	for rows.Next() {
		var k pbx2teams.APIKey
		if err := scanAPIKey(rows, &k); err != nil {
			return nil, fmt.Errorf("sqlstore: api keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey marks the key of the account revoked at at; revoking again
// keeps the first time.
func (q *queries) RevokeAPIKey(ctx context.Context, accountID, id string, at time.Time) error {
	err := q.execOne(ctx, notFound("API key"),
		"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND account_id = ?",
		q.d.t(at), id, accountID)
	return q.writeErr(err, "revoke api key", "", "")
}

// TouchAPIKey records that the key was used at at.
func (q *queries) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	err := q.execOne(ctx, notFound("API key"), "UPDATE api_keys SET last_used_at = ? WHERE id = ?", q.d.t(at), id)
	return q.writeErr(err, "touch api key", "", "")
}

// CreateSession inserts s.
func (q *queries) CreateSession(ctx context.Context, s *pbx2teams.Session) error {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = time.Now()
	}
	s.CreatedAt = norm(s.CreatedAt)
	s.ExpiresAt = norm(s.ExpiresAt)
	_, err := q.exec(ctx, "INSERT INTO sessions (token_hash, admin_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		s.TokenHash, s.AdminID, s.CSRFToken, q.d.t(s.CreatedAt), q.d.t(s.ExpiresAt))
	return q.writeErr(err, "create session", "A session with this token already exists.", "Administrator not found.")
}

// SessionByHash returns the session with the token hash, expired or not:
// the caller checks ExpiresAt.
func (q *queries) SessionByHash(ctx context.Context, hash string) (*pbx2teams.Session, error) {
	var s pbx2teams.Session
	err := q.queryRow(ctx, "SELECT token_hash, admin_id, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = ?", hash).
		Scan(&s.TokenHash, &s.AdminID, &s.CSRFToken, timeDest{&s.CreatedAt}, timeDest{&s.ExpiresAt})
	if err != nil {
		return nil, rowErr(err, "Session", "session")
	}
	return &s, nil
}

// DeleteSession deletes the session if it exists.
func (q *queries) DeleteSession(ctx context.Context, hash string) error {
	_, err := q.exec(ctx, "DELETE FROM sessions WHERE token_hash = ?", hash)
	return q.writeErr(err, "delete session", "", "")
}

// DeleteExpiredSessions deletes the sessions that expire at or before now.
func (q *queries) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := q.exec(ctx, "DELETE FROM sessions WHERE expires_at <= ?", q.d.t(now))
	return q.writeErr(err, "delete expired sessions", "", "")
}
