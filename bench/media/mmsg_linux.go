package main

import (
	"net"
	"net/netip"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch is a set of datagram buffers for sendmmsg/recvmmsg: the load
// generator moves 100,000+ packets a second each way on one core, so it
// batches its system calls (the relays under test cannot: each call has
// its own sockets).
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	addrs []unix.RawSockaddrInet4
	ctrl  [][]byte // receive: room for an SCM_TIMESTAMPNS message
}

// ctrlSize has room for a receive timestamp (SCM_TIMESTAMPNS) and, as
// the socket also asks for transmit timestamps, an SCM_TIMESTAMPING
// message and an IP_RECVERR message with its address.
const sizeofSockExtendedErr = int(unsafe.Sizeof(unix.SockExtendedErr{}))

var ctrlSize = unix.CmsgSpace(16) + unix.CmsgSpace(48) + unix.CmsgSpace(sizeofSockExtendedErr+unix.SizeofSockaddrInet6)

func newBatch(n, size int, control bool) *batch {
	b := &batch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n),
		addrs: make([]unix.RawSockaddrInet4, n)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, size)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.Iovlen = 1
	}
	if control {
		b.ctrl = make([][]byte, n)
		for i := range b.ctrl {
			b.ctrl[i] = make([]byte, ctrlSize)
		}
	}
	return b
}

// set sets the length of datagram i to send and its destination.
func (b *batch) set(i, n int, to *unix.RawSockaddrInet4) {
	b.iovs[i].SetLen(n)
	b.addrs[i] = *to
	b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
}

// resetRecv prepares every slot for receiving a full-size datagram with
// its timestamp.
func (b *batch) resetRecv() {
	for i := range b.hdrs {
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Name = nil
		b.hdrs[i].Hdr.Namelen = 0
		b.hdrs[i].Len = 0
		if b.ctrl != nil {
			b.hdrs[i].Hdr.Control = &b.ctrl[i][0]
			b.hdrs[i].Hdr.SetControllen(ctrlSize)
		}
	}
}

// rxTime is the kernel's receive timestamp of datagram i (wall clock ns),
// or 0 when there is none.
func (b *batch) rxTime(i int) int64 {
	if b.ctrl == nil {
		return 0
	}
	return cmsgTime(b.ctrl[i][:b.hdrs[i].Hdr.Controllen], unix.SO_TIMESTAMPNS)
}

// cmsgTime finds the control message of SOL_SOCKET type typ (a timespec,
// or for SO_TIMESTAMPING three, the first being the software one) and
// returns its time in ns, or 0.
func cmsgTime(ctrl []byte, typ int32) int64 {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(ctrl) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == typ && n >= unix.CmsgLen(16) {
			ts := (*unix.Timespec)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		sp := unix.CmsgSpace(n - unix.CmsgLen(0))
		if sp > len(ctrl) {
			return 0
		}
		ctrl = ctrl[sp:]
	}
	return 0
}

// txKey finds the SOF_TIMESTAMPING_OPT_ID key of a transmit timestamp in
// its IP_RECVERR message.
func txKey(ctrl []byte) (uint32, bool) {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		n := int(h.Len)
		if n < unix.SizeofCmsghdr || n > len(ctrl) {
			return 0, false
		}
		if h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR && n >= unix.CmsgLen(sizeofSockExtendedErr) {
			e := (*unix.SockExtendedErr)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			if e.Errno == uint32(unix.ENOMSG) && e.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING && e.Info == 0 { // SCM_TSTAMP_SND
				return e.Data, true
			}
			return 0, false
		}
		sp := unix.CmsgSpace(n - unix.CmsgLen(0))
		if sp > len(ctrl) {
			return 0, false
		}
		ctrl = ctrl[sp:]
	}
	return 0, false
}

// recvErrQueue reads queued transmit timestamps without waiting.
func recvErrQueue(fd int, b *batch) int {
	for i := range b.hdrs {
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Name = nil
		b.hdrs[i].Hdr.Namelen = 0
		b.hdrs[i].Len = 0
		b.hdrs[i].Hdr.Control = &b.ctrl[i][0]
		b.hdrs[i].Hdr.SetControllen(len(b.ctrl[i]))
	}
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)),
		unix.MSG_DONTWAIT|unix.MSG_ERRQUEUE, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

func rawAddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.Addr = ap.Addr().Unmap().As4()
	return sa
}

// openGenSocket opens a generator socket on 127.0.0.1 with large
// buffers (forced when running as root: bursts of a thousand calls'
// packets must not overflow them), kernel receive timestamps and kernel
// transmit timestamps, and returns its descriptor and port. The socket is
// deliberately not a net.UDPConn: Go's poller would have it in its epoll
// set, and every datagram the relay sends back would wake the idle
// generator's thread just to find nobody waiting; the generator polls its
// sockets with non-blocking calls instead.
func openGenSocket(size int) (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	fail := func(err error) (int, int, error) { unix.Close(fd); return -1, 0, err }
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail(err)
	}
	// Software transmit timestamps, keyed by a per-socket datagram
	// counter, carrying no copy of the datagram.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
		unix.SOF_TIMESTAMPING_TX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE|unix.SOF_TIMESTAMPING_OPT_ID|unix.SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		return fail(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// sendAll writes datagrams [0,n) of b on fd with sendmmsg.
func sendAll(fd int, b *batch, n int) error {
	off := 0
	for off < n {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[off])), uintptr(n-off), 0, 0, 0)
		switch {
		case e == unix.EAGAIN || e == unix.EINTR:
			runtime.Gosched()
			continue
		case e != 0:
			return e
		}
		off += int(r)
	}
	return nil
}

// recvNow reads the datagrams queued on fd, up to len(b.hdrs), without
// waiting; 0 when there are none.
func recvNow(fd int, b *batch) int {
	b.resetRecv()
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

func netListenUDP() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}
