package b2bua

import (
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// Live state of Phone App calls, for the Phone App tab: every change is
// published to the user's watchers without ever blocking the call path
// (a full watcher loses its oldest queued state, never the newest).

// liveState is a Phone App call's state as the tab sees it.
type liveState struct {
	mu sync.Mutex // serialises change and publication
	lc pbx2teams.LiveCall
}

// watcher is one Watch subscription.
type watcher struct {
	userID string
	ch     chan pbx2teams.LiveCall
}

// liveHub holds the Phone App calls in progress and their watchers.
type liveHub struct {
	b        *B2BUA
	mu       sync.Mutex
	calls    map[string]*call // by call ID
	watchers map[string]map[*watcher]struct{}
	stop     chan struct{}
	once     sync.Once
	started  bool
}

// watchQueue is how many states a watcher may have queued.
const watchQueue = 32

func newLiveHub(b *B2BUA) *liveHub {
	return &liveHub{b: b, calls: map[string]*call{}, watchers: map[string]map[*watcher]struct{}{}, stop: make(chan struct{})}
}

func (h *liveHub) close() { h.once.Do(func() { close(h.stop) }) }

// send delivers lc to the user's watchers; h.mu is held.
func (h *liveHub) sendLocked(lc pbx2teams.LiveCall) {
	for w := range h.watchers[lc.UserID] {
		select {
		case w.ch <- lc:
			continue
		default:
		}
		// Full: drop the oldest queued state to make room for this one.
		select {
		case <-w.ch:
		default:
		}
		select {
		case w.ch <- lc:
		default:
		}
	}
}

// counters refreshes the media counters of the watched connected calls,
// once a second, while anyone watches.
func (h *liveHub) counters() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		var cs []*call
		for _, c := range h.calls {
			if len(h.watchers[c.user.ID]) > 0 {
				cs = append(cs, c)
			}
		}
		h.mu.Unlock()
		for _, c := range cs {
			c.live.mu.Lock()
			st := c.live.lc.State
			c.live.mu.Unlock()
			if st == pbx2teams.CallConnected || st == pbx2teams.CallHeld {
				c.setLive(func(lc *pbx2teams.LiveCall) {})
			}
		}
	}
}

// liveStarted registers a Phone App call and publishes its first state.
func (c *call) liveStarted() {
	if c.live == nil {
		return
	}
	h := c.b.live
	h.mu.Lock()
	h.calls[c.id] = c
	h.mu.Unlock()
	c.setLive(func(*pbx2teams.LiveCall) {})
}

// setLive changes a Phone App call's state and publishes it with fresh
// media counters. A no-op for Direct Routing calls.
func (c *call) setLive(change func(*pbx2teams.LiveCall)) {
	ls := c.live
	if ls == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.lc.State == pbx2teams.CallEnded || ls.lc.State == pbx2teams.CallTransferred {
		return
	}
	change(&ls.lc)
	if ls.lc.State == pbx2teams.CallConnected || ls.lc.State == pbx2teams.CallHeld {
		st := c.media.Stats()
		ls.lc.PacketsToUser, ls.lc.PacketsFromUser = st.B.PacketsOut, st.B.PacketsIn
	}
	h := c.b.live
	h.mu.Lock()
	h.sendLocked(ls.lc)
	h.mu.Unlock()
}

// liveEnded publishes a Phone App call's last state and forgets it.
func (c *call) liveEnded(rec Record) {
	ls := c.live
	if ls == nil {
		return
	}
	c.mu.Lock()
	transferred := c.transferred
	c.mu.Unlock()
	ls.mu.Lock()
	if ls.lc.State != pbx2teams.CallEnded && ls.lc.State != pbx2teams.CallTransferred {
		ls.lc.State = pbx2teams.CallEnded
		if transferred {
			ls.lc.State = pbx2teams.CallTransferred
		}
		if ls.lc.Reason == "" {
			ls.lc.Reason = endReason(&rec, transferred)
		}
		ls.lc.PacketsToUser, ls.lc.PacketsFromUser = rec.Media.PacketsToMS, rec.Media.PacketsFromMS
	}
	lc := ls.lc
	ls.mu.Unlock()
	h := c.b.live
	h.mu.Lock()
	delete(h.calls, c.id)
	h.sendLocked(lc)
	h.mu.Unlock()
}

// setReason sets the plain-words reason shown when the call ends.
func (c *call) setReason(reason string) {
	if c.live == nil || reason == "" {
		return
	}
	c.live.mu.Lock()
	if c.live.lc.Reason == "" {
		c.live.lc.Reason = reason
	}
	c.live.mu.Unlock()
}

// endReason says in plain words why a Phone App call ended, from its
// record, when nothing more specific was said.
func endReason(rec *Record, transferred bool) string {
	if transferred {
		return "The call was transferred."
	}
	switch rec.Result {
	case ResultAnswered:
		switch rec.EndedBy {
		case endPBX:
			return "The other party hung up."
		case endTeams, endUser:
			return "You hung up."
		}
		if rec.Advice != "" {
			return rec.Advice
		}
		return "The call ended."
	case ResultCancelled:
		if rec.Direction == pbx2teams.DirectionInbound {
			return "Missed call: the caller hung up before you answered."
		}
		return "You hung up before the call was answered."
	}
	if rec.Advice != "" {
		return rec.Advice
	}
	return "The call failed."
}

// userCall finds a Phone App call of user u by ID.
func (b *B2BUA) userCall(u *pbx2teams.User, id string) (*call, error) {
	b.live.mu.Lock()
	c := b.live.calls[id]
	b.live.mu.Unlock()
	if c == nil || u == nil || c.user.ID != u.ID || c.user.AccountID != u.AccountID {
		return nil, pbx2teams.Errorf(pbx2teams.ENotFound, "There is no such call in progress.")
	}
	return c, nil
}

// Calls returns the user's Phone App calls in progress.
func (b *B2BUA) Calls(u *pbx2teams.User) []pbx2teams.LiveCall {
	b.live.mu.Lock()
	var cs []*call
	for _, c := range b.live.calls {
		if c.user.ID == u.ID && c.user.AccountID == u.AccountID {
			cs = append(cs, c)
		}
	}
	b.live.mu.Unlock()
	out := make([]pbx2teams.LiveCall, 0, len(cs))
	for _, c := range cs {
		c.live.mu.Lock()
		lc := c.live.lc
		c.live.mu.Unlock()
		// Fresh counters: without a watcher nobody refreshes them.
		if lc.State == pbx2teams.CallConnected || lc.State == pbx2teams.CallHeld {
			st := c.media.Stats()
			lc.PacketsToUser, lc.PacketsFromUser = st.B.PacketsOut, st.B.PacketsIn
		}
		out = append(out, lc)
	}
	return out
}

// Watch delivers every change of the user's Phone App calls until cancel
// is called. The current state of each call in progress comes first.
// Slow readers miss intermediate states, never the last one.
func (b *B2BUA) Watch(u *pbx2teams.User) (<-chan pbx2teams.LiveCall, func()) {
	h := b.live
	w := &watcher{userID: u.ID, ch: make(chan pbx2teams.LiveCall, watchQueue)}
	h.mu.Lock()
	if h.watchers[u.ID] == nil {
		h.watchers[u.ID] = map[*watcher]struct{}{}
	}
	h.watchers[u.ID][w] = struct{}{}
	if !h.started {
		h.started = true
		go h.counters()
	}
	var cs []*call
	for _, c := range h.calls {
		if c.user.ID == u.ID {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.setLive(func(*pbx2teams.LiveCall) {})
	}
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.watchers[u.ID], w)
			if len(h.watchers[u.ID]) == 0 {
				delete(h.watchers, u.ID)
			}
			h.mu.Unlock()
		})
	}
}
