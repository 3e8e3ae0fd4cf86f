package kamailio

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// The harness starts a registrar that challenges, and whose statistics and
// location table can be read.
func TestStartChallengeAndStats(t *testing.T) {
	k := StartT(t, Options{Subscribers: []Subscriber{{"100", "secret"}}, LogRegisters: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := net.Dial("udp", k.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la := c.LocalAddr().String()
	req := "REGISTER sip:" + k.Addr() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + la + ";branch=z9hG4bK1;rport\r\n" +
		"From: <sip:100@127.0.0.1>;tag=a\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: t1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:x@" + la + ">\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := string(buf[:n])
	if !strings.HasPrefix(resp, "SIP/2.0 401") || !strings.Contains(resp, `qop="auth"`) || !strings.Contains(resp, "algorithm=MD5") {
		t.Fatalf("want a 401 challenge with qop=auth, got:\n%s", resp)
	}
	t.Logf("challenge: %s", resp)
	if got, err := k.Stat(ctx, "core:rcv_requests_register"); err != nil || got != 1 {
		t.Fatalf("rcv_requests_register = %d, %v", got, err)
	}
	bs, err := k.Bindings(ctx)
	if err != nil || len(bs) != 0 {
		t.Fatalf("bindings %v %v", bs, err)
	}
	if !strings.Contains(k.Log(), "REGISTER 100 callid=t1") {
		t.Fatalf("no REGISTER log line:\n%s", k.LogTail(10))
	}
}
