//go:build linux

package media

import (
	"errors"
	"sync"
	"time"

	"github.com/pbx2teams/pbx2teams"
)

// The socket pool makes call set-up cheap. Binding a UDP socket, closing
// it and registering it with a worker cost several system calls each,
// and a call needs four sockets (an RTP/RTCP pair per leg). So the relay
// keeps pairs bound and registered with their worker ahead of calls: a
// call borrows two pairs and gives them back when it ends, and in
// between they only change owner (an atomic pointer the packet path
// reads). Set-up and tear-down then make no system call at all.
//
// A pair a call has finished with rests in quarantine for
// Config.PortQuarantine before another call may take it: its sockets stay
// open and registered, so late packets of the old call (a peer that has
// not yet seen the BYE goes on sending) are received and dropped rather
// than reaching a new call. Pairs come back in the order they were
// freed and are handed out oldest first, so a port is reused as late as
// the pool allows. A keeper goroutine moves pairs out of quarantine and
// keeps SocketPool pairs per relay ready: when fewer than half are, it
// binds new ones from the port range (round-robin, as before) in the
// background. Pairs coming out of quarantine always go back to the pool,
// so that under a steady load calls ending and starting reuse the same
// sockets; pairs beyond SocketPool that stay unused for poolIdle are
// closed and their ports go back to the range. When the range is used
// up, a call takes the pair freed longest ago out of quarantine rather
// than fail.

// pair is an RTP/RTCP socket pair on ports (even, even+1), bound and
// registered with one worker for its whole life.
type pair struct {
	port      int
	rtp, rtcp *socket
	freedAt   int64 // relay clock: when its last call let go
	readyAt   int64 // relay clock: when it last became ready
}

// poolIdle is how long pairs beyond Config.SocketPool may stay ready
// unused before they are closed: the pool grows with the load (so that
// pairs coming out of quarantine serve new calls instead of being closed
// while others are bound) and shrinks once the load has gone.
const poolIdle = 10 * time.Second

// binding is a socket's current owner: the call and leg its packets
// belong to. Each leg embeds its own, so borrowing allocates nothing.
type binding struct {
	call *Call
	leg  *leg
}

// pairQueue is a FIFO of pairs.
type pairQueue struct {
	items []*pair
	head  int
}

func (q *pairQueue) len() int { return len(q.items) - q.head }

func (q *pairQueue) push(p *pair) {
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, p)
}

func (q *pairQueue) front() *pair {
	if q.len() == 0 {
		return nil
	}
	return q.items[q.head]
}

func (q *pairQueue) pop() *pair {
	p := q.front()
	if p != nil {
		q.items[q.head] = nil
		q.head++
	}
	return p
}

// pool holds the idle pairs of one worker.
type pool struct {
	w      engine
	target int // pairs kept ready

	mu         sync.Mutex
	ready      pairQueue
	quarantine pairQueue
}

// lowWater is the number of ready pairs below which the keeper binds new
// ones, up to target.
func (p *pool) lowWater() int { return (p.target + 1) / 2 }

// take returns a ready pair, or nil when there is none; low reports that
// the keeper should refill.
func (p *pool) take() (pr *pair, low bool) {
	p.mu.Lock()
	pr = p.ready.pop()
	low = p.ready.len() < p.lowWater()
	p.mu.Unlock()
	return pr, low
}

// openPair binds a new pair from the port range, or returns an error
// (ErrNoPorts when the range is used up).
func (r *Relay) openPair() (*pair, error) {
	var lastErr error
	// Ports another program holds are skipped, across the whole range if
	// need be.
	for try := 0; try < len(r.ports.used); try++ {
		port := r.ports.take()
		if port == 0 {
			return nil, fail(pbx2teams.EUnavailable, ErrNoPorts,
				"No free media ports in %d-%d; widen the range or lower the number of calls.", r.cfg.PortMin, r.cfg.PortMax)
		}
		fd, err := openUDP(r.family, r.cfg.BindIP, port)
		if err != nil {
			r.ports.release(port) // in use by another program: move on
			lastErr = err
			continue
		}
		fd2, err := openUDP(r.family, r.cfg.BindIP, port+1)
		if err != nil {
			closeFD(fd)
			r.ports.release(port)
			lastErr = err
			continue
		}
		h := &portHold{port: port}
		h.refs.Store(2)
		p := &pair{port: port}
		p.rtp = &socket{fd: fd, port: port, hold: h}
		p.rtcp = &socket{fd: fd2, port: port + 1, rtcp: true, hold: h}
		return p, nil
	}
	return nil, fail(pbx2teams.EUnavailable, errors.Join(ErrNoPorts, lastErr), "No media port could be bound in %d-%d.", r.cfg.PortMin, r.cfg.PortMax)
}

// register hands new pairs to worker w; on failure it closes them.
func (r *Relay) register(w engine, prs []*pair) error {
	socks := make([]*socket, 0, 2*len(prs))
	for _, p := range prs {
		socks = append(socks, p.rtp, p.rtcp)
	}
	if err := w.add(socks); err != nil {
		for _, s := range socks {
			s.closed(r)
		}
		return err
	}
	return nil
}

// discard unregisters and closes pairs; their ports return to the range
// once the worker has let go of the sockets.
func discard(w engine, prs []*pair) {
	if len(prs) == 0 {
		return
	}
	socks := make([]*socket, 0, 2*len(prs))
	for _, p := range prs {
		socks = append(socks, p.rtp, p.rtcp)
	}
	w.remove(socks)
}

// borrow gives a call a pair of worker w: a ready one from the pool, or
// failing that a newly bound one.
func (r *Relay) borrow(wi int) (*pair, error) {
	pl := r.pools[wi]
	p, low := pl.take()
	if low {
		r.kickKeeper()
	}
	if p == nil {
		var err error
		if p, err = r.openPair(); err != nil {
			if p = r.steal(pl); p == nil {
				return nil, err
			}
		} else if err := r.register(pl.w, []*pair{p}); err != nil {
			return nil, fail(pbx2teams.EInternal, err, "Media socket could not be registered.")
		}
	}
	r.held.Add(1)
	return p, nil
}

// steal cuts short the quarantine of the pair freed longest ago when the
// port range is used up: better a call than an empty quarantine.
func (r *Relay) steal(pl *pool) *pair {
	pl.mu.Lock()
	p := pl.quarantine.pop()
	pl.mu.Unlock()
	if p != nil {
		r.held.Add(-1) // it leaves quarantine; borrow counts it again
		r.log.Debug("media ports exhausted: pair taken out of quarantine early", "port", p.port)
	}
	return p
}

// giveBack puts a pair a call has finished with into quarantine. Its
// sockets must already be unbound.
func (r *Relay) giveBack(wi int, p *pair) {
	pl := r.pools[wi]
	p.freedAt = r.now()
	pl.mu.Lock()
	if r.shut.Load() {
		pl.mu.Unlock()
		r.held.Add(-1)
		discard(pl.w, []*pair{p})
		return
	}
	pl.quarantine.push(p)
	pl.mu.Unlock()
}

func (r *Relay) kickKeeper() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// keeperInterval is how often the keeper looks at the quarantine.
func (r *Relay) keeperInterval() time.Duration {
	return min(max(r.cfg.PortQuarantine/20, 10*time.Millisecond), 50*time.Millisecond)
}

// keep runs until the relay closes: it ends quarantines and refills the
// pools.
func (r *Relay) keep() {
	defer close(r.keeperDone)
	t := time.NewTicker(r.keeperInterval())
	defer t.Stop()
	for {
		select {
		case <-r.keeperStop:
			return
		case <-t.C:
		case <-r.kick:
		}
		for _, pl := range r.pools {
			r.tend(pl)
		}
	}
}

// tend ends the quarantines that are due and tops the pool up.
func (r *Relay) tend(pl *pool) {
	now := r.now()
	cutoff := now - int64(r.cfg.PortQuarantine)
	var surplus []*pair
	pl.mu.Lock()
	for p := pl.quarantine.front(); p != nil && p.freedAt <= cutoff; p = pl.quarantine.front() {
		pl.quarantine.pop()
		r.held.Add(-1)
		if pl.target == 0 {
			surplus = append(surplus, p) // no pool: the pair is closed
			continue
		}
		p.readyAt = now
		pl.ready.push(p)
	}
	for p := pl.ready.front(); p != nil && pl.ready.len() > pl.target && p.readyAt <= now-int64(poolIdle); p = pl.ready.front() {
		surplus = append(surplus, pl.ready.pop())
	}
	missing := 0
	if pl.ready.len() < pl.lowWater() {
		missing = pl.target - pl.ready.len()
	}
	pl.mu.Unlock()
	discard(pl.w, surplus)
	if missing <= 0 {
		return
	}
	fresh := make([]*pair, 0, missing)
	for len(fresh) < missing {
		p, err := r.openPair()
		if err != nil {
			break // the range is in use; calls bind their own when it frees up
		}
		fresh = append(fresh, p)
	}
	if len(fresh) == 0 || r.register(pl.w, fresh) != nil {
		return
	}
	pl.mu.Lock()
	if r.shut.Load() {
		pl.mu.Unlock()
		discard(pl.w, fresh)
		return
	}
	for _, p := range fresh {
		p.readyAt = now
		pl.ready.push(p)
	}
	pl.mu.Unlock()
}

// drainPools closes every idle pair (the relay is closing).
func (r *Relay) drainPools() {
	for _, pl := range r.pools {
		pl.mu.Lock()
		var all []*pair
		for p := pl.ready.pop(); p != nil; p = pl.ready.pop() {
			all = append(all, p)
		}
		for p := pl.quarantine.pop(); p != nil; p = pl.quarantine.pop() {
			r.held.Add(-1)
			all = append(all, p)
		}
		pl.mu.Unlock()
		discard(pl.w, all)
	}
}
