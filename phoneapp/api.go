package phoneapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/m365"
)

// caller is the signed-in Phone App user of one request.
type caller struct {
	user *pbx2teams.User
	sso  *m365.SSOUser
}

func unauthenticated(msg string) error {
	return &pbx2teams.Error{Code: pbx2teams.EUnauthenticated, Message: msg}
}

// authenticate validates the request's SSO token and finds its Phone App
// user; every refusal has a message for the person in front of the tab.
func (h *handler) authenticate(r *http.Request) (*caller, error) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		return nil, unauthenticated("You are not signed in. Open the Phone App from Microsoft Teams.")
	}
	sso, err := h.cfg.Validator.Validate(r.Context(), strings.TrimSpace(tok))
	if err != nil {
		var pe *pbx2teams.Error
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, &pbx2teams.Error{Code: pbx2teams.EUnauthenticated, Message: "Your Teams sign-in could not be checked. Reload the app.", Err: err}
	}
	who := sso.UPN
	if who == "" {
		who = "your account"
	}
	notPhoneApp := &pbx2teams.Error{Code: pbx2teams.EForbidden, Message: "The Phone App is not set up for " + who +
		". Ask your administrator to make you a Phone App user and to run a sync."}
	u, err := h.cfg.Users.PhoneAppUser(r.Context(), sso.TenantID, sso.UserID)
	if err != nil {
		if pbx2teams.ErrorCode(err) == pbx2teams.ENotFound {
			return nil, notPhoneApp
		}
		return nil, err
	}
	if u == nil || u.ObjectID != sso.UserID || u.Type != pbx2teams.ServicePhoneApp {
		return nil, notPhoneApp
	}
	if u.Suspended || u.Deleted || !u.Enabled {
		return nil, &pbx2teams.Error{Code: pbx2teams.EForbidden, Message: "Your Phone App line is suspended because your account is disabled. Ask your administrator."}
	}
	return &caller{user: u, sso: sso}, nil
}

// api wraps a JSON endpoint: authentication, then fn's result or error.
func (h *handler) api(fn func(*caller, http.ResponseWriter, *http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, err := h.authenticate(r)
		if err != nil {
			writeError(w, err, h.log)
			return
		}
		status, v, err := fn(c, w, r)
		if err != nil {
			writeError(w, err, h.log)
			return
		}
		writeJSON(w, status, v)
	}
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with the error's code and plain message; internal
// errors are logged and shown as a generic message.
func writeError(w http.ResponseWriter, err error, log *slog.Logger) {
	code := pbx2teams.ErrorCode(err)
	status := pbx2teams.HTTPStatus(code)
	var se *statusErr
	if errors.As(err, &se) {
		status = se.status
	}
	msg := pbx2teams.ErrorMessage(err)
	switch code {
	case pbx2teams.EInternal:
		log.Error("phoneapp: internal error", "err", err)
	case pbx2teams.EUnavailable:
		log.Warn("phoneapp: unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
	case pbx2teams.EUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="phoneapp"`)
	}
	writeJSON(w, status, errorBody{Code: code, Message: msg})
}

// statusErr overrides the status of a code (400 for unreadable requests).
type statusErr struct {
	status int
	err    *pbx2teams.Error
}

func (e *statusErr) Error() string { return e.err.Error() }
func (e *statusErr) Unwrap() error { return e.err }

func badRequest(msg string) error {
	return &statusErr{status: http.StatusBadRequest, err: &pbx2teams.Error{Code: pbx2teams.EInvalid, Message: msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"code":"internal","message":"The response could not be encoded."}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads a small JSON body into v.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return badRequest("The request must be JSON.")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil {
		return badRequest("The request could not be read.")
	}
	if len(b) > 4096 {
		return badRequest("The request is too large.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("The request is not valid JSON.")
	}
	return nil
}

// ---- numbers ----

var (
	e164RE      = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	extensionRE = regexp.MustCompile(`^[0-9*#]{1,32}$`)
	dtmfRE      = regexp.MustCompile(`^[0-9*#A-D]{1,32}$`)
	// separators people type or paste inside numbers
	separators = strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "", "/", "", "\u00a0", "", "\t", "")
)

// NormaliseNumber turns what a person typed into a number to dial: spaces,
// dashes, dots, slashes and parentheses are dropped; the result is an E.164
// number (+ and 2 to 15 digits) or an extension or short code (digits, *
// and #, at most 32).
func NormaliseNumber(s string) (string, error) {
	n := separators.Replace(strings.TrimSpace(s))
	switch {
	case n == "":
		return "", pbx2teams.Errorf(pbx2teams.EInvalid, "Enter a number or an extension to call.")
	case strings.HasPrefix(n, "+"):
		if !e164RE.MatchString(n) {
			return "", pbx2teams.Errorf(pbx2teams.EInvalid, "%q is not a valid international number: use + then the country code and number, up to 15 digits.", s)
		}
	case !extensionRE.MatchString(n):
		return "", pbx2teams.Errorf(pbx2teams.EInvalid, "%q is not a number: use digits, * and #, or + and an international number.", s)
	}
	return n, nil
}

// ---- endpoints ----

// meView is what the tab shows about its user.
type meView struct {
	DisplayName  string          `json:"display_name"`
	UPN          string          `json:"upn"`
	PhoneNumber  string          `json:"phone_number,omitempty"`
	Extension    string          `json:"extension,omitempty"`
	Registration registration    `json:"registration"`
	Features     map[string]bool `json:"features"`
}

// registration is the line state as shown: state is registered,
// registering, failed, stopped or unknown.
type registration struct {
	State      string `json:"state"`
	StatusCode int    `json:"status_code,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

func (h *handler) registration(u *pbx2teams.User) registration {
	if h.cfg.Registrations == nil {
		return registration{State: "unknown"}
	}
	st, ok := h.cfg.Registrations.RegistrationState(u.ID)
	if !ok {
		return registration{State: pbx2teams.RegStopped, Reason: "The line is not registered to the PBX yet."}
	}
	return registration{State: st.State, StatusCode: st.StatusCode, Reason: st.Reason}
}

func (h *handler) me(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	u := c.user
	return 200, meView{DisplayName: u.DisplayName, UPN: u.UPN, PhoneNumber: u.PhoneNumber, Extension: u.SIPUsername,
		Registration: h.registration(u),
		Features:     map[string]bool{"recent": h.cfg.Recent != nil, "contacts": h.cfg.Contacts != nil}}, nil
}

func (h *handler) calls(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	calls := h.cfg.Dialler.Calls(c.user)
	if calls == nil {
		calls = []pbx2teams.LiveCall{}
	}
	return 200, map[string]any{"calls": calls}, nil
}

func (h *handler) dial(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in struct {
		Number string `json:"number"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	n, err := NormaliseNumber(in.Number)
	if err != nil {
		return 0, nil, err
	}
	lc, err := h.cfg.Dialler.Dial(r.Context(), c.user, n)
	if err != nil {
		return 0, nil, err
	}
	h.log.Info("phoneapp: dial", "user", c.user.ID, "call", lc.ID)
	return http.StatusCreated, lc, nil
}

func callID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		return "", badRequest("The call id is missing or too long.")
	}
	return id, nil
}

func (h *handler) hangup(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := callID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := h.cfg.Dialler.Hangup(r.Context(), c.user, id); err != nil {
		return 0, nil, err
	}
	return 200, map[string]string{"status": "ok"}, nil
}

func (h *handler) hold(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := callID(r)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		On *bool `json:"on"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.On == nil {
		return 0, nil, badRequest(`Say "on": true to hold or false to resume.`)
	}
	if err := h.cfg.Dialler.Hold(r.Context(), c.user, id, *in.On); err != nil {
		return 0, nil, err
	}
	return 200, map[string]string{"status": "ok"}, nil
}

func (h *handler) transfer(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := callID(r)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Target string `json:"target"`
		CallID string `json:"call_id"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	switch {
	case in.CallID != "" && in.Target != "":
		return 0, nil, badRequest("Give either a number to transfer to or another call to join, not both.")
	case in.CallID != "":
		if in.CallID == id {
			return 0, nil, pbx2teams.Errorf(pbx2teams.EInvalid, "A call cannot be joined with itself.")
		}
		err = h.cfg.Dialler.AttendedTransfer(r.Context(), c.user, id, in.CallID)
	default:
		n, nerr := NormaliseNumber(in.Target)
		if nerr != nil {
			return 0, nil, nerr
		}
		err = h.cfg.Dialler.Transfer(r.Context(), c.user, id, n)
	}
	if err != nil {
		return 0, nil, err
	}
	return 200, map[string]string{"status": "ok"}, nil
}

func (h *handler) dtmf(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := callID(r)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Digits string `json:"digits"`
	}
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	d := strings.ToUpper(strings.TrimSpace(in.Digits))
	if !dtmfRE.MatchString(d) {
		return 0, nil, pbx2teams.Errorf(pbx2teams.EInvalid, "Keypad tones are the digits 0-9, *, # and A-D.")
	}
	if err := h.cfg.Dialler.DTMF(r.Context(), c.user, id, d); err != nil {
		return 0, nil, err
	}
	return 200, map[string]string{"status": "ok"}, nil
}

// recentView is one line of the recent calls list.
type recentView struct {
	ID         string    `json:"id"`
	Direction  string    `json:"direction"`
	Number     string    `json:"number"`
	Name       string    `json:"name,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	Seconds    int64     `json:"seconds"`
	Result     string    `json:"result"`
	Advice     string    `json:"advice,omitempty"`
	Answered   bool      `json:"answered"`
	Incomplete bool      `json:"incomplete,omitempty"`
}

func (h *handler) recent(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	out := []recentView{}
	if h.cfg.Recent == nil {
		return 200, map[string]any{"calls": out}, nil
	}
	recs, err := h.cfg.Recent(r.Context(), c.user.AccountID, c.user.ID, h.cfg.RecentLimit)
	if err != nil {
		return 0, nil, err
	}
	for _, rec := range recs {
		if rec.UserID != c.user.ID { // never show another user's call
			continue
		}
		v := recentView{ID: rec.ID, Direction: rec.Direction, StartedAt: rec.StartedAt, Result: rec.Result,
			Advice: rec.Advice, Seconds: int64(rec.Duration() / time.Second), Answered: rec.Result == pbx2teams.ResultAnswered}
		if rec.Direction == pbx2teams.DirectionInbound {
			v.Number, v.Name = rec.From, rec.FromName
		} else {
			v.Number = rec.To
		}
		out = append(out, v)
	}
	return 200, map[string]any{"calls": out}, nil
}

func (h *handler) contacts(c *caller, w http.ResponseWriter, r *http.Request) (int, any, error) {
	out := []Contact{}
	if h.cfg.Contacts == nil {
		return 200, map[string]any{"contacts": out}, nil
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 100 {
		return 0, nil, badRequest("The search is too long.")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	cs, err := h.cfg.Contacts.Contacts(ctx, c.user, q, 50)
	if err != nil {
		return 0, nil, err
	}
	if cs != nil {
		out = cs
	}
	return 200, map[string]any{"contacts": out}, nil
}
