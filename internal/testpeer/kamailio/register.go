package kamailio

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// RegisterContact registers extension ext of the server's domain with a
// Contact of the caller's choice (e.g. the SIPp phone playing that
// extension), answering the digest challenge with password; the binding
// lasts 600 s.
func (s *Server) RegisterContact(ctx context.Context, ext, password, contact string) error {
	ua, err := sipgo.NewUA()
	if err != nil {
		return err
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua)
	if err != nil {
		return err
	}
	ruri := sip.Uri{Scheme: "sip", Host: s.opts.Domain}
	req := sip.NewRequest(sip.REGISTER, ruri)
	req.SetDestination(s.Addr())
	aor := sip.Uri{Scheme: "sip", User: ext, Host: s.opts.Domain}
	from := &sip.FromHeader{Address: aor}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(sip.NewHeader("Contact", "<"+contact+">"))
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ext, Password: password})
	}
	if err != nil {
		return fmt.Errorf("REGISTER %s: %w", ext, err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER %s: %s", ext, res.StartLine())
	}
	return nil
}
