package m365

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// GraphError is an error answer of Microsoft Graph (after retries, where
// the status was retryable). Code and Message are Graph's; code against
// Code, never Message.
type GraphError struct {
	Method     string
	Path       string // URL path, no query
	Status     int
	Code       string
	Message    string
	InnerCode  string
	RequestID  string
	RetryAfter time.Duration // from the last answer, if any
	Attempts   int
}

func (e *GraphError) Error() string {
	s := fmt.Sprintf("graph %s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return s
}

// TokenError is an error answer of the Microsoft identity platform's token
// endpoint.
type TokenError struct {
	Tenant      string
	Status      int
	Code        string // OAuth error, e.g. invalid_client
	AADSTS      int    // first of error_codes, e.g. 7000229
	Description string // error_description (first line)
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("token for tenant %s: %d %s: %s", e.Tenant, e.Status, e.Code, e.Description)
}

// AADSTS codes the service reacts to.
const (
	AADSTSMissingServicePrincipal = 7000229 // never consented, or the app was removed
	AADSTSConsentRequired         = 65001   // consent revoked / not granted
	AADSTSAppNotFound             = 700016  // unknown client id in that tenant
	AADSTSInvalidSecret           = 7000215
	AADSTSExpiredSecret           = 7000222
	AADSTSTenantNotFound          = 90002
	AADSTSConditionalAccess       = 53003
	AADSTSUserDeclined            = 65004
)

// aadstsFrom reads the code from error_codes or the description.
func aadstsFrom(codes []int, desc string) int {
	if len(codes) > 0 {
		return codes[0]
	}
	if rest, ok := strings.CutPrefix(desc, "AADSTS"); ok {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		v, _ := strconv.Atoi(rest[:n])
		return v
	}
	return 0
}

// tokenErr wraps a TokenError into the domain error with a message that
// says what happened and what to do.
func tokenErr(e *TokenError) error {
	t := e.Tenant
	var code, msg string
	switch e.AADSTS {
	case AADSTSMissingServicePrincipal:
		code = pbx2teams.EForbidden
		msg = fmt.Sprintf("Microsoft 365 is not connected for tenant %s: the app has not been granted admin consent there, or it was removed (AADSTS7000229). Run Connect Microsoft 365 again.", t)
	case AADSTSConsentRequired:
		code = pbx2teams.EForbidden
		msg = fmt.Sprintf("The consent for tenant %s was revoked (AADSTS65001) — re-run Connect Microsoft 365 so an administrator grants it again.", t)
	case AADSTSAppNotFound:
		code = pbx2teams.EForbidden
		msg = fmt.Sprintf("The app registration is not known in tenant %s (AADSTS700016). Re-run Connect Microsoft 365; if it persists, the operator must check the app's client id.", t)
	case AADSTSInvalidSecret, AADSTSExpiredSecret, 7000218:
		code = pbx2teams.EUnavailable
		msg = fmt.Sprintf("The service's Microsoft app credentials were rejected (AADSTS%d): the operator must renew the client secret.", e.AADSTS)
	case AADSTSTenantNotFound:
		code = pbx2teams.ENotFound
		msg = fmt.Sprintf("Microsoft does not know tenant %s (AADSTS90002). Check the tenant, then run Connect Microsoft 365 again.", t)
	case AADSTSConditionalAccess:
		code = pbx2teams.EForbidden
		msg = fmt.Sprintf("A Conditional Access policy in tenant %s blocks the service's app (AADSTS53003). Ask the tenant's administrator to exclude it.", t)
	default:
		switch {
		case e.Status >= 500 || e.Status == 429 || e.Status == 0:
			code = pbx2teams.EUnavailable
			msg = fmt.Sprintf("Microsoft sign-in is unavailable for tenant %s (%s). Try again later.", t, e.Code)
		case e.Code == "invalid_grant":
			code = pbx2teams.EInvalid
			msg = fmt.Sprintf("The Microsoft sign-in could not be completed (%s: %s). Start the authorization again.", e.Code, e.Description)
		default:
			code = pbx2teams.EInvalid
			msg = fmt.Sprintf("Microsoft sign-in refused the request for tenant %s (%s: %s).", t, e.Code, e.Description)
		}
	}
	return &pbx2teams.Error{Code: code, Message: msg, Err: e}
}

// graphErr wraps a GraphError into the domain error.
func graphErr(e *GraphError, tenant string) error {
	op := e.Method + " " + e.Path
	var code, msg string
	switch {
	case e.Status == 401:
		code = pbx2teams.EUnauthenticated
		msg = fmt.Sprintf("Microsoft Graph rejected the access token for tenant %s (%s: %s). If consent was revoked, re-run Connect Microsoft 365.", tenant, e.Code, e.Message)
	case e.Status == 403:
		code = pbx2teams.EForbidden
		msg = fmt.Sprintf("Microsoft Graph refused %s for tenant %s (%s: %s). An administrator may need to re-run Connect Microsoft 365 to grant the current permissions.", op, tenant, e.Code, e.Message)
	case e.Status == 404:
		code = pbx2teams.ENotFound
		msg = fmt.Sprintf("Microsoft Graph found nothing at %s (%s: %s).", op, e.Code, e.Message)
	case e.Status == 409:
		code = pbx2teams.EConflict
		msg = fmt.Sprintf("Microsoft Graph reported a conflict on %s (%s: %s).", op, e.Code, e.Message)
	case e.Status == 410 || isDeltaCode(e.Code):
		code = pbx2teams.EConflict
		msg = "The stored Microsoft Graph delta token has expired; a full sync is needed."
	case e.Status == 429:
		code = pbx2teams.ERateLimited
		msg = fmt.Sprintf("Microsoft Graph is throttling requests for tenant %s; gave up on %s after %d attempts. Try again later.", tenant, op, e.Attempts)
		if e.RetryAfter > 0 {
			msg = fmt.Sprintf("Microsoft Graph is throttling requests for tenant %s and asked to wait %s; gave up on %s after %d attempts. Try again later.", tenant, e.RetryAfter, op, e.Attempts)
		}
	case e.Status >= 500:
		code = pbx2teams.EUnavailable
		msg = fmt.Sprintf("Microsoft Graph failed on %s with %d %s after %d attempts (%s). Try again later.", op, e.Status, e.Code, e.Attempts, e.Message)
	default:
		code = pbx2teams.EInvalid
		msg = fmt.Sprintf("Microsoft Graph refused %s (%d %s: %s).", op, e.Status, e.Code, e.Message)
	}
	return &pbx2teams.Error{Code: code, Message: msg, Err: e}
}

func isDeltaCode(c string) bool {
	return strings.EqualFold(c, "syncStateNotFound") || strings.EqualFold(c, "resyncRequired") || strings.EqualFold(c, "syncStateInvalid")
}

// AsGraphError returns the GraphError in err's chain, if any.
func AsGraphError(err error) (*GraphError, bool) {
	var ge *GraphError
	ok := errors.As(err, &ge)
	return ge, ok
}

// AsTokenError returns the TokenError in err's chain, if any.
func AsTokenError(err error) (*TokenError, bool) {
	var te *TokenError
	ok := errors.As(err, &te)
	return te, ok
}

// NeedsConsent reports whether err means the tenant must run admin consent
// (again): never consented, revoked, or the app unknown there.
func NeedsConsent(err error) bool {
	if te, ok := AsTokenError(err); ok {
		switch te.AADSTS {
		case AADSTSMissingServicePrincipal, AADSTSConsentRequired, AADSTSAppNotFound:
			return true
		}
	}
	return false
}

// IsConsentRevoked reports whether err is a revoked consent (AADSTS65001).
func IsConsentRevoked(err error) bool {
	te, ok := AsTokenError(err)
	return ok && te.AADSTS == AADSTSConsentRequired
}

// IsDeltaExpired reports whether a delta link can no longer be used: the
// caller must start a new delta round (full sync).
func IsDeltaExpired(err error) bool {
	ge, ok := AsGraphError(err)
	return ok && (ge.Status == 410 || isDeltaCode(ge.Code))
}

// IsNotFound reports whether Graph answered 404.
func IsNotFound(err error) bool {
	ge, ok := AsGraphError(err)
	return ok && ge.Status == 404
}

// IsThrottled reports whether the request gave up on 429s.
func IsThrottled(err error) bool {
	ge, ok := AsGraphError(err)
	return ok && ge.Status == 429
}
