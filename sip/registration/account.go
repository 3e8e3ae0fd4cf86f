package registration

import (
	"log/slog"
	"strings"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// Account is one user's registration as the engine receives it: the
// customer's PBX settings together with the user's SIP credentials.
type Account struct {
	UserID    string
	AccountID string

	// Domain is the PBX's SIP domain (host, or host:port); it forms the
	// Request-URI and the address of record.
	Domain string
	// OutboundProxy, optional host[:port], is where requests are sent
	// instead of the domain.
	OutboundProxy string
	// Transport is "udp", "tcp" or "tls" (default udp).
	Transport string

	// Username is the SIP user (the AoR user part, usually the extension).
	Username string
	// AuthUsername is the digest user name (default Username).
	AuthUsername string
	Password     string
	// Expiry is the registration lifetime asked for, in seconds (default
	// 3600). The PBX may grant less; the engine follows what it grants.
	Expiry int
	// ContactUser is the unguessable Contact user part that identifies
	// this user in requests the PBX sends us.
	ContactUser string
}

func (a *Account) normalise() {
	a.Domain = strings.ToLower(strings.TrimSpace(a.Domain))
	a.OutboundProxy = strings.ToLower(strings.TrimSpace(a.OutboundProxy))
	a.Transport = strings.ToLower(strings.TrimSpace(a.Transport))
	if a.Transport == "" {
		a.Transport = "udp"
	}
	if a.AuthUsername == "" {
		a.AuthUsername = a.Username
	}
	if a.Expiry == 0 {
		a.Expiry = 3600
	}
}

// validSIPUser accepts RFC 3261 user characters (unreserved, escaped and
// user-unreserved); anything that would break a header is refused.
func validSIPUser(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.!~*'()%&=+$,;?/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validate(a *Account, st *sipx.Stack) error {
	var d []pbx2teams.ErrorDetail
	add := func(field, reason string) { d = append(d, pbx2teams.ErrorDetail{Field: field, Reason: reason}) }
	if a.UserID == "" {
		add("user_id", "A registration needs the user's ID.")
	}
	if _, _, err := sipx.SplitHostPort(a.Domain); err != nil {
		add("domain", "The PBX SIP domain must be a host name or IP address (optionally host:port).")
	}
	if a.OutboundProxy != "" {
		if _, _, err := sipx.SplitHostPort(a.OutboundProxy); err != nil {
			add("outbound_proxy", "The outbound proxy must be host or host:port.")
		}
	}
	switch a.Transport {
	case "udp", "tcp", "tls":
		if st != nil && !st.HasTransport(a.Transport) {
			add("transport", "This node does not listen on "+a.Transport+"; enable it or choose another transport.")
		}
	default:
		add("transport", "Transport must be udp, tcp or tls.")
	}
	if !validSIPUser(a.Username) {
		add("sip_username", "The SIP username is empty or has characters a SIP URI cannot carry.")
	}
	if strings.ContainsAny(a.AuthUsername, "\"\\\r\n") || a.AuthUsername == "" {
		add("auth_username", "The auth username is empty or has characters digest authentication cannot carry.")
	}
	if strings.ContainsAny(a.Password, "\r\n") {
		add("password", "The SIP password cannot contain line breaks.")
	}
	if a.Expiry < 0 || a.Expiry > 7*86400 {
		add("register_expiry", "Registration expiry must be between 1 second and 7 days.")
	}
	if !validSIPUser(a.ContactUser) || strings.ContainsAny(a.ContactUser, ";?&=") {
		add("contact_user", "The Contact user part must be a non-empty URI token.")
	}
	if len(d) > 0 {
		return &pbx2teams.Error{Code: pbx2teams.EInvalid, Message: "The registration settings are not valid; nothing changed.", Details: d}
	}
	return nil
}

// Config tunes the engine. Only Stack is required.
type Config struct {
	// Stack provides the sipgo user agent, the listening sockets (listen
	// addresses per transport, advertised host) and the client TLS
	// configuration; the engine registers Contacts at its advertised host
	// and ports. Start the stack before Run.
	Stack *sipx.Stack
	// Resolver does the RFC 3263 DNS lookups (default net.DefaultResolver).
	Resolver sipx.Resolver
	// RateLimit is the most REGISTER requests per second sent to one PBX
	// (next-hop host); default 50. RateBurst is the token bucket depth
	// (default RateLimit/5, at least 1).
	RateLimit float64
	RateBurst float64
	// MaxInFlight bounds concurrent registration attempts overall (default
	// 2000) and MaxInFlightPerPBX per next-hop host (default 500).
	MaxInFlight       int
	MaxInFlightPerPBX int
	// Timeout bounds one REGISTER transaction (default 32 s, RFC 3261
	// Timer F).
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the retry delay after failures
	// (defaults 30 s and 30 min); each delay is jittered.
	BackoffMin, BackoffMax time.Duration
	// KeepAlive is the interval of NAT keep-alives toward each PBX in use:
	// a double CRLF on the UDP socket or the TCP/TLS connection (RFC 5626
	// §3.5.1). Default 30 s; negative disables.
	KeepAlive time.Duration
	// StartJitter spreads first registrations and re-registrations after a
	// settings change over this window (default 2 s, negative for none);
	// the rate limit spreads them further.
	StartJitter time.Duration
	// DNSCacheTTL is how long resolved targets are reused (default 5 min);
	// failed lookups are retried after BackoffMin at most.
	DNSCacheTTL time.Duration
	// NoSharedNonce stops users of one customer (same PBX and domain) from
	// answering a nonce another of them was challenged with. Sharing halves
	// the messages of a mass (re)registration; a PBX that refuses a shared
	// nonce just challenges as usual, and after three refusals sharing
	// stops for that customer.
	NoSharedNonce bool
	// Logger receives state changes worth an operator's attention (default
	// slog.Default()); passwords are never logged.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Resolver == nil {
		c.Resolver = defaultResolver
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 50
	}
	if c.RateBurst <= 0 {
		c.RateBurst = max(1, c.RateLimit/5)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2000
	}
	if c.MaxInFlightPerPBX <= 0 {
		c.MaxInFlightPerPBX = 500
	}
	if c.Timeout <= 0 {
		c.Timeout = 32 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 30 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Minute
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.StartJitter == 0 {
		c.StartJitter = 2 * time.Second
	}
	if c.DNSCacheTTL <= 0 {
		c.DNSCacheTTL = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
