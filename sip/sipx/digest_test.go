package sipx

import (
	"strings"
	"testing"
)

// Published test vectors: RFC 2617 §3.5 (MD5, qop=auth) and RFC 7616 §3.9.1
// (SHA-256 and MD5, qop=auth).
func TestAuthorizationVectors(t *testing.T) {
	cases := []struct {
		name, chal, method, uri, user, pass, cnonce, want string
	}{
		{
			name:   "rfc2617",
			chal:   `Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
			method: "GET", uri: "/dir/index.html", user: "Mufasa", pass: "Circle Of Life", cnonce: "0a4f113b",
			want: "6629fae49393a05397450978507c4ef1",
		},
		{
			name:   "rfc7616-sha256",
			chal:   `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			method: "GET", uri: "/dir/index.html", user: "Mufasa", pass: "Circle of Life", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
		},
		{
			name:   "rfc7616-md5",
			chal:   `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			method: "GET", uri: "/dir/index.html", user: "Mufasa", pass: "Circle of Life", cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
			want: "8ca523f5e9506fed4657c9700eebdbec",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseChallenge(tc.chal)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Authorization(&c, Answer{Method: tc.method, URI: tc.uri, Username: tc.user, Password: tc.pass, NC: 1, CNonce: tc.cnonce})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, `response="`+tc.want+`"`) {
				t.Errorf("got %s, want response %s", got, tc.want)
			}
			if !strings.Contains(got, "nc=00000001") || !strings.Contains(got, "qop=auth,") {
				t.Errorf("missing qop/nc in %s", got)
			}
			if !strings.Contains(got, `opaque="`+c.Opaque+`"`) {
				t.Errorf("opaque not echoed in %s", got)
			}
			if strings.Contains(got, tc.pass) {
				t.Errorf("password leaked into header: %s", got)
			}
		})
	}
}

func TestAuthorizationNoQOPAndNC(t *testing.T) {
	c, err := ParseChallenge(`digest REALM=pbx.example, NONCE="abc", stale=TRUE`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Realm != "pbx.example" || c.Nonce != "abc" || !c.Stale || c.QOP || c.Algorithm != AlgMD5 {
		t.Fatalf("parsed %+v", c)
	}
	got, err := Authorization(&c, Answer{Method: "REGISTER", URI: "sip:pbx.example", Username: "100", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	// MD5(MD5("100:pbx.example:secret"):abc:MD5("REGISTER:sip:pbx.example"))
	if !strings.Contains(got, `response="`) || strings.Contains(got, "qop=") || strings.Contains(got, "opaque") {
		t.Fatalf("unexpected header %s", got)
	}
	c.QOP = true
	a := Answer{Method: "REGISTER", URI: "sip:pbx.example", Username: "100", Password: "secret", NC: 0x1a, CNonce: "x"}
	got, _ = Authorization(&c, a)
	if !strings.Contains(got, "nc=0000001a") {
		t.Fatalf("nc not formatted: %s", got)
	}
}

func TestParseChallengeMalformed(t *testing.T) {
	bad := []string{
		"", "Basic realm=x", "Digest", "Digest realm=\"x", `Digest realm="x"`,
		`Digest nonce="n", algorithm=SHA-512-256`, `Digest nonce="n", qop="auth-int"`,
		"Digest ,,,,=,=", "Digest nonce", "Digest nonce=\"\\",
	}
	for _, s := range bad {
		if _, err := ParseChallenge(s); err == nil {
			t.Errorf("ParseChallenge(%q) accepted", s)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest realm="a", nonce="b", qop="auth", opaque="", algorithm=SHA-256-sess`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChallenge(s)
		if err == nil {
			if _, err := Authorization(&c, Answer{Method: "REGISTER", URI: "sip:x", Username: "u", Password: "p"}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
