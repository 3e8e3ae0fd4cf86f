package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/pbx2teams/pbx2teams/media"
	"github.com/pbx2teams/pbx2teams/media/ng"
)

// relayMain runs the pbx2teams relay as its own process, driven over the
// same ng protocol as rtpengine: "offer" is an offer from leg A (the PBX,
// plain RTP), "answer" the answer from leg B (Teams, SRTP).
func relayMain(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	ngAddr := fs.String("ng", "127.0.0.1:22300", "ng listen address")
	bind := fs.String("bind", "127.0.0.1", "media bind address")
	pmin := fs.Int("port-min", 20000, "lowest media port")
	pmax := fs.Int("port-max", 29999, "highest media port")
	workers := fs.Int("workers", 0, "packet workers (0: GOMAXPROCS)")
	engine := fs.String("engine", "", "relay engine: io_uring, epoll or empty for automatic")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the relay to this file (stopped by SIGTERM)")
	_ = fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() { <-sig; pprof.StopCPUProfile(); f.Close(); os.Exit(0) }()
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := media.NewRelay(media.Config{
		BindIP: netip.MustParseAddr(*bind), PortMin: *pmin, PortMax: *pmax, Workers: *workers, Engine: *engine, Logger: log,
	})
	if err != nil {
		return err
	}
	defer r.Close()
	conn, err := net.ListenPacket("udp", *ngAddr)
	if err != nil {
		return err
	}
	calls := map[string]*media.Call{}
	fmt.Println("ready")
	return ng.Serve(conn, func(cmd ng.Dict) ng.Dict {
		id := ng.String(cmd, "call-id")
		fail := func(err error) ng.Dict { return ng.Dict{"result": "error", "error-reason": err.Error()} }
		switch ng.String(cmd, "command") {
		case "ping":
			return ng.Dict{"result": "pong"}
		case "offer":
			c := calls[id]
			if c == nil {
				c = r.NewCall(id)
				calls[id] = c
			}
			out, err := c.OfferFromA([]byte(ng.String(cmd, "sdp")))
			if err != nil {
				return fail(err)
			}
			return ng.Dict{"result": "ok", "sdp": string(out)}
		case "answer":
			c := calls[id]
			if c == nil {
				return ng.Dict{"result": "error", "error-reason": "unknown call"}
			}
			out, err := c.AnswerFromB([]byte(ng.String(cmd, "sdp")))
			if err != nil {
				return fail(err)
			}
			return ng.Dict{"result": "ok", "sdp": string(out)}
		case "delete":
			if c := calls[id]; c != nil {
				c.Close()
				delete(calls, id)
			}
			return ng.Dict{"result": "ok"}
		case "statistics":
			// Totals over live calls, for cross-checking the generator.
			var in, out, lost, dropped int64
			for _, c := range calls {
				st := c.Stats()
				for _, l := range []media.LegStats{st.A, st.B} {
					in += int64(l.PacketsIn)
					out += int64(l.PacketsOut)
					lost += l.Lost
					dropped += int64(l.AuthFailures + l.Replays + l.Foreign + l.Malformed + l.SendErrors)
				}
			}
			return ng.Dict{"result": "ok", "packets-in": in, "packets-out": out, "lost": lost, "dropped": dropped, "engine": r.Engine()}
		}
		return ng.Dict{"result": "error", "error-reason": "unsupported command"}
	})
}
