// Package sipx holds small SIP helpers shared by the registration engine and
// the B2BUA: digest authentication (client side), RFC 3263 target
// resolution and transport setup on top of sipgo.
package sipx

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Digest algorithms this package can answer, in order of preference.
const (
	AlgMD5        = "MD5"
	AlgMD5Sess    = "MD5-sess"
	AlgSHA256     = "SHA-256"
	AlgSHA256Sess = "SHA-256-sess"
)

// Challenge is one parsed digest challenge from a WWW-Authenticate or
// Proxy-Authenticate header (RFC 2617, RFC 7616, RFC 8760).
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm string // canonical spelling: MD5, MD5-sess, SHA-256, SHA-256-sess
	QOP       bool   // the server offered qop=auth (we never use auth-int)
	Stale     bool   // the previous nonce was stale, the credentials were fine
	// HasOpaque tells an empty opaque="" apart from no opaque at all; both
	// must be echoed the way the server sent them.
	HasOpaque bool
}

// ErrNotDigest is returned for a challenge of another scheme (e.g. Basic).
var ErrNotDigest = errors.New("not a Digest challenge")

// ErrUnsupportedDigest is returned when the challenge asks for an
// algorithm or qop we cannot answer.
var ErrUnsupportedDigest = errors.New("unsupported digest algorithm or qop")

// ParseChallenge parses the value of a WWW-Authenticate or
// Proxy-Authenticate header. It is lenient about spacing, case and quoting,
// and never panics on malformed input.
func ParseChallenge(v string) (Challenge, error) {
	var c Challenge
	v = strings.TrimSpace(v)
	if len(v) < 7 || !strings.EqualFold(v[:6], "Digest") || (v[6] != ' ' && v[6] != '\t') {
		return c, ErrNotDigest
	}
	qopSeen := false
	err := eachParam(v[7:], func(k, val string) {
		switch strings.ToLower(k) {
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "opaque":
			c.Opaque, c.HasOpaque = val, true
		case "algorithm":
			c.Algorithm = val
		case "stale":
			c.Stale = strings.EqualFold(val, "true")
		case "qop":
			qopSeen = true
			for _, q := range strings.Split(val, ",") {
				if strings.EqualFold(strings.TrimSpace(q), "auth") {
					c.QOP = true
				}
			}
		}
	})
	if err != nil {
		return c, err
	}
	if c.Nonce == "" {
		return c, errors.New("digest challenge without nonce")
	}
	switch strings.ToUpper(c.Algorithm) {
	case "", "MD5":
		c.Algorithm = AlgMD5
	case "MD5-SESS":
		c.Algorithm = AlgMD5Sess
	case "SHA-256":
		c.Algorithm = AlgSHA256
	case "SHA-256-SESS":
		c.Algorithm = AlgSHA256Sess
	default:
		return c, ErrUnsupportedDigest
	}
	if qopSeen && !c.QOP {
		return c, ErrUnsupportedDigest // only auth-int (or unknown) offered
	}
	return c, nil
}

// Strength orders algorithms: a client offered several challenges picks
// the strongest it supports (RFC 8760 §2.4).
func (c *Challenge) Strength() int {
	switch c.Algorithm {
	case AlgSHA256, AlgSHA256Sess:
		return 2
	case AlgMD5, AlgMD5Sess:
		return 1
	}
	return 0
}

// eachParam walks a comma separated auth-param list (k=v or k="v").
func eachParam(s string, fn func(k, v string)) error {
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		ks := i
		for i < len(s) && s[i] != '=' && s[i] != ',' {
			i++
		}
		key := strings.TrimSpace(s[ks:i])
		if i >= len(s) || s[i] == ',' {
			fn(key, "")
			continue
		}
		i++ // '='
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val string
		if i < len(s) && s[i] == '"' {
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if ch == '"' {
					i++
					closed = true
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return errors.New("unterminated quoted string in digest challenge")
			}
			val = b.String()
		} else {
			vs := i
			for i < len(s) && s[i] != ',' {
				i++
			}
			val = strings.TrimSpace(s[vs:i])
		}
		fn(key, val)
	}
	return nil
}

// Answer is what a client needs to answer a challenge: the request method
// and URI and the user's credentials. NC is the nonce count (1 for the first
// use of a nonce, incremented for each reuse); CNonce is generated when
// empty.
type Answer struct {
	Method   string
	URI      string
	Username string
	Password string
	NC       uint32
	CNonce   string
}

// Authorization builds the Authorization / Proxy-Authorization header value
// answering c. The password never appears in the result.
func Authorization(c *Challenge, a Answer) (string, error) {
	sha := false
	switch c.Algorithm {
	case AlgMD5, AlgMD5Sess, "":
	case AlgSHA256, AlgSHA256Sess:
		sha = true
	default:
		return "", ErrUnsupportedDigest
	}
	sess := strings.HasSuffix(c.Algorithm, "-sess")
	nc := a.NC
	if nc == 0 {
		nc = 1
	}
	cnonce := a.CNonce
	if cnonce == "" && (c.QOP || sess) {
		cnonce = NewCNonce()
	}
	// Hashes are computed into stack buffers: this runs for every REGISTER.
	var in [512]byte
	var ha1, ha2, resp [64]byte
	h := func(dst *[64]byte, parts ...string) []byte {
		b := in[:0]
		for _, p := range parts {
			b = append(b, p...)
		}
		return hexSum(dst, b, sha)
	}
	a1 := h(&ha1, a.Username, ":", c.Realm, ":", a.Password)
	if sess {
		a1 = h(&ha1, string(a1), ":", c.Nonce, ":", cnonce)
	}
	a2 := h(&ha2, a.Method, ":", a.URI)
	var ncs string
	var r []byte
	if c.QOP {
		ncs = ncString(nc)
		r = h(&resp, string(a1), ":", c.Nonce, ":", ncs, ":", cnonce, ":auth:", string(a2))
	} else {
		r = h(&resp, string(a1), ":", c.Nonce, ":", string(a2))
	}

	var b strings.Builder
	b.Grow(160 + len(a.Username) + len(c.Realm) + len(c.Nonce) + len(a.URI) + len(c.Opaque) + len(cnonce))
	b.WriteString(`Digest username="`)
	writeQuoted(&b, a.Username)
	b.WriteString(`", realm="`)
	writeQuoted(&b, c.Realm)
	b.WriteString(`", nonce="`)
	writeQuoted(&b, c.Nonce)
	b.WriteString(`", uri="`)
	writeQuoted(&b, a.URI)
	b.WriteString(`", response="`)
	b.Write(r)
	b.WriteString(`", algorithm=`)
	b.WriteString(c.Algorithm)
	if c.QOP {
		b.WriteString(`, qop=auth, nc=`)
		b.WriteString(ncs)
		b.WriteString(`, cnonce="`)
		b.WriteString(cnonce)
		b.WriteByte('"')
	} else if cnonce != "" {
		b.WriteString(`, cnonce="`)
		b.WriteString(cnonce)
		b.WriteByte('"')
	}
	if c.HasOpaque {
		b.WriteString(`, opaque="`)
		writeQuoted(&b, c.Opaque)
		b.WriteByte('"')
	}
	return b.String(), nil
}

// hexSum hashes b (MD5 or SHA-256) and hex-encodes the sum into dst.
func hexSum(dst *[64]byte, b []byte, sha bool) []byte {
	if sha {
		sum := sha256.Sum256(b)
		hex.Encode(dst[:], sum[:])
		return dst[:64]
	}
	sum := md5.Sum(b)
	hex.Encode(dst[:], sum[:])
	return dst[:32]
}

func ncString(nc uint32) string {
	s := strconv.FormatUint(uint64(nc), 16)
	return "00000000"[len(s):] + s
}

func writeQuoted(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}

// NewCNonce returns a fresh random client nonce.
func NewCNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
