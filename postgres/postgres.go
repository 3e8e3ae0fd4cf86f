// Package postgres opens the PostgreSQL store that several nodes of a
// cluster share (driver: github.com/jackc/pgx/v5 through database/sql).
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pbx2teams/pbx2teams/sqlstore"
)

// SQLSTATE codes of constraint violations.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// Open connects to the database at url (postgres://user:pass@host:port/db?...)
// and brings its schema up to date. Nodes starting together migrate one at a
// time (an advisory lock). LockAccount locks the account's row (SELECT ...
// FOR NO KEY UPDATE) until the transaction ends.
func Open(ctx context.Context, url string) (*sqlstore.Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// Plan each statement for its arguments: a user search must use the
	// trigram index for a rare term and scan for a common one, which a
	// cached generic plan cannot do. Planning these small queries is cheap.
	if _, ok := cfg.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s, err := sqlstore.New(ctx, sqlstore.Config{
		DB: db,
		Dialect: sqlstore.Dialect{
			Name:                  sqlstore.Postgres,
			IsUniqueViolation:     func(err error) bool { return sqlState(err) == uniqueViolation },
			IsForeignKeyViolation: func(err error) bool { return sqlState(err) == foreignKeyViolation },
		},
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

func sqlState(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
