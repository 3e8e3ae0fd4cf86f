package registration

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// BenchmarkBurst measures the engine's own cost per registration against
// an in-process UDP registrar that challenges unauthenticated REGISTERs and
// accepts the rest (no digest check): b.N users register in one burst.
func BenchmarkBurst(b *testing.B) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 4096)
		var out []byte
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			status := "401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"b\", nonce=\"n\", qop=\"auth\""
			if strings.Contains(msg, "\r\nAuthorization:") {
				status = "200 OK\r\nExpires: 3600"
			}
			out = append(out[:0], "SIP/2.0 "...)
			out = append(out, status...)
			for _, h := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
				i := strings.Index(msg, "\r\n"+h+": ")
				j := strings.Index(msg[i+2:], "\r\n")
				out = append(out, msg[i:i+2+j]...)
			}
			out = append(out, "\r\nContent-Length: 0\r\n\r\n"...)
			c.WriteToUDP(out, from)
		}
	}()
	st, err := sipx.NewStack(sipx.StackConfig{Listen: []sipx.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}}, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	st.Start()
	e, err := New(Config{Stack: st, RateLimit: 1e9, RateBurst: 1e9, MaxInFlight: 200, MaxInFlightPerPBX: 200,
		StartJitter: -1, KeepAlive: -1, NoSharedNonce: true, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		s := strconv.Itoa(i)
		if err := e.Set(Account{UserID: "b" + s, Domain: "b.test", OutboundProxy: c.LocalAddr().String(),
			Username: "u" + s, Password: "p", ContactUser: "cb" + s}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	go e.Run(ctx)
	for e.Stats().ByState[pbx2teams.RegRegistered] < b.N {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	e.Close()
}
