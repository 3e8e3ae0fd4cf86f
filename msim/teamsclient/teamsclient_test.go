package teamsclient_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	simteams "github.com/pbx2teams/pbx2teams/msim/teams"
	"github.com/pbx2teams/pbx2teams/msim/teams/teamstest"
	"github.com/pbx2teams/pbx2teams/msim/teamsclient"
)

const (
	tenantID = "11111111-0000-4000-8000-00000000000a"
	oidAlice = "a1a1a1a1-0000-4000-8000-000000000001"
	audience = "api://localhost/0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d"
)

func newSim(t *testing.T) (*msim.Sim, *httptest.Server) {
	t.Helper()
	sim := msim.New(msim.Options{})
	if _, err := sim.AddTenant(msim.TenantSpec{ID: tenantID, DisplayName: "Contoso", Domains: []msim.DomainSpec{{Name: "contoso.test"}},
		Users: []msim.UserSpec{{ID: oidAlice, UserPrincipalName: "alice@contoso.test", DisplayName: "Alice Archer"}}}); err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(sim.Handler())
	t.Cleanup(idp.Close)
	return sim, idp
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// TestHostAnswers checks what the page's TeamsJS host hands the tab: the
// context of the chosen user and a token the service's SSO validator
// accepts for that user.
func TestHostAnswers(t *testing.T) {
	sim, idp := newSim(t)
	h, err := teamsclient.New(teamsclient.Config{Identity: sim, Audience: audience,
		Users: func() []teamsclient.User {
			return []teamsclient.User{{UPN: "alice@contoso.test", Name: "Alice Archer"}}
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := srv.URL + "/_msim/teams/"

	status, _, body := get(t, "GET", base+"api/context?upn=alice@contoso.test")
	var c map[string]string
	if err := json.Unmarshal([]byte(body), &c); err != nil || status != 200 {
		t.Fatalf("context: %d %s", status, body)
	}
	if c["tid"] != tenantID || c["userObjectId"] != oidAlice || c["userPrincipalName"] != "alice@contoso.test" || c["loginHint"] != "alice@contoso.test" {
		t.Fatalf("context: %v", c)
	}

	status, _, body = get(t, "POST", base+"api/token?upn=alice@contoso.test")
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || status != 200 {
		t.Fatalf("token: %d %s", status, body)
	}
	v := &m365.SSOValidator{LoginURL: idp.URL, Audiences: []string{audience}}
	u, err := v.Validate(context.Background(), tok.Token)
	if err != nil || u.TenantID != tenantID || u.UserID != oidAlice || u.UPN != "alice@contoso.test" {
		t.Fatalf("the minted token: %+v %v", u, err)
	}

	if status, _, body = get(t, "POST", base+"api/token?upn=nobody@contoso.test"); status != 404 || !strings.Contains(body, "no simulated Teams user nobody@contoso.test") {
		t.Fatalf("unknown user token: %d %s", status, body)
	}

	// Pages: the picker lists users; the client page frames the tab and
	// says at once when the user does not exist.
	status, hd, body := get(t, "GET", base)
	if status != 200 || !strings.Contains(body, "Alice Archer") || !strings.Contains(hd.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("picker: %d %s", status, body)
	}
	status, hd, body = get(t, "GET", base+"client?upn=alice@contoso.test")
	if status != 200 || !strings.Contains(body, `<iframe id="tab" title="Phone App" src="/phone/">`) || strings.Contains(body, `id="error"`) {
		t.Fatalf("client page: %d %s", status, body)
	}
	if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src 'self'") {
		t.Fatalf("client page CSP: %s", csp)
	}
	if _, _, body = get(t, "GET", base+"client?upn=nobody@contoso.test"); !strings.Contains(body, `id="error"`) {
		t.Fatalf("unknown user page: %s", body)
	}

	// An absolute tab URL is the only other origin the page may frame.
	h2, err := teamsclient.New(teamsclient.Config{Identity: sim, Audience: audience, TabURL: "https://tab.example:8443/phone/"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h2.ServeHTTP(rec, httptest.NewRequest("GET", "/_msim/teams/client?upn=alice@contoso.test", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-src https://tab.example:8443;") {
		t.Fatalf("CSP for an absolute tab URL: %s", csp)
	}
	if _, err := teamsclient.New(teamsclient.Config{Audience: audience}); err == nil {
		t.Fatal("New without Identity succeeded")
	}
}

// caller places federated calls to the simulator's edge, as the Phone App
// leg of the service does.
type caller struct {
	t   *testing.T
	env *teamstest.FederationEnv
	cli *sipgo.Client
	bye chan *sip.Request
	udp *net.UDPConn
}

func newCaller(t *testing.T, env *teamstest.FederationEnv) *caller {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{env.Certificate}, RootCAs: env.PKI.Pool()}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname(env.Domain), sipgo.WithUserAgenTLSConfig(conf),
		sipgo.WithUserAgentDNSResolver(env.DNS.Resolver()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(env.Domain))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	c := &caller{t: t, env: env, cli: cli, bye: make(chan *sip.Request, 4)}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		c.bye <- req
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	c.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.udp.Close() })
	return c
}

// invite calls upn and returns the final response (once it comes).
func (c *caller) invite(ctx context.Context, upn string) (*sip.Request, <-chan *sip.Response) {
	user, host, _ := strings.Cut(upn, "@")
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: user, Host: host})
	from := &sip.FromHeader{DisplayName: "Front Desk", Address: sip.Uri{Scheme: "sip", User: "+442071230001", Host: c.env.Domain}}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host}})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "+442071230001", Host: c.env.Domain,
		UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	key := make([]byte, 30)
	_, _ = rand.Read(key)
	port := c.udp.LocalAddr().(*net.UDPAddr).Port
	req.SetBody([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/SAVP 0 101\r\n", port) +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.StdEncoding.EncodeToString(key) + "\r\na=rtcp-mux\r\na=sendrecv\r\n"))
	req.SetTransport("TLS")
	req.SetDestination(c.env.EdgeAddr())
	tx, err := c.cli.TransactionRequest(ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	final := make(chan *sip.Response, 1)
	// handle takes a response and reports whether it was the final one.
	handle := func(res *sip.Response) bool {
		if res.StatusCode < 200 {
			return false
		}
		if res.IsSuccess() {
			ack := sip.NewRequest(sip.ACK, res.Contact().Address)
			ack.AppendHeader(sip.HeaderClone(req.From()))
			ack.AppendHeader(sip.HeaderClone(res.To()))
			ack.AppendHeader(sip.HeaderClone(req.CallID()))
			ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
			ack.SetTransport("TLS")
			_ = c.cli.WriteRequest(ack)
		}
		final <- res
		return true
	}
	go func() {
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if handle(res) {
					return
				}
			case <-tx.Done():
				// A 2xx ends the client transaction at once: its response
				// may still be waiting in the channel.
				for {
					select {
					case res := <-tx.Responses():
						if handle(res) {
							return
						}
					default:
						return
					}
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return req, final
}

type pageCall struct {
	ID         string `json:"id"`
	Inbound    bool   `json:"inbound"`
	Federated  bool   `json:"federated"`
	State      string `json:"state"`
	RemoteName string `json:"remote_name"`
	RemoteUser string `json:"remote_user"`
}

// TestSimPhones rings a simulated Teams user through the federation edge
// and drives the call from the page's API, as a person at the sandbox's
// Teams client page does: decline one call, answer another, hang it up.
func TestSimPhones(t *testing.T) {
	env := teamstest.StartFederation(t, teamstest.FederationOptions{})
	alice := env.Tenant.AddUserUPN("alice@contoso.test", "", teamsclientUserOptions())
	sim, _ := newSim(t)
	h, err := teamsclient.New(teamsclient.Config{Identity: sim, Audience: audience, Phones: teamsclient.SimPhones(env.Sim, true)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := srv.URL + "/_msim/teams/"
	q := "?upn=alice@contoso.test"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	calls := func() []pageCall {
		t.Helper()
		status, _, body := get(t, "GET", base+"api/calls"+q)
		var v struct{ Calls []pageCall }
		if err := json.Unmarshal([]byte(body), &v); err != nil || status != 200 {
			t.Fatalf("calls: %d %s", status, body)
		}
		return v.Calls
	}
	waitCall := func(state string) pageCall {
		t.Helper()
		for ctx.Err() == nil {
			if cs := calls(); len(cs) == 1 && cs[0].State == state {
				return cs[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %s call; calls: %+v", state, calls())
		return pageCall{}
	}
	// Opening the page puts the user in manual mode: calls wait for a click.
	if cs := calls(); len(cs) != 0 {
		t.Fatalf("calls before any: %+v", cs)
	}
	if a := alice.Options().AnswerAfter; a >= 0 {
		t.Fatalf("the page left the user answering by itself (AnswerAfter %v)", a)
	}
	if status, _, body := get(t, "GET", base+"api/calls?upn=nobody@contoso.test"); status != 404 {
		t.Fatalf("unknown user's calls: %d %s", status, body)
	}

	c := newCaller(t, env)
	_, final := c.invite(ctx, "alice@contoso.test")
	pc := waitCall("ringing")
	if !pc.Inbound || !pc.Federated || pc.RemoteUser != "+442071230001" || pc.RemoteName != "Front Desk" {
		t.Fatalf("ringing call: %+v", pc)
	}
	if status, _, body := get(t, "POST", base+"api/calls/"+pc.ID+"/decline"+q); status != 200 {
		t.Fatalf("decline: %d %s", status, body)
	}
	select {
	case res := <-final:
		if res.StatusCode != 603 {
			t.Fatalf("declined call answered %d", res.StatusCode)
		}
	case <-ctx.Done():
		t.Fatal("no final response to the declined call")
	}

	_, final = c.invite(ctx, "alice@contoso.test")
	pc = waitCall("ringing")
	if status, _, body := get(t, "POST", base+"api/calls/"+pc.ID+"/answer"+q); status != 200 {
		t.Fatalf("answer: %d %s", status, body)
	}
	select {
	case res := <-final:
		if res.StatusCode != 200 {
			t.Fatalf("answered call got %d", res.StatusCode)
		}
	case <-ctx.Done():
		t.Fatal("no final response to the answered call")
	}
	waitCall("active")
	if status, _, body := get(t, "POST", base+"api/calls/"+pc.ID+"/answer"+q); status != 409 || !strings.Contains(body, "not ringing") {
		t.Fatalf("answering an active call: %d %s", status, body)
	}
	if status, _, body := get(t, "POST", base+"api/calls/"+pc.ID+"/hangup"+q); status != 200 {
		t.Fatalf("hang up: %d %s", status, body)
	}
	select {
	case bye := <-c.bye:
		if bye.CallID().Value() != pc.ID {
			t.Fatalf("BYE for %s, want %s", bye.CallID().Value(), pc.ID)
		}
	case <-ctx.Done():
		t.Fatal("hang up sent no BYE")
	}
	for ctx.Err() == nil && len(calls()) != 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if cs := calls(); len(cs) != 0 {
		t.Fatalf("calls after hang-up: %+v", cs)
	}
	if status, _, _ := get(t, "POST", base+"api/calls/"+pc.ID+"/bogus"+q); status != 404 {
		t.Fatalf("unknown action: %d", status)
	}
}

// teamsclientUserOptions is a user that would answer at once by itself,
// to show that the page's manual mode stops that.
func teamsclientUserOptions() simteams.UserOptions {
	return simteams.UserOptions{Endpoints: 1, AnswerAfter: 0}
}
