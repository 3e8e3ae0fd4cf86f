package teams

import (
	"context"
	"errors"
	"fmt"
)

// Call control by UPN and Call-ID, for a page that stands in for the Teams
// client (the sandbox's "Teams client"): it lists a user's calls with
// CallInfos and acts on one with AnswerCall, DeclineCall, EndCall,
// HoldCall, ResumeCall and SendDTMF. Errors say what is wrong (unknown
// user, no such call, call not in a state that allows it); they change
// nothing.

// ErrNoUser and ErrNoCall are returned (wrapped) for an unknown UPN or
// Call-ID.
var (
	ErrNoUser = errors.New("teams sim: no such Teams user")
	ErrNoCall = errors.New("teams sim: no such call")
)

// CallInfos lists the calls of the user with a UPN that are ringing or
// established, oldest first.
func (s *Sim) CallInfos(upn string) ([]CallInfo, error) {
	u := s.UserByUPN(upn)
	if u == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoUser, upn)
	}
	calls := u.Calls()
	out := make([]CallInfo, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.Info())
	}
	return out, nil
}

// CallOf returns a live call of a user by Call-ID.
func (s *Sim) CallOf(upn, callID string) (*Call, error) {
	u := s.UserByUPN(upn)
	if u == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoUser, upn)
	}
	c := u.Call(callID)
	if c == nil {
		return nil, fmt.Errorf("%w: %s has no call %s", ErrNoCall, upn, callID)
	}
	return c, nil
}

func (s *Sim) ringing(upn, callID string) (*Call, error) {
	c, err := s.CallOf(upn, callID)
	if err != nil {
		return nil, err
	}
	if st := c.Info().State; st != StateRinging {
		return nil, fmt.Errorf("teams sim: call %s is %s, not ringing", callID, st)
	}
	return c, nil
}

// AnswerCall answers a ringing inbound call.
func (s *Sim) AnswerCall(upn, callID string) error {
	c, err := s.ringing(upn, callID)
	if err != nil {
		return err
	}
	c.Answer()
	return nil
}

// DeclineCall declines a ringing inbound call (603 Decline).
func (s *Sim) DeclineCall(upn, callID string) error {
	c, err := s.ringing(upn, callID)
	if err != nil {
		return err
	}
	c.Decline()
	return nil
}

// EndCall ends a call in any state (see Call.End).
func (s *Sim) EndCall(ctx context.Context, upn, callID string) error {
	c, err := s.CallOf(upn, callID)
	if err != nil {
		return err
	}
	return c.End(ctx)
}

// HoldCall puts an established call on hold from the Teams side
// (re-INVITE with a=inactive); an answer other than 200 is an error.
func (s *Sim) HoldCall(ctx context.Context, upn, callID string) error {
	return s.reoffer(ctx, upn, callID, (*Call).Hold)
}

// ResumeCall takes a call off hold (re-INVITE with a=sendrecv).
func (s *Sim) ResumeCall(ctx context.Context, upn, callID string) error {
	return s.reoffer(ctx, upn, callID, (*Call).Resume)
}

func (s *Sim) reoffer(ctx context.Context, upn, callID string, fn func(*Call, context.Context) (int, error)) error {
	c, err := s.CallOf(upn, callID)
	if err != nil {
		return err
	}
	st, err := fn(c, ctx)
	if err != nil {
		return err
	}
	if st != 200 {
		return fmt.Errorf("teams sim: re-INVITE answered %d", st)
	}
	return nil
}

// SendDTMF sends RFC 4733 digits (0-9, *, #, A-D) on an established call.
func (s *Sim) SendDTMF(upn, callID, digits string) error {
	c, err := s.CallOf(upn, callID)
	if err != nil {
		return err
	}
	if st := c.Info().State; st != StateActive && st != StateHeld {
		return fmt.Errorf("teams sim: call %s is %s, not established", callID, st)
	}
	for _, d := range digits {
		if !(d >= '0' && d <= '9' || d == '*' || d == '#' || d >= 'A' && d <= 'D') {
			return fmt.Errorf("teams sim: %q is not a DTMF digit", d)
		}
	}
	c.SendDTMF(digits)
	return nil
}
