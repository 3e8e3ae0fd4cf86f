package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/pbx2teams/pbx2teams/media/ng"
	"github.com/pbx2teams/pbx2teams/media/sdp"
)

// The load: per call two G.711 streams of 50 packets/s (20 ms, 160-byte
// PCMU payload). Stream A→B leaves the generator's "PBX" socket as plain
// RTP and must arrive at its "Teams" socket as SRTP under the relay's key;
// stream B→A leaves the Teams socket as SRTP under the generator's key and
// must arrive at the PBX socket as plain RTP.
//
// Payload: send time (wall clock ns), call index, packet
// counter, then a pattern derived from the sequence number, so that the
// receiver can check every packet is intact and measure its latency.
const (
	ssrcBase    = 0x10000000
	payloadSize = 160
	period      = 20 * time.Millisecond
	bucketWidth = 10 * time.Microsecond
	nBuckets    = 200000 // 2 s; slower packets count in the last bucket
)

var pattern = func() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

type stream struct {
	call int
	dir  int // 0: A→B, 1: B→A
	ssrc uint32
	seq  uint16
	ts   uint32
	to   unix.RawSockaddrInet4 // the relay's address for this stream
	enc  *srtp.Context         // B→A: the generator's key (sender side)
	dec  *srtp.Context         // A→B: the relay's key (receiver side)

	sent atomic.Uint64
	recv atomic.Uint64

	// Kernel transmit timestamps of the last packets sent, by sequence
	// number modulo txHistory.
	txAt  [txHistory]int64
	txSeq [txHistory]uint16
}

// txHistory packets (1.28 s) of transmit timestamps are kept per stream.
const txHistory = 64

// txRing maps a socket's transmit timestamp keys (its datagram counter)
// back to the stream and sequence number sent.
type txRing struct {
	key    uint32 // key of the next datagram sent
	stream [4096]int32
	seq    [4096]uint16
}

type receiverStats struct {
	received, inWindow, corrupt, authFail, stray, noStamp uint64
	noTxStamp                                             uint64 // latency from the payload's send time instead
	negative, over                                        uint64 // latencies below 0 or above the histogram
	hist                                                  [nBuckets]uint64
}

type load struct {
	calls     int
	tick      time.Duration
	streams   []stream
	pbxFD     int // leg A side of every call
	teamsFD   int // leg B side of every call
	pbxPort   int
	teamsPort int
	rxb       [2]*batch
	errb      *batch
	tx        [2]txRing // by sending socket: 0 the PBX one, 1 the Teams one
	plainBuf  []byte
	hdr       rtp.Header

	winStart, winEnd atomic.Int64
	stop             atomic.Bool
	sentInWindow     atomic.Uint64
	rx               [2]*receiverStats
}

// now is the wall clock in ns, the clock of the kernel's receive
// timestamps.
func (l *load) now() int64 { return time.Now().UnixNano() }

func newLoad(calls int, tick time.Duration) (*load, error) {
	l := &load{calls: calls, tick: tick, streams: make([]stream, 2*calls), plainBuf: make([]byte, 2048)}
	var err error
	if l.pbxFD, l.pbxPort, err = openGenSocket(32 << 20); err != nil {
		return nil, err
	}
	if l.teamsFD, l.teamsPort, err = openGenSocket(32 << 20); err != nil {
		unix.Close(l.pbxFD)
		return nil, err
	}
	for d := range l.rx {
		l.rx[d] = &receiverStats{}
		l.rxb[d] = newBatch(256, 2048, true)
	}
	l.errb = newBatch(256, 64, true)
	for i := range l.streams {
		s := &l.streams[i]
		s.call, s.dir, s.ssrc = i/2, i%2, ssrcBase+uint32(i)
		s.seq, s.ts = uint16(i*7919), uint32(i)*104729
	}
	l.winStart.Store(1 << 62)
	l.winEnd.Store(1 << 62)
	return l, nil
}

func (l *load) close() {
	if l.pbxFD >= 0 {
		unix.Close(l.pbxFD)
		unix.Close(l.teamsFD)
		l.pbxFD, l.teamsFD = -1, -1
	}
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// relayFlavour says how to talk to a relay over ng.
type relayFlavour struct {
	name     string
	offerExt ng.Dict // extra keys for offer and answer
}

// setup creates every call through the relay's ng interface.
func (l *load) setup(ctx context.Context, cl *ng.Client, fl relayFlavour, prefix string) error {
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	next := atomic.Int64{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= l.calls || ctx.Err() != nil {
					return
				}
				if err := l.setupCall(ctx, cl, fl, prefix, i); err != nil {
					select {
					case errc <- fmt.Errorf("call %d: %w", i, err):
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (l *load) setupCall(ctx context.Context, cl *ng.Client, fl relayFlavour, prefix string, i int) error {
	id := fmt.Sprintf("%s-%d", prefix, i)
	offer := fmt.Sprintf("v=0\r\no=gen %d 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
		i, l.pbxPort)
	cmd := ng.Dict{"command": "offer", "call-id": id, "from-tag": "a", "sdp": offer}
	for k, v := range fl.offerExt {
		cmd[k] = v
	}
	res, err := cl.Command(ctx, cmd)
	if err != nil {
		return err
	}
	s, err := sdp.Parse([]byte(ng.String(res, "sdp")))
	if err != nil {
		return err
	}
	m := s.Media[0]
	var relayKey sdp.Crypto
	found := false
	for _, c := range m.Crypto {
		if c.Suite == "AES_CM_128_HMAC_SHA1_80" && len(c.Key) == 30 {
			relayKey, found = c, true
			break
		}
	}
	if !found || !m.Secure() {
		return fmt.Errorf("the relay's offer toward Teams has no AES_CM_128_HMAC_SHA1_80 key:\n%s", ng.String(res, "sdp"))
	}
	ab, ba := &l.streams[2*i], &l.streams[2*i+1]
	ba.to = rawAddr(netip.AddrPortFrom(m.Addr, uint16(m.Port)))
	if ab.dec, err = srtp.CreateContext(relayKey.Key[:16], relayKey.Key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80,
		srtp.SRTPReplayProtection(128)); err != nil {
		return err
	}
	key := make([]byte, 30)
	_, _ = rand.Read(key)
	if ba.enc, err = srtp.CreateContext(key[:16], key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80); err != nil {
		return err
	}
	mux := ""
	if m.RTCPMux {
		mux = "a=rtcp-mux\r\n"
	}
	answer := fmt.Sprintf("v=0\r\no=teams %d 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n%sa=crypto:%s\r\na=sendrecv\r\n",
		i, l.teamsPort, mux, sdp.Crypto{Tag: relayKey.Tag, Suite: relayKey.Suite, Key: key})
	cmd = ng.Dict{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": answer}
	for k, v := range fl.offerExt {
		if k != "transport-protocol" {
			cmd[k] = v
		}
	}
	if res, err = cl.Command(ctx, cmd); err != nil {
		return err
	}
	s, err = sdp.Parse([]byte(ng.String(res, "sdp")))
	if err != nil {
		return err
	}
	if s.Media[0].Secure() {
		return errors.New("the relay's answer toward the PBX is not plain RTP")
	}
	ab.to = rawAddr(netip.AddrPortFrom(s.Media[0].Addr, uint16(s.Media[0].Port)))
	return nil
}

// run paces every stream at one packet per 20 ms, spreading the streams
// evenly over the period in ticks, until stop is set. One goroutine does
// everything. It sleeps to each tick with clock_nanosleep as a raw system
// call: Go's own timers wake a thread at best to the millisecond when it
// is otherwise idle (and a blocking system call the runtime knows about
// hands the processor to another thread each time), which would send the
// load in millisecond bursts that no population of phones produces and
// that queue up in any relay. Every drainEvery ticks it collects the
// transmit timestamps of what it sent and then the packets relayed back;
// latency comes from the kernel's timestamps, not from when the
// generator gets round to reading.
func (l *load) run() error {
	perPeriod := int(period / l.tick)
	lists := make([][]int32, perPeriod)
	for i := range l.streams {
		k := i % perPeriod
		lists[k] = append(lists[k], int32(i))
	}
	drainEvery := max(1, int(200*time.Microsecond/l.tick))
	const batchSize = 64
	bA, bB := newBatch(batchSize, 256, false), newBatch(batchSize, 256, false)
	nA, nB := 0, 0
	plain := make([]byte, 12+payloadSize)
	var hdr rtp.Header
	flush := func(fd int, b *batch, n *int) error {
		if *n == 0 {
			return nil
		}
		err := sendAll(fd, b, *n)
		*n = 0
		return err
	}
	// Normal threads' timers may fire up to 50 µs late by default; SCHED_FIFO
	// ones are never delayed.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	next := monotonic()
	for k := 0; !l.stop.Load(); k++ {
		sleepUntil(next)
		next += int64(l.tick)
		for _, idx := range lists[k%perPeriod] {
			s := &l.streams[idx]
			s.seq++
			s.ts += 160
			n := s.sent.Add(1)
			b, slot := bA, nA
			if s.dir == 1 {
				b, slot = bB, nB
			}
			buf := b.bufs[slot]
			if s.dir == 1 {
				buf = plain
			}
			buf[0], buf[1] = 0x80, 0
			binary.BigEndian.PutUint16(buf[2:], s.seq)
			binary.BigEndian.PutUint32(buf[4:], s.ts)
			binary.BigEndian.PutUint32(buf[8:], s.ssrc)
			p := buf[12 : 12+payloadSize]
			now := l.now()
			binary.BigEndian.PutUint64(p[0:], uint64(now))
			binary.BigEndian.PutUint32(p[8:], uint32(s.call))
			binary.BigEndian.PutUint32(p[12:], uint32(n))
			start := (int(s.seq)*7 + 16) & 255
			copy(p[16:], pattern[start:start+payloadSize-16])
			if now >= l.winStart.Load() && now < l.winEnd.Load() {
				l.sentInWindow.Add(1)
			}
			size := 12 + payloadSize
			if s.dir == 1 {
				out, err := s.enc.EncryptRTP(b.bufs[slot][:0], plain, &hdr)
				if err != nil {
					return err
				}
				size = len(out)
			}
			b.set(slot, size, &s.to)
			tr := &l.tx[s.dir]
			tr.stream[tr.key%uint32(len(tr.stream))], tr.seq[tr.key%uint32(len(tr.seq))] = idx, s.seq
			tr.key++
			if s.dir == 0 {
				if nA++; nA == batchSize {
					if err := flush(l.pbxFD, bA, &nA); err != nil {
						return err
					}
				}
			} else {
				if nB++; nB == batchSize {
					if err := flush(l.teamsFD, bB, &nB); err != nil {
						return err
					}
				}
			}
		}
		if err := flush(l.pbxFD, bA, &nA); err != nil {
			return err
		}
		if err := flush(l.teamsFD, bB, &nB); err != nil {
			return err
		}
		if k%drainEvery == 0 {
			l.drainAll()
		}
	}
	return nil
}

// drainAll takes the transmit timestamps first, so that every packet
// relayed back finds its own.
func (l *load) drainAll() {
	l.drainTx(0)
	l.drainTx(1)
	l.drain(0)
	l.drain(1)
}

// drainTx records the kernel's transmit timestamps of the packets sent
// on one socket (0: the PBX one, 1: the Teams one) on their streams.
func (l *load) drainTx(sock int) {
	fd := l.pbxFD
	if sock == 1 {
		fd = l.teamsFD
	}
	tr := &l.tx[sock]
	b := l.errb
	for {
		n := recvErrQueue(fd, b)
		for i := 0; i < n; i++ {
			ctrl := b.ctrl[i][:b.hdrs[i].Hdr.Controllen]
			key, ok := txKey(ctrl)
			at := cmsgTime(ctrl, unix.SO_TIMESTAMPING)
			if !ok || at == 0 || tr.key-key > uint32(len(tr.stream)) {
				continue
			}
			s := &l.streams[tr.stream[key%uint32(len(tr.stream))]]
			seq := tr.seq[key%uint32(len(tr.seq))]
			s.txAt[seq%txHistory], s.txSeq[seq%txHistory] = at, seq
		}
		if n < len(b.hdrs) {
			return
		}
	}
}

// monotonic is CLOCK_MONOTONIC in ns, the clock of sleepUntil, read
// through Go's clock (the vDSO) rather than a system call each time.
func monotonic() int64 { return monoBase + int64(time.Since(monoStart)) }

var monoStart, monoBase = func() (time.Time, int64) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now(), ts.Nano()
}()

// sleepUntil sleeps until CLOCK_MONOTONIC reaches t (ns). The thread
// blocks without telling the runtime: the sleeps are shorter than a tick,
// and the runtime's preemption signal ends one early if another goroutine
// must run.
func sleepUntil(t int64) {
	if monotonic() >= t {
		return
	}
	ts := unix.NsecToTimespec(t)
	_, _, _ = unix.RawSyscall6(unix.SYS_CLOCK_NANOSLEEP, unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME,
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

// drain reads every datagram queued on one socket: dir 0 (A→B, SRTP)
// arrives on the Teams socket, dir 1 (B→A, plain) on the PBX one.
func (l *load) drain(dir int) {
	fd := l.teamsFD
	if dir == 1 {
		fd = l.pbxFD
	}
	st := l.rx[dir]
	b := l.rxb[dir]
	ws, we := l.winStart.Load(), l.winEnd.Load()
	for {
		n := recvNow(fd, b)
		if n <= 0 {
			return
		}
		for i := 0; i < n; i++ {
			l.check(dir, st, b.bufs[i][:b.hdrs[i].Len], b.rxTime(i), ws, we)
		}
		if n < len(b.hdrs) {
			return
		}
	}
}

// check verifies one received packet and records its latency: from the
// generator's send timestamp in the payload to the kernel's receive
// timestamp (taken when the relay's send reached the generator's socket).
func (l *load) check(dir int, st *receiverStats, pkt []byte, rxTime, ws, we int64) {
	if len(pkt) < 12 {
		st.corrupt++
		return
	}
	idx := binary.BigEndian.Uint32(pkt[8:]) - ssrcBase
	if int(idx) >= len(l.streams) || l.streams[idx].dir != dir {
		st.stray++
		return
	}
	s := &l.streams[idx]
	if dir == 0 {
		out, err := s.dec.DecryptRTP(l.plainBuf[:0], pkt, &l.hdr)
		if err != nil {
			st.authFail++
			return
		}
		pkt = out
	}
	if len(pkt) != 12+payloadSize || pkt[1]&0x7f != 0 {
		st.corrupt++
		return
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	p := pkt[12:]
	start := (int(seq)*7 + 16) & 255
	if int(binary.BigEndian.Uint32(p[8:])) != s.call || !bytes.Equal(p[16:], pattern[start:start+payloadSize-16]) {
		st.corrupt++
		return
	}
	st.received++
	s.recv.Add(1)
	sent := int64(binary.BigEndian.Uint64(p))
	if sent >= ws && sent < we {
		st.inWindow++
		if rxTime == 0 {
			rxTime = l.now() // no kernel timestamp: fall back to now
			st.noStamp++
		}
		// From the kernel's transmit timestamp when there is one: the
		// moment the generator's datagram left for the relay.
		if k := seq % txHistory; s.txSeq[k] == seq && s.txAt[k] != 0 && s.txAt[k] >= sent {
			sent = s.txAt[k]
		} else {
			st.noTxStamp++
		}
		bk := (rxTime - sent) / int64(bucketWidth)
		if bk >= nBuckets {
			bk = nBuckets - 1
			st.over++
		}
		if bk < 0 {
			bk = 0
			st.negative++
		}
		st.hist[bk]++
	}
}

// percentile returns the p-quantile (0..1) of the merged latency
// histograms in milliseconds.
func (l *load) percentile(p float64) float64 {
	var total uint64
	var merged [nBuckets]uint64
	for _, st := range l.rx {
		if st == nil {
			continue
		}
		for i, c := range st.hist {
			merged[i] += c
			total += c
		}
	}
	if total == 0 {
		return 0
	}
	want := uint64(p * float64(total))
	if want >= total {
		want = total - 1 // p = 1: the largest
	}
	var acc uint64
	for i, c := range merged {
		acc += c
		if acc > want {
			return float64(time.Duration(i+1)*bucketWidth) / float64(time.Millisecond)
		}
	}
	return float64(nBuckets*bucketWidth) / float64(time.Millisecond)
}

func (l *load) totals() (sent, received, corrupt, authFail, stray, inWindow, noStamp, noTx uint64) {
	for i := range l.streams {
		sent += l.streams[i].sent.Load()
	}
	for _, st := range l.rx {
		if st != nil {
			received += st.received
			corrupt += st.corrupt
			authFail += st.authFail
			stray += st.stray
			inWindow += st.inWindow
			noStamp += st.noStamp
			noTx += st.noTxStamp
		}
	}
	return
}

func describe(sent, received, corrupt, authFail, stray uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d received=%d", sent, received)
	if corrupt+authFail+stray > 0 {
		fmt.Fprintf(&b, " corrupt=%d auth_fail=%d stray=%d", corrupt, authFail, stray)
	}
	return b.String()
}
