package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

const syncJobCols = `id, account_id, status, mode, trigger_kind, diagnostic, requested_by, started_at, finished_at, counts, warnings, error`

func scanSyncJob(s scanner, j *pbx2teams.SyncJob, log *string) error {
	var status, counts, warnings string
	dest := []any{&j.ID, &j.AccountID, &status, &j.Mode, &j.Trigger, &j.Diagnostic, &j.RequestedBy,
		timeDest{&j.StartedAt}, nullTimeDest{&j.FinishedAt}, &counts, &warnings, &j.Error}
	if log != nil {
		dest = append(dest, log)
	}
	if err := s.Scan(dest...); err != nil {
		return err
	}
	j.Status = pbx2teams.SyncStatus(status)
	if err := json.Unmarshal([]byte(counts), &j.Counts); err != nil {
		return fmt.Errorf("sqlstore: sync job counts: %w", err)
	}
	if err := json.Unmarshal([]byte(warnings), &j.Warnings); err != nil {
		return fmt.Errorf("sqlstore: sync job warnings: %w", err)
	}
	return nil
}

func jobJSON(j *pbx2teams.SyncJob) (string, string, error) {
	c, err := json.Marshal(j.Counts)
	if err != nil {
		return "", "", err
	}
	w := []byte("[]")
	if len(j.Warnings) > 0 {
		if w, err = json.Marshal(j.Warnings); err != nil {
			return "", "", err
		}
	}
	return string(c), string(w), nil
}

// CreateSyncJob inserts a running job; the partial unique index refuses a
// second running job of the account.
func (q *queries) CreateSyncJob(ctx context.Context, j *pbx2teams.SyncJob) error {
	if j.ID == "" {
		j.ID = newID("job_")
	}
	j.StartedAt = norm(j.StartedAt)
	c, w, err := jobJSON(j)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO sync_jobs (`+syncJobCols+`, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.AccountID, string(j.Status), j.Mode, j.Trigger, j.Diagnostic, j.RequestedBy, q.d.t(j.StartedAt),
		q.d.nt(j.FinishedAt), c, w, j.Error, j.Log)
	return q.writeErr(err, "create sync job", "A sync of this customer is already running.", "Account not found.")
}

// FinishSyncJob writes the outcome of a job.
func (q *queries) FinishSyncJob(ctx context.Context, j *pbx2teams.SyncJob) error {
	j.FinishedAt = normPtr(j.FinishedAt)
	c, w, err := jobJSON(j)
	if err != nil {
		return err
	}
	return q.execOne(ctx, notFound("Sync job"), `UPDATE sync_jobs SET status = ?, mode = ?, finished_at = ?, counts = ?,
	warnings = ?, log = ?, error = ? WHERE id = ? AND account_id = ?`,
		string(j.Status), j.Mode, q.d.nt(j.FinishedAt), c, w, j.Log, j.Error, j.ID, j.AccountID)
}

// SyncJob returns a job with its log.
func (q *queries) SyncJob(ctx context.Context, accountID, id string) (*pbx2teams.SyncJob, error) {
	var j pbx2teams.SyncJob
	err := scanSyncJob(q.queryRow(ctx, `SELECT `+syncJobCols+`, log FROM sync_jobs WHERE id = ? AND account_id = ?`, id, accountID), &j, &j.Log)
	if err != nil {
		return nil, rowErr(err, "Sync job", "sync job")
	}
	return &j, nil
}

// RunningSyncJob returns the account's running job.
func (q *queries) RunningSyncJob(ctx context.Context, accountID string) (*pbx2teams.SyncJob, error) {
	var j pbx2teams.SyncJob
	err := scanSyncJob(q.queryRow(ctx, `SELECT `+syncJobCols+` FROM sync_jobs WHERE account_id = ? AND status = 'running'`, accountID), &j, nil)
	if err != nil {
		return nil, rowErr(err, "Sync job", "running sync job")
	}
	return &j, nil
}

// SyncJobs lists jobs newest first without logs.
func (q *queries) SyncJobs(ctx context.Context, accountID string, limit int) ([]pbx2teams.SyncJob, error) {
	rows, err := q.query(ctx, `SELECT `+syncJobCols+` FROM sync_jobs WHERE account_id = ? ORDER BY started_at DESC, id DESC LIMIT ?`, accountID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sync jobs: %w", err)
	}
	defer rows.Close()
	var out []pbx2teams.SyncJob
	for rows.Next() {
		var j pbx2teams.SyncJob
		if err := scanSyncJob(rows, &j, nil); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// FailRunningSyncJobs marks running jobs failed.
func (q *queries) FailRunningSyncJobs(ctx context.Context, msg string, at time.Time) (int, error) {
	res, err := q.exec(ctx, `UPDATE sync_jobs SET status = 'failed', error = ?, finished_at = ? WHERE status = 'running'`, msg, q.d.t(at))
	if err != nil {
		return 0, fmt.Errorf("sqlstore: fail running sync jobs: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

const syncStateCols = `account_id, delta_link, last_full_at, last_run_at, phone_app_catalog_id, phone_app_error, updated_at`

func scanSyncState(s scanner, st *pbx2teams.SyncState) error {
	return s.Scan(&st.AccountID, &st.DeltaLink, nullTimeDest{&st.LastFullAt}, nullTimeDest{&st.LastRunAt},
		&st.PhoneAppCatalogID, &st.PhoneAppError, timeDest{&st.UpdatedAt})
}

// SyncState returns an account's sync bookkeeping.
func (q *queries) SyncState(ctx context.Context, accountID string) (*pbx2teams.SyncState, error) {
	var st pbx2teams.SyncState
	if err := scanSyncState(q.queryRow(ctx, `SELECT `+syncStateCols+` FROM sync_state WHERE account_id = ?`, accountID), &st); err != nil {
		return nil, rowErr(err, "Sync state", "sync state")
	}
	return &st, nil
}

// PutSyncState inserts or replaces an account's sync bookkeeping.
func (q *queries) PutSyncState(ctx context.Context, st *pbx2teams.SyncState) error {
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = time.Now()
	}
	st.UpdatedAt = norm(st.UpdatedAt)
	st.LastFullAt, st.LastRunAt = normPtr(st.LastFullAt), normPtr(st.LastRunAt)
	_, err := q.exec(ctx, `INSERT INTO sync_state (`+syncStateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account_id) DO UPDATE SET delta_link = excluded.delta_link, last_full_at = excluded.last_full_at,
	last_run_at = excluded.last_run_at, phone_app_catalog_id = excluded.phone_app_catalog_id,
	phone_app_error = excluded.phone_app_error, updated_at = excluded.updated_at`,
		st.AccountID, st.DeltaLink, q.d.nt(st.LastFullAt), q.d.nt(st.LastRunAt), st.PhoneAppCatalogID, st.PhoneAppError, q.d.t(st.UpdatedAt))
	return q.writeErr(err, "put sync state", "", "Account not found.")
}

// SyncStates lists every account's sync bookkeeping.
func (q *queries) SyncStates(ctx context.Context) ([]pbx2teams.SyncState, error) {
	rows, err := q.query(ctx, `SELECT `+syncStateCols+` FROM sync_state ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: sync states: %w", err)
	}
	defer rows.Close()
	var out []pbx2teams.SyncState
	for rows.Next() {
		var st pbx2teams.SyncState
		if err := scanSyncState(rows, &st); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// UsersByObjectIDs returns the account's users with the object IDs.
func (q *queries) UsersByObjectIDs(ctx context.Context, accountID string, objectIDs []string) ([]pbx2teams.User, error) {
	var out []pbx2teams.User
	// Chunks keep the statement within both databases' parameter limits.
	for len(objectIDs) > 0 {
		n := min(len(objectIDs), 500)
		chunk := objectIDs[:n]
		objectIDs = objectIDs[n:]
		args := make([]any, 0, n+1)
		args = append(args, accountID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := q.query(ctx, `SELECT `+userCols+` FROM users WHERE account_id = ? AND object_id IN (?`+
			strings.Repeat(", ?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: users by object ids: %w", err)
		}
		for rows.Next() {
			var u pbx2teams.User
			if err := scanUser(rows, &u); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, u)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MarkUnseenUsersRemoved marks users not seen since seenAt deleted and
// suspends the configured ones.
func (q *queries) MarkUnseenUsersRemoved(ctx context.Context, accountID string, seenAt time.Time, sample int) (int, []string, error) {
	const unseen = `account_id = ? AND deleted = ? AND (synced_at IS NULL OR synced_at < ?)`
	rows, err := q.query(ctx, `SELECT upn FROM users WHERE `+unseen+` ORDER BY upn_key LIMIT ?`, accountID, false, q.d.t(seenAt), sample)
	if err != nil {
		return 0, nil, fmt.Errorf("sqlstore: unseen users: %w", err)
	}
	var names []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return 0, nil, err
		}
		names = append(names, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	res, err := q.exec(ctx, `UPDATE users SET deleted = ?, suspended = CASE WHEN type <> '' THEN ? ELSE suspended END,
	updated_at = ? WHERE `+unseen, true, true, q.d.t(time.Now()), accountID, false, q.d.t(seenAt))
	if err != nil {
		return 0, nil, fmt.Errorf("sqlstore: mark unseen users removed: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), names, err
}

// PutAppInstall inserts or replaces an install record.
func (q *queries) PutAppInstall(ctx context.Context, in *pbx2teams.AppInstall) error {
	in.InstalledAt = norm(in.InstalledAt)
	_, err := q.exec(ctx, `INSERT INTO app_installs (account_id, object_id, catalog_app_id, installation_id, installed_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, object_id) DO UPDATE SET catalog_app_id = excluded.catalog_app_id,
	installation_id = excluded.installation_id, installed_at = excluded.installed_at`,
		in.AccountID, in.ObjectID, in.CatalogAppID, in.InstallationID, q.d.t(in.InstalledAt))
	return q.writeErr(err, "put app install", "", "Account not found.")
}

// DeleteAppInstall removes an install record (none is not an error).
func (q *queries) DeleteAppInstall(ctx context.Context, accountID, objectID string) error {
	_, err := q.exec(ctx, `DELETE FROM app_installs WHERE account_id = ? AND object_id = ?`, accountID, objectID)
	return err
}

func scanInstall(s scanner, in *pbx2teams.AppInstall) error {
	return s.Scan(&in.AccountID, &in.ObjectID, &in.CatalogAppID, &in.InstallationID, timeDest{&in.InstalledAt})
}

// AppInstall returns one user's install record.
func (q *queries) AppInstall(ctx context.Context, accountID, objectID string) (*pbx2teams.AppInstall, error) {
	var in pbx2teams.AppInstall
	err := scanInstall(q.queryRow(ctx, `SELECT account_id, object_id, catalog_app_id, installation_id, installed_at
FROM app_installs WHERE account_id = ? AND object_id = ?`, accountID, objectID), &in)
	if err != nil {
		return nil, rowErr(err, "App install", "app install")
	}
	return &in, nil
}

// AppInstalls lists install records by object ID.
func (q *queries) AppInstalls(ctx context.Context, accountID, afterObjectID string, limit int) ([]pbx2teams.AppInstall, error) {
	rows, err := q.query(ctx, `SELECT account_id, object_id, catalog_app_id, installation_id, installed_at
FROM app_installs WHERE account_id = ? AND object_id > ? ORDER BY object_id LIMIT ?`, accountID, afterObjectID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: app installs: %w", err)
	}
	defer rows.Close()
	var out []pbx2teams.AppInstall
	for rows.Next() {
		var in pbx2teams.AppInstall
		if err := scanInstall(rows, &in); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// upsertBatch is how many users one multi-row upsert carries: one
// statement per batch instead of one per user (parsing dominated).
const upsertBatch = 100

// UpsertDirectoryUsers is UpsertDirectoryUser for many users at once, in
// multi-row statements. Object IDs must be distinct.
func (q *queries) UpsertDirectoryUsers(ctx context.Context, us []*pbx2teams.User) error {
	now := q.d.t(norm(time.Now()))
	for len(us) > 0 {
		n := min(len(us), upsertBatch)
		batch := us[:n]
		us = us[n:]
		var b strings.Builder
		b.WriteString(`INSERT INTO users (id, account_id, object_id, upn, upn_key, display_name, mail, enabled,
	kind, has_teams_phone, has_calling_plan, suggested_type, conflict, deleted, synced_at, updated_at, search_identity,
	search) VALUES `)
		args := make([]any, 0, n*18)
		byObj := make(map[string]*pbx2teams.User, n)
		for i, u := range batch {
			if u.ObjectID == "" {
				return pbx2teams.Errorf(pbx2teams.EInvalid, "A directory user needs an object ID.")
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			id := u.ID
			if id == "" {
				id = newID(prefixUser)
			}
			u.SyncedAt = normPtr(u.SyncedAt)
			search := identitySearch(u)
			args = append(args, id, u.AccountID, u.ObjectID, u.UPN, strings.ToLower(u.UPN), u.DisplayName, u.Mail, u.Enabled,
				string(u.Kind), u.HasTeamsPhone, u.HasCallingPlan, string(u.SuggestedType), u.Conflict, u.Deleted,
				q.d.nt(u.SyncedAt), now, search, search)
			byObj[u.ObjectID] = u
		}
		b.WriteString(` ON CONFLICT (account_id, object_id) DO UPDATE SET
	upn = excluded.upn, upn_key = excluded.upn_key, display_name = excluded.display_name, mail = excluded.mail,
	enabled = excluded.enabled, kind = excluded.kind, has_teams_phone = excluded.has_teams_phone,
	has_calling_plan = excluded.has_calling_plan, suggested_type = excluded.suggested_type,
	conflict = excluded.conflict, deleted = excluded.deleted, synced_at = excluded.synced_at,
	search_identity = excluded.search_identity, search = excluded.search_identity || users.search_config
RETURNING id, object_id`)
		rows, err := q.w.QueryContext(ctx, q.d.bind(b.String()), args...)
		if err != nil {
			return q.writeErr(err, "upsert directory users", "A user ID already exists.", "Account not found.")
		}
		for rows.Next() {
			var id, obj string
			if err := rows.Scan(&id, &obj); err != nil {
				rows.Close()
				return err
			}
			if u := byObj[obj]; u != nil {
				u.ID = id
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return q.writeErr(err, "upsert directory users", "A user ID already exists.", "Account not found.")
		}
	}
	return nil
}
