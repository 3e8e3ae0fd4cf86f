package ng

import (
	"context"
	"net"
	"reflect"
	"testing"
	"time"
)

func TestBencodeRoundTrip(t *testing.T) {
	in := Dict{
		"command": "offer", "call-id": "c1", "sdp": "v=0\r\n",
		"replace": []string{"origin", "session-connection"},
		"n":       42, "nested": Dict{"l": []any{"a", int64(-3), Dict{}}},
	}
	b, err := Encode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d7:call-id2:c17:command5:offer1:ni42e6:nestedd1:ll1:ai-3edeee7:replacel6:origin18:session-connectione3:sdp5:v=0\r\ne"
	if string(b) != want {
		t.Errorf("encoded %q", b)
	}
	v, rest, err := Decode(b)
	if err != nil || len(rest) != 0 {
		t.Fatal(err, rest)
	}
	d := v.(Dict)
	if String(d, "sdp") != "v=0\r\n" || d["n"] != int64(42) || !reflect.DeepEqual(Strings(d, "replace"), []string{"origin", "session-connection"}) {
		t.Errorf("decoded %#v", d)
	}
	for _, bad := range []string{"", "i", "ie", "i1", "5:ab", "l", "d1:a", "di1ei2ee", "x", "-1:", "d3:abc"} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestClientServer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go Serve(pc, func(cmd Dict) Dict {
		if String(cmd, "command") == "ping" {
			return Dict{"result": "pong"}
		}
		return Dict{"result": "error", "error-reason": "unknown command"}
	})
	c, err := Dial(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Command(ctx, Dict{"command": "ping"})
	if err != nil || String(res, "result") != "pong" {
		t.Fatalf("ping: %v %v", res, err)
	}
	if _, err := c.Command(ctx, Dict{"command": "nope"}); err == nil || err.Error() != "ng: unknown command" {
		t.Errorf("error reply: %v", err)
	}
}
