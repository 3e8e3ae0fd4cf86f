//go:build linux

package media

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockaddr is a socket address in the kernel's layout, built once per
// destination so that sending needs no conversion or allocation.
type sockaddr struct {
	raw unix.RawSockaddrInet6 // large enough for both families
	n   uint32                // 0 when unset
}

func (a *sockaddr) valid() bool { return a.n != 0 }

func (a *sockaddr) ptr() unsafe.Pointer { return unsafe.Pointer(&a.raw) }

// set fills a from ap for a socket of the given family; an IPv4 peer of an
// IPv6 socket becomes a v4-mapped address.
func (a *sockaddr) set(family int, ap netip.AddrPort) {
	*a = sockaddr{}
	if !ap.IsValid() {
		return
	}
	ip := ap.Addr().Unmap()
	if family == unix.AF_INET {
		if !ip.Is4() {
			return
		}
		sa := (*unix.RawSockaddrInet4)(a.ptr())
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = ip.As4()
		a.n = unix.SizeofSockaddrInet4
		return
	}
	a.raw.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.raw.Port))[:], ap.Port())
	a.raw.Addr = ip.As16()
	a.n = unix.SizeofSockaddrInet6
}

// addrPort converts back for logs and statistics.
func (a *sockaddr) addrPort() netip.AddrPort {
	switch {
	case a.n == 0:
		return netip.AddrPort{}
	case a.raw.Family == unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(a.ptr())
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	default:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.raw.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(a.raw.Addr).Unmap(), port)
	}
}

// equal compares family, port and address (not flow info or padding).
func (a *sockaddr) equal(b *sockaddr) bool {
	if a.n != b.n || a.raw.Family != b.raw.Family || a.raw.Port != b.raw.Port {
		return false
	}
	if a.raw.Family == unix.AF_INET {
		return (*unix.RawSockaddrInet4)(a.ptr()).Addr == (*unix.RawSockaddrInet4)(b.ptr()).Addr
	}
	return a.raw.Addr == b.raw.Addr
}

// openUDP opens a non-blocking UDP socket bound to ip:port.
func openUDP(family int, ip netip.Addr, port int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: port, Addr: ip.Unmap().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// The packet path's system calls never block (the sockets are
// non-blocking), so they go straight to the kernel without telling the
// Go scheduler, which would otherwise account each one as a possibly
// blocking call.

// epollWaitNow returns the ready events without waiting.
func epollWaitNow(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// batchMax is the most datagrams read from one socket, or sent in one
// system call.
const batchMax = 8

// rxBatch receives datagrams with recvmmsg into fixed buffers.
type rxBatch struct {
	hdrs [batchMax]unix.Mmsghdr
	iovs [batchMax]unix.Iovec
	bufs [batchMax][]byte
	from [batchMax]sockaddr
}

func (b *rxBatch) init() {
	for i := range b.bufs {
		b.bufs[i] = make([]byte, bufSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(bufSize)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.Iovlen = 1
		b.hdrs[i].Hdr.Name = (*byte)(b.from[i].ptr())
	}
}

// read takes up to batchMax queued datagrams from fd without blocking.
func (b *rxBatch) read(fd int) int {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Flags = 0
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), batchMax,
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0
	}
	for i := 0; i < int(n); i++ {
		b.from[i].n = b.hdrs[i].Hdr.Namelen
	}
	return int(n)
}

func (b *rxBatch) truncated(i int) bool { return b.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

func (b *rxBatch) packet(i int) []byte { return b.bufs[i][:b.hdrs[i].Len] }

// txBatch collects datagrams for one socket and sends them with sendmmsg.
type txBatch struct {
	hdrs [batchMax]unix.Mmsghdr
	iovs [batchMax]unix.Iovec
	to   [batchMax]sockaddr
	legs [batchMax]*leg
	rtcp [batchMax]bool
	fd   int
	n    int
}

// queue queues p for dst on fd, flushing first when the batch is full or
// for another socket. p must stay untouched until the flush.
func (b *txBatch) queue(fd int, p []byte, dst *sockaddr, l *leg, _ *Call, rtcp bool) {
	if b.n > 0 && (b.fd != fd || b.n == batchMax) {
		b.flush()
	}
	k := b.n
	b.fd = fd
	b.to[k] = *dst
	b.iovs[k].Base = &p[0]
	b.iovs[k].SetLen(len(p))
	b.hdrs[k].Hdr.Iov = &b.iovs[k]
	b.hdrs[k].Hdr.Iovlen = 1
	b.hdrs[k].Hdr.Name = (*byte)(b.to[k].ptr())
	b.hdrs[k].Hdr.Namelen = b.to[k].n
	b.legs[k], b.rtcp[k] = l, rtcp
	b.n++
}

// flush sends the queued datagrams and accounts them on their legs.
func (b *txBatch) flush() {
	sent := 0
	for sent < b.n {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.hdrs[sent])), uintptr(b.n-sent), 0, 0, 0)
		if e != 0 {
			// The datagram at sent failed (full buffer, unreachable):
			// count it and go on with the rest.
			b.legs[sent].st.sendErrors++
			sent++
			continue
		}
		for k := sent; k < sent+int(r); k++ {
			l := b.legs[k]
			if b.rtcp[k] {
				l.st.rtcpOut++
			} else {
				l.st.packetsOut++
				l.st.bytesOut += uint64(b.iovs[k].Len)
			}
		}
		sent += int(r)
	}
	b.n = 0
}
