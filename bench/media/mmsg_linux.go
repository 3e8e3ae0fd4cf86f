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

var ctrlSize = unix.CmsgSpace(16)

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
	n := int(b.hdrs[i].Hdr.Controllen)
	if b.ctrl == nil || n < unix.CmsgSpace(16) {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b.ctrl[i][0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SO_TIMESTAMPNS {
		return 0
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&b.ctrl[i][unix.CmsgLen(0)]))
	return ts.Nano()
}

func rawAddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.Addr = ap.Addr().Unmap().As4()
	return sa
}

// prepare gives a generator socket large buffers (forced when running as
// root: bursts of a thousand calls' packets must not overflow them) and
// kernel receive timestamps, and returns its descriptor for direct
// non-blocking system calls. The *net.UDPConn keeps it open.
func prepare(c *net.UDPConn, size int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var fd int
	var serr error
	err = rc.Control(func(f uintptr) {
		fd = int(f)
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
		serr = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err != nil {
		return -1, err
	}
	return fd, serr
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
