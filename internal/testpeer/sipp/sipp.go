// Package sipp runs Debian's SIPp (sip-tester) for tests and benchmarks:
// as a scripted peer (UAS scenarios listening on a free loopback port, e.g.
// an awkward registrar) or as a load generator (UAC scenarios against a
// server), with CSV injection, message logs and the final statistics.
package sipp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is the SIPp executable.
const Binary = "sipp"

// Available reports whether sipp is installed.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Options describe one SIPp run. Set exactly one of Scenario, ScenarioXML
// or Builtin.
type Options struct {
	Scenario    string // path of an XML scenario (-sf)
	ScenarioXML string // scenario text, written to Dir
	Builtin     string // embedded scenario name (-sn), e.g. "uac"
	// Remote is host:port of the peer for client scenarios; empty for a
	// server (UAS) scenario that waits for requests.
	Remote string
	// Transport: "udp" (one socket, default), "tcp" (one connection) or
	// "udp-multi"/"tcp-multi" (a socket per call).
	Transport string
	// LocalIP (default 127.0.0.1) and LocalPort (0 picks a free one).
	LocalIP   string
	LocalPort int
	// Calls ends the run after that many calls (-m); 0 means no limit.
	Calls int
	// Rate in calls per RatePeriod (default 1 s), Limit on simultaneous
	// calls.
	Rate       float64
	RatePeriod time.Duration
	Limit      int
	// CSV rows injected into the scenario (-inf); the first line must be
	// SEQUENTIAL, RANDOM or USER. CSVFile uses an existing file instead.
	CSV     []string
	CSVFile string
	// Keys set [key] keywords (-key k v).
	Keys map[string]string
	// Timeout is SIPp's global timeout; reaching it is an error.
	Timeout time.Duration
	// Messages logs every message sent and received (-trace_msg).
	Messages bool
	// Extra arguments, appended last.
	Extra []string
	// Dir for scenario, CSV, logs and statistics (default: a temp dir
	// removed by Stop unless the run failed).
	Dir string
	// CPUs pins the process with taskset -c (benchmarks), e.g. "1".
	CPUs string
}

// Process is a running SIPp.
type Process struct {
	opts    Options
	dir     string
	ownDir  bool
	Port    int
	cmd     *exec.Cmd
	out     bytes.Buffer
	done    chan struct{}
	waitErr error
	started time.Time
	ended   time.Time
}

// Result is what a finished run reports.
type Result struct {
	ExitCode   int // 0: all calls succeeded; 1: some failed
	Successful int64
	Failed     int64
	// Elapsed is from SIPp's start to its last statistics dump (the end of
	// the run), measured by SIPp itself.
	Elapsed time.Duration
	// Rate is Successful / Elapsed.
	Rate float64
	// CPU is the user+system time SIPp used.
	CPU    time.Duration
	Output string
}

// StartT starts SIPp for a test and stops it at cleanup. Without SIPp the
// test is skipped, or fails when $CI is set.
func StartT(t testing.TB, opts Options) *Process {
	t.Helper()
	if !Available() {
		if os.Getenv("CI") != "" {
			t.Fatal("sipp is not installed (CI requires it: apt-get install sip-tester)")
		}
		t.Skip("sipp is not installed")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	p, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("sipp output:\n%s\nsipp messages:\n%s", tail(p.Output(), 30), tail(p.Messages(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Start starts SIPp; for a server scenario it returns once the port is
// bound. A free port taken by someone else before SIPp could bind it is
// replaced by another.
func Start(opts Options) (*Process, error) {
	for try := 0; ; try++ {
		p, err := start(opts)
		if err != nil && opts.LocalPort == 0 && try < 5 && strings.Contains(err.Error(), "errno = 98") {
			continue
		}
		return p, err
	}
}

func start(opts Options) (*Process, error) {
	p := &Process{opts: opts, dir: opts.Dir, done: make(chan struct{})}
	if p.dir != "" {
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			return nil, err
		}
	} else {
		d, err := os.MkdirTemp("", "sipp-")
		if err != nil {
			return nil, err
		}
		p.dir, p.ownDir = d, true
	}
	args, err := p.args()
	if err != nil {
		p.cleanup()
		return nil, err
	}
	name := Binary
	if opts.CPUs != "" {
		args = append([]string{"-c", opts.CPUs, Binary}, args...)
		name = "taskset"
	}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = p.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		p.cleanup()
		return nil, fmt.Errorf("sipp: %w", err)
	}
	p.started = time.Now()
	go func() {
		p.waitErr = p.cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	if opts.Remote == "" {
		if err := p.waitBound(30 * time.Second); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *Process) args() ([]string, error) {
	o := p.opts
	var a []string
	switch {
	case o.ScenarioXML != "":
		path := filepath.Join(p.dir, "scenario.xml")
		if err := os.WriteFile(path, []byte(o.ScenarioXML), 0o644); err != nil {
			return nil, err
		}
		a = append(a, "-sf", path)
	case o.Scenario != "":
		abs, err := filepath.Abs(o.Scenario)
		if err != nil {
			return nil, err
		}
		a = append(a, "-sf", abs)
	case o.Builtin != "":
		a = append(a, "-sn", o.Builtin)
	default:
		return nil, errors.New("sipp: no scenario")
	}
	ip := o.LocalIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	p.Port = o.LocalPort
	if p.Port == 0 {
		port, err := freePort(o.Transport)
		if err != nil {
			return nil, err
		}
		p.Port = port
	}
	tr := map[string]string{"": "u1", "udp": "u1", "tcp": "t1", "udp-multi": "un", "tcp-multi": "tn"}[o.Transport]
	if tr == "" {
		return nil, fmt.Errorf("sipp: unsupported transport %q", o.Transport)
	}
	a = append(a, "-i", ip, "-p", strconv.Itoa(p.Port), "-t", tr, "-nostdin",
		"-trace_stat", "-stf", filepath.Join(p.dir, "stat.csv"), "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(p.dir, "errors.log"))
	if o.Messages {
		a = append(a, "-trace_msg", "-message_file", filepath.Join(p.dir, "messages.log"))
	}
	if o.Calls > 0 {
		a = append(a, "-m", strconv.Itoa(o.Calls))
	}
	if o.Rate > 0 {
		a = append(a, "-r", strconv.FormatFloat(o.Rate, 'f', -1, 64))
		if o.RatePeriod > 0 {
			a = append(a, "-rp", strconv.FormatInt(o.RatePeriod.Milliseconds(), 10))
		}
	}
	if o.Limit > 0 {
		a = append(a, "-l", strconv.Itoa(o.Limit))
	}
	if len(o.CSV) > 0 {
		path := filepath.Join(p.dir, "inject.csv")
		if err := os.WriteFile(path, []byte(strings.Join(o.CSV, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		a = append(a, "-inf", path)
	} else if o.CSVFile != "" {
		a = append(a, "-inf", o.CSVFile)
	}
	for k, v := range o.Keys {
		a = append(a, "-key", k, v)
	}
	if o.Timeout > 0 {
		a = append(a, "-timeout", strconv.FormatInt(o.Timeout.Milliseconds(), 10)+"ms", "-timeout_error")
	}
	a = append(a, o.Extra...)
	if o.Remote != "" {
		a = append(a, o.Remote)
	}
	return a, nil
}

func freePort(transport string) (int, error) {
	if strings.HasPrefix(transport, "tcp") {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// waitBound returns once SIPp holds its port (our own bind fails).
func (p *Process) waitBound(d time.Duration) error {
	deadline := time.Now().Add(d)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port))
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("sipp exited at start-up: %s", p.Output())
		default:
		}
		var err error
		if strings.HasPrefix(p.opts.Transport, "tcp") {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		} else {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", addr); err == nil {
				c.Close()
			}
		}
		if err != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("sipp did not bind its port")
}

// Addr is SIPp's local host:port.
func (p *Process) Addr() string {
	ip := p.opts.LocalIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.JoinHostPort(ip, strconv.Itoa(p.Port))
}

// Dir is where SIPp writes its files.
func (p *Process) Dir() string { return p.dir }

// Done is closed when SIPp exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for SIPp to exit (or ctx) and returns its result.
func (p *Process) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Stop()
		return p.result(), fmt.Errorf("sipp: %w", ctx.Err())
	}
	return p.result(), nil
}

func (p *Process) result() Result {
	r := Result{ExitCode: -1, Output: p.Output()}
	if ps := p.cmd.ProcessState; ps != nil {
		r.ExitCode = ps.ExitCode()
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "stat.csv"))
	if err != nil {
		return r
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return r
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	col := func(name string) string {
		for i, h := range head {
			if h == name && i < len(last) {
				return last[i]
			}
		}
		return ""
	}
	r.Successful, _ = strconv.ParseInt(col("SuccessfulCall(C)"), 10, 64)
	r.Failed, _ = strconv.ParseInt(col("FailedCall(C)"), 10, 64)
	// Time columns are "date<TAB>time<TAB>unix.micro".
	unix := func(v string) float64 {
		f := strings.Split(v, "\t")
		x, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return x
	}
	if st, cur := unix(col("StartTime")), unix(col("CurrentTime")); st > 0 && cur > st {
		r.Elapsed = time.Duration((cur - st) * float64(time.Second))
		r.Rate = float64(r.Successful) / (cur - st)
	}
	return r
}

// Output is SIPp's console output so far.
func (p *Process) Output() string { return p.out.String() }

// Messages is the message log (Options.Messages).
func (p *Process) Messages() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "messages.log"))
	return string(b)
}

// Message is one entry of the message log.
type Message struct {
	At       time.Time
	Received bool
	Text     string // the SIP message
}

const logSep = "----------------------------------------------- "

// MessageLog parses the message log (Options.Messages).
func (p *Process) MessageLog() []Message {
	var out []Message
	for _, block := range strings.Split(p.Messages(), logSep)[1:] {
		stamp, rest, ok := strings.Cut(block, "\n")
		if !ok {
			continue
		}
		at, _ := time.ParseInLocation("2006-01-02 15:04:05.000000", strings.TrimSpace(stamp), time.Local)
		head, text, ok := strings.Cut(rest, "\n")
		if !ok {
			continue
		}
		out = append(out, Message{At: at, Received: strings.Contains(head, "message received"),
			Text: strings.TrimLeft(text, "\r\n")})
	}
	return out
}

// Received returns the requests with this method SIPp received, in order;
// retransmissions (same top Via branch) are left out.
func (p *Process) Received(method string) []Message {
	var out []Message
	seen := map[string]bool{}
	for _, m := range p.MessageLog() {
		if !m.Received || !strings.HasPrefix(m.Text, method+" ") {
			continue
		}
		if b := viaBranch(m.Text); b != "" {
			if seen[b] {
				continue
			}
			seen[b] = true
		}
		out = append(out, m)
	}
	return out
}

func viaBranch(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		l := strings.TrimSpace(line)
		if len(l) > 4 && (strings.HasPrefix(strings.ToLower(l), "via:") || strings.HasPrefix(l, "v:")) {
			if _, b, ok := strings.Cut(l, "branch="); ok {
				if i := strings.IndexAny(b, ";, "); i >= 0 {
					b = b[:i]
				}
				return b
			}
			return ""
		}
	}
	return ""
}

// Stop ends SIPp (SIGTERM, then SIGKILL) and removes its directory if
// Start created it.
func (p *Process) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		// Signal our child itself (os.Process uses a pidfd: never another
		// process that got its pid).
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(3 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
	}
	p.cleanup()
}

func (p *Process) cleanup() {
	if p.ownDir {
		os.RemoveAll(p.dir)
		p.ownDir = false
	}
}
