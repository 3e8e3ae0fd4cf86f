// Command callsbench measures call set-up through the pbx2teams B2BUA
// against Kamailio as a stateful proxy on the same machine, in the same run.
//
// SIPp (uac, on the generator CPU) calls users' registration Contacts at
// the B2BUA's PBX listener; the B2BUA anchors the media in the relay and
// calls the user's Teams number through the Direct Routing trunk, whose
// proxy is a SIPp uas (on the generator CPU too). The B2BUA runs in its
// own process ("dut" mode), pinned to the DUT CPU. Debian's SIPp has no
// TLS or SRTP, so this benchmark-only setup carries the Teams side over
// UDP with plain RTP; the output says so.
//
// Then the same SIPp uac calls through Kamailio (record_route + t_relay,
// pinned to the DUT CPU) to the same SIPp uas.
//
// For each system the call rate goes up in fixed steps (each STEP seconds,
// calls held HOLD ms) until a step has a failure or falls behind; the
// highest clean step is run RUNS times and the median achieved rate kept.
// At half the B2BUA's rate, SIPp's response times (INVITE to 200) give
// the set-up delay p99.
//
// Last line:
//
//	calls cps=X failures=0 kamailio_cps=Y ratio=R setup_p99_ms=Z
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	"github.com/pbx2teams/pbx2teams/media"
	"github.com/pbx2teams/pbx2teams/sip/b2bua"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
	"github.com/pbx2teams/pbx2teams/sip/teams"
)

const (
	benchFQDN  = "sbc.bench.test"
	benchLabel = "bench"
	benchAcct  = "acct-bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dut" {
		if err := dut(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "dut:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "callsbench:", err)
		os.Exit(1)
	}
}

// ---------------------------------------------------------------- DUT ---

type benchDir struct{ users map[string]*pbx2teams.User }

func (d benchDir) UserByContact(_ context.Context, cu string) (*pbx2teams.User, error) {
	if u := d.users[cu]; u != nil {
		c := *u
		return &c, nil
	}
	return nil, pbx2teams.ErrNotFound
}

func (d benchDir) UserByPhoneNumber(context.Context, string, string) (*pbx2teams.User, error) {
	return nil, pbx2teams.ErrNotFound
}

func (d benchDir) PBXSettings(context.Context, string) (*pbx2teams.PBXSettings, error) {
	return nil, pbx2teams.ErrNotFound
}

type benchRegs struct{}

func (benchRegs) PBXAddresses(string) ([]netip.Addr, bool) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
}

type benchCustomers struct{}

func (benchCustomers) CustomerByFQDN(h string) (string, bool) {
	l, ok := teams.LabelOf(h, benchFQDN)
	return benchAcct, ok && l == benchLabel
}

func (benchCustomers) FQDN(string) (string, bool) {
	return teams.CustomerFQDN(benchLabel, benchFQDN), true
}

// dut runs the B2BUA until stdin closes, printing "ready <pbx port>".
func dut(args []string) error {
	fs := flag.NewFlagSet("dut", flag.ExitOnError)
	proxy := fs.String("teams-proxy", "", "host:port of the SIPp uas standing in for Microsoft")
	users := fs.Int("users", 20000, "number of users")
	_ = fs.Parse(args)
	host, port, err := net.SplitHostPort(*proxy)
	if err != nil {
		return err
	}
	pport, _ := strconv.Atoi(port)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	slog.SetDefault(log)

	st, err := sipx.NewStack(sipx.StackConfig{Listen: []sipx.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}},
		AdvertisedHost: "127.0.0.1", Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	relay, err := media.NewRelay(media.Config{BindIP: netip.MustParseAddr("127.0.0.1"), PortMin: 16384, PortMax: 60999,
		MediaTimeout: time.Minute, Logger: log})
	if err != nil {
		return err
	}
	defer relay.Close()
	tr, err := teams.New(teams.Config{FQDN: benchFQDN, Listen: "127.0.0.1:0", Transport: "udp",
		Proxies: []string{host}, ProxyPort: pport, OptionsInterval: -1, Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close()
	dir := benchDir{users: map[string]*pbx2teams.User{}}
	for i := 0; i < *users; i++ {
		cu := fmt.Sprintf("u%05d", i)
		dir.users[cu] = &pbx2teams.User{ID: cu, AccountID: benchAcct, Enabled: true, Kind: pbx2teams.KindPerson,
			Type: pbx2teams.ServiceStandard, SIPUsername: fmt.Sprint(1000 + i), PhoneNumber: fmt.Sprintf("+4420%08d", i), ContactUser: cu}
	}
	var recs atomic.Uint64
	var dmu sync.Mutex
	var delays []float64 // ms, answered calls since the last reset
	b, err := b2bua.New(b2bua.Config{PBX: st, Trunk: tr, Relay: relay, Directory: dir, Registrations: benchRegs{},
		Customers: benchCustomers{}, Passwords: func(*pbx2teams.User) (string, error) { return "x", nil },
		// Benchmark only: SIPp speaks plain RTP.
		TeamsMedia: media.SecurityFollow,
		Recorder: b2bua.RecorderFunc(func(r *b2bua.Record, _ *b2bua.Trace) {
			recs.Add(1)
			if r.Result == b2bua.ResultAnswered {
				dmu.Lock()
				delays = append(delays, float64(r.AddedDelay)/float64(time.Millisecond))
				dmu.Unlock()
			}
		}),
		Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	tr.Start()
	st.Start()
	if path := os.Getenv("DUT_PPROF"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	fmt.Printf("ready %d\n", st.Port("udp"))
	// Commands from the orchestrator until it closes stdin: "reset"
	// forgets the set-up delays, "stats" prints them.
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "reset":
			dmu.Lock()
			delays = delays[:0]
			dmu.Unlock()
		case "stats":
			dmu.Lock()
			d := append([]float64(nil), delays...)
			dmu.Unlock()
			fmt.Printf("delays %d %.3f %.3f %.3f\n", len(d), pct(d, 50), pct(d, 99), pct(d, 100))
		}
	}
	s := b.Stats()
	fmt.Fprintf(os.Stderr, "dut: calls %d rejected %d records %d\n", s.Total, s.Rejected, recs.Load())
	if path := os.Getenv("DUT_MEMPROF"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	return nil
}

// -------------------------------------------------------- orchestrator ---

type options struct {
	steps    []int
	step     time.Duration
	hold     time.Duration
	runs     int
	dutCPU   string
	genCPU   string
	users    int
	only     string
	workDir  string
	selfPath string
}

type stepResult struct {
	rate      int
	ok, fail  int64
	achieved  float64
	dutCPU    time.Duration
	responses []float64 // ms, when traced
}

func run(args []string) error {
	o := options{}
	fs := flag.NewFlagSet("callsbench", flag.ExitOnError)
	steps := fs.String("steps", envStr("STEPS", "500,750,1000,1250,1500,2000"), "call rates to try, calls/s")
	fs.DurationVar(&o.step, "step", envDur("STEP", 10*time.Second), "duration of each step")
	fs.DurationVar(&o.hold, "hold", envDur("HOLD", time.Second), "call hold time")
	fs.IntVar(&o.runs, "runs", envInt("RUNS", 3), "runs at the top rate (median)")
	fs.StringVar(&o.dutCPU, "dut-cpu", envStr("DUT_CPU", "1"), "CPU of the B2BUA and of Kamailio")
	fs.StringVar(&o.genCPU, "gen-cpu", envStr("GEN_CPU", "0"), "CPU of the SIPp generators")
	fs.IntVar(&o.users, "users", 20000, "users (distinct Contacts)")
	fs.StringVar(&o.only, "only", "", "b2bua or kamailio: run one system")
	_ = fs.Parse(args)
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad step %q", s)
		}
		o.steps = append(o.steps, n)
	}
	if !sipp.Available() {
		return errors.New("sipp is not installed (apt-get install sip-tester)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.selfPath = self
	o.workDir, err = os.MkdirTemp("", "callsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(o.workDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	csv := filepath.Join(o.workDir, "users.csv")
	var sb strings.Builder
	sb.WriteString("SEQUENTIAL\n")
	for i := 0; i < o.users; i++ {
		fmt.Fprintf(&sb, "u%05d\n", i)
	}
	if err := os.WriteFile(csv, []byte(sb.String()), 0o644); err != nil {
		return err
	}

	fmt.Printf("# calls benchmark: SIPp uac -> system -> SIPp uas, %v steps, hold %v, %d runs at the top rate\n", o.step, o.hold, o.runs)
	fmt.Printf("# DUT CPU %s, generators CPU %s, %d CPUs online; B2BUA with GOMAXPROCS=1 GOGC=%s; Kamailio %s UDP workers\n",
		o.dutCPU, o.genCPU, numCPU(), envStr("DUT_GOGC", "200"), envStr("KAMAILIO_CHILDREN", "4"))
	fmt.Println("# benchmark-only setting: the Teams side is SIP over UDP with plain RTP (Debian's SIPp has no TLS/SRTP);")
	fmt.Println("#   production Teams legs are TLS + SRTP; the set-up path is otherwise the same (lookups, relay allocation, both dialogs)")

	uas, err := sipp.Start(sipp.Options{Builtin: "uas", Dir: filepath.Join(o.workDir, "uas"), CPUs: o.genCPU})
	if err != nil {
		return err
	}
	defer uas.Stop()

	if envStr("BASELINE", "1") != "0" {
		// RFC 7502's test-bed baseline: what the generators reach without
		// any system in between.
		best := 0
		for _, rate := range o.steps {
			r, err := step(ctx, o, "direct", uas.Addr(), csv, rate, false, 0)
			if err != nil {
				return err
			}
			clean := r.fail == 0 && r.achieved >= 0.95*float64(rate)
			fmt.Printf("step direct rate=%d ok=%d failed=%d achieved=%.0f %s\n", rate, r.ok, r.fail, r.achieved,
				map[bool]string{true: "clean", false: "FAIL"}[clean])
			if !clean {
				break
			}
			best = rate
		}
		fmt.Printf("# rig baseline: SIPp uac -> SIPp uas directly is clean up to %d calls/s on this machine\n", best)
	}

	var b2buaRate, kamRate, p99 float64
	var b2buaFail int64
	if o.only != "kamailio" {
		var (
			port, pid int
			stopDUT   = func() {}
			dp        *dutProc
		)
		// A fresh DUT after an overloaded step: calls the overload left
		// half set up hold their media ports until their timers end them,
		// and must not count against the next runs.
		fresh := func() (string, int, error) {
			stopDUT()
			var err error
			if port, stopDUT, pid, dp, err = startDUT(o, uas.Addr()); err != nil {
				stopDUT = func() {}
				return "", 0, err
			}
			return fmt.Sprintf("127.0.0.1:%d", port), pid, nil
		}
		top, fail, err := ramp(ctx, o, "b2bua", csv, fresh)
		if err != nil {
			stopDUT()
			return err
		}
		b2buaRate, b2buaFail = top, fail
		if top > 0 {
			half := int(top / 2)
			dp.reset()
			r, err := step(ctx, o, "b2bua", fmt.Sprintf("127.0.0.1:%d", port), csv, half, true, pid)
			if err != nil {
				stopDUT()
				return err
			}
			fmt.Printf("b2bua half load rate=%d ok=%d failed=%d sipp_setup_ms p50=%.1f p99=%.1f max=%.1f (SIPp INVITE->200 through the B2BUA, 1 ms resolution)\n",
				half, r.ok, r.fail, pct(r.responses, 50), pct(r.responses, 99), pct(r.responses, 100))
			n, p50, p99v, mx, err := dp.delays()
			if err != nil {
				stopDUT()
				return err
			}
			p99 = p99v
			fmt.Printf("b2bua half load added_setup_ms p50=%.3f p99=%.3f max=%.3f over %d calls (measured in the B2BUA: INVITE in to 200 out, minus the wait for the far side)\n",
				p50, p99v, mx, n)
		}
		stopDUT()
	}
	if o.only != "b2bua" {
		var (
			kport, pid int
			stopKam    = func() {}
		)
		fresh := func() (string, int, error) {
			stopKam()
			var err error
			if kport, stopKam, pid, err = startKamailio(o, uas.Addr()); err != nil {
				stopKam = func() {}
				return "", 0, err
			}
			return fmt.Sprintf("127.0.0.1:%d", kport), pid, nil
		}
		top, _, err := ramp(ctx, o, "kamailio", csv, fresh)
		if err != nil {
			stopKam()
			return err
		}
		kamRate = top
		if top > 0 && o.only == "" {
			half := int(b2buaRate / 2)
			if half > 0 {
				if r, err := step(ctx, o, "kamailio", fmt.Sprintf("127.0.0.1:%d", kport), csv, half, true, pid); err == nil {
					fmt.Printf("kamailio at the same rate=%d ok=%d failed=%d setup_ms p50=%.2f p99=%.2f (for reference)\n",
						half, r.ok, r.fail, pct(r.responses, 50), pct(r.responses, 99))
				}
			}
		}
		stopKam()
	}
	ratio := 0.0
	if kamRate > 0 {
		ratio = b2buaRate / kamRate
	}
	fmt.Printf("calls cps=%.0f failures=%d kamailio_cps=%.0f ratio=%.2f setup_p99_ms=%.2f\n", b2buaRate, b2buaFail, kamRate, ratio, p99)
	return nil
}

// ramp runs the steps until one fails, then the top clean step RUNS
// times; it returns the median achieved rate and the failures of those
// runs.
//
// fresh (re)starts the system under test and returns its address and pid:
// after an overloaded step or run the next ones start from a fresh
// process, the same for pbx2teams and Kamailio.
func ramp(ctx context.Context, o options, name, csv string, fresh func() (string, int, error)) (float64, int64, error) {
	target, pid, err := fresh()
	if err != nil {
		return 0, 0, err
	}
	best := 0
	for _, rate := range o.steps {
		r, err := step(ctx, o, name, target, csv, rate, false, pid)
		if err != nil {
			return 0, 0, err
		}
		clean := r.fail == 0 && r.ok == int64(rate)*int64(o.step/time.Second) && r.achieved >= 0.95*float64(rate)
		fmt.Printf("step %s rate=%d ok=%d failed=%d achieved=%.0f dut_cpu_us_per_call=%.0f %s\n", name, rate, r.ok, r.fail,
			r.achieved, perCall(r.dutCPU, r.ok), map[bool]string{true: "clean", false: "FAIL"}[clean])
		if !clean {
			if target, pid, err = fresh(); err != nil {
				return 0, 0, err
			}
			break
		}
		best = rate
	}
	if best == 0 {
		return 0, 0, nil
	}
	for {
		var rates []float64
		var fails int64
		for i := 0; i < o.runs; i++ {
			r, err := step(ctx, o, name, target, csv, best, false, pid)
			if err != nil {
				return 0, 0, err
			}
			fmt.Printf("run %s rate=%d ok=%d failed=%d achieved=%.0f\n", name, best, r.ok, r.fail, r.achieved)
			rates = append(rates, min(r.achieved, float64(best)))
			fails += r.fail
			if r.fail > 0 {
				if target, pid, err = fresh(); err != nil {
					return 0, 0, err
				}
			}
		}
		if fails == 0 {
			m := pct(rates, 50)
			fmt.Printf("%s cps median=%.0f over %d runs at %d calls/s offered\n", name, m, o.runs, best)
			return m, 0, nil
		}
		// Not repeatable: take the step below.
		lower := 0
		for _, s := range o.steps {
			if s < best {
				lower = s
			}
		}
		if lower == 0 {
			return 0, fails, nil
		}
		best = lower
	}
}

const uacScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bench uac">
  <send retrans="500">
    <![CDATA[
INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Bench [call_number]" <sip:2[call_number]@[local_ip]>;tag=[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Bench [call_number]" <sip:2[call_number]@[local_ip]>;tag=[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
BYE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Bench [call_number]" <sip:2[call_number]@[local_ip]>;tag=[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
`

// step runs SIPp uac at rate for one step.
func step(ctx context.Context, o options, name, target, csv string, rate int, traceRTT bool, pid int) (stepResult, error) {
	calls := rate * int(o.step/time.Second)
	dir, err := os.MkdirTemp(o.workDir, name+"-")
	if err != nil {
		return stepResult{}, err
	}
	defer os.RemoveAll(dir)
	extra := []string{"-d", strconv.FormatInt(o.hold.Milliseconds(), 10), "-max_socket", "60000", "-recv_timeout", "10000",
		"-timeout_error",
		// A 180 overtaken by the 200 (Kamailio workers, goroutines) is a
		// benign reordering, not a failed call.
		"-default_behaviors", "all,-abortunexp"}
	if traceRTT {
		extra = append(extra, "-trace_rtt", "-rtt_freq", "1", "-timer_resol", "1")
	}
	cpu0 := procCPU(pid)
	p, err := sipp.Start(sipp.Options{ScenarioXML: uacScenario, Remote: target, Calls: calls, Rate: float64(rate),
		Limit: rate * 10, CSVFile: csv, Timeout: o.step + o.hold + 60*time.Second, Dir: dir, CPUs: o.genCPU, Extra: extra,
		Messages: os.Getenv("BENCH_DEBUG") == "msg"})
	if err != nil {
		return stepResult{}, err
	}
	res, err := p.Wait(ctx)
	p.Stop()
	r := stepResult{rate: rate, ok: res.Successful, fail: res.Failed, dutCPU: procCPU(pid) - cpu0}
	if err != nil {
		return r, err
	}
	if el := res.Elapsed - o.hold; el > 0 {
		r.achieved = float64(res.Successful) / el.Seconds()
	}
	if traceRTT {
		r.responses = readRTT(dir)
	}
	if r.fail > 0 && os.Getenv("BENCH_DEBUG") == "msg" {
		_ = exec.Command("cp", filepath.Join(dir, "messages.log"), "/tmp/callsbench-messages.log").Run()
		_ = exec.Command("cp", filepath.Join(dir, "errors.log"), "/tmp/callsbench-errors.log").Run()
	}
	if r.fail > 0 && os.Getenv("BENCH_DEBUG") != "" {
		b, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		fmt.Fprintf(os.Stderr, "--- %s rate %d errors:\n%s\n--- output:\n%s\n", name, rate, tailText(string(b), 40), tailText(res.Output, 30))
	}
	// Let the last dialogs and transactions drain before the next step.
	time.Sleep(2 * time.Second)
	return r, nil
}

// readRTT reads SIPp's response-time file (ms).
func readRTT(dir string) []float64 {
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	var out []float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Split(line, ";")
			if len(fs) < 2 {
				continue
			}
			if v, err := strconv.ParseFloat(strings.TrimSpace(fs[1]), 64); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// dutProc is the B2BUA process.
type dutProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// delays asks the DUT for its own set-up delay figures since reset.
func (d *dutProc) delays() (n int, p50, p99, mx float64, err error) {
	if _, err = io.WriteString(d.stdin, "stats\n"); err != nil {
		return
	}
	line, err := d.out.ReadString('\n')
	if err != nil {
		return
	}
	_, err = fmt.Sscanf(line, "delays %d %f %f %f", &n, &p50, &p99, &mx)
	return
}

func (d *dutProc) reset() { _, _ = io.WriteString(d.stdin, "reset\n") }

// startDUT runs this binary in dut mode, pinned to the DUT CPU.
func startDUT(o options, uasAddr string) (int, func(), int, *dutProc, error) {
	args := []string{"-c", o.dutCPU, o.selfPath, "dut", "-teams-proxy", uasAddr, "-users", strconv.Itoa(o.users)}
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC="+envStr("DUT_GOGC", "200"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, 0, nil, err
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	var port int
	if _, perr := fmt.Sscanf(line, "ready %d", &port); err != nil || perr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, nil, 0, nil, fmt.Errorf("dut did not start: %q %v", line, err)
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	return port, stop, cmd.Process.Pid, &dutProc{cmd: cmd, stdin: stdin, out: rd}, nil
}

const kamailioCfg = `#!KAMAILIO
debug=0
log_stderror=yes
children={{children}}
auto_aliases=no
listen=udp:127.0.0.1:{{port}}
alias="127.0.0.1:{{port}}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"

request_route {
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK|BYE") && uri==myself) { $du = "sip:{{uas}}"; t_relay(); exit; }
		if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
		sl_send_reply("404", "Not here");
		exit;
	}
	if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
	if (is_method("INVITE")) {
		record_route();
		$du = "sip:{{uas}}";
		if (!t_relay()) { sl_reply_error(); }
		exit;
	}
	sl_send_reply("405", "Method Not Allowed");
}
`

// startKamailio runs Kamailio as a stateful proxy to the uas, pinned to
// the DUT CPU.
func startKamailio(o options, uasAddr string) (int, func(), int, error) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, 0, err
	}
	port := ln.LocalAddr().(*net.UDPAddr).Port
	ln.Close()
	dir := filepath.Join(o.workDir, "kamailio")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, 0, err
	}
	cfg := strings.NewReplacer("{{port}}", strconv.Itoa(port), "{{uas}}", uasAddr, "{{children}}", envStr("KAMAILIO_CHILDREN", "4")).Replace(kamailioCfg)
	path := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return 0, nil, 0, err
	}
	logf, err := os.Create(filepath.Join(dir, "kamailio.log"))
	if err != nil {
		return 0, nil, 0, err
	}
	cmd := exec.Command("taskset", "-c", o.dutCPU, "/usr/sbin/kamailio", "-f", path, "-DD", "-E", "-m", "512", "-M", "16",
		"-w", dir, "-P", filepath.Join(dir, "kamailio.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, nil, 0, err
	}
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	}
	// Ready when it answers OPTIONS.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if probeOptions(port) {
			return port, stop, cmd.Process.Pid, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	b, _ := os.ReadFile(filepath.Join(dir, "kamailio.log"))
	return 0, nil, 0, fmt.Errorf("kamailio did not start: %s", tailText(string(b), 20))
}

func probeOptions(port int) bool {
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer c.Close()
	lport := c.LocalAddr().(*net.UDPAddr).Port
	msg := fmt.Sprintf("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKprobe%d\r\n"+
		"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:%d>\r\nCall-ID: probe%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		port, lport, time.Now().UnixNano(), port, time.Now().UnixNano())
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(msg)); err != nil {
		return false
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 ")
}

// procCPU returns the user+system CPU time of a process and its threads
// (and, for Kamailio, of its process group's children via the parent's
// accounting is not possible: so all processes of the group are summed).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	var total time.Duration
	pids := []int{pid}
	// Kamailio forks workers: add every process whose process group is pid.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		if pgid, err := syscall.Getpgid(n); err == nil && pgid == pid {
			pids = append(pids, n)
		}
	}
	tick := 100.0 // USER_HZ on Linux
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += time.Duration((ut + st) / tick * float64(time.Second))
	}
	return total
}

func perCall(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		if n, err := strconv.Atoi(v); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return def
}
