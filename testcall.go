package pbx2teams

import (
	"context"
	"errors"
	"sync"
	"time"
)

// TestCallResult is the outcome of a test call to a Phone App user, in plain
// words: what happened and, when something is wrong, what to check.
type TestCallResult struct {
	Result string    `json:"result"`
	Advice string    `json:"advice,omitempty"`
	At     time.Time `json:"at"`
}

// testCallsInFlight holds the IDs of users being test-called, so that a
// double click (or two admins at once) does not ring a user twice.
var testCallsInFlight sync.Map

// TestCall rings a Phone App user in Teams through tc (the B2BUA), keeps the
// call a moment once answered, hangs up, and reports the outcome. It needs an
// admin (not a viewer) of the customer or of an account above it, and a
// configured, enabled Phone App user: standard users are reached through
// Direct Routing, which a call from the PBX tests better. A refusal by
// Microsoft (603 from external access, 480 not Teams only) is a result, not
// an error; call control records it for the user's readiness checks. The
// call blocks until it ends, so give ctx a bound.
func (s *Service) TestCall(ctx context.Context, p *Principal, tc TestCaller, accountID, userID string) (*TestCallResult, error) {
	acc, err := s.customerAccount(ctx, s.Store, p, accountID, true)
	if err != nil {
		return nil, err
	}
	u, err := s.Store.User(ctx, acc.ID, userID)
	if ErrorCode(err) == ENotFound {
		return nil, Errorf(ENotFound, "No such user in %s.", acc.Name)
	}
	if err != nil {
		return nil, err
	}
	if err := testCallable(u); err != nil {
		return nil, err
	}
	if tc == nil {
		return nil, Errorf(EUnavailable, "Calls are not enabled on this service, so a test call cannot be placed; ask the operator.")
	}
	if _, busy := testCallsInFlight.LoadOrStore(u.ID, struct{}{}); busy {
		return nil, Errorf(EConflict, "A test call to %s is already in progress; wait for its result.", u.UPN)
	}
	defer testCallsInFlight.Delete(u.ID)

	at := s.now()
	result, advice, err := tc.TestCall(ctx, u)
	// The audit is written even when the requester has gone away meanwhile:
	// the user's phone rang either way.
	actx := context.WithoutCancel(ctx)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = &Error{Code: EInternal, Message: "The test call could not be placed because of an internal error; the service log has the cause.", Err: err}
		}
		if aerr := s.audit(actx, s.Store, p, acc.ID, "user.test_call", u.UPN, "not placed: "+ErrorMessage(err)); aerr != nil {
			s.Log.Error("test call: audit", "account", acc.ID, "user", u.ID, "err", aerr)
		}
		return nil, err
	}
	detail := result
	if advice != "" {
		detail += " " + advice
	}
	if err := s.audit(actx, s.Store, p, acc.ID, "user.test_call", u.UPN, detail); err != nil {
		return nil, err
	}
	return &TestCallResult{Result: result, Advice: advice, At: at}, nil
}

// testCallable says why u cannot be test-called, if so.
func testCallable(u *User) error {
	switch {
	case u.Deleted:
		return Errorf(EInvalid, "%s was deleted from Microsoft 365; a test call cannot reach them.", u.UPN)
	case !u.Kind.VoiceCapable():
		return Errorf(EInvalid, "%s is not a person and has no PBX line; test calls are for Phone App users.", u.UPN)
	case u.Type == ServiceNone:
		return Errorf(EInvalid, "Test calls are for Phone App users; %s has no PBX line configured yet. Configure them as a Phone App user first.", u.UPN)
	case u.Type == ServiceStandard:
		return Errorf(EInvalid, "Test calls are for Phone App users; %s is a standard user — call their Teams number from the PBX instead.", u.UPN)
	case u.Type != ServicePhoneApp:
		return Errorf(EInvalid, "Test calls are for Phone App users; %s is not one.", u.UPN)
	case !u.Enabled || u.Suspended:
		return Errorf(EInvalid, "%s is disabled in Microsoft 365, so their Phone App line is suspended; enable the account there, run Sync Now, then test again.", u.UPN)
	}
	return nil
}
