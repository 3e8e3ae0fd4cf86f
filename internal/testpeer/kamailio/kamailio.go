// Package kamailio runs Debian's Kamailio as a stand-in PBX for tests and
// benchmarks: a registrar with digest authentication against a SQLite
// subscriber table, an in-memory location table (usrloc), and routing of
// INVITEs to registered contacts with lookup("location"). It starts on a
// free loopback port in its own directory, exposes the bindings and
// statistics through kamcmd (ctl socket in that directory), and can be
// stopped, killed and restarted on the same port.
package kamailio

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	_ "modernc.org/sqlite" // subscriber table written by the harness
)

// Subscriber is one PBX account.
type Subscriber struct {
	Username string
	Password string
}

// Options configure the stand-in PBX. The zero value is a UDP+TCP
// registrar on 127.0.0.1 with MD5 digest and qop=auth.
type Options struct {
	// Transports to listen on: "udp", "tcp" (Debian's build has no TLS
	// module). Default both.
	Transports []string
	// Port to listen on; 0 picks a port free for both UDP and TCP.
	Port int
	// Domain is the subscribers' domain and the digest realm (default
	// 127.0.0.1).
	Domain string
	// Children is the number of UDP workers and of TCP workers (default 2).
	Children int
	// Expiry bounds, in seconds (registrar min_expires, max_expires,
	// default_expires). Defaults: 0 (off), 3600, 3600.
	MinExpires, MaxExpires, DefaultExpires int
	// Algorithm of the digest challenge: "MD5" (default) or "SHA-256".
	Algorithm string
	// NoQOP sends challenges without qop=auth.
	NoQOP bool
	// NonceCount makes Kamailio track nonce counts (nc must grow).
	NonceCount bool
	// NonceExpire is the nonce lifetime in seconds (default 300).
	NonceExpire int
	// AuthChecks binds REGISTER nonces to parts of the request (auth
	// module auth_checks_register: 1 R-URI, 2 Call-ID, 4 From tag, 8
	// source IP), so a nonce is only good for the request it was made for.
	AuthChecks int
	// LogRegisters writes one log line per REGISTER received.
	LogRegisters bool
	// Subscribers created before start.
	Subscribers []Subscriber
	// ShmMB and PkgMB size Kamailio's memory (default 256 and 16).
	ShmMB, PkgMB int
	// Dir is the working directory (config, database, log, ctl socket).
	// Default: a new temporary directory removed by Stop.
	Dir string
	// CPUs pins Kamailio and its workers with taskset -c (benchmarks).
	CPUs string
}

// Server is a running Kamailio.
type Server struct {
	opts    Options
	dir     string
	ownDir  bool
	Host    string // 127.0.0.1
	Port    int
	db      *sql.DB
	ctlPath string
	cfgPath string
	logPath string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been waited for.
	exited chan struct{}
}

// Binary is the path of the kamailio binary; Available reports whether it
// and kamcmd are installed.
const Binary = "/usr/sbin/kamailio"

// Available reports whether kamailio and kamcmd can be run.
func Available() bool {
	if _, err := exec.LookPath("kamcmd"); err != nil {
		return false
	}
	_, err := os.Stat(Binary)
	return err == nil
}

// StartT starts a server for a test and stops it at cleanup. Without
// Kamailio installed the test is skipped, or fails when $CI is set.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if !Available() {
		if os.Getenv("CI") != "" {
			t.Fatal("kamailio is not installed (CI requires it: apt-get install kamailio kamailio-sqlite-modules)")
		}
		t.Skip("kamailio is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kamailio log tail:\n%s", s.LogTail(40))
		}
		s.Stop()
	})
	return s
}

// Start writes the configuration and database and starts Kamailio.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if len(opts.Transports) == 0 {
		opts.Transports = []string{"udp", "tcp"}
	}
	for _, tr := range opts.Transports {
		if tr != "udp" && tr != "tcp" {
			return nil, fmt.Errorf("kamailio: unsupported transport %q", tr)
		}
	}
	if opts.Domain == "" {
		opts.Domain = "127.0.0.1"
	}
	if opts.Children <= 0 {
		opts.Children = 2
	}
	if opts.MaxExpires == 0 {
		opts.MaxExpires = 3600
	}
	if opts.DefaultExpires == 0 {
		opts.DefaultExpires = min(3600, opts.MaxExpires)
	}
	if opts.Algorithm == "" {
		opts.Algorithm = "MD5"
	}
	if opts.NonceExpire == 0 {
		opts.NonceExpire = 300
	}
	if opts.ShmMB == 0 {
		opts.ShmMB = 256
	}
	if opts.PkgMB == 0 {
		opts.PkgMB = 16
	}
	s := &Server{opts: opts, Host: "127.0.0.1", dir: opts.Dir}
	if s.dir != "" {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, err
		}
	} else {
		d, err := os.MkdirTemp("", "kam-")
		if err != nil {
			return nil, err
		}
		s.dir, s.ownDir = d, true
	}
	s.ctlPath = filepath.Join(s.dir, "ctl")
	if len(s.ctlPath) > 100 { // unix socket path limit
		return nil, fmt.Errorf("kamailio: directory path too long for a unix socket: %s", s.dir)
	}
	s.cfgPath = filepath.Join(s.dir, "kamailio.cfg")
	s.logPath = filepath.Join(s.dir, "kamailio.log")
	s.Port = opts.Port
	if s.Port == 0 {
		p, err := FreePort()
		if err != nil {
			s.cleanupDir()
			return nil, err
		}
		s.Port = p
	}
	if err := s.writeDB(); err != nil {
		s.cleanupDir()
		return nil, err
	}
	if err := s.AddSubscribers(opts.Subscribers...); err != nil {
		s.cleanupDir()
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		s.cleanupDir()
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Addr is host:port of the registrar.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Domain is the subscribers' domain and digest realm.
func (s *Server) Domain() string { return s.opts.Domain }

// Dir is the server's working directory.
func (s *Server) Dir() string { return s.dir }

// FreePort returns a loopback port free for both UDP and TCP at the time of
// the call.
func FreePort() (int, error) {
	for i := 0; i < 50; i++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port for UDP and TCP")
}

func (s *Server) writeDB() error {
	path := filepath.Join(s.dir, "kamailio.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	// Only the two tables auth_db needs, in the layout Kamailio's SQLite
	// driver expects (the version table guards schema versions).
	_, err = db.Exec(`
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS version (id INTEGER PRIMARY KEY NOT NULL, table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT OR IGNORE INTO version (table_name, table_version) VALUES ('version', 1), ('subscriber', 7);
CREATE TABLE IF NOT EXISTS subscriber (id INTEGER PRIMARY KEY NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL, ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL, CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
CREATE INDEX IF NOT EXISTS subscriber_username_idx ON subscriber (username);`)
	if err != nil {
		db.Close()
		return fmt.Errorf("kamailio: create database: %w", err)
	}
	s.db = db
	return nil
}

// AddSubscribers adds (or replaces the password of) subscribers; Kamailio
// reads the table on every authentication, so this works while running.
func (s *Server) AddSubscribers(subs ...Subscriber) error {
	if len(subs) == 0 {
		return nil
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	st, err := tx.Prepare(`INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)
ON CONFLICT (username, domain) DO UPDATE SET password = excluded.password`)
	if err != nil {
		tx.Rollback()
		return err
	}
	for _, sub := range subs {
		if _, err := st.Exec(sub.Username, s.opts.Domain, sub.Password); err != nil {
			tx.Rollback()
			return err
		}
	}
	st.Close()
	return tx.Commit()
}

var cfgTemplate = template.Must(template.New("cfg").Parse(`#!KAMAILIO
# Generated by internal/testpeer/kamailio: a registrar with digest auth
# (SQLite subscribers), in-memory usrloc, and INVITE routing to contacts.
debug=2
log_stderror=yes
children={{.Children}}
tcp_children={{.Children}}
auto_aliases=no
{{range .Transports}}listen={{.}}:{{$.Host}}:{{$.Port}}
{{end}}alias="{{.Domain}}"
alias="{{.Host}}:{{.Port}}"
tcp_connection_lifetime=3605
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "db_sqlite.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{{.Ctl}}")
# ul.dump of many contacts needs big replies (KB; taken from pkg memory)
modparam("ctl", "binrpc_max_body_size", {{.CtlKB}})
modparam("ctl", "binrpc_struct_max_body_size", {{.CtlKB}})
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 0)
modparam("usrloc", "hash_size", 14)
modparam("registrar", "min_expires", {{.MinExpires}})
modparam("registrar", "max_expires", {{.MaxExpires}})
modparam("registrar", "default_expires", {{.DefaultExpires}})
modparam("auth", "nonce_expire", {{.NonceExpire}})
modparam("auth", "algorithm", "{{.Algorithm}}")
{{if .NonceCount}}modparam("auth", "nonce_count", 1)
{{end}}{{if .AuthChecks}}modparam("auth", "auth_checks_register", {{.AuthChecks}})
modparam("auth", "secret", "0123456789abcdef")
{{end}}modparam("auth_db", "db_url", "sqlite:///{{.DB}}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("auth_db", "use_domain", 0)

request_route {
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	if (!sanity_check("17895", "7")) { exit; }
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
	if (is_method("REGISTER")) {
{{if .LogRegisters}}		xlog("L_NOTICE", "REGISTER $fU callid=$ci cseq=$cs src=$si:$sp proto=$pr auth=$au\n");
{{end}}		if (!auth_check("$fd", "subscriber", "1")) {
			auth_challenge("$fd", "{{.ChallengeFlags}}");
			exit;
		}
		if (!save("location")) { sl_reply_error(); }
		exit;
	}
	if (is_method("INVITE")) {
		if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
		record_route();
		if (!t_relay()) { sl_reply_error(); }
		exit;
	}
	if (is_method("OPTIONS") && uri==myself) { sl_send_reply("200", "OK"); exit; }
	sl_send_reply("405", "Method Not Allowed");
}
`))

func (s *Server) writeConfig() error {
	flags := "1"
	if s.opts.NoQOP {
		flags = "0"
	}
	data := map[string]any{
		"Children": s.opts.Children, "Transports": s.opts.Transports, "Host": s.Host, "Port": s.Port,
		"Domain": s.opts.Domain, "Ctl": s.ctlPath, "MinExpires": s.opts.MinExpires,
		"MaxExpires": s.opts.MaxExpires, "DefaultExpires": s.opts.DefaultExpires,
		"NonceExpire": s.opts.NonceExpire, "Algorithm": s.opts.Algorithm, "NonceCount": s.opts.NonceCount, "AuthChecks": s.opts.AuthChecks,
		"DB": filepath.Join(s.dir, "kamailio.sqlite"), "LogRegisters": s.opts.LogRegisters,
		"ChallengeFlags": flags, "CtlKB": s.opts.PkgMB * 1024 / 2,
	}
	var b bytes.Buffer
	if err := cfgTemplate.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(s.cfgPath, b.Bytes(), 0o644)
}

func (s *Server) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-f", s.cfgPath, "-DD", "-E",
		"-m", strconv.Itoa(s.opts.ShmMB), "-M", strconv.Itoa(s.opts.PkgMB),
		"-w", s.dir, "-P", filepath.Join(s.dir, "kamailio.pid")}
	name := Binary
	if s.opts.CPUs != "" { // taskset execs kamailio: same pid, workers inherit
		args = append([]string{"-c", s.opts.CPUs, Binary}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kamailio: %w", err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); close(exited) }()

	// Ready when the ctl socket answers and the SIP port replies.
	for {
		select {
		case <-exited:
			return fmt.Errorf("kamailio exited at start-up; log:\n%s", s.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("kamailio not ready: %w; log:\n%s", ctx.Err(), s.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := s.kamcmd(ctx, "core.uptime"); err != nil {
			continue
		}
		if s.probe() {
			return nil
		}
	}
}

// probe sends OPTIONS to the first transport and waits briefly for a reply.
func (s *Server) probe() bool {
	tr := s.opts.Transports[0]
	c, err := net.DialTimeout(tr, s.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	la := c.LocalAddr().(interface{ String() string }).String()
	host, port, _ := net.SplitHostPort(la)
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s %s:%s;branch=z9hG4bKprobe%d;rport\r\n"+
		"From: <sip:probe@%s>;tag=p\r\nTo: <sip:%s>\r\nCall-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n",
		s.Addr(), strings.ToUpper(tr), host, port, time.Now().UnixNano(), host, s.Addr(), time.Now().UnixNano())
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 "))
}

// Running reports whether the Kamailio process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill stops Kamailio abruptly (SIGKILL to its process group), as a crash.
func (s *Server) Kill() { s.signal(syscall.SIGKILL, 0) }

// Shutdown stops Kamailio gracefully, keeping its directory for Restart.
func (s *Server) Shutdown() { s.signal(syscall.SIGTERM, 5*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// Signal Kamailio's process group (its workers) only while its leader,
	// our child, is alive: once it is gone the group id may belong to
	// someone else (pids are reused quickly on a busy machine).
	group := func(sig syscall.Signal) {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, sig)
		}
	}
	group(sig)
	if grace > 0 {
		select {
		case <-exited:
		case <-time.After(grace):
			group(syscall.SIGKILL)
			<-exited
		}
	} else {
		<-exited
	}
	_ = os.Remove(s.ctlPath)
}

// Restart starts Kamailio again on the same port with the same database;
// the in-memory bindings are gone, as after a real restart.
func (s *Server) Restart(ctx context.Context) error {
	if s.Running() {
		s.Shutdown()
	}
	var err error
	for i := 0; i < 20; i++ { // the port may linger for a moment
		if err = s.start(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Stop stops Kamailio and removes its directory if Start created it.
func (s *Server) Stop() {
	s.Shutdown()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	s.cleanupDir()
}

func (s *Server) cleanupDir() {
	if s.ownDir {
		os.RemoveAll(s.dir)
		s.ownDir = false
	}
}

// LogTail returns the last n lines of Kamailio's log.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Register is one REGISTER transaction Kamailio received (LogRegisters).
type Register struct {
	User, CallID, CSeq, Source, Proto string
	// AuthUser is the digest user name of the credentials, "" without.
	AuthUser string
}

// Registers returns the REGISTER transactions received so far, in order;
// retransmissions (same Call-ID and CSeq) are counted once. Needs
// Options.LogRegisters.
func (s *Server) Registers() []Register {
	var out []Register
	seen := map[string]bool{}
	for _, line := range strings.Split(s.Log(), "\n") {
		_, rest, ok := strings.Cut(line, "<script>: REGISTER ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 6 {
			continue
		}
		r := Register{User: f[0]}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "callid":
				r.CallID = v
			case "cseq":
				r.CSeq = v
			case "src":
				r.Source = v
			case "proto":
				r.Proto = v
			case "auth":
				if v != "<null>" {
					r.AuthUser = v
				}
			}
		}
		if key := r.CallID + " " + r.CSeq; !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

// Log returns Kamailio's whole log (including LogRegisters lines).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *Server) kamcmd(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "kamcmd", append([]string{"-s", "unix:" + s.ctlPath}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kamcmd %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Stat returns one Kamailio statistic, e.g. "core:rcv_requests_register",
// "registrar:accepted_regs" or "usrloc:registered_users".
func (s *Server) Stat(ctx context.Context, name string) (int64, error) {
	query := name
	if _, short, ok := strings.Cut(name, ":"); ok {
		query = short // kamcmd wants the bare name or "group:"
	}
	out, err := s.kamcmd(ctx, "stats.get_statistics", query)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == name {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("kamailio: no statistic %q in %q", name, out)
}

// Binding is one contact in Kamailio's location table.
type Binding struct {
	AoR       string
	Contact   string
	Expires   int // seconds left (0: under a second); negative once expired
	CallID    string
	CSeq      int
	UserAgent string
	Received  string
	Socket    string
}

// Bindings reads the location table with kamcmd ul.dump.
func (s *Server) Bindings(ctx context.Context) ([]Binding, error) {
	cmd := exec.CommandContext(ctx, "kamcmd", "-s", "unix:"+s.ctlPath, "ul.dump")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(out, 1<<16)
	if head, _ := br.Peek(6); string(head) == "error:" { // kamcmd prints RPC errors on stdout
		msg, _ := br.ReadString('\n')
		cmd.Wait()
		return nil, fmt.Errorf("kamcmd ul.dump: %s (raise PkgMB for big tables)", strings.TrimSpace(msg))
	}
	bs := ParseULDump(br)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("kamcmd ul.dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return bs, nil
}

// Lookup returns the bindings of one address of record (ul.lookup).
func (s *Server) Lookup(ctx context.Context, aor string) ([]Binding, error) {
	out, err := s.kamcmd(ctx, "ul.lookup", "location", aor)
	if err != nil {
		if strings.Contains(err.Error(), "404") {
			return nil, nil
		}
		return nil, err
	}
	if strings.HasPrefix(string(out), "error:") {
		if strings.Contains(string(out), "404") {
			return nil, nil
		}
		return nil, fmt.Errorf("kamcmd ul.lookup: %s", strings.TrimSpace(string(out)))
	}
	return ParseULDump(bufio.NewReader(bytes.NewReader(out))), nil
}

// LookupAll looks up many addresses of record in one kamcmd session (ul.dump
// cannot return big tables: kamcmd limits the reply size). AoRs without
// bindings are absent from the result.
func (s *Server) LookupAll(ctx context.Context, aors []string) (map[string][]Binding, error) {
	var in bytes.Buffer
	for _, a := range aors {
		in.WriteString("ul.lookup location " + a + "\n")
	}
	cmd := exec.CommandContext(ctx, "kamcmd", "-s", "unix:"+s.ctlPath)
	cmd.Stdin = &in
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	bs := ParseULDump(bufio.NewReaderSize(out, 1<<16))
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("kamcmd ul.lookup: %w", err)
	}
	m := make(map[string][]Binding, len(aors))
	for _, b := range bs {
		m[b.AoR] = append(m[b.AoR], b)
	}
	return m, nil
}

// ParseULDump parses the text kamcmd prints for ul.dump.
func ParseULDump(r *bufio.Reader) []Binding {
	var out []Binding
	var aor string
	var cur *Binding
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "AoR":
			aor, cur = v, nil
		case "Contact":
			if v == "{" {
				out = append(out, Binding{AoR: aor})
				cur = &out[len(out)-1]
			}
		}
		if cur == nil {
			continue
		}
		switch k {
		case "Address":
			cur.Contact = v
		case "Expires":
			n, err := strconv.Atoi(v)
			if err != nil { // "expired", "deleted"; "permanent" never here
				n = -1
			}
			cur.Expires = n
		case "Call-ID":
			cur.CallID = v
		case "CSeq":
			cur.CSeq, _ = strconv.Atoi(v)
		case "User-Agent":
			cur.UserAgent = v
		case "Received":
			cur.Received = v
		case "Socket":
			cur.Socket = v
		}
	}
	return out
}
