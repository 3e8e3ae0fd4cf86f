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

// recvFrom reads one datagram without blocking. It returns the datagram's
// full length, which exceeds len(buf) when it was truncated.
func recvFrom(fd int, buf []byte, from *sockaddr) (int, unix.Errno) {
	from.n = unix.SizeofSockaddrInet6
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		unix.MSG_TRUNC, uintptr(unsafe.Pointer(&from.raw)), uintptr(unsafe.Pointer(&from.n)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// sendTo writes one datagram without blocking.
func sendTo(fd int, p []byte, to *sockaddr) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		0, uintptr(to.ptr()), uintptr(to.n))
	return e
}
