-- The initial schema, PostgreSQL flavour. Text that is sorted or compared as
-- a key uses COLLATE "C" so that order is byte order, as on SQLite, whatever
-- the database's locale. Keep in step with ../sqlite/0001_init.sql.

CREATE TABLE accounts (
	id         TEXT COLLATE "C" PRIMARY KEY,
	parent_id  TEXT COLLATE "C" REFERENCES accounts (id),
	kind       TEXT NOT NULL,
	name       TEXT COLLATE "C" NOT NULL,
	path       TEXT COLLATE "C" NOT NULL UNIQUE,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX accounts_parent ON accounts (parent_id, name, id);

CREATE TABLE admins (
	id            TEXT COLLATE "C" PRIMARY KEY,
	account_id    TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
	email         TEXT NOT NULL,
	email_key     TEXT COLLATE "C" NOT NULL UNIQUE, -- lowercased email
	name          TEXT COLLATE "C" NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL,
	disabled      BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX admins_account ON admins (account_id, email_key);

CREATE TABLE licences (
	account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
	sku        TEXT COLLATE "C" NOT NULL,
	quantity   INTEGER NOT NULL,
	expires_at TIMESTAMPTZ,
	updated_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (account_id, sku)
);

CREATE TABLE pbx_settings (
	account_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id),
	domain          TEXT NOT NULL,
	outbound_proxy  TEXT NOT NULL,
	transport       TEXT NOT NULL,
	register_expiry INTEGER NOT NULL,
	region          TEXT NOT NULL,
	updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE teams_settings (
	account_id              TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id),
	tenant_id               TEXT NOT NULL,
	tenant_name             TEXT NOT NULL,
	consented_at            TIMESTAMPTZ,
	consent_error           TEXT NOT NULL,
	phone_app_enabled       BOOLEAN NOT NULL,
	phone_app_authorized_at TIMESTAMPTZ,
	large_tenant_mode       BOOLEAN NOT NULL,
	standard_groups         TEXT NOT NULL, -- JSON array of groups
	phone_app_group         TEXT NOT NULL, -- JSON group, or '' for none
	sync_interval_minutes   INTEGER NOT NULL,
	updated_at              TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
	id               TEXT COLLATE "C" PRIMARY KEY,
	account_id       TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
	object_id        TEXT COLLATE "C" NOT NULL,
	upn              TEXT NOT NULL,
	upn_key          TEXT COLLATE "C" NOT NULL, -- lowercased UPN
	display_name     TEXT COLLATE "C" NOT NULL,
	mail             TEXT NOT NULL,
	enabled          BOOLEAN NOT NULL,
	kind             TEXT NOT NULL,
	has_teams_phone  BOOLEAN NOT NULL,
	has_calling_plan BOOLEAN NOT NULL,
	suggested_type   TEXT NOT NULL,
	conflict         TEXT NOT NULL,
	deleted          BOOLEAN NOT NULL,
	synced_at        TIMESTAMPTZ,
	type             TEXT NOT NULL DEFAULT '',
	sip_username     TEXT NOT NULL DEFAULT '',
	auth_username    TEXT NOT NULL DEFAULT '',
	password_enc     BYTEA,
	phone_number     TEXT COLLATE "C" NOT NULL DEFAULT '',
	external_id      TEXT NOT NULL DEFAULT '',
	suspended        BOOLEAN NOT NULL DEFAULT false,
	contact_user     TEXT COLLATE "C" NOT NULL DEFAULT '',
	updated_at       TIMESTAMPTZ NOT NULL,
	-- Lowercased search text: search = search_identity || search_config.
	-- The sync writes the identity half, the admin's configuration the
	-- config half (empty, or starting with a newline); each write rebuilds
	-- search from its half and the stored other half.
	search_identity  TEXT NOT NULL,
	search_config    TEXT NOT NULL DEFAULT '',
	search           TEXT NOT NULL
);
CREATE UNIQUE INDEX users_object ON users (account_id, object_id);
-- The list order, with the search text so that a search can scan the
-- index alone. (An index row is limited to about 2.7 kB: the search text is
-- capped at 768 bytes and Entra display names at 256 characters.)
CREATE INDEX users_list ON users (account_id, display_name, id) INCLUDE (search);
CREATE INDEX users_upn ON users (account_id, upn_key);
CREATE INDEX users_phone ON users (account_id, phone_number) WHERE phone_number <> '';
CREATE UNIQUE INDEX users_contact ON users (contact_user) WHERE contact_user <> '';
CREATE INDEX users_configured ON users (id) WHERE type <> '';
-- Licence counts read this index alone.
CREATE INDEX users_licence ON users (account_id, type, enabled, suspended, deleted) WHERE type <> '';

CREATE TABLE audit (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id   TEXT COLLATE "C" NOT NULL,
	account_path TEXT COLLATE "C" NOT NULL, -- the account's path when written ('/' if none)
	actor_id     TEXT NOT NULL,
	actor_name   TEXT NOT NULL,
	action       TEXT NOT NULL,
	target       TEXT NOT NULL,
	detail       TEXT NOT NULL,
	at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_path ON audit (account_path, id);

CREATE TABLE api_keys (
	id           TEXT COLLATE "C" PRIMARY KEY,
	account_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
	name         TEXT COLLATE "C" NOT NULL,
	prefix       TEXT NOT NULL,
	hash         TEXT COLLATE "C" NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	last_used_at TIMESTAMPTZ,
	revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at, id);

CREATE TABLE sessions (
	token_hash TEXT COLLATE "C" PRIMARY KEY,
	admin_id   TEXT COLLATE "C" NOT NULL REFERENCES admins (id),
	csrf_token TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE settings (
	key   TEXT COLLATE "C" PRIMARY KEY,
	value TEXT NOT NULL
);
