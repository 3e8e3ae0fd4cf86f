-- The call log (issue 5) and each customer's SBC subdomain label. Keep in
-- step with ../sqlite/0004_calls.sql.

-- One finished call. user_id is '' for calls refused before a user was
-- known, so it is not a foreign key.
CREATE TABLE calls (
	id             TEXT COLLATE "C" PRIMARY KEY,
	account_id     TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
	user_id        TEXT COLLATE "C" NOT NULL,
	direction      TEXT NOT NULL,
	route          TEXT NOT NULL,
	from_number    TEXT NOT NULL,
	from_name      TEXT NOT NULL,
	to_number      TEXT NOT NULL,
	started_at     TIMESTAMPTZ NOT NULL,
	answered_at    TIMESTAMPTZ,
	ended_at       TIMESTAMPTZ NOT NULL,
	result         TEXT COLLATE "C" NOT NULL,
	pbx_status     INTEGER NOT NULL,
	teams_status   INTEGER NOT NULL,
	ended_by       TEXT NOT NULL,
	advice         TEXT NOT NULL,
	media          TEXT NOT NULL, -- JSON CallMedia
	teams_peer     TEXT NOT NULL,
	added_delay_ns BIGINT NOT NULL
);
-- The log pages newest first (keyset on started_at, id), per account, per
-- user and per result.
CREATE INDEX calls_account_started ON calls (account_id, started_at DESC, id DESC);
CREATE INDEX calls_account_user ON calls (account_id, user_id, started_at DESC, id DESC);
CREATE INDEX calls_account_result ON calls (account_id, result, started_at DESC, id DESC);
-- Pruning by age.
CREATE INDEX calls_ended ON calls (ended_at);

-- The SIP trace of a call, kept for a shorter time than the record.
CREATE TABLE call_traces (
	call_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
	account_id  TEXT COLLATE "C" NOT NULL,
	sip_call_id TEXT NOT NULL,
	ended_at    TIMESTAMPTZ NOT NULL, -- the call's, for pruning
	messages    TEXT NOT NULL, -- JSON array of TraceMessage
	dropped     INTEGER NOT NULL
);
CREATE INDEX call_traces_ended ON call_traces (ended_at);

-- The customer's label under the provider's SBC base FQDN; '' until one is
-- assigned (the service assigns a default), unique otherwise.
ALTER TABLE teams_settings ADD COLUMN sbc_label TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE UNIQUE INDEX teams_settings_sbc_label ON teams_settings (sbc_label) WHERE sbc_label <> '';
