package b2bua

import (
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams"
)

// Direction of a call, seen from the Teams user (the root package's
// values; the names say which way the call goes).
const (
	ToTeams   = pbx2teams.DirectionInbound  // PBX → Teams
	FromTeams = pbx2teams.DirectionOutbound // Teams → PBX
)

// Results of a call (the root package's values).
const (
	ResultAnswered  = pbx2teams.ResultAnswered
	ResultBusy      = pbx2teams.ResultBusy
	ResultNoAnswer  = pbx2teams.ResultNoAnswer
	ResultDeclined  = pbx2teams.ResultDeclined
	ResultCancelled = pbx2teams.ResultCancelled
	ResultRejected  = pbx2teams.ResultRejected
	ResultFailed    = pbx2teams.ResultFailed
)

// Who or what ended a call.
const (
	endPBX      = "pbx"
	endTeams    = "teams"
	endUser     = "user" // the Phone App user, from the dialler tab
	endTimeout  = "timeout"
	endMedia    = "media_timeout"
	endSession  = "session_timer"
	endError    = "error"
	endShutdown = "shutdown"
)

// Record is one call as kept for the call log.
type Record = pbx2teams.CallRecord

// MediaRecord are the relay's counters of a call.
type MediaRecord = pbx2teams.CallMedia

// TraceMessage is one SIP message of a call's trace.
type TraceMessage = pbx2teams.TraceMessage

// Trace is the SIP ladder of one call.
type Trace = pbx2teams.CallTrace

// Recorder receives every call's record and trace when it ends. It is
// called from the call's goroutine and must not block for long.
type Recorder interface {
	CallEnded(rec *Record, tr *Trace)
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(*Record, *Trace)

// CallEnded implements Recorder.
func (f RecorderFunc) CallEnded(r *Record, t *Trace) { f(r, t) }

// traceBuf collects a call's messages up to a limit. Messages are kept
// by reference and rendered when the call ends (render), so the call path
// pays only for an append.
type traceBuf struct {
	mu      sync.Mutex
	limit   int
	recID   string
	callID  string // SIP Call-ID of the call's first leg
	entries []traceEntry
	dropped int
}

type traceEntry struct {
	at  time.Time
	leg string
	dir string
	msg sip.Message
}

const maxTraceMessage = 8 << 10

func (tb *traceBuf) add(legName, dir string, m sip.Message) {
	if tb == nil || tb.limit <= 0 {
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.callID == "" {
		if x, ok := m.(*sip.Request); ok && x.CallID() != nil {
			tb.callID = x.CallID().Value()
		}
	}
	if len(tb.entries) >= tb.limit {
		tb.dropped++
		return
	}
	tb.entries = append(tb.entries, traceEntry{at: time.Now(), leg: legName, dir: dir, msg: m})
}

// render builds the trace: every message's start line, and its full text
// (credentials removed) when full is set.
func (tb *traceBuf) render(full bool) *Trace {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	t := &Trace{CallRecordID: tb.recID, CallID: tb.callID, Dropped: tb.dropped, Messages: make([]TraceMessage, 0, len(tb.entries))}
	for _, e := range tb.entries {
		tm := TraceMessage{At: e.at.UTC(), Leg: e.leg, Direction: e.dir}
		switch x := e.msg.(type) {
		case *sip.Request:
			tm.Summary = x.StartLine()
		case *sip.Response:
			tm.Summary = x.StartLine()
		}
		if full {
			var b strings.Builder
			b.Grow(1024)
			e.msg.StringWrite(&b)
			text := redact(b.String())
			if len(text) > maxTraceMessage {
				text = text[:maxTraceMessage] + "\r\n[truncated]"
			}
			tm.Message = text
		}
		t.Messages = append(t.Messages, tm)
	}
	tb.entries = nil
	return t
}

// redact removes digest credentials from a message's text: even hashed
// responses are not kept.
func redact(s string) string {
	if !containsFold(s, "authorization:") {
		return s
	}
	lines := strings.Split(s, "\r\n")
	for i, l := range lines {
		low := strings.ToLower(l)
		if strings.HasPrefix(low, "authorization:") || strings.HasPrefix(low, "proxy-authorization:") {
			name, _, _ := strings.Cut(l, ":")
			lines[i] = name + ": [removed]"
		}
	}
	return strings.Join(lines, "\r\n")
}

// containsFold reports whether s contains the lower-case ASCII substr,
// ignoring case, without allocating.
func containsFold(s, substr string) bool {
	n := len(substr)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != substr[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// resultOf classifies a failed call by the final status that ended it.
func resultOf(status int) string {
	switch {
	case status >= 200 && status < 300:
		return ResultAnswered
	case status == 486 || status == 600:
		return ResultBusy
	case status == 480 || status == 408:
		return ResultNoAnswer
	case status == 603:
		return ResultDeclined
	case status == 487:
		return ResultCancelled
	}
	return ResultFailed
}

// adviceFor explains a final status of the Teams leg or the PBX leg in
// plain words for the call log.
func adviceFor(legName string, status int, warning string) string {
	var s string
	if legName == "teams" {
		switch status {
		case 403:
			s = "Microsoft refused the call (403). Check that the customer's SBC subdomain is verified in their tenant, that the user has a Teams Phone licence with Enterprise Voice, and that a voice routing policy with the SBC is assigned."
		case 404:
			s = "Microsoft found no user with this number (404). Assign the number to the user in Teams (Set-CsPhoneNumberAssignment -PhoneNumberType DirectRouting) exactly in E.164 form."
		case 480:
			s = "The Teams user could not be reached (480): signed out, or no device online."
		case 486:
			s = "The Teams user was busy (486)."
		case 487:
			s = "The caller hung up before the Teams user answered."
		case 488:
			s = "Microsoft could not accept the media (488): no common codec or SRTP key. The PBX must offer G.711 or G.722."
		case 503, 408, 504:
			s = "Microsoft's SIP proxies did not take the call (" + itoa(status) + "). Check the SBC's status (OPTIONS) and certificate in the Teams admin center."
		case 603:
			s = "The Teams user declined the call (603). Teams does not retry a declined call."
		}
	} else {
		switch status {
		case 401, 407:
			s = "The PBX refused the user's credentials. Check the SIP username, authentication username and password of the user."
		case 403:
			s = "The PBX refused the call (403): the user may not call this destination, or the credentials are wrong."
		case 404, 484:
			s = "The PBX does not know the dialled number or extension (" + itoa(status) + ")."
		case 480:
			s = "The destination on the PBX could not be reached (480)."
		case 486:
			s = "The destination on the PBX was busy (486)."
		case 487:
			s = "The caller hung up before the call was answered."
		case 488:
			s = "The PBX could not accept the media (488): no common codec."
		case 503, 408, 504:
			s = "The PBX did not take the call (" + itoa(status) + "); it may be unreachable or overloaded."
		case 603:
			s = "The destination on the PBX declined the call (603)."
		}
	}
	if warning != "" {
		if s != "" {
			s += " "
		}
		s += "Detail: " + warning
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [12]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
