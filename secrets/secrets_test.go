package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestBoxRoundTripAndBinding(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	b, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := b.Seal([]byte("s3cret"), []byte("usr_1"))
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	pt, err := b.Open(sealed, []byte("usr_1"))
	if err != nil || string(pt) != "s3cret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := b.Open(sealed, []byte("usr_2")); err == nil {
		t.Fatal("a value sealed for one user opened for another")
	}
	other, _ := NewBox(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, []byte("usr_1")); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if _, err := b.Open([]byte{1, 2, 3}, nil); err == nil {
		t.Fatal("opened a truncated value")
	}
}

func TestKeyFileCreatedPrivateAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, err := LoadOrCreateKey("", path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %o, want 600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey("", path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load gave another key (%v)", err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey("", path); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
	if _, err := LoadOrCreateKey("abcd", path); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestPasswordHash(t *testing.T) {
	h := HashPassword("correct horse")
	if !VerifyPassword(h, "correct horse") {
		t.Fatal("right password refused")
	}
	if VerifyPassword(h, "wrong horse") {
		t.Fatal("wrong password accepted")
	}
	if HashPassword("correct horse") == h {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	if VerifyPassword("garbage", "x") {
		t.Fatal("malformed hash accepted")
	}
}
