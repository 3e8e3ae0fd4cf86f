-- The initial schema, SQLite flavour. Times are TEXT in the fixed-width UTC
-- form 2006-01-02T15:04:05.000000Z (so text order is time order); booleans are
-- INTEGER 0/1. Keep in step with ../postgres/0001_init.sql.

CREATE TABLE accounts (
	id         TEXT PRIMARY KEY,
	parent_id  TEXT REFERENCES accounts (id),
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	path       TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL
);
CREATE INDEX accounts_parent ON accounts (parent_id, name, id);

CREATE TABLE admins (
	id            TEXT PRIMARY KEY,
	account_id    TEXT NOT NULL REFERENCES accounts (id),
	email         TEXT NOT NULL,
	email_key     TEXT NOT NULL UNIQUE, -- lowercased email
	name          TEXT NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX admins_account ON admins (account_id, email_key);

CREATE TABLE licences (
	account_id TEXT NOT NULL REFERENCES accounts (id),
	sku        TEXT NOT NULL,
	quantity   INTEGER NOT NULL,
	expires_at TEXT,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (account_id, sku)
);

CREATE TABLE pbx_settings (
	account_id      TEXT PRIMARY KEY REFERENCES accounts (id),
	domain          TEXT NOT NULL,
	outbound_proxy  TEXT NOT NULL,
	transport       TEXT NOT NULL,
	register_expiry INTEGER NOT NULL,
	region          TEXT NOT NULL,
	updated_at      TEXT NOT NULL
);

CREATE TABLE teams_settings (
	account_id              TEXT PRIMARY KEY REFERENCES accounts (id),
	tenant_id               TEXT NOT NULL,
	tenant_name             TEXT NOT NULL,
	consented_at            TEXT,
	consent_error           TEXT NOT NULL,
	phone_app_enabled       INTEGER NOT NULL,
	phone_app_authorized_at TEXT,
	large_tenant_mode       INTEGER NOT NULL,
	standard_groups         TEXT NOT NULL, -- JSON array of groups
	phone_app_group         TEXT NOT NULL, -- JSON group, or '' for none
	sync_interval_minutes   INTEGER NOT NULL,
	updated_at              TEXT NOT NULL
);

CREATE TABLE users (
	id               TEXT PRIMARY KEY,
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	object_id        TEXT NOT NULL,
	upn              TEXT NOT NULL,
	upn_key          TEXT NOT NULL, -- lowercased UPN
	display_name     TEXT NOT NULL,
	mail             TEXT NOT NULL,
	enabled          INTEGER NOT NULL,
	kind             TEXT NOT NULL,
	has_teams_phone  INTEGER NOT NULL,
	has_calling_plan INTEGER NOT NULL,
	suggested_type   TEXT NOT NULL,
	conflict         TEXT NOT NULL,
	deleted          INTEGER NOT NULL,
	synced_at        TEXT,
	type             TEXT NOT NULL DEFAULT '',
	sip_username     TEXT NOT NULL DEFAULT '',
	auth_username    TEXT NOT NULL DEFAULT '',
	password_enc     BLOB,
	phone_number     TEXT NOT NULL DEFAULT '',
	external_id      TEXT NOT NULL DEFAULT '',
	suspended        INTEGER NOT NULL DEFAULT 0,
	contact_user     TEXT NOT NULL DEFAULT '',
	updated_at       TEXT NOT NULL,
	-- Lowercased search text: search = search_identity || search_config.
	-- The sync writes the identity half, the admin's configuration the
	-- config half (empty, or starting with a newline); each write rebuilds
	-- search from its half and the stored other half.
	search_identity  TEXT NOT NULL,
	search_config    TEXT NOT NULL DEFAULT '',
	search           TEXT NOT NULL
);
CREATE UNIQUE INDEX users_object ON users (account_id, object_id);
-- The list order, with the search text so that a search scans the index
-- alone and never the table.
CREATE INDEX users_list ON users (account_id, display_name, id, search);
CREATE INDEX users_upn ON users (account_id, upn_key);
CREATE INDEX users_phone ON users (account_id, phone_number) WHERE phone_number <> '';
CREATE UNIQUE INDEX users_contact ON users (contact_user) WHERE contact_user <> '';
CREATE INDEX users_configured ON users (id) WHERE type <> '';
-- Licence counts read this index alone.
CREATE INDEX users_licence ON users (account_id, type, enabled, suspended, deleted) WHERE type <> '';

CREATE TABLE audit (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id   TEXT NOT NULL,
	account_path TEXT NOT NULL, -- the account's path when written ('/' if none)
	actor_id     TEXT NOT NULL,
	actor_name   TEXT NOT NULL,
	action       TEXT NOT NULL,
	target       TEXT NOT NULL,
	detail       TEXT NOT NULL,
	at           TEXT NOT NULL
);
CREATE INDEX audit_path ON audit (account_path, id);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	account_id   TEXT NOT NULL REFERENCES accounts (id),
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	last_used_at TEXT,
	revoked_at   TEXT
);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at, id);

CREATE TABLE sessions (
	token_hash TEXT PRIMARY KEY,
	admin_id   TEXT NOT NULL REFERENCES admins (id),
	csrf_token TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
