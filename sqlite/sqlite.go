// Package sqlite opens the embedded SQLite store (modernc.org/sqlite, pure
// Go), the default store of a single node.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"github.com/pbx2teams/pbx2teams/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Pragmas set on every connection through the DSN, so that each connection
// database/sql opens gets them:
//   - WAL lets readers run while one writer writes;
//   - busy_timeout makes a connection wait for a lock instead of failing;
//   - synchronous=NORMAL is safe with WAL and much faster than FULL;
//   - foreign keys are off by default in SQLite.
var pragmas = []string{
	"busy_timeout(10000)",
	"journal_mode(WAL)",
	"synchronous(NORMAL)",
	"foreign_keys(ON)",
	"cache_size(-16000)", // 16 MB of page cache per connection
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
//
// Writes go through a single connection whose transactions begin IMMEDIATE:
// a transaction holds SQLite's write lock from its first statement, so
// writers are serialised and LockAccount needs to do nothing more. Reads
// outside transactions use a separate read-only pool and never wait for
// the writer.
func Open(path string) (*sqlstore.Store, error) {
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: %q is not a usable database file path", path)
	}
	w, err := openPool(path, false)
	if err != nil {
		return nil, err
	}
	// One writer: waiting in database/sql's queue is fair and cheap, where
	// several writers would poll SQLite's busy handler.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	// Open the writer first: it creates the file and switches it to WAL
	// before a read-only connection looks at it.
	ctx := context.Background()
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := openPool(path, true)
	if err != nil {
		w.Close()
		return nil, err
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	s, err := sqlstore.New(ctx, sqlstore.Config{
		DB:     w,
		ReadDB: r,
		Dialect: sqlstore.Dialect{
			Name:                  sqlstore.SQLite,
			IsUniqueViolation:     isUniqueViolation,
			IsForeignKeyViolation: isForeignKeyViolation,
		},
	})
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

func openPool(path string, readOnly bool) (*sql.DB, error) {
	v := url.Values{}
	for _, p := range pragmas {
		v.Add("_pragma", p)
	}
	if readOnly {
		// A write sent to the read pool by mistake fails loudly instead
		// of racing the writer.
		v.Add("_pragma", "query_only(1)")
	} else {
		v.Set("_txlock", "immediate")
	}
	db, err := sql.Open("sqlite", path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

func errorCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := errorCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKeyViolation(err error) bool {
	return errorCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
