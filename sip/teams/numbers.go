package teams

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// E164 normalises a phone number to "+<digits>": visual separators
// (spaces, dashes, dots, parentheses) are dropped and an international
// "00" prefix becomes "+". It reports false when the result is not 2 to
// 15 digits after "+" (a short extension such as "1001" is not E.164).
func E164(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	if !strings.HasPrefix(s, "+") {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('+')
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	out := b.String()
	if len(out) < 3 || len(out) > 16 || out[1] == '0' {
		return "", false
	}
	return out, true
}

// CallerNumber is the user part to present as caller toward Teams: the
// E.164 form when the number is one, otherwise the number as the PBX gave
// it (an internal extension), so Teams still shows something useful.
func CallerNumber(s string) string {
	if n, ok := E164(s); ok {
		return n
	}
	return s
}

// RequestURI builds the Request-URI of a call toward Teams:
// sip:+E164@<proxy>;user=phone (user=phone stops the proxy from guessing
// whether the user part is a number).
func RequestURI(number, proxy string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: number, Host: proxy,
		UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}
}

// NumberURI builds the URI of a To or From header: sip:<number>@<host>
// with user=phone.
func NumberURI(number, host string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: number, Host: host,
		UriParams: sip.HeaderParams{{K: "user", V: "phone"}}}
}
