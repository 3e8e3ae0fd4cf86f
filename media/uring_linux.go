//go:build linux

package media

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A minimal io_uring (Linux 6.0+): submission and completion rings, a
// provided-buffer ring for multishot receives, and the few operations the
// relay needs. Everything the kernel reads or writes outside a system
// call (rings, buffers, message headers, addresses) lives in memory
// mapped outside the Go heap.

const (
	sysIOUringSetup    = 425
	sysIOUringEnter    = 426
	sysIOUringRegister = 427

	uringSetupCQSize    = 1 << 3
	uringSetupSubmitAll = 1 << 7
	uringSetupCoopTask  = 1 << 8 // run completion work when we enter, no interrupts
	uringSetupTaskFlag  = 1 << 9 // and flag in the SQ ring when some is pending
	uringSQTaskrun      = 1 << 2
	uringFeatSingleMmap = 1 << 0
	uringFeatNoDrop     = 1 << 1
	uringEnterGetEvents = 1 << 0
	uringRegisterPbuf   = 22

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	opPollAdd     = 6
	opRecvmsg     = 10
	opAsyncCancel = 14
	opSend        = 26

	sqeBufferSelect   = 1 << 5
	recvMultishot     = 1 << 1
	pollAddMulti      = 1 << 0
	cqeFBuffer        = 1 << 0
	cqeFMore          = 1 << 1
	cqeBufferShift    = 16
	recvmsgOutSize    = 16
	recvNameSize      = unix.SizeofSockaddrInet6
	recvPayloadOffset = recvmsgOutSize + recvNameSize
)

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		resv2                                                           uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		resv2                                                           uint64
	}
}

// sqe mirrors struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64 // addr2: send destination
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags, poll32_events
	userData    uint64
	bufGroup    uint16
	personality uint16
	addrLen     uint32 // addr_len in the low half
	addr3       uint64
	_           uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type uring struct {
	fd                 int
	sqMem, cqMem, sqes []byte
	sqHead, sqTail     *uint32
	sqFlags            *uint32
	sqMask             uint32
	sqLen              uint32
	cqHead, cqTail     *uint32
	cqMask             uint32
	cqes               unsafe.Pointer
	tail               uint32 // local submission tail, published by submit
}

var errNoUring = errors.New("io_uring unavailable")

func newUring(entries, cqEntries uint32) (*uring, error) {
	p := uringParams{flags: uringSetupCQSize | uringSetupSubmitAll | uringSetupCoopTask | uringSetupTaskFlag, cqEntries: cqEntries}
	fd, _, e := unix.Syscall(sysIOUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, errors.Join(errNoUring, e)
	}
	u := &uring{fd: int(fd)}
	if p.features&uringFeatSingleMmap == 0 || p.features&uringFeatNoDrop == 0 {
		u.close()
		return nil, errNoUring
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	size := max(sqSize, cqSize)
	var err error
	if u.sqMem, err = unix.Mmap(u.fd, uringOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, err
	}
	u.cqMem = u.sqMem
	if u.sqes, err = unix.Mmap(u.fd, uringOffSQEs, int(p.sqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, err
	}
	base := unsafe.Pointer(&u.sqMem[0])
	u.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	u.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	u.sqFlags = (*uint32)(unsafe.Add(base, p.sqOff.flags))
	u.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	u.sqLen = p.sqEntries
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i) // identity: SQE i sits in slot i
	}
	u.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	u.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	u.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	u.cqes = unsafe.Add(base, p.cqOff.cqes)
	u.tail = atomic.LoadUint32(u.sqTail)
	return u, nil
}

func (u *uring) close() {
	if u.sqes != nil {
		_ = unix.Munmap(u.sqes)
	}
	if u.sqMem != nil {
		_ = unix.Munmap(u.sqMem)
	}
	unix.Close(u.fd)
}

// pending is the number of SQEs written but not yet submitted.
func (u *uring) pending() uint32 { return u.tail - atomic.LoadUint32(u.sqTail) }

// next returns a zeroed SQE to fill, submitting first when the ring is
// full.
func (u *uring) next() *sqe {
	for u.tail-atomic.LoadUint32(u.sqHead) >= u.sqLen {
		u.enter(0)
	}
	e := (*sqe)(unsafe.Pointer(&u.sqes[(u.tail&u.sqMask)*64]))
	*e = sqe{}
	u.tail++
	return e
}

// enter publishes the written SQEs, submits them and runs pending
// completion work, waiting for at least wait completions. The loop only
// ever waits through Go's poller, so it passes 0.
func (u *uring) enter(wait uint32) {
	atomic.StoreUint32(u.sqTail, u.tail)
	n := u.tail - atomic.LoadUint32(u.sqHead)
	_, _, _ = unix.RawSyscall6(sysIOUringEnter, uintptr(u.fd), uintptr(n), uintptr(wait), uringEnterGetEvents, 0, 0)
}

// taskrun reports whether the kernel holds completion work that only an
// enter will run.
func (u *uring) taskrun() bool { return atomic.LoadUint32(u.sqFlags)&uringSQTaskrun != 0 }

// ready reports whether completions wait in the ring.
func (u *uring) ready() bool { return atomic.LoadUint32(u.cqTail) != atomic.LoadUint32(u.cqHead) }

// reap calls f for the available completions, at most limit of them.
func (u *uring) reap(f func(*cqe), limit int) int {
	head := atomic.LoadUint32(u.cqHead)
	tail := atomic.LoadUint32(u.cqTail)
	n := 0
	for ; head != tail && n < limit; head++ {
		f((*cqe)(unsafe.Add(u.cqes, uintptr(head&u.cqMask)*unsafe.Sizeof(cqe{}))))
		n++
		// Publish as we go: the kernel may post more while f runs.
		atomic.StoreUint32(u.cqHead, head+1)
	}
	return n
}

// bufRing is a provided-buffer ring: fixed-size receive buffers the kernel
// picks from for multishot receives.
type bufRing struct {
	ring  []byte // entries of struct io_uring_buf
	mem   []byte // the buffers
	size  int
	mask  uint16
	tail  uint16
	group uint16
}

func newBufRing(u *uring, group uint16, entries, size int) (*bufRing, error) {
	b := &bufRing{size: size, mask: uint16(entries - 1), group: group}
	var err error
	if b.ring, err = unix.Mmap(-1, 0, entries*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_POPULATE); err != nil {
		return nil, err
	}
	if b.mem, err = unix.Mmap(-1, 0, entries*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_POPULATE); err != nil {
		b.free()
		return nil, err
	}
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid        uint16
		pad         uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&b.ring[0]))), ringEntries: uint32(entries), bgid: group}
	if _, _, e := unix.Syscall6(sysIOUringRegister, uintptr(u.fd), uringRegisterPbuf, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); e != 0 {
		b.free()
		return nil, errors.Join(errNoUring, e)
	}
	for i := 0; i < entries; i++ {
		b.put(uint16(i))
	}
	b.publish()
	return b, nil
}

func (b *bufRing) free() {
	if b.ring != nil {
		_ = unix.Munmap(b.ring)
	}
	if b.mem != nil {
		_ = unix.Munmap(b.mem)
	}
}

// buf returns buffer id.
func (b *bufRing) buf(id uint16) []byte { return b.mem[int(id)*b.size : (int(id)+1)*b.size] }

// put hands buffer id back to the kernel (visible after publish).
func (b *bufRing) put(id uint16) {
	e := unsafe.Pointer(&b.ring[int(b.tail&b.mask)*16])
	*(*uint64)(e) = uint64(uintptr(unsafe.Pointer(&b.mem[int(id)*b.size])))
	*(*uint32)(unsafe.Add(e, 8)) = uint32(b.size)
	*(*uint16)(unsafe.Add(e, 12)) = id
	b.tail++
}

// publish stores the tail, which shares a 32-bit word with the first
// entry's buffer id.
func (b *bufRing) publish() {
	word := (*uint32)(unsafe.Pointer(&b.ring[12]))
	bid0 := uint32(*(*uint16)(unsafe.Pointer(&b.ring[12])))
	atomic.StoreUint32(word, bid0|uint32(b.tail)<<16)
}
