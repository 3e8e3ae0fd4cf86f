package registration

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// Internal states. Registered and the failure states are reported as the
// root package's state names.
const (
	stRegistering uint8 = iota
	stRegistered
	stFailed  // retrying after a transient failure
	stStopped // permanent failure: no retry until the settings change
	stRemoving
	numStates
)

// reg flags.
const (
	fInFlight uint8 = 1 << iota // an attempt is running
	fQueued                     // waiting in its hop's queue for a token
	fRemoving                   // unregister, then forget
	fGhost                      // unregisters an old binding; not in the map
	fBound                      // a binding exists at the PBX (last 2xx, not unregistered)
	fDropped                    // forgotten while queued: skip at dispatch
)

// Challenge flags stored in reg.chal.
const (
	chValid uint8 = 1 << iota
	chQOP
	chProxy // 407 / Proxy-Authorization
	chOpaque
	chSHA256
	chSess
)

// reg is one user's registration. It is kept small: 100,000 of them must
// fit in a couple of hundred megabytes together with everything else.
// Strings shared by many registrations (realm, reasons) are interned.
type reg struct {
	userID      string
	prof        *profile
	username    string
	authUser    string // "" when equal to username
	password    string
	contactUser string
	nonce       string
	opaque      string
	realm       string // interned
	reason      string // interned
	callID      uint64
	lastOK      int64 // engine clock (ns since start); 0 = never
	due         int64 // next action, engine clock
	expiresAt   int64 // end of the current binding, engine clock
	cseq        uint32
	nc          uint32
	granted     uint32
	minExp      uint32 // from 423 Min-Expires
	heapIdx     int32  // -1 when not in the heap
	gen         uint32 // bumped by every settings change
	status      uint16
	state       uint8
	flags       uint8
	chal        uint8
	failures    uint8
	target      uint8
}

func (r *reg) auth() string {
	if r.authUser == "" {
		return r.username
	}
	return r.authUser
}

// timerHeap orders registrations by their next action time.
type timerHeap []*reg

func (h *timerHeap) push(r *reg) {
	r.heapIdx = int32(len(*h))
	*h = append(*h, r)
	h.up(int(r.heapIdx))
}

func (h *timerHeap) pop() *reg {
	old := *h
	n := len(old) - 1
	r := old[0]
	old.swap(0, n)
	old[n] = nil
	*h = old[:n]
	if n > 0 {
		h.down(0)
	}
	r.heapIdx = -1
	return r
}

func (h *timerHeap) remove(r *reg) {
	i := int(r.heapIdx)
	if i < 0 || i >= len(*h) || (*h)[i] != r {
		return
	}
	old := *h
	n := len(old) - 1
	if i != n {
		old.swap(i, n)
	}
	old[n] = nil
	*h = old[:n]
	if i != n {
		h.down(i)
		h.up(i)
	}
	r.heapIdx = -1
}

func (h *timerHeap) fix(r *reg) {
	i := int(r.heapIdx)
	h.down(i)
	h.up(i)
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].due <= h[i].due {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].due < h[l].due {
			m = r
		}
		if h[i].due <= h[m].due {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// profile is the PBX settings of one customer, shared by its users.
type profile struct {
	key        string
	accountID  string
	domainHost string // for the AoR (To/From)
	domainPort uint16 // for the Request-URI
	transport  string
	expiry     uint32
	hop        *hop
	refs       int
	route      sip.Header // pre-loaded Route to the outbound proxy, or nil

	// The last challenge a user of this customer answered successfully
	// (one protection space: same PBX, same domain): the others answer it
	// pre-emptively too, halving the messages of a mass registration, with
	// nonce counts from one counter so the PBX sees them grow.
	shared      sipx.Challenge
	sharedFlags uint8
	sharedNC    uint32
	shareFails  uint8 // refusals; sharing stops at 3
}

// hop is one next-hop PBX (outbound proxy, or the domain): its rate
// limiter, queue of registrations waiting for a token, resolved targets and
// keep-alive state. Registrations of several customers on one hosted PBX
// share a hop.
type hop struct {
	key       string
	host      string
	port      uint16
	transport string
	refs      int

	// Token bucket and FIFO of registrations due but not yet sent.
	tokens   float64
	last     int64
	queue    []*reg
	qhead    int
	ready    bool // listed in engine.ready
	inflight int
	bound    int // registrations with a binding through this hop

	// Resolution (guarded by resolveMu for the lookup itself, by the
	// engine mutex for the fields).
	resolveMu  sync.Mutex
	targets    []sipx.Target
	resolvedAt int64
	resolveErr error
	downUntil  []int64
	current    int // index of the target that answered last
	lastKA     int64
}

func (h *hop) queued() int { return len(h.queue) - h.qhead }

func (h *hop) enqueue(r *reg) {
	if h.qhead > 0 && h.qhead == len(h.queue) {
		h.queue, h.qhead = h.queue[:0], 0
	}
	h.queue = append(h.queue, r)
}

func (h *hop) dequeue() *reg {
	r := h.queue[h.qhead]
	h.queue[h.qhead] = nil
	h.qhead++
	if h.qhead == len(h.queue) {
		if cap(h.queue) > 4096 { // a burst is over: give the memory back
			h.queue = nil
		}
		h.queue, h.qhead = h.queue[:0], 0
	} else if h.qhead > 1024 && h.qhead*2 > len(h.queue) {
		n := copy(h.queue, h.queue[h.qhead:])
		clear(h.queue[n:])
		h.queue, h.qhead = h.queue[:n], 0
	}
	return r
}

// refill adds tokens for the time since the last refill.
func (h *hop) refill(now int64, rate, burst float64) {
	if h.last == 0 {
		h.tokens, h.last = burst, now
		return
	}
	if now > h.last {
		h.tokens += float64(now-h.last) / float64(time.Second) * rate
		if h.tokens > burst {
			h.tokens = burst
		}
		h.last = now
	}
}

// pickOrder returns target indexes to try, first the one that answered
// last unless it is marked down, then the others in DNS order.
func (h *hop) pickOrder(now int64, buf []int) []int {
	n := len(h.targets)
	start := h.current
	if start >= n {
		start = 0
	}
	buf = buf[:0]
	// Up targets first (the current one, then DNS order), down ones last.
	for pass := 0; pass < 2; pass++ {
		for k := -1; k < n; k++ {
			j := k
			if k == -1 {
				j = start
			} else if k == start {
				continue
			}
			if (h.downUntil[j] > now) == (pass == 1) {
				buf = append(buf, j)
			}
		}
	}
	return buf
}
