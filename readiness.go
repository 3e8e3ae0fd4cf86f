package pbx2teams

import (
	"context"
	"fmt"
	"strings"
)

// TenantFacts answers what Teams enforces but Microsoft Graph does not
// expose: a user's coexistence mode and the tenant's external access
// (federation) settings. The simulator implements it for the sandbox and
// tests; production has none (nil), and those checks then say they cannot
// be verified and give the admin-center steps.
type TenantFacts interface {
	// Coexistence returns the user's mode, e.g. "TeamsOnly" or "Islands".
	Coexistence(tenantID, userObjectID string) (string, error)
	// FederationAllows reports whether external access lets the domain in.
	FederationAllows(tenantID, domain string) (bool, error)
}

// CheckState is the outcome of one readiness check.
type CheckState string

// Check outcomes.
const (
	CheckPass          CheckState = "pass"
	CheckFail          CheckState = "fail"
	CheckNotVerifiable CheckState = "not_verifiable"
	CheckNotApplicable CheckState = "n/a"
)

// Check is one readiness check with how to fix it when it fails.
type Check struct {
	Key   string     `json:"key"`
	Name  string     `json:"name"`
	State CheckState `json:"state"`
	// Detail says what was found; Fix what to do (failed or unverifiable).
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Readiness is a list of checks; Ready when none failed.
type Readiness struct {
	Checks []Check `json:"checks"`
	Ready  bool    `json:"ready"`
}

// Failed lists the failed checks.
func (r *Readiness) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.State == CheckFail {
			out = append(out, c)
		}
	}
	return out
}

func (r *Readiness) add(c Check) {
	r.Checks = append(r.Checks, c)
	r.Ready = true
	for _, c := range r.Checks {
		if c.State == CheckFail {
			r.Ready = false
		}
	}
}

// Admin-center steps for what Graph cannot tell.
const (
	FixTeamsOnly     = "In the Teams admin center go to Users, select the user, and under Account > Teams upgrade choose Edit and set Coexistence mode to Teams only (or set it for the whole organization under Teams upgrade settings), then Save."
	fixFederationFmt = "In the Teams admin center go to Users > External access, turn on communication with Skype for Business and Teams users, and if only specific domains are allowed add %s to the Allowed list (and make sure it is not blocked), then Save. Until then calls to Phone App users are declined (603)."
)

// FixFederation is the admin-center fix for external access.
func FixFederation(domain string) string { return fmt.Sprintf(fixFederationFmt, domain) }

// ReadinessInput is what readiness needs besides the stored user.
type ReadinessInput struct {
	TenantID       string
	PhoneAppDomain string
	Facts          TenantFacts // nil in production
	// Installed reports whether the Phone App is installed for the user.
	Installed bool
	// Rejection is the latest refusal of a Phone App call to the user, if
	// any: it fails the check it proves wrong (603 external access, 480
	// not Teams only).
	Rejection *CallRejection
}

// TenantReadiness checks the tenant as a whole: connected, Phone App
// authorized (when enabled), external access allowing the Phone App domain.
func TenantReadiness(ts *TeamsSettings, in ReadinessInput) Readiness {
	var r Readiness
	if ts == nil || ts.ConsentedAt == nil {
		fix := "Click Connect Microsoft 365 in Teams services and accept the permissions as a global administrator."
		if ts != nil && ts.ConsentError != "" {
			fix = ts.ConsentError + " " + fix
		}
		r.add(Check{Key: "connected", Name: "Microsoft 365 connected", State: CheckFail, Fix: fix})
		return r
	}
	r.add(Check{Key: "connected", Name: "Microsoft 365 connected", State: CheckPass, Detail: ts.TenantName})
	if !ts.PhoneAppEnabled {
		return r
	}
	if ts.PhoneAppAuthorizedAt == nil {
		r.add(Check{Key: "phone_app_authorized", Name: "Phone App authorized", State: CheckFail,
			Fix: "Click Authorize Phone App for my Organization in Teams services and sign in as a global or Teams administrator."})
	} else {
		r.add(Check{Key: "phone_app_authorized", Name: "Phone App authorized", State: CheckPass})
	}
	r.add(federationCheck(ts.TenantID, in))
	if ts.LargeTenantMode && ts.PhoneAppGroup == nil {
		r.add(Check{Key: "phone_app_group", Name: "Phone App group chosen", State: CheckFail,
			Fix: "Large Tenant Mode is on: choose the Entra ID group of Phone App users in Teams services, save, and run Sync Now."})
	}
	return r
}

func federationCheck(tenantID string, in ReadinessInput) Check {
	c := Check{Key: "external_access", Name: "External access allows " + in.PhoneAppDomain}
	if in.Facts == nil {
		c.State, c.Detail, c.Fix = CheckNotVerifiable, "Not verifiable from Microsoft Graph.", FixFederation(in.PhoneAppDomain)
		return c
	}
	ok, err := in.Facts.FederationAllows(tenantID, in.PhoneAppDomain)
	switch {
	case err != nil:
		c.State, c.Detail, c.Fix = CheckNotVerifiable, "Could not be read: "+err.Error(), FixFederation(in.PhoneAppDomain)
	case ok:
		c.State = CheckPass
	default:
		c.State, c.Detail, c.Fix = CheckFail, "External access blocks "+in.PhoneAppDomain+".", FixFederation(in.PhoneAppDomain)
	}
	return c
}

// UserReadiness checks one user for its configured (or else suggested)
// service type: licence fit, Teams-only mode, external access, Phone App
// installed, group conflict.
func UserReadiness(u *User, ts *TeamsSettings, in ReadinessInput) Readiness {
	var r Readiness
	t := u.Type
	if t == ServiceNone {
		t = u.SuggestedType
	}
	if !u.Kind.VoiceCapable() {
		r.add(Check{Key: "kind", Name: "Voice user", State: CheckNotApplicable,
			Detail: "A " + strings.ReplaceAll(string(u.Kind), "_", " ") + " is listed but is not given a PBX line."})
		return r
	}
	if u.Deleted || !u.Enabled {
		r.add(Check{Key: "enabled", Name: "Enabled in Microsoft 365", State: CheckFail,
			Fix: "Enable (or restore) the account in the Microsoft 365 admin center, then run Sync Now."})
	}
	if u.Conflict != "" {
		r.add(Check{Key: "conflict", Name: "Group membership", State: CheckFail, Detail: u.Conflict,
			Fix: "Remove the user from either the standard users' groups or the Phone App group, then run Sync Now."})
	}
	switch t {
	case ServiceStandard:
		if u.HasTeamsPhone && !u.HasCallingPlan {
			r.add(Check{Key: "licence", Name: "Teams Phone licence", State: CheckPass})
		} else if u.HasCallingPlan {
			r.add(Check{Key: "licence", Name: "Teams Phone licence", State: CheckFail, Detail: "The user has a Microsoft Calling Plan.",
				Fix: "Remove the Calling Plan licence in the Microsoft 365 admin center (PSTN calls then come from the PBX), then run Sync Now."})
		} else {
			r.add(Check{Key: "licence", Name: "Teams Phone licence", State: CheckFail, Detail: "No usable Teams Phone licence.",
				Fix: "Assign a Teams Phone (Phone System) licence in the Microsoft 365 admin center, or make the user a Phone App user; then run Sync Now."})
		}
	case ServicePhoneApp:
		if u.HasTeamsPhone {
			r.add(Check{Key: "licence", Name: "No Teams Phone licence", State: CheckFail, Detail: "The user holds Teams Phone.",
				Fix: "Phone App users must not hold Teams Phone: remove it in the Microsoft 365 admin center, or make the user a standard user; then run Sync Now."})
		} else {
			r.add(Check{Key: "licence", Name: "No Teams Phone licence", State: CheckPass})
		}
		r.add(applyRejection(coexistenceCheck(u, in), in.Rejection))
		r.add(applyRejection(federationCheck(in.TenantID, in), in.Rejection))
		switch {
		case in.Installed:
			r.add(Check{Key: "installed", Name: "Phone App installed", State: CheckPass})
		case u.Type != ServicePhoneApp:
			r.add(Check{Key: "installed", Name: "Phone App installed", State: CheckFail, Detail: "Not configured as a Phone App user yet.",
				Fix: "Configure the user's SIP settings as a Phone App user, then run Sync Now: the app is installed for them."})
		case ts == nil || ts.PhoneAppAuthorizedAt == nil:
			r.add(Check{Key: "installed", Name: "Phone App installed", State: CheckFail,
				Fix: "Authorize Phone App for my Organization in Teams services, then run Sync Now."})
		default:
			r.add(Check{Key: "installed", Name: "Phone App installed", State: CheckFail,
				Fix: "Run Sync Now: the Phone App is installed for every configured Phone App user."})
		}
	default:
		r.add(Check{Key: "type", Name: "Service type", State: CheckNotApplicable,
			Detail: "Not a standard or Phone App user yet."})
	}
	return r
}

func coexistenceCheck(u *User, in ReadinessInput) Check {
	c := Check{Key: "teams_only", Name: "Teams only mode"}
	if in.Facts == nil {
		c.State, c.Detail, c.Fix = CheckNotVerifiable, "Not verifiable from Microsoft Graph.", FixTeamsOnly
		return c
	}
	mode, err := in.Facts.Coexistence(in.TenantID, u.ObjectID)
	switch {
	case err != nil:
		c.State, c.Detail, c.Fix = CheckNotVerifiable, "Could not be read: "+err.Error(), FixTeamsOnly
	case strings.EqualFold(mode, "TeamsOnly"):
		c.State = CheckPass
	default:
		c.State, c.Detail, c.Fix = CheckFail, "The user is in "+mode+" mode; the Phone App needs Teams only.", FixTeamsOnly
	}
	return c
}

// UserReadiness returns the readiness of one user of a customer.
func (s *Service) UserReadiness(ctx context.Context, p *Principal, accountID, userID string, in ReadinessInput) (*User, Readiness, error) {
	u, err := s.User(ctx, p, accountID, userID)
	if err != nil {
		return nil, Readiness{}, err
	}
	ts, err := s.TeamsSettings(ctx, p, accountID)
	if err != nil {
		return nil, Readiness{}, err
	}
	in.TenantID = ts.TenantID
	if _, err := s.Store.AppInstall(ctx, u.AccountID, u.ObjectID); err == nil {
		in.Installed = true
	}
	in.Rejection = s.PhoneAppRejection(ctx, u)
	return u, UserReadiness(u, ts, in), nil
}
