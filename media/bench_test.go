//go:build linux

package media

import (
	"testing"
	"time"
)

// BenchmarkRelayHop relays one packet per iteration, alternating RTP→SRTP
// and SRTP→RTP, between two loopback peers in lockstep (send, wait for it
// to arrive). It includes the peers' own socket calls and SRTP; compare
// with BenchmarkLoopbackDirect for the relay's share. The throughput
// benchmark against rtpengine is bench/media.
func BenchmarkRelayHop(b *testing.B) {
	r := testRelay(b, func(c *Config) { c.Workers = 1 })
	c := r.NewCall("bench")
	defer c.Close()
	pbx, teams := newPeer(b), newPeer(b)
	toA, toB := setupCall(b, c, pbx, teams)
	pktA := pbx.packet(0)
	buf := make([]byte, 2048)
	enc := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			pbx.seq++
			pktA[2], pktA[3] = byte(pbx.seq>>8), byte(pbx.seq)
			_, _ = pbx.conn.WriteToUDPAddrPort(pktA, toA)
			_, _, _ = teams.conn.ReadFromUDPAddrPort(buf)
		} else {
			teams.seq++
			pktA[2], pktA[3] = byte(teams.seq>>8), byte(teams.seq)
			wire, _ := teams.enc.EncryptRTP(enc[:0], pktA, nil)
			_, _ = teams.conn.WriteToUDPAddrPort(wire, toB)
			_, _, _ = pbx.conn.ReadFromUDPAddrPort(buf)
		}
	}
	b.StopTimer()
	if st := c.Stats(); st.A.PacketsIn+st.B.PacketsIn < uint64(b.N) {
		b.Fatalf("relayed %d of %d", st.A.PacketsIn+st.B.PacketsIn, b.N)
	}
}

// BenchmarkLoopbackDirect is the baseline: the same peers exchange plain
// packets directly, in lockstep.
func BenchmarkLoopbackDirect(b *testing.B) {
	pbx, teams := newPeer(b), newPeer(b)
	pkt := pbx.packet(0)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = pbx.conn.WriteToUDPAddrPort(pkt, teams.addr)
		_, _, _ = teams.conn.ReadFromUDPAddrPort(buf)
	}
}

// BenchmarkPacketPath feeds packets straight into a worker's packet path
// (no receive system call): decrypt or encrypt, counters, and the real
// send to a loopback peer. Half the iterations go each way.
func BenchmarkPacketPath(b *testing.B) {
	r := testRelay(b, func(c *Config) { c.Workers = 1 })
	c := r.NewCall("path")
	defer c.Close()
	pbx, teams := newPeer(b), newPeer(b)
	setupCall(b, c, pbx, teams)
	bigBuffersTest(pbx, teams)
	w, err := newWorker(r)
	if err != nil {
		b.Fatal(err)
	}
	const n = 4096
	fromA := make([][]byte, n)
	fromB := make([][]byte, n)
	for i := range fromA {
		fromA[i] = pbx.packet(0)
		fromB[i], _ = teams.enc.EncryptRTP(nil, teams.packet(0), nil)
	}
	var srcA, srcB sockaddr
	srcA.set(r.family, pbx.addr)
	srcB.set(r.family, teams.addr)
	drain := func() {
		buf := make([]byte, 2048)
		for _, p := range []*peer{pbx, teams} {
			_ = p.conn.SetReadDeadline(time.Now())
			for {
				if _, _, err := p.conn.ReadFromUDPAddrPort(buf); err != nil {
					break
				}
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i / 2 % n
		if k == 0 && i%2 == 0 && i > 0 {
			b.StopTimer()
			drain()
			// Fresh sequence numbers: the SRTP replay window would
			// reject a second lap of the same packets.
			for j := range fromB {
				fromB[j], _ = teams.enc.EncryptRTP(nil, teams.packet(0), nil)
			}
			b.StartTimer()
		}
		s, src, pkt := c.legs[LegA].rtp, srcA, fromA[k]
		if i%2 == 1 {
			s, src, pkt = c.legs[LegB].rtp, srcB, fromB[k]
		}
		w.rx.from[0] = src
		w.rx.hdrs[0].Len = uint32(copy(w.rx.bufs[0], pkt))
		w.process(s, 1)
	}
}

// BenchmarkSendOnly is the baseline of BenchmarkPacketPath: the bare send
// system call to a loopback peer.
func BenchmarkSendOnly(b *testing.B) {
	r := testRelay(b, nil)
	pbx, teams := newPeer(b), newPeer(b)
	bigBuffersTest(pbx, teams)
	w, _ := newWorker(r)
	var dst sockaddr
	dst.set(r.family, teams.addr)
	fd, err := openUDP(r.family, loopback, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFD(fd)
	pkt := pbx.packet(0)
	l := &leg{}
	buf := make([]byte, 2048)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%4096 == 4095 {
			b.StopTimer()
			_ = teams.conn.SetReadDeadline(time.Now())
			for {
				if _, _, err := teams.conn.ReadFromUDPAddrPort(buf); err != nil {
					break
				}
			}
			b.StartTimer()
		}
		w.tx.queue(fd, pkt, &dst, l, nil, false)
		w.tx.flush()
	}
}

func bigBuffersTest(ps ...*peer) {
	for _, p := range ps {
		_ = p.conn.SetReadBuffer(64 << 20)
	}
}
