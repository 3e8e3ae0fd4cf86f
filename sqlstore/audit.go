package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// AppendAudit stores e and sets e.ID. The entry keeps the path of its
// account (or "/" without one), so the log filters by subtree without a
// join. A zero At is now.
func (q *queries) AppendAudit(ctx context.Context, e *pbx2teams.AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = norm(e.At)
	err := q.queryRowW(ctx, `INSERT INTO audit (account_id, account_path, actor_id, actor_name, action, target, detail, at)
VALUES (?, COALESCE((SELECT path FROM accounts WHERE id = ?), '/'), ?, ?, ?, ?, ?, ?)
RETURNING id`,
		e.AccountID, e.AccountID, e.ActorID, e.ActorName, e.Action, e.Target, e.Detail, q.d.t(e.At)).Scan(&e.ID)
	return q.writeErr(err, "append audit", "", "")
}

// Audit lists the entries of accounts under path, newest first, with IDs
// below beforeID (any when 0), at most limit (100 when limit <= 0).
func (q *queries) Audit(ctx context.Context, path string, beforeID int64, limit int) ([]pbx2teams.AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	var where []string
	var args []any
	if path != "/" {
		cond, a := prefixCond("account_path", path)
		where = append(where, cond)
		args = append(args, a...)
	}
	if beforeID > 0 {
		where = append(where, "id < ?")
		args = append(args, beforeID)
	}
	query := "SELECT id, account_id, actor_id, actor_name, action, target, detail, at FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: audit: %w", err)
	}
	defer rows.Close()
	out := []pbx2teams.AuditEntry{}
	for rows.Next() {
		var e pbx2teams.AuditEntry
		if err := rows.Scan(&e.ID, &e.AccountID, &e.ActorID, &e.ActorName, &e.Action, &e.Target, &e.Detail, timeDest{&e.At}); err != nil {
			return nil, fmt.Errorf("sqlstore: audit: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
