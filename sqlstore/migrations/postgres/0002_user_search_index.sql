-- A trigram index lets a search for a few users find them without scanning
-- the account (the planner still scans for terms that match most users).
-- pg_trgm ships with PostgreSQL and is a trusted extension, so the owner of
-- the database may create it; where it is missing or not allowed, searches
-- scan as on SQLite, and an administrator can later run these two
-- statements by hand.
DO $$
BEGIN
	EXECUTE 'CREATE EXTENSION IF NOT EXISTS pg_trgm';
	EXECUTE 'CREATE INDEX IF NOT EXISTS users_search ON users USING gin (search gin_trgm_ops)';
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'pg_trgm is not available (%); user search will scan', SQLERRM;
END
$$;
