package portal

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// callsPageSize is the number of calls per page of the Calls tab.
const callsPageSize = 50

// callsData is the Calls tab: a page of the call log, newest first.
type callsData struct {
	Rows    []callRow
	Results []string
	// Filter values: the user as typed (or the user's ID from a link) and
	// the user it names, and the result.
	UserQuery string
	UserInput string // what the filter field shows: the user's UPN once found
	User      *pbx2teams.User
	Result    string
	Filtered  bool
	Next      string // link to the next (older) page
	Newest    string // link back to the newest page; empty on it
}

type callRow struct {
	pbx2teams.CallRecord
	UserName string
	Href     string
}

func (s *server) callsPage(w http.ResponseWriter, r *http.Request, rq *req) {
	ctx := r.Context()
	q := r.URL.Query()
	d := callsData{Results: pbx2teams.CallResults, UserQuery: strings.TrimSpace(q.Get("user")), Result: q.Get("result")}
	d.UserInput = d.UserQuery
	pg := &page{Title: "Calls", Tab: "calls", Data: &d}
	if d.Result != "" && !pbx2teams.ValidCallResult(d.Result) {
		d.Result = ""
	}
	query := pbx2teams.CallQuery{AccountID: rq.acc.ID, Result: d.Result, Cursor: q.Get("cursor"), Limit: callsPageSize}
	if d.UserQuery != "" {
		u, err := s.findUser(r, rq, d.UserQuery)
		if err != nil {
			if pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
				s.fail(w, r, rq, err)
				return
			}
			pg.Error = fmt.Sprintf("No user %s in %s: enter a user's email (UPN) or SIP username, or clear the filter.", d.UserQuery, rq.acc.Name)
			pg.Code = pbx2teams.ENotFound
			pg.Fields = map[string]string{"user": "No such user."}
			s.render(w, r, rq, http.StatusOK, "calls.html", pg)
			return
		}
		d.User = u
		d.UserInput = u.UPN
		query.UserID = u.ID
	}
	d.Filtered = d.UserQuery != "" || d.Result != ""
	res, err := s.svc.Calls(ctx, rq.p, query)
	if err != nil {
		if pbx2teams.ErrorCode(err) == pbx2teams.EInvalid && query.Cursor != "" {
			// A stale or edited cursor: back to the newest calls.
			redirect(w, r, s.callsLink(rq.acc.ID, d.UserQuery, d.Result, ""), "")
			return
		}
		s.fail(w, r, rq, err)
		return
	}
	names := map[string]string{}
	if d.User != nil {
		names[d.User.ID] = displayName(d.User)
	}
	for _, c := range res.Calls {
		row := callRow{CallRecord: c, Href: "/a/" + rq.acc.ID + "/calls/" + c.ID}
		if c.UserID != "" {
			name, ok := names[c.UserID]
			if !ok {
				// The account was checked visible above; a plain lookup
				// scoped to it is enough for each row.
				if u, err := s.svc.Store.User(ctx, rq.acc.ID, c.UserID); err == nil {
					name = displayName(u)
				}
				names[c.UserID] = name
			}
			row.UserName = name
		}
		d.Rows = append(d.Rows, row)
	}
	if res.NextCursor != "" {
		d.Next = s.callsLink(rq.acc.ID, d.UserQuery, d.Result, res.NextCursor)
	}
	if query.Cursor != "" {
		d.Newest = s.callsLink(rq.acc.ID, d.UserQuery, d.Result, "")
	}
	s.render(w, r, rq, http.StatusOK, "calls.html", pg)
}

// findUser resolves the user filter: a user ID (from a link), a UPN or a
// SIP username of the page's customer.
func (s *server) findUser(r *http.Request, rq *req, v string) (*pbx2teams.User, error) {
	ctx := r.Context()
	if strings.HasPrefix(v, "usr_") {
		return s.svc.User(ctx, rq.p, rq.acc.ID, v)
	}
	if strings.Contains(v, "@") {
		u, err := s.svc.Store.UserByUPN(ctx, rq.acc.ID, strings.ToLower(v))
		if err == nil || pbx2teams.ErrorCode(err) != pbx2teams.ENotFound {
			return u, err
		}
	}
	res, err := s.svc.Users(ctx, rq.p, pbx2teams.UserQuery{AccountID: rq.acc.ID, Search: v, Type: "any", Limit: 20})
	if err != nil {
		return nil, err
	}
	for i := range res.Users {
		u := &res.Users[i]
		if strings.EqualFold(u.SIPUsername, v) || strings.EqualFold(u.UPN, v) || u.PhoneNumber == v {
			return u, nil
		}
	}
	return nil, pbx2teams.Errorf(pbx2teams.ENotFound, "No such user.")
}

func (s *server) callsLink(accID, user, result, cursor string) string {
	q := url.Values{}
	if user != "" {
		q.Set("user", user)
	}
	if result != "" {
		q.Set("result", result)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	l := "/a/" + accID + "/calls"
	if len(q) > 0 {
		l += "?" + q.Encode()
	}
	return l
}

func displayName(u *pbx2teams.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.UPN
}

// callData is one call's page.
type callData struct {
	Call     *pbx2teams.CallRecord
	UserName string
	UserHref string
	Trace    *pbx2teams.CallTrace
	// NoTrace says why there is no trace (expired, never recorded).
	NoTrace string
	Steps   []ladderStep
	Back    string
}

// ladderStep is one arrow of the SIP ladder.
type ladderStep struct {
	pbx2teams.TraceMessage
	N       int
	Offset  string // time since the first message, e.g. +0.245 s
	Toward  string // "right" or "left": the arrow's direction on the page
	Kind    string // request, provisional, success, failure
	Lane    string // pbx (PBX ↔ pbx2teams) or teams (pbx2teams ↔ Teams)
	Sender  string
	Receive string
}

func (s *server) callPage(w http.ResponseWriter, r *http.Request, rq *req) {
	ctx := r.Context()
	c, err := s.svc.Call(ctx, rq.p, rq.acc.ID, r.PathValue("call"))
	if err != nil {
		s.fail(w, r, rq, err)
		return
	}
	d := callData{Call: c, Back: "/a/" + rq.acc.ID + "/calls"}
	if c.UserID != "" {
		if u, err := s.svc.User(ctx, rq.p, rq.acc.ID, c.UserID); err == nil {
			d.UserName = displayName(u)
			d.UserHref = "/a/" + rq.acc.ID + "/users/" + u.ID
		}
	}
	tr, err := s.svc.CallTrace(ctx, rq.p, rq.acc.ID, c.ID)
	switch {
	case err == nil:
		d.Trace = tr
		d.Steps = ladder(tr)
	case pbx2teams.ErrorCode(err) == pbx2teams.ENotFound:
		d.NoTrace = pbx2teams.ErrorMessage(err)
	default:
		s.fail(w, r, rq, err)
		return
	}
	s.render(w, r, rq, http.StatusOK, "call.html", &page{Title: "Call", Tab: "calls", Data: d})
}

// ladder lays out a trace as arrows between three lifelines: PBX,
// pbx2teams and Teams.
func ladder(tr *pbx2teams.CallTrace) []ladderStep {
	out := make([]ladderStep, 0, len(tr.Messages))
	var first time.Time
	for i, m := range tr.Messages {
		if i == 0 {
			first = m.At
		}
		st := ladderStep{TraceMessage: m, N: i + 1, Lane: "pbx", Kind: messageKind(m.Summary)}
		if m.Leg == "teams" {
			st.Lane = "teams"
		}
		if !m.At.IsZero() && !first.IsZero() {
			st.Offset = fmt.Sprintf("+%.3f s", m.At.Sub(first).Seconds())
		}
		// The PBX is on the left, Teams on the right, pbx2teams between.
		switch {
		case st.Lane == "pbx" && m.Direction == "in":
			st.Toward, st.Sender, st.Receive = "right", "PBX", "pbx2teams"
		case st.Lane == "pbx":
			st.Toward, st.Sender, st.Receive = "left", "pbx2teams", "PBX"
		case m.Direction == "in":
			st.Toward, st.Sender, st.Receive = "left", "Teams", "pbx2teams"
		default:
			st.Toward, st.Sender, st.Receive = "right", "pbx2teams", "Teams"
		}
		out = append(out, st)
	}
	return out
}

// messageKind classifies a start line for the arrow's colour.
func messageKind(summary string) string {
	rest, ok := strings.CutPrefix(summary, "SIP/2.0 ")
	if !ok {
		return "request"
	}
	code, _ := strconv.Atoi(strings.SplitN(rest, " ", 2)[0])
	switch {
	case code >= 100 && code < 200:
		return "provisional"
	case code >= 200 && code < 300:
		return "success"
	}
	return "failure"
}

// resultLabel is a call result in words.
func resultLabel(r string) string {
	switch r {
	case pbx2teams.ResultAnswered:
		return "Answered"
	case pbx2teams.ResultBusy:
		return "Busy"
	case pbx2teams.ResultNoAnswer:
		return "No answer"
	case pbx2teams.ResultDeclined:
		return "Declined"
	case pbx2teams.ResultCancelled:
		return "Cancelled"
	case pbx2teams.ResultRejected:
		return "Rejected"
	case pbx2teams.ResultFailed:
		return "Failed"
	}
	return r
}

// resultClass is the pill colour of a result: ok for answered, warn for
// the ordinary outcomes of telephony, err for failures.
func resultClass(r string) string {
	switch r {
	case pbx2teams.ResultAnswered:
		return "ok"
	case pbx2teams.ResultBusy, pbx2teams.ResultNoAnswer, pbx2teams.ResultCancelled, pbx2teams.ResultDeclined:
		return "warn"
	}
	return "err"
}

func directionLabel(d string) string {
	switch d {
	case pbx2teams.DirectionInbound:
		return "Inbound"
	case pbx2teams.DirectionOutbound:
		return "Outbound"
	}
	return d
}

func routeLabel(r string) string {
	switch r {
	case pbx2teams.RouteDirectRouting:
		return "Direct Routing"
	case pbx2teams.RoutePhoneApp:
		return "Phone App"
	}
	return r
}

func endedByLabel(e string) string {
	switch e {
	case "pbx":
		return "the PBX side hung up"
	case "teams":
		return "the Teams side hung up"
	case "user":
		return "the user hung up (Phone App)"
	case "timeout":
		return "no answer in time"
	case "media_timeout":
		return "no audio arrived for too long"
	case "session_timer":
		return "the session timer expired"
	case "error":
		return "an error"
	case "shutdown":
		return "the service shut down"
	}
	return e
}

// sipStatus is a final status with its usual reason phrase, e.g. "486 Busy
// Here"; "—" for a leg never tried.
func sipStatus(code int) string {
	if code == 0 {
		return "—"
	}
	if t := sipReasons[code]; t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

var sipReasons = map[int]string{
	180: "Ringing", 183: "Session Progress", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
	404: "Not Found", 407: "Proxy Authentication Required", 408: "Request Timeout", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 500: "Server Internal Error", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Server Time-out", 600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// callDuration is how long a call was connected, as m:ss or h:mm:ss; "—"
// when never answered.
func callDuration(c pbx2teams.CallRecord) string {
	d := c.Duration()
	if c.AnsweredAt.IsZero() {
		return "—"
	}
	sec := int(d.Round(time.Second) / time.Second)
	if sec >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}

func fmtSeconds(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 Jan 2006 15:04:05 UTC")
}

func fmtClock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("15:04:05.000")
}

// millis shows a duration in milliseconds with one decimal.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

// sbcLabelSave changes the customer's SBC label (Teams services tab).
func (s *server) sbcLabelSave(w http.ResponseWriter, r *http.Request, rq *req) {
	label := r.PostFormValue("sbc_label")
	if _, err := s.svc.SetSBCLabel(r.Context(), rq.p, rq.acc.ID, label); err != nil {
		current, cerr := s.svc.TeamsSettings(r.Context(), rq.p, rq.acc.ID)
		if cerr != nil {
			s.fail(w, r, rq, cerr)
			return
		}
		pg := &page{}
		pg.setError(err)
		s.renderTeams(w, r, rq, s.errStatus(r, err), pg, current, &teamsData{SBCLabelForm: label, sbcOnly: true})
		return
	}
	redirect(w, r, "/a/"+rq.acc.ID+"/teams", "sbc-label-saved")
}
