package media

import (
	"errors"
	"slices"
	"strings"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/media/sdp"
)

// Sentinel causes carried by the *pbx2teams.Error values the relay
// returns; test them with errors.Is. The B2BUA answers ErrNoCommonCodec,
// ErrSRTPRequired, ErrSRTPRefused and ErrBadSDP with 488 Not Acceptable Here.
var (
	ErrBadSDP        = errors.New("unusable SDP")
	ErrNoCommonCodec = errors.New("no common codec")
	ErrSRTPRequired  = errors.New("SRTP required")
	ErrSRTPRefused   = errors.New("SRTP not accepted")
	ErrNoPorts       = errors.New("no free media ports")
	ErrOutOfOrder    = errors.New("offer/answer out of order")
	ErrClosed        = errors.New("call closed")
)

func fail(code string, cause error, format string, args ...any) error {
	e := pbx2teams.Errorf(code, format, args...)
	e.Err = cause
	return e
}

// codecKind sorts the formats the relay passes through without
// transcoding: real audio, RFC 4733 events and comfort noise.
type codecKind uint8

const (
	kindNone codecKind = iota
	kindAudio
	kindDTMF
	kindCN
)

func classify(c sdp.Codec) codecKind {
	switch {
	case c.ClockRate == 8000 && (c.Is("PCMU") || c.Is("PCMA") || c.Is("G722")):
		return kindAudio
	case c.Is("telephone-event"):
		return kindDTMF
	case c.Is("CN"):
		return kindCN
	}
	return kindNone
}

// SupportedCodecs returns the codecs of list the relay can pass through:
// PCMU, PCMA, G.722, telephone-event and CN, in the list's order.
func SupportedCodecs(list []sdp.Codec) []sdp.Codec {
	out := make([]sdp.Codec, 0, len(list))
	for _, c := range list {
		if classify(c) != kindNone {
			out = append(out, c)
		}
	}
	return out
}

func hasAudio(list []sdp.Codec) bool {
	for _, c := range list {
		if classify(c) == kindAudio {
			return true
		}
	}
	return false
}

// sameCodec reports whether two codecs have the same encoding name
// (case-insensitive) and clock rate: sdp.Codec.Key equality, without
// building the keys.
func sameCodec(a, b sdp.Codec) bool {
	return a.ClockRate == b.ClockRate && strings.EqualFold(a.Name, b.Name)
}

// Intersect returns the codecs of ours whose name and clock rate also
// appear in theirs, in the order of theirs (the answerer's preference) and
// with the payload type numbers and parameters of ours. It fails with
// ErrNoCommonCodec when no audio codec is common; telephone-event and CN
// alone do not make a call.
func Intersect(ours, theirs []sdp.Codec) ([]sdp.Codec, error) {
	out := make([]sdp.Codec, 0, min(len(ours), len(theirs)))
	for _, t := range theirs {
		if classify(t) == kindNone || slices.ContainsFunc(out, func(o sdp.Codec) bool { return sameCodec(o, t) }) {
			continue
		}
		for _, o := range ours {
			if sameCodec(o, t) {
				out = append(out, o)
				break
			}
		}
	}
	if !hasAudio(out) {
		return nil, fail(pbx2teams.EInvalid, ErrNoCommonCodec,
			"No common audio codec: one side offers %s, the other %s (no transcoding; supported: PCMU, PCMA, G722).",
			codecNames(ours), codecNames(theirs))
	}
	return out, nil
}

func codecNames(list []sdp.Codec) string {
	if len(list) == 0 {
		return "none"
	}
	names := make([]string, 0, len(list))
	for _, c := range list {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// defaultCodecs is what the relay offers when it must write an offer with
// nothing to copy from: G.711 both laws, G.722, RFC 4733 events and CN.
func defaultCodecs() []sdp.Codec {
	return []sdp.Codec{
		{PT: 0, Name: "PCMU", ClockRate: 8000},
		{PT: 8, Name: "PCMA", ClockRate: 8000},
		{PT: 9, Name: "G722", ClockRate: 8000},
		{PT: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"},
		{PT: 13, Name: "CN", ClockRate: 8000},
	}
}
