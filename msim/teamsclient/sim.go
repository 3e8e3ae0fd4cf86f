package teamsclient

import (
	"context"
	"fmt"

	"github.com/pbx2teams/pbx2teams/msim/teams"
)

// SimPhones adapts the Teams simulator to Phones. With manual set, a user
// whose calls the page shows stops answering by itself (AnswerAfter -1), so
// the person at the page answers or declines; the sandbox's directory users
// otherwise answer after a moment (teams.SandboxUserOptions).
func SimPhones(s *teams.Sim, manual bool) Phones { return &simPhones{s: s, manual: manual} }

type simPhones struct {
	s      *teams.Sim
	manual bool
}

func (p *simPhones) user(upn string) (*teams.User, error) {
	u := p.s.UserByUPN(upn)
	if u == nil {
		return nil, fmt.Errorf("no simulated Teams user %s", upn)
	}
	if p.manual {
		if o := u.Options(); o.AnswerAfter >= 0 && o.Reject == 0 {
			o.AnswerAfter = -1
			u.SetOptions(o)
		}
	}
	return u, nil
}

func (p *simPhones) Calls(upn string) ([]Call, error) {
	u, err := p.user(upn)
	if err != nil {
		return nil, err
	}
	var out []Call
	for _, c := range u.Calls() {
		in := c.Info()
		out = append(out, Call{ID: in.CallID, Inbound: in.Inbound, Federated: in.Federated, State: string(in.State),
			RemoteName: in.RemoteName, RemoteUser: in.RemoteUser, StartedAt: in.Started, AnsweredAt: in.Answered,
			EndReason: in.EndReason, PacketsIn: uint64(in.Media.Packets), PacketsOut: uint64(in.Media.SentPackets)})
	}
	return out, nil
}

func (p *simPhones) call(upn, id string) (*teams.Call, error) {
	u, err := p.user(upn)
	if err != nil {
		return nil, err
	}
	c := u.Call(id)
	if c == nil {
		return nil, fmt.Errorf("%s has no call %s", upn, id)
	}
	return c, nil
}

func (p *simPhones) ringing(upn, id string) (*teams.Call, error) {
	c, err := p.call(upn, id)
	if err != nil {
		return nil, err
	}
	if in := c.Info(); in.State != teams.StateRinging {
		return nil, fmt.Errorf("the call is %s, not ringing", in.State)
	}
	return c, nil
}

func (p *simPhones) Answer(ctx context.Context, upn, id string) error {
	c, err := p.ringing(upn, id)
	if err != nil {
		return err
	}
	c.Answer()
	return nil
}

func (p *simPhones) Decline(ctx context.Context, upn, id string) error {
	c, err := p.ringing(upn, id)
	if err != nil {
		return err
	}
	c.Decline()
	return nil
}

func (p *simPhones) Hangup(ctx context.Context, upn, id string) error {
	c, err := p.call(upn, id)
	if err != nil {
		return err
	}
	return c.End(ctx)
}
