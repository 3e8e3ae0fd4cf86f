// Package media is the media plane of pbx2teams: an RTP/SRTP relay that
// anchors every call between the PBX (leg A) and Microsoft Teams (leg B).
//
// A Relay owns a UDP port range and a few worker goroutines. For each call
// the signalling layer creates a Call and passes it the SDP bodies it
// receives; the Call rewrites each body for the other leg (the relay's
// address and ports, SRTP keys, codec list, direction) and forwards the
// media accordingly:
//
//	relay, err := media.NewRelay(media.Config{BindIP: ip, PortMin: 40000, PortMax: 49999, MediaTimeout: 30 * time.Second})
//	call := relay.NewCall(callID)          // leg A follows the PBX, leg B is SRTP
//	toTeams, err := call.OfferFromA(pbxOffer) // 488 on error (errors.Is ErrNoCommonCodec, ErrSRTPRequired, ...)
//	toPBX, err := call.AnswerFromB(teamsAnswer)
//	call.OnTimeout(func() { /* hang up: the media is dead */ })
//	hold, err := call.OfferTo(media.LegB, sdp.Inactive) // a re-offer of the relay's own
//	stats := call.Stats()
//	call.Close()
//
// What the relay does on the media path:
//   - plain RTP or SDES-keyed SRTP on each leg (AES_CM_128_HMAC_SHA1_80 and
//     other RFC 4568 suites, replay protection on what it receives),
//     SRTCP, and RTP/RTCP multiplexing (RFC 5761);
//   - no transcoding: codecs are the intersection of the legs' lists among
//     PCMU, PCMA, G.722, telephone-event and CN, with payload type numbers
//     mapped where the legs differ (RFC 4733 DTMF passes through);
//   - symmetric RTP: it sends to the address a peer's packets come from,
//     the SDP address until the first one arrives;
//   - hold: a direction other than sendrecv stops the matching flow, and
//     toward Teams it is written as a=inactive;
//   - per-leg packets, bytes, RFC 3550 loss and jitter, drops by reason.
//
// Packet path: each call has one UDP socket per leg (plus one for RTCP
// where the peer does not multiplex), served by one of Config.Workers
// goroutines, so a call's packets are handled in order without hand-offs
// and without allocation. The sockets come in RTP/RTCP pairs from a pool
// (Config.SocketPool) kept bound and registered ahead of calls, so call
// set-up and tear-down make no system call; a pair a call has finished
// with stays in quarantine (Config.PortQuarantine), dropping late
// packets, before another call may take it. Two engines move the packets (Config.Engine):
// io_uring (default where the kernel allows it: multishot receives into
// provided buffers, sends queued and submitted in one system call per
// batch across all sockets; a receive buffer returns to the kernel only
// when its forwarded copy is sent, so an overloaded relay leaves packets
// queued in the sockets rather than dropping them) and epoll (one
// recvmmsg and one sendmmsg per socket and batch). The package is
// Linux-only.
package media
