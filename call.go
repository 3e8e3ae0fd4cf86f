package pbx2teams

import (
	"context"
	"time"
)

// Call directions, seen from the Teams user.
const (
	DirectionInbound  = "inbound"  // PBX → Teams: someone called the user's extension
	DirectionOutbound = "outbound" // Teams → PBX: the user placed the call
)

// Call routes: how the Teams side of a call was reached.
const (
	RouteDirectRouting = "direct_routing" // standard users, through the customer's SBC subdomain
	RoutePhoneApp      = "phone_app"      // Phone App users, through Teams external access
)

// Call results.
const (
	ResultAnswered  = "answered"
	ResultBusy      = "busy"
	ResultNoAnswer  = "no_answer"
	ResultDeclined  = "declined"
	ResultCancelled = "cancelled"
	ResultRejected  = "rejected" // refused before ringing anyone (not found, forbidden, no codec...)
	ResultFailed    = "failed"
)

// CallRecord is one call as kept for the call log: plain data, safe to
// store and to return from the API (no credentials, no SDP keys).
type CallRecord struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	// UserID is empty for calls refused before a user was known.
	UserID    string `json:"user_id,omitempty"`
	Direction string `json:"direction"` // inbound, outbound
	Route     string `json:"route"`     // direct_routing, phone_app
	// From and To are the caller's and callee's numbers as signalled.
	From       string    `json:"from"`
	FromName   string    `json:"from_name,omitempty"`
	To         string    `json:"to"`
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	EndedAt    time.Time `json:"ended_at"`
	Result     string    `json:"result"`
	// PBXStatus and TeamsStatus are the final SIP statuses of each leg's
	// initial INVITE (0 when the leg was never tried).
	PBXStatus   int    `json:"pbx_status"`
	TeamsStatus int    `json:"teams_status"`
	EndedBy     string `json:"ended_by,omitempty"` // pbx, teams, user, timeout, media_timeout, session_timer, error, shutdown
	// Advice explains a failure in plain words and says what to check.
	Advice string    `json:"advice,omitempty"`
	Media  CallMedia `json:"media"`
	// TeamsPeer is the Microsoft proxy or federation edge that took the call.
	TeamsPeer string `json:"teams_peer,omitempty"`
	// AddedDelay is what pbx2teams itself added to the set-up of an
	// answered call: from the caller's INVITE to our 200, minus the time
	// spent waiting for the called side to answer.
	AddedDelay time.Duration `json:"added_delay_ns,omitempty"`
}

// Duration is how long the call was connected (zero if never answered).
func (r *CallRecord) Duration() time.Duration {
	if r.AnsweredAt.IsZero() || r.EndedAt.Before(r.AnsweredAt) {
		return 0
	}
	return r.EndedAt.Sub(r.AnsweredAt)
}

// CallMedia are the media relay's counters of a call.
type CallMedia struct {
	Codec          string        `json:"codec,omitempty"`
	PacketsFromPBX uint64        `json:"packets_from_pbx"`
	PacketsToPBX   uint64        `json:"packets_to_pbx"`
	PacketsFromMS  uint64        `json:"packets_from_teams"`
	PacketsToMS    uint64        `json:"packets_to_teams"`
	LostFromPBX    int64         `json:"lost_from_pbx"`
	LostFromMS     int64         `json:"lost_from_teams"`
	JitterPBX      time.Duration `json:"jitter_pbx_ns"`
	JitterMS       time.Duration `json:"jitter_teams_ns"`
	SRTPFailures   uint64        `json:"srtp_failures"`
	SRTPPBX        bool          `json:"srtp_pbx"` // the PBX leg used SRTP
}

// TraceMessage is one SIP message of a call's trace.
type TraceMessage struct {
	At        time.Time `json:"at"`
	Leg       string    `json:"leg"`               // pbx or teams
	Direction string    `json:"direction"`         // in (to pbx2teams) or out
	Summary   string    `json:"summary"`           // start line
	Message   string    `json:"message,omitempty"` // full text, credentials removed
}

// CallTrace is the SIP ladder of one call, kept for a bounded time.
type CallTrace struct {
	CallRecordID string         `json:"call_record_id"`
	CallID       string         `json:"call_id"` // SIP Call-ID of the first leg
	Messages     []TraceMessage `json:"messages"`
	Dropped      int            `json:"dropped,omitempty"` // messages past the limit
}

// CallQuery selects a page of a customer's call log, newest first.
type CallQuery struct {
	AccountID string
	UserID    string // optional: one user's calls
	Result    string // optional: one result
	// Cursor is the opaque position returned by the previous page.
	Cursor string
	Limit  int
}

// CallPage is one page of a call log.
type CallPage struct {
	Calls      []CallRecord `json:"calls"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// CallStore keeps call records and their traces.
type CallStore interface {
	// AppendCall stores a finished call and its trace (tr may be nil).
	AppendCall(ctx context.Context, rec *CallRecord, tr *CallTrace) error
	// Calls returns a page of an account's calls, newest first.
	Calls(ctx context.Context, q CallQuery) (*CallPage, error)
	// Call returns one call of an account (ErrNotFound-coded error if none).
	Call(ctx context.Context, accountID, id string) (*CallRecord, error)
	// CallTrace returns the trace of one call of an account.
	CallTrace(ctx context.Context, accountID, id string) (*CallTrace, error)
	// DeleteCallTracesBefore drops traces of calls that ended before t and
	// returns how many were dropped; records stay.
	DeleteCallTracesBefore(ctx context.Context, t time.Time) (int, error)
	// DeleteCallsBefore drops records (and traces) of calls that ended before t.
	DeleteCallsBefore(ctx context.Context, t time.Time) (int, error)
}

// Live call states, as the Phone App tab shows them.
const (
	CallRingingYou  = "ringing_you" // callback-first: Teams is ringing the user
	CallDialling    = "dialling"    // the PBX destination is being called
	CallRinging     = "ringing"     // the far end rings (180 or early media)
	CallIncoming    = "incoming"    // someone calls the user's extension
	CallConnected   = "connected"   // talking
	CallHeld        = "held"        // the user put the far end on hold
	CallTransferred = "transferred" // handed to another party
	CallEnded       = "ended"       // over; Reason says why
)

// LiveCall is a call of a Phone App user as it happens.
type LiveCall struct {
	ID         string `json:"id"`
	AccountID  string `json:"account_id"`
	UserID     string `json:"user_id"`
	Direction  string `json:"direction"`             // inbound, outbound
	Remote     string `json:"remote"`                // the other party's number or extension
	RemoteName string `json:"remote_name,omitempty"` // the other party's name when known
	State      string `json:"state"`
	// Reason explains an ended or failed call in plain words.
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	// Media counters as the relay sees them: packets toward the user and
	// from the user.
	PacketsToUser   uint64 `json:"packets_to_user"`
	PacketsFromUser uint64 `json:"packets_from_user"`
	// CanAttendedTransfer is set when the PBX announced REFER with Replaces.
	CanAttendedTransfer bool `json:"can_attended_transfer"`
}

// Dialler is the call control the Phone App tab drives for one user. Every
// method acts only on the calls of the given user; a call ID of another
// user is not found.
type Dialler interface {
	// Dial places a callback-first call: ring the user in Teams, then, once
	// answered, call number through the PBX as the user.
	Dial(ctx context.Context, u *User, number string) (*LiveCall, error)
	// Hangup ends a call.
	Hangup(ctx context.Context, u *User, callID string) error
	// Hold puts the far end on hold (on) or resumes it.
	Hold(ctx context.Context, u *User, callID string, on bool) error
	// Transfer hands the far end to target (blind transfer, REFER to the PBX).
	Transfer(ctx context.Context, u *User, callID, target string) error
	// AttendedTransfer joins the far ends of two of the user's calls
	// (REFER with Replaces) when the PBX supports it.
	AttendedTransfer(ctx context.Context, u *User, callID, otherCallID string) error
	// DTMF sends digits (0-9 * # A-D) to the far end as RFC 4733 events.
	DTMF(ctx context.Context, u *User, callID, digits string) error
	// Calls returns the user's calls in progress.
	Calls(u *User) []LiveCall
	// Watch delivers every change of the user's calls until cancel is
	// called; slow readers miss intermediate states, never the last one.
	Watch(u *User) (changes <-chan LiveCall, cancel func())
}

// TestCaller places a test call to a Phone App user: it rings them in Teams
// through the Phone App leg and reports the outcome in plain words. The
// B2BUA implements it.
type TestCaller interface {
	TestCall(ctx context.Context, u *User) (result, advice string, err error)
}
