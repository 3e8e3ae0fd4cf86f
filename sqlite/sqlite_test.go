package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sqlite"
	"github.com/pbx2teams/pbx2teams/sqlstore"
	"github.com/pbx2teams/pbx2teams/storetest"
)

func openTemp(t *testing.T) pbx2teams.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, openTemp)
}

// TestReopen checks that data and schema survive a restart and that
// migrations are not applied twice.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a := &pbx2teams.Account{Kind: pbx2teams.KindOperator, Name: "op"}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Account(ctx, a.ID)
	if err != nil || got.Name != "op" {
		t.Fatalf("after reopen, Account = %+v, %v", got, err)
	}
	// Every migration recorded once, up to this binary's version.
	var n, top int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	latest, err := sqlstore.LatestVersion(sqlstore.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if n != latest || top != latest {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, top, latest)
	}
}

// TestPragmas checks the settings the writer connection carries.
func TestPragmas(t *testing.T) {
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000", "synchronous": "1",
	} {
		var got string
		if err := s.DB().QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// TestReadDuringWrite checks that reads outside transactions go on while a
// write transaction is open, and see only committed data.
func TestReadDuringWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openTemp(t)
	committed := &pbx2teams.Account{Kind: pbx2teams.KindOperator, Name: "committed"}
	if err := s.CreateAccount(ctx, committed); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(q pbx2teams.Queries) error {
		pending := &pbx2teams.Account{Kind: pbx2teams.KindOperator, Name: "pending"}
		if err := q.CreateAccount(ctx, pending); err != nil {
			return err
		}
		// The transaction holds the write lock; these reads use other
		// connections.
		done := make(chan error, 1)
		go func() {
			if _, err := s.Account(ctx, committed.ID); err != nil {
				done <- err
				return
			}
			_, err := s.Account(ctx, pending.ID)
			if pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
				done <- fmt.Errorf("uncommitted account visible outside the transaction (err %v)", err)
				return
			}
			done <- nil
		}()
		return <-done
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "a?b"} {
		if s, err := sqlite.Open(p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// BenchmarkUsers100k measures the users list at 100,000 users of one
// customer: go test -run '^$' -bench Users100k ./sqlite/
func BenchmarkUsers100k(b *testing.B) {
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkUsers(b, s, 100000, nil)
}
