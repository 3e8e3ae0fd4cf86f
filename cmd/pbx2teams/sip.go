package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/pbx2teams/pbx2teams/metrics"
	"github.com/pbx2teams/pbx2teams/pbxlines"
	"github.com/pbx2teams/pbx2teams/sip/registration"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

// parseListen reads "udp:127.0.0.1:5060,tcp:127.0.0.1:5060".
func parseListen(spec string) ([]sipx.Listen, error) {
	var out []sipx.Listen
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		tr, addr, ok := strings.Cut(part, ":")
		if !ok || (tr != "udp" && tr != "tcp") {
			return nil, fmt.Errorf("--sip-listen %q: write transport:host:port with transport udp or tcp", part)
		}
		out = append(out, sipx.Listen{Transport: tr, Addr: addr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--sip-listen is empty: give at least one udp:host:port")
	}
	return out, nil
}

// wireSIP opens the SIP stack shared by the registration engine and call
// control, and keeps every configured user registered.
func (a *app) wireSIP(c config, reg *metrics.Registry) error {
	listen, err := parseListen(c.sipListen)
	if err != nil {
		return err
	}
	stack, err := sipx.NewStack(sipx.StackConfig{Listen: listen, AdvertisedHost: c.sipAdvertise, Logger: a.log})
	if err != nil {
		return fmt.Errorf("SIP listeners %s: %w (use --sip-listen to choose free ports)", c.sipListen, err)
	}
	a.closers = append(a.closers, func() { stack.Close() })
	eng, err := registration.New(registration.Config{Stack: stack, RateLimit: c.regRate, Logger: a.log})
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() { eng.Close() })
	a.svc.Registrations = eng
	c.calls.phoneAppDomain = c.phoneAppDomain
	if a.calls, err = a.wireCalls(c.calls, stack, eng, reg); err != nil {
		return err
	}
	feed := pbxlines.New(a.svc, eng, a.log)
	a.svc.Listen(feed)
	a.runners = append(a.runners, func(ctx context.Context) error { stack.Start(); return eng.Run(ctx) }, feed.Run)

	reg.Collect(func(emit func(string, string, string, metrics.Labels, float64)) {
		st := eng.Stats()
		for _, s := range []string{"registered", "registering", "failed", "stopped"} {
			emit("pbx2teams_registrations", "PBX registrations by state.", "gauge", metrics.Labels{"state": s}, float64(st.ByState[s]))
		}
		emit("pbx2teams_register_requests_total", "REGISTER requests sent.", "counter", nil, float64(st.RegistersSent))
		emit("pbx2teams_register_rate", "REGISTER requests per second over the last 10 s.", "gauge", nil, st.RegisterRate)
		for code, n := range st.Failures {
			emit("pbx2teams_register_failures_total", "Failed registration attempts by SIP status or cause.", "counter", metrics.Labels{"cause": code}, float64(n))
		}
		emit("pbx2teams_register_inflight", "REGISTER transactions in flight.", "gauge", nil, float64(st.InFlight))
	})
	return nil
}
