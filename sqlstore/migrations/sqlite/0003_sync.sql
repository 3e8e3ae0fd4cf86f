-- Microsoft 365 directory sync: jobs, per-account bookkeeping, Phone App
-- installations.
CREATE TABLE sync_jobs (
	id           TEXT PRIMARY KEY,
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	status       TEXT NOT NULL,
	mode         TEXT NOT NULL,
	trigger_kind TEXT NOT NULL,
	diagnostic   INTEGER NOT NULL,
	requested_by TEXT NOT NULL,
	started_at   TEXT NOT NULL,
	finished_at  TEXT,
	counts       TEXT NOT NULL, -- JSON SyncCounts
	warnings     TEXT NOT NULL, -- JSON array of strings
	log          TEXT NOT NULL,
	error        TEXT NOT NULL
);
CREATE INDEX sync_jobs_account ON sync_jobs (account_id, started_at, id);
-- One sync per customer at a time, whichever node starts it.
CREATE UNIQUE INDEX sync_jobs_one_running ON sync_jobs (account_id) WHERE status = 'running';

CREATE TABLE sync_state (
	account_id           TEXT PRIMARY KEY REFERENCES accounts (id),
	delta_link           TEXT NOT NULL,
	last_full_at         TEXT,
	last_run_at          TEXT,
	phone_app_catalog_id TEXT NOT NULL,
	phone_app_error      TEXT NOT NULL,
	updated_at           TEXT NOT NULL
);

CREATE TABLE app_installs (
	account_id      TEXT NOT NULL REFERENCES accounts (id),
	object_id       TEXT NOT NULL,
	catalog_app_id  TEXT NOT NULL,
	installation_id TEXT NOT NULL,
	installed_at    TEXT NOT NULL,
	PRIMARY KEY (account_id, object_id)
);
-- Removal of unseen users scans the account's users by sync time.
CREATE INDEX users_synced ON users (account_id, synced_at) WHERE deleted = 0;
