package pbx2teams

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
)

// Each customer has its own subdomain under the provider's SBC base FQDN
// (label.sbc.example.com): the customer adds it to its Microsoft 365 tenant
// and Teams Direct Routing uses it as the customer's SBC, and the SIP engine
// finds the customer of a Teams call from it. The label is one DNS label,
// unique across customers.

// MaxSBCLabelLength is the longest DNS label.
const MaxSBCLabelLength = 63

var sbcLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// sbcLabelRule says what a label may be, for error messages and hints.
const sbcLabelRule = "An SBC label is one DNS label: 1 to 63 characters, lowercase letters a-z, digits 0-9 and '-', not starting or ending with '-', e.g. contoso or contoso-uk."

// ValidSBCLabel reports whether label is an acceptable SBC label (already
// lowercase).
func ValidSBCLabel(label string) bool {
	return sbcLabelRE.MatchString(label) && !strings.HasPrefix(label, "xn--")
}

// NormalizeSBCLabel trims and lowercases a label as typed (DNS names are
// case-insensitive).
func NormalizeSBCLabel(label string) string {
	return strings.ToLower(strings.TrimSpace(label))
}

// SBCFQDN is the customer's SBC name: label.base. Empty if either is.
func SBCFQDN(label, base string) string {
	base = strings.Trim(strings.ToLower(strings.TrimSpace(base)), ".")
	if label == "" || base == "" {
		return ""
	}
	return label + "." + base
}

// SBCLabelOf returns the label of host when host is label.base (case and a
// trailing dot ignored), for finding the customer of a Teams request.
func SBCLabelOf(host, base string) (string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	base = strings.Trim(strings.ToLower(base), ".")
	if base == "" || !strings.HasSuffix(host, "."+base) {
		return "", false
	}
	label := strings.TrimSuffix(host, "."+base)
	if !ValidSBCLabel(label) {
		return "", false
	}
	return label, true
}

// foldLatin maps common accented Latin letters to their base letter so
// that "Café Müller" becomes "cafe-muller" rather than "caf-m-ller".
var foldLatin = strings.NewReplacer(
	"à", "a", "á", "a", "â", "a", "ã", "a", "ä", "a", "å", "a", "æ", "ae",
	"ç", "c", "è", "e", "é", "e", "ê", "e", "ë", "e",
	"ì", "i", "í", "i", "î", "i", "ï", "i", "ñ", "n",
	"ò", "o", "ó", "o", "ô", "o", "õ", "o", "ö", "o", "ø", "o", "œ", "oe",
	"ù", "u", "ú", "u", "û", "u", "ü", "u", "ý", "y", "ÿ", "y", "ß", "ss",
)

// sbcSlug turns a customer name into a label: lowercase a-z0-9 with single
// '-' between words, at most max characters; "customer" if nothing is left.
func sbcSlug(name string, max int) string {
	name = foldLatin.Replace(strings.ToLower(name))
	var b strings.Builder
	dash := false
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	s := b.String()
	if len(s) > max {
		s = strings.TrimRight(s[:max], "-")
	}
	if strings.HasPrefix(s, "xn--") {
		s = "x" + strings.TrimPrefix(s, "xn--")
	}
	if s == "" {
		s = "customer"
	}
	return s
}

// labelSuffix is a short random suffix that makes a taken slug unique.
func labelSuffix() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	var b [4]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// defaultSBCLabel picks a free label for acc: the slug of its name, or the
// slug with a short suffix when another customer has it.
func defaultSBCLabel(ctx context.Context, q Queries, acc *Account) (string, error) {
	slug := sbcSlug(acc.Name, MaxSBCLabelLength)
	for i := 0; i < 8; i++ {
		cand := slug
		if i > 0 {
			cand = sbcSlug(acc.Name, MaxSBCLabelLength-5) + "-" + labelSuffix()
		}
		owner, err := q.AccountBySBCLabel(ctx, cand)
		if ErrorCode(err) == ENotFound || err == nil && owner == acc.ID {
			return cand, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", Errorf(EInternal, "no free SBC label for %s", acc.Name)
}

// ensureSBCLabel gives ts (the settings of acc, maybe not stored yet) a
// default label if it has none; it reports whether it did.
func ensureSBCLabel(ctx context.Context, q Queries, acc *Account, ts *TeamsSettings) (bool, error) {
	if ts.SBCLabel != "" {
		return false, nil
	}
	label, err := defaultSBCLabel(ctx, q, acc)
	if err != nil {
		return false, err
	}
	ts.SBCLabel = label
	return true, nil
}

// assignDefaultSBCLabel stores a default label for a customer that has
// none, in its own transaction, and returns the settings as stored. Two
// nodes racing for one slug: the loser's insert conflicts and it tries
// again with a suffix.
func (s *Service) assignDefaultSBCLabel(ctx context.Context, acc *Account) (*TeamsSettings, error) {
	var out *TeamsSettings
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = s.Store.InTx(ctx, func(q Queries) error {
			ts, err := q.TeamsSettings(ctx, acc.ID)
			if ErrorCode(err) == ENotFound {
				ts, err = &TeamsSettings{AccountID: acc.ID, SyncIntervalMinutes: 60, UpdatedAt: s.now()}, nil
			}
			if err != nil {
				return err
			}
			changed, err := ensureSBCLabel(ctx, q, acc, ts)
			if err != nil {
				return err
			}
			out = ts
			if !changed {
				return nil
			}
			return q.PutTeamsSettings(ctx, ts)
		})
		if ErrorCode(err) != EConflict {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EnsureSBCLabels gives every customer without an SBC label its default
// one (for databases from before labels existed) and returns how many it
// assigned. Run it at start-up; it is cheap when every customer has one.
func (s *Service) EnsureSBCLabels(ctx context.Context) (int, error) {
	accs, err := s.Store.SubtreeAccounts(ctx, "/")
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range accs {
		acc := &accs[i]
		if acc.Kind != KindCustomer {
			continue
		}
		ts, err := s.Store.TeamsSettings(ctx, acc.ID)
		if err == nil && ts.SBCLabel != "" {
			continue
		}
		if err != nil && ErrorCode(err) != ENotFound {
			return n, err
		}
		if _, err := s.assignDefaultSBCLabel(ctx, acc); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// SetSBCLabel changes a customer's SBC label. The customer's admins and
// the admins above it (its partner, the operator) may; viewers may not. A
// label another customer has is refused with EConflict.
func (s *Service) SetSBCLabel(ctx context.Context, p *Principal, accountID, label string) (*TeamsSettings, error) {
	label = NormalizeSBCLabel(label)
	if !ValidSBCLabel(label) {
		return nil, sbcLabelError(label)
	}
	var out *TeamsSettings
	err := s.Store.InTx(ctx, func(q Queries) error {
		acc, err := s.customerAccount(ctx, q, p, accountID, true)
		if err != nil {
			return err
		}
		ts, err := teamsSettingsOrNew(ctx, q, acc.ID)
		if err != nil {
			return err
		}
		detail, err := setSBCLabel(ctx, q, acc, ts, label)
		if err != nil || detail == "" {
			out = ts
			return err
		}
		ts.UpdatedAt = s.now()
		if err := q.PutTeamsSettings(ctx, ts); err != nil {
			return err
		}
		out = ts
		return s.audit(ctx, q, p, acc.ID, "teams.sbc_label", acc.ID, detail)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// setSBCLabel checks that label (valid, normalised) is free for acc and
// puts it in ts; it returns the audit detail, "" when nothing changes.
func setSBCLabel(ctx context.Context, q Queries, acc *Account, ts *TeamsSettings, label string) (string, error) {
	if label == ts.SBCLabel {
		return "", nil
	}
	owner, err := q.AccountBySBCLabel(ctx, label)
	switch {
	case err == nil && owner != acc.ID:
		return "", sbcLabelTaken(label)
	case err != nil && ErrorCode(err) != ENotFound:
		return "", err
	}
	detail := fmt.Sprintf("SBC label %s → %s", firstNonEmpty(ts.SBCLabel, "(none)"), label)
	ts.SBCLabel = label
	return detail, nil
}

func sbcLabelError(label string) error {
	return &Error{Code: EInvalid, Message: fmt.Sprintf("%s is not a valid SBC label. %s", quoteShort(label), sbcLabelRule),
		Details: []ErrorDetail{{Field: "sbc_label", Reason: sbcLabelRule}}}
}

func sbcLabelTaken(label string) error {
	msg := fmt.Sprintf("The SBC label %s is already used by another customer; choose another one.", label)
	return &Error{Code: EConflict, Message: msg, Details: []ErrorDetail{{Field: "sbc_label", Reason: msg}}}
}

// AccountBySBCLabel returns the customer account whose SBC label is label
// (case-insensitive), for the SIP engine: no principal, ENotFound if none.
func (s *Service) AccountBySBCLabel(ctx context.Context, label string) (*Account, error) {
	label = NormalizeSBCLabel(label)
	if !ValidSBCLabel(label) {
		return nil, Errorf(ENotFound, "No customer has the SBC label %s.", quoteShort(label))
	}
	id, err := s.Store.AccountBySBCLabel(ctx, label)
	if err != nil {
		if ErrorCode(err) == ENotFound {
			return nil, Errorf(ENotFound, "No customer has the SBC label %s.", label)
		}
		return nil, err
	}
	return s.Store.Account(ctx, id)
}
