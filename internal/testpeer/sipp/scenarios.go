package sipp

import (
	"embed"
	"strconv"
	"strings"
	"time"
)

// The scripted phones the tests and the end-to-end story share, as
// scenario files (keywords in brackets are set with Options.Keys):
//
//	desk_calls    a desk phone [caller] calling [callee]@[domain], playing
//	              G.711 audio from Debian's g711a.pcap, then BYE (DeskCalls)
//	desk_answers  a phone that answers (PCMU, telephone-event; run with
//	              -rtp_echo to echo audio and DTMF), keeps Record-Route, waits for BYE
//	far_answer, far_hold, far_refer, far_bye
//	              parts of a far end: answer; take a hold re-INVITE
//	              (a=inactive) and a resume; accept a REFER with 202 and a
//	              NOTIFY of 200; take BYE. Join them with Scenario.
//
//go:embed scenarios/*.xml
var scenarioFiles embed.FS

// Scenario returns the scenario made of the named parts, in order (see
// above). It panics on an unknown name: the names are constants of the
// tests.
func Scenario(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		data, err := scenarioFiles.ReadFile("scenarios/" + p + ".xml")
		if err != nil {
			panic("sipp: no scenario part " + p)
		}
		b.Write(data)
	}
	return b.String()
}

// DeskCalls is desk_calls talking for talk before it hangs up (SIPp takes
// no keyword in a pause, so the duration is written in).
func DeskCalls(talk time.Duration) string {
	return strings.ReplaceAll(Scenario("desk_calls"), "[talk_ms]", strconv.FormatInt(talk.Milliseconds(), 10))
}

// DeskCallKeys are the keys of desk_calls for caller calling callee in
// domain.
func DeskCallKeys(caller, callee, domain string) map[string]string {
	return map[string]string{"caller": caller, "callee": callee, "domain": domain}
}
