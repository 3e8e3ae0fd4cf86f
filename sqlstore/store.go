// Package sqlstore implements pbx2teams.Store over database/sql, once for
// both SQLite and PostgreSQL. The SQL is written with ? placeholders and in
// the subset both databases share (ON CONFLICT upserts, RETURNING, row-value
// comparison); what differs is kept in a small dialect: placeholders, the
// account lock, the encoding of times, the schema files and how a driver
// reports constraint violations.
//
// The sqlite and postgres packages open a database and hand it to New.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Dialect names the database flavour and carries what only the driver knows.
type Dialect struct {
	// Name is "sqlite" or "postgres"; it chooses the SQL flavour and the
	// migrations directory.
	Name string
	// IsUniqueViolation reports whether err is a unique-constraint violation.
	IsUniqueViolation func(error) bool
	// IsForeignKeyViolation reports whether err is a foreign-key violation.
	IsForeignKeyViolation func(error) bool
}

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Config is what New needs.
type Config struct {
	// DB runs every write and every transaction.
	DB *sql.DB
	// ReadDB, if set, runs reads made outside a transaction. SQLite uses it
	// to keep readers off its single writer connection.
	ReadDB  *sql.DB
	Dialect Dialect
}

// Store is the SQL implementation of pbx2teams.Store. Its Queries methods
// run outside any transaction; InTx hands fn a transaction-bound set.
type Store struct {
	*queries
	db, rdb *sql.DB
}

var _ pbx2teams.Store = (*Store)(nil)

// dbtx is what *sql.DB and *sql.Tx have in common.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries implements pbx2teams.Queries over a writer and a reader, which
// are the same *sql.Tx inside a transaction.
type queries struct {
	w, r dbtx
	d    *dialect
}

// New checks the dialect, brings the schema up to date and returns the
// store. Close closes the databases of cfg.
func New(ctx context.Context, cfg Config) (*Store, error) {
	d, err := newDialect(cfg.Dialect)
	if err != nil {
		return nil, err
	}
	if cfg.DB == nil {
		return nil, errors.New("sqlstore: Config.DB is nil")
	}
	rdb := cfg.ReadDB
	if rdb == nil {
		rdb = cfg.DB
	}
	s := &Store{queries: &queries{w: cfg.DB, r: rdb, d: d}, db: cfg.DB, rdb: rdb}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// InTx runs fn in one transaction, committed if fn returns nil and rolled
// back if it returns an error or panics. Inside fn, use only the Queries
// passed to it: on SQLite a write through the Store itself waits for the
// single writer connection that the transaction holds (until ctx ends).
func (s *Store) InTx(ctx context.Context, fn func(q pbx2teams.Queries) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return fn(&queries{w: tx, r: tx, d: s.d})
	})
}

func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// The error of the rollback is not interesting: fn's error or
			// panic is what the caller needs to see.
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	committed = true
	return nil
}

// Ping checks both databases answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	if s.rdb != s.db {
		return s.rdb.PingContext(ctx)
	}
	return nil
}

// Close closes the databases.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// DB returns the database used for writes, for tools and tests that need
// raw SQL (e.g. to inspect a query plan).
func (s *Store) DB() *sql.DB { return s.db }

// dialect is the resolved form of Dialect.
type dialect struct {
	Dialect
	dollar   bool     // $n placeholders instead of ?
	lockSQL  string   // locks one account row for the transaction
	bindings sync.Map // query with ? -> query with $n
	timeArg  func(t time.Time) any
}

func newDialect(d Dialect) (*dialect, error) {
	if d.IsUniqueViolation == nil || d.IsForeignKeyViolation == nil {
		return nil, errors.New("sqlstore: the dialect needs IsUniqueViolation and IsForeignKeyViolation")
	}
	out := &dialect{Dialect: d}
	switch d.Name {
	case SQLite:
		// Write transactions begin IMMEDIATE (see package sqlite), so a
		// transaction already excludes every other writer; reading the row
		// only checks that the account exists.
		out.lockSQL = "SELECT 1 FROM accounts WHERE id = ?"
		out.timeArg = sqliteTime
	case Postgres:
		out.dollar = true
		// NO KEY UPDATE excludes other lockers but not the key-share
		// locks that foreign-key checks take, so a sync inserting the
		// account's users neither waits for nor blocks a locker.
		out.lockSQL = "SELECT 1 FROM accounts WHERE id = ? FOR NO KEY UPDATE"
		out.timeArg = postgresTime
	default:
		return nil, fmt.Errorf("sqlstore: unknown dialect %q", d.Name)
	}
	return out, nil
}

// bind rewrites the ? placeholders of query for the dialect. Queries of
// this package never hold a ? inside a string literal.
func (d *dialect) bind(query string) string {
	if !d.dollar {
		return query
	}
	if v, ok := d.bindings.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	out := b.String()
	d.bindings.Store(query, out)
	return out
}

func (q *queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.w.ExecContext(ctx, q.d.bind(query), args...)
}

// execOne runs an UPDATE or DELETE that must touch a row; it returns
// notFound when none matched.
func (q *queries) execOne(ctx context.Context, notFound error, query string, args ...any) error {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

func (q *queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.r.QueryContext(ctx, q.d.bind(query), args...)
}

func (q *queries) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.r.QueryRowContext(ctx, q.d.bind(query), args...)
}

// queryRowW is queryRow on the writer, for INSERT ... RETURNING.
func (q *queries) queryRowW(ctx context.Context, query string, args ...any) *sql.Row {
	return q.w.QueryRowContext(ctx, q.d.bind(query), args...)
}

// LockAccount serialises check-then-act writers of one account until the
// end of the transaction. It fails with ENotFound if the account does not
// exist.
func (q *queries) LockAccount(ctx context.Context, accountID string) error {
	var one int
	err := q.w.QueryRowContext(ctx, q.d.bind(q.d.lockSQL), accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("Account")
	}
	if err != nil {
		return fmt.Errorf("sqlstore: lock account: %w", err)
	}
	return nil
}

// notFound is the error for a missing row of the named thing.
func notFound(what string) error {
	return &pbx2teams.Error{Code: pbx2teams.ENotFound, Message: what + " not found."}
}

// rowErr turns sql.ErrNoRows into a not-found error and wraps anything
// else with the operation's name.
func rowErr(err error, what, op string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(what)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// writeErr maps constraint violations of a write to domain errors: a
// unique violation is EConflict with conflictMsg, a foreign-key violation
// ENotFound with fkMsg (the referenced row is missing).
func (q *queries) writeErr(err error, op, conflictMsg, fkMsg string) error {
	if conflictMsg == "" {
		conflictMsg = "This conflicts with an existing record."
	}
	if fkMsg == "" {
		fkMsg = "A record this refers to does not exist."
	}
	switch {
	case err == nil:
		return nil
	case q.d.IsUniqueViolation(err):
		return &pbx2teams.Error{Code: pbx2teams.EConflict, Message: conflictMsg, Err: err}
	case q.d.IsForeignKeyViolation(err):
		return &pbx2teams.Error{Code: pbx2teams.ENotFound, Message: fkMsg, Err: err}
	}
	var de *pbx2teams.Error
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}
