package sqlstore

import (
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pbx2teams/pbx2teams"
)

// sqliteTimeLayout is how SQLite stores times: UTC, fixed width, so that
// comparing the text compares the times.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// norm returns t in UTC at microsecond precision, the precision both
// databases keep; stored structs are updated with it so that they equal
// what a later read returns.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func normPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := norm(*t)
	return &n
}

func sqliteTime(t time.Time) any   { return norm(t).Format(sqliteTimeLayout) }
func postgresTime(t time.Time) any { return norm(t) }

// t encodes a time as a query argument.
func (d *dialect) t(t time.Time) any { return d.timeArg(t) }

// nt encodes an optional time; nil is NULL.
func (d *dialect) nt(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.timeArg(*t)
}

// timeDest scans a time column of either dialect into *p.
type timeDest struct{ p *time.Time }

func (s timeDest) Scan(v any) error {
	t, ok, err := decodeTime(v)
	if err != nil {
		return err
	}
	if !ok {
		*s.p = time.Time{}
		return nil
	}
	*s.p = t
	return nil
}

// nullTimeDest scans a nullable time column into *p (nil for NULL).
type nullTimeDest struct{ p **time.Time }

func (s nullTimeDest) Scan(v any) error {
	t, ok, err := decodeTime(v)
	if err != nil {
		return err
	}
	if !ok {
		*s.p = nil
		return nil
	}
	*s.p = &t
	return nil
}

func decodeTime(v any) (time.Time, bool, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return norm(x), true, nil
	case string:
		return parseTime(x)
	case []byte:
		return parseTime(string(x))
	}
	return time.Time{}, false, fmt.Errorf("sqlstore: cannot read %T as a time", v)
}

func parseTime(s string) (time.Time, bool, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlstore: bad stored time %q: %w", s, err)
	}
	return norm(t), true, nil
}

// nullString maps "" to NULL for optional references.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix followed by 80 random bits, e.g. "usr_k3j5...".
func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return prefix + idEncoding.EncodeToString(b[:])
}

// ID prefixes for rows created without an ID.
const (
	prefixAccount = "acc_"
	prefixAdmin   = "adm_"
	prefixUser    = "usr_"
	prefixAPIKey  = "key_"
)

// prefixArgs returns the SQL condition that column starts with prefix, and
// its arguments; substr is exact (unlike LIKE on SQLite, which ignores case)
// and needs no escaping.
func prefixCond(column, prefix string) (string, []any) {
	return "substr(" + column + ", 1, ?) = ?", []any{utf8.RuneCountInString(prefix), prefix}
}

// likeContains returns a LIKE pattern (with ESCAPE '\') matching text that
// contains s.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// searchText is the lowercased text a search matches, from fields joined by
// newlines so that a term does not match across two of them, cut to at most
// max bytes (it is part of an index row on PostgreSQL, which has a size
// limit; no one searches past the first few hundred characters).
func searchText(max int, fields ...string) string {
	var b strings.Builder
	for _, f := range fields {
		if f == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strings.ToLower(f))
	}
	return truncateUTF8(b.String(), max)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// userCursor is the key of the last user of a page.
type userCursor struct {
	DisplayName string
	ID          string
}

func encodeCursor(c userCursor) string {
	b, _ := json.Marshal([]string{c.DisplayName, c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = &pbx2teams.Error{Code: pbx2teams.EInvalid,
	Message: "The page cursor is not valid; start again from the first page."}

func decodeCursor(s string) (userCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return userCursor{}, errBadCursor
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil || len(a) != 2 || a[1] == "" {
		return userCursor{}, errBadCursor
	}
	return userCursor{DisplayName: a[0], ID: a[1]}, nil
}
