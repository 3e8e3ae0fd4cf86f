//go:build linux

package media

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCallSetupBindsNoSocket: with pairs ready in the pool, setting up a
// call opens no descriptor.
func TestCallSetupBindsNoSocket(t *testing.T) {
	r := testRelay(t, func(c *Config) { c.SocketPool = 8; c.Workers = 1 })
	pbx, teams := newPeer(t), newPeer(t)
	before := openFDs(t)
	c := r.NewCall("pooled")
	defer c.Close()
	toA, _ := setupCall(t, c, pbx, teams)
	if after := openFDs(t); after != before {
		t.Errorf("call set-up changed the open descriptors from %d to %d", before, after)
	}
	pbx.send(toA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)
}

// TestQuarantineAndReuse: the ports of an ended call take no new call
// during the quarantine, and packets still arriving on them reach nobody;
// afterwards the same sockets serve a new call, which sees none of the
// old packets.
func TestQuarantineAndReuse(t *testing.T) {
	const quarantine = 400 * time.Millisecond
	r := testRelay(t, func(c *Config) { c.SocketPool = 4; c.Workers = 1; c.PortQuarantine = quarantine })
	free := r.FreePorts()
	pbx, teams := newPeer(t), newPeer(t)
	old := r.NewCall("old")
	oldA, oldB := setupCall(t, old, pbx, teams)
	pbx.send(oldA, pbx.packet(0))
	teams.mustRecv(pbx.seq, 0)
	old.Close()
	if got := r.FreePorts(); got != free-2 {
		t.Errorf("free pairs during quarantine: %d, want %d", got, free-2)
	}

	// A call made during the quarantine gets other ports.
	pbx2, teams2 := newPeer(t), newPeer(t)
	during := r.NewCall("during")
	defer during.Close()
	toA2, toB2 := setupCall(t, during, pbx2, teams2)
	for _, ap := range []uint16{toA2.Port(), toB2.Port()} {
		if ap == oldA.Port() || ap == oldB.Port() {
			t.Fatalf("port %d reused during its quarantine", ap)
		}
	}
	// Late packets of the old call, on both of its ports: nobody gets them.
	pbx.send(oldA, pbx.packet(0))
	teams.sendRaw(oldB, teams.packet(0))
	for _, p := range []*peer{teams, pbx, teams2, pbx2} {
		if pkt, _, err := p.recv(200 * time.Millisecond); !errors.Is(err, errTimeout) {
			t.Fatalf("a late packet of the ended call was relayed: %v %v", pkt, err)
		}
	}
	if st := during.Stats(); st.A.PacketsIn+st.B.PacketsIn != 0 {
		t.Fatalf("the new call counted packets of the old one: %+v", st)
	}

	// After the quarantine the pairs come back, and the pool hands them
	// out again, oldest first.
	eventually(t, "quarantine over", func() bool { return r.FreePorts() == free-2 })
	pbx3, teams3 := newPeer(t), newPeer(t)
	for i := 0; i < 8; i++ {
		c := r.NewCall(fmt.Sprint("after", i))
		defer c.Close()
		toA, toB := setupCall(t, c, pbx3, teams3)
		if toA.Port() != oldA.Port() && toB.Port() != oldA.Port() {
			continue
		}
		// The recycled sockets relay for the new call, both ways.
		pbx3.send(toA, pbx3.packet(0))
		teams3.mustRecv(pbx3.seq, 0)
		teams3.send(toB, teams3.packet(0))
		pbx3.mustRecv(teams3.seq, 0)
		if st := c.Stats(); st.A.PacketsIn != 1 || st.B.PacketsIn != 1 {
			t.Fatalf("recycled call counts %+v, want one packet each way", st)
		}
		return
	}
	t.Fatalf("port %d never came back from quarantine", oldA.Port())
}
