package media

import (
	"crypto/rand"
	"strings"

	"github.com/pion/srtp/v3"

	"github.com/pbx2teams/pbx2teams/media/sdp"
)

// suite is an SDES crypto suite the relay can terminate.
type suite struct {
	name    string
	profile srtp.ProtectionProfile
	keyLen  int
	saltLen int
}

// suites in order of preference. AES_CM_128_HMAC_SHA1_80 first: it is the
// suite Microsoft Teams requires and the one every SDES peer implements.
var suites = []suite{
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
	{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
	{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
	{"AES_256_CM_HMAC_SHA1_32", srtp.ProtectionProfileAes256CmHmacSha1_32, 32, 14},
}

func findSuite(name string) (suite, bool) {
	for _, s := range suites {
		if strings.EqualFold(s.name, name) {
			return s, true
		}
	}
	return suite{}, false
}

// usable reports whether the relay can use the key of c as written.
func usable(c sdp.Crypto) (suite, bool) {
	s, ok := findSuite(c.Suite)
	if !ok || len(c.Key) != s.keyLen+s.saltLen {
		return suite{}, false
	}
	for _, p := range c.SessionParams {
		// Window size hints are fine; unencrypted/unauthenticated modes,
		// key derivation rates and FEC ordering are not implemented.
		if !strings.HasPrefix(strings.ToUpper(p), "WSH=") {
			return suite{}, false
		}
	}
	return s, true
}

// chooseCrypto picks the offered key the relay prefers.
func chooseCrypto(offered []sdp.Crypto) (sdp.Crypto, suite, bool) {
	for _, s := range suites {
		for _, c := range offered {
			if cs, ok := usable(c); ok && cs.name == s.name {
				return c, cs, true
			}
		}
	}
	return sdp.Crypto{}, suite{}, false
}

func newKey(s suite) []byte {
	k := make([]byte, s.keyLen+s.saltLen)
	if _, err := rand.Read(k); err != nil {
		panic("media: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return k
}

// replayWindow is the SRTP/SRTCP replay window in packets (RFC 3711 asks
// for at least 64).
const replayWindow = 128

// decryptContext builds the context that authenticates and decrypts what a
// peer sends with its key c, with replay protection.
func decryptContext(c sdp.Crypto, s suite) (*srtp.Context, error) {
	opts := []srtp.ContextOption{
		srtp.SRTPReplayProtection(replayWindow),
		srtp.SRTCPReplayProtection(replayWindow),
	}
	if mki := c.MKIBytes(); mki != nil {
		opts = append(opts, srtp.MasterKeyIndicator(mki))
	}
	return srtp.CreateContext(c.Key[:s.keyLen], c.Key[s.keyLen:], s.profile, opts...)
}

// encryptContext builds the context that protects what the relay sends
// with its own key.
func encryptContext(key []byte, s suite) (*srtp.Context, error) {
	return srtp.CreateContext(key[:s.keyLen], key[s.keyLen:], s.profile)
}
