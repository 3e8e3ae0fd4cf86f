//go:build linux

package media

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// socket is one bound UDP socket of a call leg.
type socket struct {
	fd    int
	port  int
	rtcp  bool                    // the RTCP socket (port+1) of its pair rather than the RTP one
	hold  *portHold               // the port pair, released when its last socket is closed
	bound atomic.Pointer[binding] // the call and leg it relays for; nil while idle

	closing bool // io_uring engine: removal under way (owned by the worker)
}

// portHold counts the open sockets of a leg's port pair.
type portHold struct {
	port int // even
	refs atomic.Int32
}

// closed closes the socket's descriptor and, with the last socket of the
// pair, returns the ports to the pool. Only the owning worker calls it.
func (s *socket) closed(r *Relay) {
	unix.Close(s.fd)
	if s.hold != nil && s.hold.refs.Add(-1) == 0 {
		r.ports.release(s.hold.port)
	}
}

// engine is a packet-forwarding worker: it owns the sockets of its calls
// and, on its own goroutine, relays what arrives on them.
type engine interface {
	add(ss []*socket) error // start receiving on ss; on error none is registered
	remove(ss []*socket)    // stop, and close each once nothing refers to it
	stop()
}

// wakeID marks the worker's eventfd in epoll events; sockets carry their
// port offset, an index into Relay.slots.
const wakeID = -1

// bufSize bounds a relayed datagram; larger ones are dropped. RTP over
// UDP stays below the path MTU, so this is generous.
const bufSize = 4096

// worker is the epoll engine: it waits for its sockets with epoll and
// moves datagrams with recvmmsg/sendmmsg, batched per socket. One
// goroutine runs the loop; everything below the mutex-protected hand-off
// fields is owned by it and reused for every packet, so the hot path does
// not allocate.
type worker struct {
	r    *Relay
	epfd int
	evfd int
	ep   *os.File // epfd, registered with Go's network poller
	epRC syscall.RawConn
	done chan struct{}

	mu       sync.Mutex
	closing  []*socket // sockets to close, in order, by the worker
	stopping bool

	events []unix.EpollEvent
	rx     rxBatch
	tx     txBatch
	scratch
}

func newWorker(r *Relay) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	// The worker waits for its epoll set the way goroutines wait for
	// sockets: the set itself is a pollable descriptor, registered with
	// Go's poller. So an idle worker parks like any goroutine instead of
	// sitting in a blocking system call, which would make the runtime's
	// monitor thread wake every 20 µs to hand its P over.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		unix.Close(evfd)
		return nil, err
	}
	w := &worker{
		r: r, epfd: epfd, evfd: evfd, ep: ep, epRC: rc, done: make(chan struct{}),
		events: make([]unix.EpollEvent, 256),
	}
	w.rx.init()
	w.scratch = newScratch(&w.tx)
	return w, nil
}

// add registers sockets with the worker's epoll set.
func (w *worker) add(ss []*socket) error {
	for i, s := range ss {
		id := s.port - w.r.cfg.PortMin
		w.r.slots[id].Store(s)
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, s.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(id)}); err != nil {
			w.r.slots[id].CompareAndSwap(s, nil)
			for _, d := range ss[:i] {
				w.r.slots[d.port-w.r.cfg.PortMin].CompareAndSwap(d, nil)
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, d.fd, nil)
			}
			return err
		}
	}
	return nil
}

// remove unregisters sockets and hands them to the worker to close: only
// the worker closes descriptors, so it never reads from a number the
// kernel has already given to a new socket.
func (w *worker) remove(ss []*socket) {
	for _, s := range ss {
		w.r.slots[s.port-w.r.cfg.PortMin].CompareAndSwap(s, nil)
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
	w.mu.Lock()
	w.closing = append(w.closing, ss...)
	w.mu.Unlock()
	w.wake()
}

func (w *worker) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(w.evfd, one[:])
}

func (w *worker) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.wake()
	<-w.done
}

// service handles the eventfd: closes handed-over sockets, reports whether
// to stop.
func (w *worker) service() bool {
	var b [8]byte
	_, _ = unix.Read(w.evfd, b[:])
	w.mu.Lock()
	list, stop := w.closing, w.stopping
	w.closing = nil
	w.mu.Unlock()
	for _, s := range list {
		s.closed(w.r)
	}
	return stop
}

func (w *worker) run() {
	defer func() {
		w.service()
		w.ep.Close()
		unix.Close(w.evfd)
		close(w.done)
	}()
	var n int
	var errno unix.Errno
	poll := func(fd uintptr) bool {
		n, errno = epollWaitNow(int(fd), w.events)
		return n != 0 || (errno != 0 && errno != unix.EINTR)
	}
	for {
		if err := w.epRC.Read(poll); err != nil {
			w.r.log.Error("media worker stopped", "err", err)
			return
		}
		if errno != 0 {
			w.r.log.Error("media worker stopped", "err", errno)
			return
		}
		for i := 0; i < n; i++ {
			id := w.events[i].Fd
			if id == wakeID {
				if w.service() {
					return
				}
				continue
			}
			if s := w.r.slots[id].Load(); s != nil {
				w.receive(s)
			}
		}
	}
}

// receive reads up to batchMax datagrams from s and relays them. Epoll is
// level triggered: a socket with more queued datagrams is reported again,
// so a read never needs to end in EAGAIN. At 50 packets per second per
// socket a batch usually holds one datagram; after a stall it drains the
// backlog at a fraction of the per-datagram cost.
func (w *worker) receive(s *socket) {
	n := w.rx.read(s.fd)
	if n == 0 {
		return
	}
	w.process(s, n)
}

// process relays the n datagrams in w.rx that arrived on s; on an idle
// socket (in the pool or in quarantine) they are dropped.
func (w *worker) process(s *socket, n int) {
	b := s.bound.Load()
	if b == nil {
		return
	}
	c, x := b.call, b.leg
	now := w.r.now()
	c.mu.Lock()
	if !c.closed {
		for i := 0; i < n; i++ {
			if w.rx.truncated(i) {
				x.st.malformed++
				continue
			}
			c.handle(&w.scratch, s, x, i, w.rx.packet(i), &w.rx.from[i], now)
		}
		w.tx.flush()
	}
	c.mu.Unlock()
}
