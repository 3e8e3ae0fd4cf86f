package main

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batch is a set of datagram buffers for sendmmsg/recvmmsg: the load
// generator moves 100,000+ packets a second on one core, so it batches
// its system calls (the relays under test do not get that luxury: each
// call has its own sockets).
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	addrs []unix.RawSockaddrInet4
}

func newBatch(n, size int) *batch {
	b := &batch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n),
		addrs: make([]unix.RawSockaddrInet4, n)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, size)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.Iovlen = 1
	}
	return b
}

// setLen sets the length of datagram i to send and its destination.
func (b *batch) set(i, n int, to *unix.RawSockaddrInet4) {
	b.iovs[i].SetLen(n)
	b.addrs[i] = *to
	b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
	b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
}

// resetRecv prepares every slot for receiving a full-size datagram.
func (b *batch) resetRecv() {
	for i := range b.hdrs {
		b.iovs[i].SetLen(len(b.bufs[i]))
		b.hdrs[i].Hdr.Name = nil
		b.hdrs[i].Hdr.Namelen = 0
		b.hdrs[i].Len = 0
	}
}

func rawAddr(ap netip.AddrPort) unix.RawSockaddrInet4 {
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.Addr = ap.Addr().Unmap().As4()
	return sa
}

// sendAll writes datagrams [0,n) of b on conn with sendmmsg.
func sendAll(rc syscall.RawConn, b *batch, n int) error {
	off := 0
	for off < n {
		var sent int
		var errno unix.Errno
		err := rc.Write(func(fd uintptr) bool {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[off])), uintptr(n-off), 0, 0, 0)
			if e == unix.EAGAIN {
				return false
			}
			sent, errno = int(r), e
			return true
		})
		if err != nil {
			return err
		}
		if errno != 0 {
			return errno
		}
		off += sent
	}
	return nil
}

// recvSome waits for datagrams and reads up to len(b.hdrs) of them.
func recvSome(rc syscall.RawConn, b *batch) (int, error) {
	b.resetRecv()
	var n int
	var errno unix.Errno
	err := rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// bigBuffers asks for large socket buffers (forced when running as root):
// bursts of a thousand calls' packets must not overflow them.
func bigBuffers(c *net.UDPConn, size int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
	})
}

func netListenUDP() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}
