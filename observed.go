package pbx2teams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CallRejection is what Microsoft said when it refused a Phone App call to
// a user: the strongest evidence there is for what Graph cannot show
// (external access, coexistence mode).
type CallRejection struct {
	At      time.Time `json:"at"`
	Status  int       `json:"status"`
	Warning string    `json:"warning,omitempty"`
}

func rejectionKey(u *User) string { return "phoneapp-rejection/" + u.AccountID + "/" + u.ID }

// PhoneAppRejected keeps the latest refusal of a call to a Phone App user
// (603 from external access, 480 not Teams only...) for the user's
// readiness checks. Call control calls it; no principal.
func (s *Service) PhoneAppRejected(ctx context.Context, u *User, status int, warning string) error {
	b, err := json.Marshal(CallRejection{At: s.now().UTC(), Status: status, Warning: warning})
	if err != nil {
		return err
	}
	return s.Store.PutSetting(ctx, rejectionKey(u), string(b))
}

// PhoneAppReached clears a kept refusal once a call to the user connects.
func (s *Service) PhoneAppReached(ctx context.Context, u *User) error {
	if v, err := s.Store.Setting(ctx, rejectionKey(u)); err != nil || v == "" {
		return nil
	}
	return s.Store.PutSetting(ctx, rejectionKey(u), "")
}

// PhoneAppRejection returns the kept refusal of a user's Phone App calls,
// if any (for readiness shown outside UserReadiness).
func (s *Service) PhoneAppRejection(ctx context.Context, u *User) *CallRejection {
	v, err := s.Store.Setting(ctx, rejectionKey(u))
	if err != nil || v == "" {
		return nil
	}
	var r CallRejection
	if json.Unmarshal([]byte(v), &r) != nil {
		return nil
	}
	return &r
}

// about reports whether a refusal is about external access (603 with
// Microsoft's external-access warning, or any 603 naming the domain) or
// about the coexistence mode (480 "not in TeamsOnly mode").
func (r *CallRejection) about() string {
	w := strings.ToLower(r.Warning)
	switch {
	case r.Status == 603 && (strings.Contains(w, "external access") || strings.Contains(w, "federat")):
		return "external_access"
	case r.Status == 480 && strings.Contains(w, "teamsonly"):
		return "teams_only"
	}
	return ""
}

func (r *CallRejection) detail() string {
	d := fmt.Sprintf("Microsoft refused a call to the user on %s with %d", r.At.Format("2006-01-02 15:04 MST"), r.Status)
	if r.Warning != "" {
		d += ": " + r.Warning
	}
	return d + "."
}

// applyRejection turns a check failed when a call proved it wrong,
// whatever Graph or the tenant facts said.
func applyRejection(c Check, r *CallRejection) Check {
	if r == nil || r.about() != c.Key {
		return c
	}
	c.State, c.Detail = CheckFail, r.detail()
	if c.Fix == "" {
		if c.Key == "teams_only" {
			c.Fix = FixTeamsOnly
		}
	}
	return c
}
