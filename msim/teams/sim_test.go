package teams_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	msdp "github.com/pbx2teams/pbx2teams/media/sdp"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

const srtpOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 40000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
	"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\na=rtcp-mux\r\na=sendrecv\r\n"

// invite sends an INVITE to the simulator's first proxy from the test's
// SBC and returns every response until the final one.
func invite(t *testing.T, env *teamstest.Env, number, contactHost, body string, extra ...sip.Header) []*sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proxy := simteams.DefaultProxies[0]
	req := sip.NewRequest(sip.INVITE, teams.RequestURI(number, proxy))
	from := &sip.FromHeader{Address: teams.NumberURI("+15550001", contactHost)}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: teams.NumberURI(number, contactHost)})
	req.AppendHeader(env.Trunk.Contact("+15550001", contactHost))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if body != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(body))
	}
	req.SetTransport("TLS")
	req.SetDestination(fmt.Sprintf("%s:%d", proxy, env.Sim.Port()))
	tx, err := env.Trunk.Client().TransactionRequest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Terminate()
	var out []*sip.Response
	for {
		select {
		case res := <-tx.Responses():
			out = append(out, res)
			if res.StatusCode >= 200 {
				if res.IsSuccess() {
					// Release the call.
					bye := sip.NewRequest(sip.BYE, res.Contact().Address)
					bye.AppendHeader(sip.HeaderClone(req.From()))
					bye.AppendHeader(sip.HeaderClone(res.To()))
					bye.AppendHeader(sip.HeaderClone(req.CallID()))
					bye.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo + 1, MethodName: sip.BYE})
					bye.SetTransport("TLS")
					_, _ = env.Trunk.Client().Do(ctx, bye, sipgo.ClientRequestBuild)
				}
				return out
			}
		case <-tx.Done():
			t.Fatalf("no final response: %v", tx.Err())
		case <-ctx.Done():
			t.Fatal("timeout")
		}
	}
}

func final(rs []*sip.Response) *sip.Response { return rs[len(rs)-1] }

func TestProxyEnforcesDirectRoutingRules(t *testing.T) {
	env := teamstest.Start(t, teamstest.Options{Labels: []string{"contoso"}})
	env.Trunk.Start()
	env.WaitActive(t)
	cust := env.Trunk.CustomerFQDN("contoso")
	tenant := env.Sim.AddTenant("tenant-contoso", cust)
	user := tenant.AddUser("+442071234567", simteams.UserOptions{Endpoints: 2, AnswerAfter: 200 * time.Millisecond})

	check := func(name string, rs []*sip.Response, status int, msCode string) {
		t.Helper()
		f := final(rs)
		if f.StatusCode != status {
			t.Errorf("%s: got %s, want %d", name, f.StartLine(), status)
			return
		}
		if msCode != "" {
			if h := f.GetHeader("ms-diagnostics"); h == nil || !strings.HasPrefix(h.Value(), msCode) {
				t.Errorf("%s: ms-diagnostics = %v, want %s", name, h, msCode)
			}
		}
	}
	check("IP in Contact", invite(t, env, user.Number, "127.0.0.1", srtpOffer), 403, "")
	check("FQDN of no tenant", invite(t, env, user.Number, env.Trunk.CustomerFQDN("fabrikam"), srtpOffer), 403, "510532")
	check("plain RTP", invite(t, env, user.Number, cust, strings.ReplaceAll(srtpOffer, "RTP/SAVP", "RTP/AVP")), 488, "531000")
	check("delayed offer", invite(t, env, user.Number, cust, ""), 488, "531000")
	check("unknown number", invite(t, env, "+442070000000", cust, srtpOffer), 404, "511404")
	check("not E.164", invite(t, env, "2071234567", cust, srtpOffer), 404, "511404")
	check("Replaces", invite(t, env, user.Number, cust, srtpOffer, sip.NewHeader("Replaces", "abc;to-tag=1;from-tag=2")), 403, "")

	rs := invite(t, env, user.Number, cust, srtpOffer)
	f := final(rs)
	if f.StatusCode != 200 {
		t.Fatalf("good call: %s", f.StartLine())
	}
	tags := map[string]bool{}
	for _, r := range rs {
		if r.StatusCode == 180 {
			tag, _ := r.To().Params.Get("tag")
			tags[tag] = true
		}
	}
	if len(tags) != 2 {
		t.Errorf("want two forked 180s with distinct To-tags, got %d", len(tags))
	}
	s, err := msdp.Parse(f.Body())
	if err != nil || len(s.Media) != 1 || !s.Media[0].Secure() || len(s.Media[0].Crypto) != 1 || !s.Media[0].RTCPMux {
		t.Fatalf("answer SDP not SRTP with rtcp-mux: %v\n%s", err, f.Body())
	}
	if c := s.Media[0].Crypto[0]; c.Tag != 1 || c.Suite != "AES_CM_128_HMAC_SHA1_80" {
		t.Errorf("answer crypto = %+v", c)
	}
	if _, err := user.Incoming(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPatternFrameIsATone(t *testing.T) {
	u, a := simteams.PatternFrame("PCMU"), simteams.PatternFrame("PCMA")
	if len(u) != 160 || len(a) != 160 {
		t.Fatal("frame size")
	}
	// A 1 kHz tone at 8 kHz has a period of 8 samples.
	for i := 8; i < 160; i++ {
		if u[i] != u[i-8] || a[i] != a[i-8] {
			t.Fatalf("not periodic at %d", i)
		}
	}
	if u[0] == u[2] || a[0] == a[2] {
		t.Fatal("flat signal")
	}
	// Silence in μ-law is 0xFF/0x7F: the tone's peak must be far from it.
	if u[2] == 0xFF || u[2] == 0x7F {
		t.Fatalf("peak encodes as silence: %x", u[2])
	}
}
