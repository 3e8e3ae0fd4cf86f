package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations live in migrations/<dialect>/NNNN_name.sql. Both dialects have
// the same versions; a version is applied once, in its own transaction, and
// recorded in schema_migrations.
//
//go:embed migrations
var migrationsFS embed.FS

// migration is one schema step.
type migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations returns the steps of dialect name in version order.
func migrations(name string) ([]migration, error) {
	dir := path.Join("migrations", name)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations of %s: %w", name, err)
	}
	var out []migration
	seen := map[int]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlstore: migration %s/%s: name must start with a version number and _", dir, e.Name())
		}
		if seen[v] {
			return nil, fmt.Errorf("sqlstore: migration version %d appears twice in %s", v, dir)
		}
		seen[v] = true
		b, err := fs.ReadFile(migrationsFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// statements splits a migration into statements: each ends with a line
// whose last character is ';', outside a $$-quoted body (DO blocks).
// Comment-only and blank chunks are dropped.
func statements(src string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		for _, line := range strings.Split(s, "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "--") {
				out = append(out, s)
				return
			}
		}
	}
	inBody := false
	for _, line := range strings.Split(src, "\n") {
		cur.WriteString(line)
		cur.WriteByte('\n')
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") {
			continue
		}
		if strings.Count(t, "$$")%2 == 1 {
			inBody = !inBody
		}
		if !inBody && strings.HasSuffix(t, ";") {
			flush()
		}
	}
	flush()
	return out
}

// migrationLock is the PostgreSQL advisory lock key that serialises nodes
// migrating the same database at once.
const migrationLock = 0x7062783274656d73 // "pbx2tems"

// lockMigrations makes tx the only migrator until it ends. On SQLite the
// IMMEDIATE transaction already is.
func (s *Store) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if s.d.Name != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock))
	return err
}

// migrate applies the migrations not yet recorded.
func (s *Store) migrate(ctx context.Context) error {
	steps, err := migrations(s.d.Name)
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: create schema_migrations: %w", err)
	}
	var newest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT max(version) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("sqlstore: read schema version: %w", err)
	}
	if len(steps) > 0 && newest.Valid && int(newest.Int64) > steps[len(steps)-1].Version {
		return fmt.Errorf("sqlstore: the database schema is at version %d, newer than this binary knows (%d); run a newer binary",
			newest.Int64, steps[len(steps)-1].Version)
	}
	for _, m := range steps {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := s.lockMigrations(ctx, tx); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.d.bind("SELECT count(*) FROM schema_migrations WHERE version = ?"), m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil // applied earlier, or by another node just now
			}
			for _, stmt := range statements(m.SQL) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%w\nin statement:\n%s", err, stmt)
				}
			}
			_, err := tx.ExecContext(ctx, s.d.bind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
				m.Version, m.Name, time.Now().UTC().Format(time.RFC3339))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlstore: migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// LatestVersion is the schema version this binary brings a database of the
// dialect (SQLite or Postgres) to.
func LatestVersion(dialect string) (int, error) {
	steps, err := migrations(dialect)
	if err != nil || len(steps) == 0 {
		return 0, fmt.Errorf("sqlstore: no migrations for %q: %v", dialect, err)
	}
	return steps[len(steps)-1].Version, nil
}
