package sipx

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The stack listens where asked, builds Contacts at the advertised host and
// answers a PBX's OPTIONS qualify with 200 OK.
func TestStackListensAndAnswersOptions(t *testing.T) {
	st, err := NewStack(StackConfig{AdvertisedHost: "192.0.2.7", Listen: []Listen{
		{Transport: "udp", Addr: "127.0.0.1:0"}, {Transport: "tcp", Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Start()
	port := st.Port("udp")
	if port == 0 || st.Port("tcp") == 0 || st.HasTransport("tls") {
		t.Fatalf("ports udp %d tcp %d", port, st.Port("tcp"))
	}
	if got, want := st.ContactURI("abc", "tcp"), "sip:abc@192.0.2.7:"+strconv.Itoa(st.Port("tcp"))+";transport=tcp"; got != want {
		t.Errorf("contact %s, want %s", got, want)
	}
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la := c.LocalAddr().String()
	msg := "OPTIONS sip:abc@192.0.2.7 SIP/2.0\r\nVia: SIP/2.0/UDP " + la + ";branch=z9hG4bKopt1\r\n" +
		"From: <sip:pbx@example.com>;tag=1\r\nTo: <sip:abc@192.0.2.7>\r\nCall-ID: q1\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if res := string(buf[:n]); !strings.HasPrefix(res, "SIP/2.0 200 OK") || !strings.Contains(res, "Allow: INVITE") {
		t.Fatalf("reply:\n%s", res)
	}
}

func TestStackNeedsAdvertisedHostOnWildcard(t *testing.T) {
	if _, err := NewStack(StackConfig{Listen: []Listen{{Transport: "udp", Addr: "0.0.0.0:0"}}}); err == nil {
		t.Fatal("a wildcard listener without AdvertisedHost was accepted")
	}
	if _, err := NewStack(StackConfig{Listen: []Listen{{Transport: "tls", Addr: "127.0.0.1:0"}}}); err == nil {
		t.Fatal("a TLS listener without a certificate was accepted")
	}
}
