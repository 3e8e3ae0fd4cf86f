package sqlstore

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pbx2teams/pbx2teams"
)

func TestBind(t *testing.T) {
	pg, err := newDialect(Dialect{Name: Postgres, IsUniqueViolation: func(error) bool { return false },
		IsForeignKeyViolation: func(error) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	lite, err := newDialect(Dialect{Name: SQLite, IsUniqueViolation: func(error) bool { return false },
		IsForeignKeyViolation: func(error) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	q := "SELECT a FROM t WHERE b = ? AND (c, d) > (?, ?) LIMIT ?"
	if got, want := pg.bind(q), "SELECT a FROM t WHERE b = $1 AND (c, d) > ($2, $3) LIMIT $4"; got != want {
		t.Errorf("postgres bind = %q, want %q", got, want)
	}
	if got := pg.bind(q); got != pg.bind(q) {
		t.Error("cached bind differs")
	}
	if got := lite.bind(q); got != q {
		t.Errorf("sqlite bind changed the query: %q", got)
	}
	if _, err := newDialect(Dialect{Name: "oracle", IsUniqueViolation: func(error) bool { return false },
		IsForeignKeyViolation: func(error) bool { return false }}); err == nil {
		t.Error("unknown dialect accepted")
	}
	if _, err := newDialect(Dialect{Name: SQLite}); err == nil {
		t.Error("dialect without error classifiers accepted")
	}
}

func TestStatements(t *testing.T) {
	src := `-- header comment; with a semicolon inside
CREATE TABLE a (
	x TEXT, -- a column
	y TEXT
);
CREATE INDEX a_x ON a (x) WHERE x <> '';
DO $$
BEGIN
	EXECUTE 'SELECT 1';
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'no';
END
$$;

-- trailing comment
`
	got := statements(src)
	if len(got) != 3 || !strings.HasPrefix(got[0], "-- header") || !strings.HasSuffix(got[0], ");") ||
		got[1] != "CREATE INDEX a_x ON a (x) WHERE x <> '';" ||
		!strings.HasPrefix(got[2], "DO $$") || !strings.HasSuffix(got[2], "END\n$$;") {
		t.Errorf("statements = %q", got)
	}
}

// TestMigrationsMatch checks both dialects have the same versions and the
// same tables and indexes, so neither database falls behind the other.
func TestMigrationsMatch(t *testing.T) {
	lite, err := migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrations(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 || len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Version != pg[i].Version || lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: sqlite %s, postgres %s", i, lite[i].Name, pg[i].Name)
		}
		if a, b := objects(lite[i].SQL), objects(pg[i].SQL); !reflect.DeepEqual(a, b) {
			t.Errorf("migration %s creates different objects:\nsqlite   %v\npostgres %v", lite[i].Name, a, b)
		}
	}
}

// objects lists the "CREATE TABLE name" and "CREATE INDEX name" of a script.
func objects(src string) []string {
	var out []string
	for _, st := range statements(src) {
		for _, line := range strings.Split(st, "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "CREATE" {
				if f[1] == "UNIQUE" {
					f = f[1:]
				}
				out = append(out, f[1]+" "+f[2])
			}
		}
	}
	return out
}

func TestCursor(t *testing.T) {
	c := userCursor{DisplayName: "Zoë \"Z\" Smith", ID: "usr_abc"}
	got, err := decodeCursor(encodeCursor(c))
	if err != nil || got != c {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{"%%%", "e30", "WyJhIiwiIl0"} { // not base64, {}, ["a",""]
		if _, err := decodeCursor(bad); pbx2teams.ErrorCode(err) != pbx2teams.EInvalid {
			t.Errorf("decodeCursor(%q) err = %v, want invalid", bad, err)
		}
	}
}

func TestTimeCodec(t *testing.T) {
	in := time.Date(2025, 1, 2, 3, 4, 5, 678912345, time.FixedZone("X", -5*3600))
	s := sqliteTime(in).(string)
	if s != "2025-01-02T08:04:05.678912Z" {
		t.Errorf("sqlite time = %q", s)
	}
	var out time.Time
	if err := (timeDest{&out}).Scan(s); err != nil || !out.Equal(in.Truncate(time.Microsecond)) || out.Location() != time.UTC {
		t.Errorf("scan %q = %v, %v", s, out, err)
	}
	var p *time.Time
	if err := (nullTimeDest{&p}).Scan(nil); err != nil || p != nil {
		t.Errorf("scan NULL = %v, %v", p, err)
	}
	if err := (nullTimeDest{&p}).Scan(in); err != nil || p == nil || !p.Equal(in.Truncate(time.Microsecond)) {
		t.Errorf("scan time.Time = %v, %v", p, err)
	}
	if err := (timeDest{&out}).Scan(42.0); err == nil {
		t.Error("scan of a float as a time succeeded")
	}
	// Fixed width keeps text order equal to time order.
	a, b := sqliteTime(in).(string), sqliteTime(in.Add(time.Second)).(string)
	if !(a < b) || len(a) != len(b) {
		t.Errorf("%q and %q do not sort as times", a, b)
	}
}

func TestLikeContains(t *testing.T) {
	if got, want := likeContains(`50%_a\b`), `%50\%\_a\\b%`; got != want {
		t.Errorf("likeContains = %q, want %q", got, want)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID(prefixUser)
		if !strings.HasPrefix(id, "usr_") || len(id) != 4+16 || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestSearchText(t *testing.T) {
	if got := searchText(100, "A@B.example", "", "Zoë"); got != "a@b.example\nzoë" {
		t.Errorf("searchText = %q", got)
	}
	long := strings.Repeat("é", 400) // 800 bytes
	got := searchText(maxIdentitySearch, long, long)
	if len(got) > maxIdentitySearch || !utf8.ValidString(got) {
		t.Errorf("capped search text: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	u := &pbx2teams.User{UPN: long, DisplayName: long, Mail: long, SIPUsername: long, PhoneNumber: long}
	if n := len(identitySearch(u)) + len(configSearch(u)); n > 768 {
		t.Errorf("search text of %d bytes, want at most 768", n)
	}
}
