package sdp

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Crypto is one SDES attribute (RFC 4568):
//
//	a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:length] [session params]
//
// Only the first key parameter is kept; relays in practice never see more.
type Crypto struct {
	Tag           int
	Suite         string   // e.g. "AES_CM_128_HMAC_SHA1_80"
	Key           []byte   // master key followed by master salt
	Lifetime      string   // as written ("2^31", "1048576"), "" when absent
	MKI           uint64   // master key identifier value
	MKILen        int      // MKI length in bytes; 0 when the key has no MKI
	SessionParams []string // e.g. "UNENCRYPTED_SRTCP", "WSH=64"
}

// ParseCrypto reads the value of an a=crypto attribute (the text after
// "a=crypto:").
func ParseCrypto(value string) (Crypto, error) {
	var c Crypto
	f := strings.Fields(value)
	if len(f) < 3 {
		return c, fmt.Errorf("%w: crypto attribute needs tag, suite and key", ErrMalformed)
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return c, fmt.Errorf("%w: crypto tag %q", ErrMalformed, clip(f[0]))
	}
	c.Tag, c.Suite = tag, f[1]
	first, _, _ := strings.Cut(f[2], ";")
	method, info, ok := strings.Cut(first, ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return c, fmt.Errorf("%w: crypto key method must be inline", ErrMalformed)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return c, fmt.Errorf("%w: crypto key has too many fields", ErrMalformed)
	}
	c.Key, err = decodeKey(parts[0])
	if err != nil {
		return c, err
	}
	for _, p := range parts[1:] {
		if v, l, isMKI := strings.Cut(p, ":"); isMKI {
			mki, err1 := strconv.ParseUint(v, 10, 64)
			n, err2 := strconv.Atoi(l)
			if err1 != nil || err2 != nil || n < 1 || n > 8 {
				return c, fmt.Errorf("%w: crypto MKI %q", ErrMalformed, clip(p))
			}
			if n < 8 && mki >= 1<<(8*uint(n)) {
				return c, fmt.Errorf("%w: crypto MKI %q does not fit its length", ErrMalformed, clip(p))
			}
			c.MKI, c.MKILen = mki, n
			continue
		}
		if p == "" || c.Lifetime != "" {
			return c, fmt.Errorf("%w: crypto lifetime %q", ErrMalformed, clip(p))
		}
		c.Lifetime = p
	}
	c.SessionParams = append([]string(nil), f[3:]...)
	return c, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 0 || len(s) > 128 {
		return nil, fmt.Errorf("%w: crypto key length", ErrMalformed)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Some implementations leave out the padding.
		k, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: crypto key is not base64", ErrMalformed)
	}
	return k, nil
}

// MKIBytes returns the MKI as sent on the wire (big-endian, MKILen bytes),
// or nil when the key has no MKI.
func (c Crypto) MKIBytes() []byte {
	if c.MKILen == 0 {
		return nil
	}
	b := make([]byte, c.MKILen)
	v := c.MKI
	for i := c.MKILen - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// String renders the attribute value (without "a=crypto:").
func (c Crypto) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Tag))
	b.WriteByte(' ')
	b.WriteString(c.Suite)
	b.WriteString(" inline:")
	b.WriteString(base64.StdEncoding.EncodeToString(c.Key))
	if c.Lifetime != "" {
		b.WriteByte('|')
		b.WriteString(c.Lifetime)
	}
	if c.MKILen > 0 {
		b.WriteByte('|')
		b.WriteString(strconv.FormatUint(c.MKI, 10))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(c.MKILen))
	}
	for _, p := range c.SessionParams {
		b.WriteByte(' ')
		b.WriteString(p)
	}
	return b.String()
}
