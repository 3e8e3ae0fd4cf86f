package pbx2teams

import (
	"errors"
	"fmt"
)

// Error codes. Handlers map them to HTTP and SIP statuses; the message is
// meant for a person and says what was wrong and what to do.
const (
	EInvalid         = "invalid"          // bad input; nothing changed
	ENotFound        = "not_found"        // no such thing, or not visible to the caller
	EForbidden       = "forbidden"        // signed in, but not allowed
	EUnauthenticated = "unauthenticated"  // not signed in, bad credentials
	EConflict        = "conflict"         // clashes with existing state
	ELicence         = "licence_required" // a licence is missing, exhausted or expired
	ERateLimited     = "rate_limited"     // too many attempts; retry later
	EUnavailable     = "unavailable"      // a dependency is down; retry later
	EInternal        = "internal"         // a bug or an unexpected failure
)

// Error is the error type of the domain: a machine-readable code, a message
// for people, and optional per-item details (e.g. the bad rows of a CSV).
type Error struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []ErrorDetail `json:"details,omitempty"`
	Err     error         `json:"-"` // underlying cause, never shown to users
}

// ErrorDetail points at one offending item of a larger input.
type ErrorDetail struct {
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: the code of the first *Error in its
// chain, or EInternal for any other non-nil error, or "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the human message of err; internal errors get a
// generic message so that no detail of the system leaks to a caller.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred. It has been logged; please try again or contact support."
}

// ErrNotFound is returned by stores when a row does not exist.
var ErrNotFound = &Error{Code: ENotFound, Message: "Not found."}

// HTTPStatus maps an error code to the HTTP status the API and the portal
// answer with. licence_required is 402: the request is well formed and
// allowed, but the account lacks a licence its provider must provision, and
// a distinct status lets clients tell it from an ordinary conflict (409).
func HTTPStatus(code string) int {
	switch code {
	case EInvalid:
		return 422
	case EUnauthenticated:
		return 401
	case EForbidden:
		return 403
	case ENotFound:
		return 404
	case EConflict:
		return 409
	case ELicence:
		return 402
	case ERateLimited:
		return 429
	case EUnavailable:
		return 503
	}
	return 500
}
