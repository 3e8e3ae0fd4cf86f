//go:build linux

package media

import (
	"testing"
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
