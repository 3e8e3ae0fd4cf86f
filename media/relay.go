//go:build linux

package media

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pbx2teams/pbx2teams"
)

// Config configures a Relay.
type Config struct {
	// BindIP is the local address media sockets bind to. Default 0.0.0.0;
	// an IPv6 address (or ::) gives dual-stack IPv6 sockets.
	BindIP netip.Addr
	// AdvertisedIP is the address written into SDP for both legs. Default
	// BindIP; required when BindIP is unspecified.
	AdvertisedIP netip.Addr
	// AdvertisedIPB, when set, is written into SDP toward leg B (Teams)
	// instead of AdvertisedIP, e.g. a public address.
	AdvertisedIPB netip.Addr
	// PortMin and PortMax bound the UDP ports used. Each leg takes an even
	// RTP port and reserves the next one for RTCP. Default 40000-49999.
	PortMin, PortMax int
	// SocketPool is the number of RTP/RTCP socket pairs kept bound and
	// registered ahead of calls, so that setting up and ending a call
	// costs no system call. 0 picks min(256, a quarter of the port
	// range); a negative value disables the pool (every call binds its
	// own pairs).
	SocketPool int
	// PortQuarantine: a port pair a call has finished with takes no new
	// call for this long; its sockets stay open and drop whatever still
	// arrives, so late packets of an ended call never reach another.
	// Default 2 s.
	PortQuarantine time.Duration
	// MediaTimeout: a call whose legs have received no packet for this
	// long is reported through the callback given to Call.OnTimeout.
	// 0 disables the check.
	MediaTimeout time.Duration
	// HoldTimeout replaces MediaTimeout while no direction of the call may
	// carry media (both held). 0 means no timeout while on hold.
	HoldTimeout time.Duration
	// RelatchAfter: a plain RTP leg that latched to a source address moves
	// to a new source once the old one has been silent this long (an SRTP
	// leg moves at once, as only the key holder can produce valid
	// packets). Default 1 s.
	RelatchAfter time.Duration
	// Workers is the number of packet-forwarding goroutines; every call
	// is served by one of them. Default GOMAXPROCS.
	Workers int
	// Engine selects how workers move packets: "io_uring" (Linux 6.0+:
	// multishot receives and batched sends, one system call per batch),
	// "epoll" (one receive and one send call per packet, batched per
	// socket), or "" to use io_uring where the kernel allows it (it is
	// often disabled in containers) and epoll otherwise.
	Engine string
	// Logger receives control-plane events. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) normalize() error {
	if !c.BindIP.IsValid() {
		c.BindIP = netip.IPv4Unspecified()
	}
	c.BindIP = c.BindIP.Unmap()
	if !c.AdvertisedIP.IsValid() {
		if c.BindIP.IsUnspecified() {
			return pbx2teams.Errorf(pbx2teams.EInvalid, "Media relay: set the advertised IP address when binding to all addresses.")
		}
		c.AdvertisedIP = c.BindIP
	}
	c.AdvertisedIP = c.AdvertisedIP.Unmap()
	if !c.AdvertisedIPB.IsValid() {
		c.AdvertisedIPB = c.AdvertisedIP
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 40000, 49999
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax-c.PortMin < 3 {
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Media relay: port range %d-%d is invalid; it needs at least 4 ports between 1024 and 65535.", c.PortMin, c.PortMax)
	}
	pairs := (c.PortMax - (c.PortMin + c.PortMin%2) + 1) / 2
	if c.SocketPool == 0 {
		c.SocketPool = min(256, pairs/4)
	}
	c.SocketPool = min(c.SocketPool, pairs)
	if c.PortQuarantine <= 0 {
		c.PortQuarantine = 2 * time.Second
	}
	if c.RelatchAfter <= 0 {
		c.RelatchAfter = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch c.Engine {
	case "", EngineIOUring, EngineEpoll:
	default:
		return pbx2teams.Errorf(pbx2teams.EInvalid, "Media relay: unknown engine %q (use %q or %q).", c.Engine, EngineIOUring, EngineEpoll)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Relay anchors the media of calls: per call it owns two legs of UDP
// sockets and forwards RTP and RTCP between them, translating between
// plain RTP and SRTP, mapping payload types, latching to the peers'
// actual addresses and counting what passes.
//
// A Relay is safe for concurrent use. Packet forwarding runs in
// cfg.Workers goroutines, each waiting on its own epoll set; the sockets
// of one call always belong to the same worker, so a call's packets are
// handled in order without cross-goroutine hand-offs.
type Relay struct {
	cfg    Config
	log    *slog.Logger
	family int
	epoch  time.Time // monotonic base of packet timestamps

	engine  string
	ports   *portPool
	slots   []atomic.Pointer[socket] // indexed by port - PortMin
	workers []engine
	pools   []*pool // one per worker
	next    atomic.Uint32

	held       atomic.Int64 // pairs held by calls or in quarantine
	shut       atomic.Bool  // closing: pairs given back are closed
	kick       chan struct{}
	keeperStop chan struct{}
	keeperDone chan struct{}

	mu     sync.Mutex
	calls  map[*Call]struct{}
	closed bool
}

// NewRelay starts a relay.
func NewRelay(cfg Config) (*Relay, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "media"),
		family: unix.AF_INET,
		epoch:  time.Now(),
		ports:  newPortPool(cfg.PortMin, cfg.PortMax),
		slots:  make([]atomic.Pointer[socket], cfg.PortMax-cfg.PortMin+1),
		calls:  map[*Call]struct{}{},
	}
	if cfg.BindIP.Is6() {
		r.family = unix.AF_INET6
	}
	engine := cfg.Engine
	for i := 0; i < cfg.Workers; i++ {
		if engine != EngineEpoll {
			w, err := newUworker(r)
			if err == nil {
				engine = EngineIOUring
				r.workers = append(r.workers, w)
				continue
			}
			if engine == EngineIOUring {
				r.Close()
				return nil, fmt.Errorf("media: io_uring engine: %w", err)
			}
			r.log.Info("media relay: io_uring unavailable, using epoll", "err", err)
			engine = EngineEpoll
		}
		w, err := newWorker(r)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("media: start worker: %w", err)
		}
		r.workers = append(r.workers, w)
		go w.run()
	}
	r.engine = engine
	r.startPools()
	return r, nil
}

// startPools fills each worker's pool and starts the keeper.
func (r *Relay) startPools() {
	r.kick = make(chan struct{}, 1)
	r.keeperStop = make(chan struct{})
	r.keeperDone = make(chan struct{})
	n := len(r.workers)
	for i, w := range r.workers {
		target := 0
		if r.cfg.SocketPool > 0 {
			target = r.cfg.SocketPool / n
			if i < r.cfg.SocketPool%n {
				target++
			}
		}
		r.pools = append(r.pools, &pool{w: w, target: target})
	}
	// The first fill is synchronous: the relay starts ready for calls.
	for _, pl := range r.pools {
		r.tend(pl)
	}
	go r.keep()
}

// Engines of Config.Engine.
const (
	EngineIOUring = "io_uring"
	EngineEpoll   = "epoll"
)

// Engine reports the engine the workers use.
func (r *Relay) Engine() string { return r.engine }

// now returns the packet clock: nanoseconds since the relay started.
func (r *Relay) now() int64 { return int64(time.Since(r.epoch)) }

// NewCall creates a call with no resources yet; ports are taken at its
// first offer. Close it when the call ends.
func (r *Relay) NewCall(id string, opts ...CallOption) *Call {
	c := newCall(r, id, opts)
	r.mu.Lock()
	if r.closed {
		c.closed = true
	} else {
		r.calls[c] = struct{}{}
	}
	r.mu.Unlock()
	return c
}

// ActiveCalls returns the number of calls not yet closed.
func (r *Relay) ActiveCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// FreePorts returns the number of RTP/RTCP port pairs free for new
// calls: not held by a call nor in quarantine.
func (r *Relay) FreePorts() int { return len(r.ports.used) - int(r.held.Load()) }

// Close closes every call and stops the workers.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	calls := make([]*Call, 0, len(r.calls))
	for c := range r.calls {
		calls = append(calls, c)
	}
	r.mu.Unlock()
	if r.keeperStop != nil {
		close(r.keeperStop)
		<-r.keeperDone
	}
	r.shut.Store(true)
	for _, c := range calls {
		c.Close()
	}
	r.drainPools()
	for _, w := range r.workers {
		w.stop()
	}
	return nil
}

func (r *Relay) forget(c *Call) {
	r.mu.Lock()
	delete(r.calls, c)
	r.mu.Unlock()
}

func (r *Relay) pickWorker() int {
	return int(r.next.Add(1)) % len(r.workers)
}

// portPool hands out RTP/RTCP port pairs (even, even+1) round-robin, so a
// freed pair is reused as late as possible and stray packets of an ended
// call rarely reach a new one.
type portPool struct {
	mu    sync.Mutex
	base  int
	used  []bool
	next  int
	nfree int
}

func newPortPool(min, max int) *portPool {
	base := min + min%2
	n := (max - base + 1) / 2
	return &portPool{base: base, used: make([]bool, n), nfree: n}
}

// take reserves the next free pair and returns its even port, or 0.
func (p *portPool) take() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.used); i++ {
		k := (p.next + i) % len(p.used)
		if !p.used[k] {
			p.used[k] = true
			p.next = k + 1
			p.nfree--
			return p.base + 2*k
		}
	}
	return 0
}

func (p *portPool) release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := (port - p.base) / 2
	if k >= 0 && k < len(p.used) && p.used[k] {
		p.used[k] = false
		p.nfree++
	}
}

func (p *portPool) freeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nfree
}
