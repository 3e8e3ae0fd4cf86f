package phoneapp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// events streams the user's live call and line state as server-sent
// events: "snapshot" first ({calls, registration}), then "call" for each
// change of a call, "registration" when the line state changes, and
// "expired" just before the stream ends at the token's expiry (the page
// reconnects with a fresh token).
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c, err := h.authenticate(r)
	if err != nil {
		writeError(w, err, h.log)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, pbx2teams.Errorf(pbx2teams.EInternal, "streaming unsupported"), h.log)
		return
	}
	// Subscribe before the snapshot so that no change falls between them.
	changes, cancel := h.cfg.Dialler.Watch(c.user)
	defer cancel()

	// A server-wide WriteTimeout would cut the stream; this one lives until
	// the token expires or the page goes away.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	calls := h.cfg.Dialler.Calls(c.user)
	if calls == nil {
		calls = []pbx2teams.LiveCall{}
	}
	reg := h.registration(c.user)
	if !send("snapshot", map[string]any{"calls": calls, "registration": reg}) {
		return
	}
	expiry := time.NewTimer(max(time.Until(c.sso.Expires), time.Second))
	defer expiry.Stop()
	poll := time.NewTicker(h.cfg.RegistrationPoll)
	defer poll.Stop()
	keep := time.NewTicker(h.cfg.KeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case lc, ok := <-changes:
			if !ok {
				return
			}
			if lc.UserID != "" && lc.UserID != c.user.ID {
				continue // defensive: the Dialler only sends this user's calls
			}
			if !send("call", lc) {
				return
			}
		case <-poll.C:
			if now := h.registration(c.user); now != reg {
				reg = now
				if !send("registration", reg) {
					return
				}
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-expiry.C:
			send("expired", map[string]string{"message": "Your Teams sign-in expired; reconnecting."})
			return
		}
	}
}
