package ng

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Client sends ng commands over UDP and matches replies by cookie. It is
// safe for concurrent use.
type Client struct {
	conn *net.UDPConn

	mu      sync.Mutex
	waiting map[string]chan Dict
	closed  bool
	prefix  string
	seq     uint64
}

// Dial connects a client to an ng listener such as "127.0.0.1:2223".
func Dial(addr string) (*Client, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadBuffer(4 << 20)
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Client{conn: conn, waiting: map[string]chan Dict{}, prefix: hex.EncodeToString(b[:])}
	go c.read()
	return c, nil
}

// Close stops the client; pending commands fail.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.conn.Close()
}

func (c *Client) read() {
	buf := make([]byte, 65536)
	for {
		n, err := c.conn.Read(buf)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			continue // e.g. ECONNREFUSED from an ICMP error before the peer listens
		}
		if err != nil {
			c.mu.Lock()
			for k, ch := range c.waiting {
				close(ch)
				delete(c.waiting, k)
			}
			c.mu.Unlock()
			return
		}
		cookie, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			continue
		}
		v, _, err := Decode(body)
		d, isDict := v.(Dict)
		if err != nil || !isDict {
			continue
		}
		c.mu.Lock()
		ch := c.waiting[string(cookie)]
		delete(c.waiting, string(cookie))
		c.mu.Unlock()
		if ch != nil {
			ch <- d
		}
	}
}

// Command sends cmd and waits for its reply, retransmitting every second
// as rtpengine's SIP proxies do. A reply whose "result" is "error" becomes
// an error carrying its "error-reason".
func (c *Client) Command(ctx context.Context, cmd Dict) (Dict, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, net.ErrClosed
	}
	c.seq++
	cookie := fmt.Sprintf("%s_%d", c.prefix, c.seq)
	ch := make(chan Dict, 1)
	c.waiting[cookie] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiting, cookie)
		c.mu.Unlock()
	}()
	msg, err := Encode([]byte(cookie+" "), cmd)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, err
		}
		select {
		case d, ok := <-ch:
			if !ok {
				return nil, net.ErrClosed
			}
			if String(d, "result") == "error" {
				return d, errors.New("ng: " + String(d, "error-reason"))
			}
			return d, nil
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Handler answers one ng command.
type Handler func(cmd Dict) Dict

// Serve answers ng commands arriving on conn until it is closed. Replies
// to retransmitted commands are served from a small cache so a command
// takes effect once.
func Serve(conn net.PacketConn, h Handler) error {
	buf := make([]byte, 65536)
	type cached struct {
		reply []byte
	}
	cache := map[string]cached{}
	var order []string
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return err
		}
		cookie, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			continue
		}
		if r, hit := cache[string(cookie)]; hit {
			_, _ = conn.WriteTo(r.reply, from)
			continue
		}
		v, _, err := Decode(body)
		cmd, isDict := v.(Dict)
		var reply Dict
		if err != nil || !isDict {
			reply = Dict{"result": "error", "error-reason": "malformed message"}
		} else {
			reply = h(cmd)
		}
		out, err := Encode(append(append([]byte(nil), cookie...), ' '), reply)
		if err != nil {
			out, _ = Encode(append(append([]byte(nil), cookie...), ' '), Dict{"result": "error", "error-reason": err.Error()})
		}
		cache[string(cookie)] = cached{out}
		order = append(order, string(cookie))
		if len(order) > 4096 {
			delete(cache, order[0])
			order = order[1:]
		}
		_, _ = conn.WriteTo(out, from)
	}
}
