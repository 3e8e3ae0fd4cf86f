// Command mediabench measures the pbx2teams media relay against rtpengine
// (userspace) on the same machine, in the same run.
//
// N concurrent G.711 calls are relayed for a fixed time, 50 packets/s per
// direction, plain RTP on the PBX side and SRTP (SDES AES_CM_128_HMAC_SHA1_80)
// on the Teams side. The generator (this process, "run" mode) creates the
// calls over rtpengine's ng protocol, which the pbx2teams relay also
// serves in its benchmark process ("relay" mode), sends every packet with
// a timestamp and a known payload, and receives and checks every packet
// (SRTP authentication and decryption, payload pattern, counts).
//
// Each relay runs in its own process, pinned to its own core; its CPU
// time (user+system, all threads) comes from /proc over the measured
// window. pps_per_core is packets relayed in that window per second of
// relay CPU time. Latency is what the relay adds: from the kernel's
// transmit timestamp of the generator's datagram (SO_TIMESTAMPING,
// taken as it leaves for the relay) to the kernel's receive timestamp of
// the relayed datagram on the generator's socket (SO_TIMESTAMPNS, taken
// as the relay's send arrives), so the generator's own scheduling and
// reading delays do not count; p99 is over every packet sent in the
// window. loss_pct is the worst run's share of packets sent and never
// received intact.
//
// By default (run.sh, BENCH_RT) the generator and the relays run
// SCHED_FIFO, so that other programs on a shared machine do
// not decide the tail latency; BENCH_RT=0 measures under normal
// scheduling.
//
// Last line:
//
//	media calls=N loss_pct=L pps_per_core=X rtpengine_pps_per_core=Y ratio=R latency_p99_ms=Z
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pbx2teams/pbx2teams/media/ng"
)

type options struct {
	calls        int
	duration     time.Duration
	warmup       time.Duration
	runs         int
	tick         time.Duration
	cpu          string
	rteThreads   int
	only         string
	workers      int
	engine       string
	relayProfile string
	rt           int
}

type result struct {
	relay      string
	sent, recv uint64
	lossPct    float64
	cpuSec     float64
	util       float64
	pps        float64
	p50, p99   float64
	max        float64
	genUtil    float64
	setup      time.Duration
	extra      string
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// envIntZero is envInt where 0 is a valid setting.
func envIntZero(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
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

func main() {
	if len(os.Args) > 1 && os.Args[1] == "relay" {
		if err := relayMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.IntVar(&o.calls, "calls", envInt("CALLS", 1000), "concurrent calls (env CALLS)")
	flag.DurationVar(&o.duration, "duration", envDur("DURATION", 20*time.Second), "measured time per run (env DURATION)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each measurement")
	flag.IntVar(&o.runs, "runs", envInt("RUNS", 3), "runs per relay (env RUNS); medians are printed")
	flag.DurationVar(&o.tick, "tick", 200*time.Microsecond, "sender pacing step; streams are spread evenly over 20 ms in these steps")
	flag.StringVar(&o.cpu, "relay-cpu", os.Getenv("RELAY_CPU"), "CPU list the relay under test is pinned to (env RELAY_CPU; default: the last CPU)")
	// One worker thread on its one CPU: more only contend for it, and
	// under SCHED_FIFO (which does not time-slice) they starve each
	// other and rtpengine drops packets.
	flag.IntVar(&o.rteThreads, "rtpengine-threads", envInt("RTPENGINE_THREADS", 1), "rtpengine --num-threads (0: its default, the number of CPUs)")
	flag.StringVar(&o.only, "only", "", "run only this relay: pbx2teams or rtpengine")
	flag.IntVar(&o.workers, "workers", 0, "pbx2teams relay workers (0: GOMAXPROCS of the pinned process)")
	flag.StringVar(&o.engine, "engine", os.Getenv("ENGINE"), "pbx2teams relay engine: io_uring or epoll (env ENGINE; default: io_uring where available)")
	flag.IntVar(&o.rt, "rt", envIntZero("BENCH_RT", 10), "run each relay under test with SCHED_FIFO at this priority (env BENCH_RT; 0: normal scheduling)")
	flag.StringVar(&o.relayProfile, "relay-cpuprofile", "", "write the pbx2teams relay's CPU profile to this file")
	cpuprofile := flag.String("cpuprofile", "", "write the generator's CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if o.cpu == "" && onlineCPUs() > 1 {
		o.cpu = strconv.Itoa(onlineCPUs() - 1)
	}
	if err := run(o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "mediabench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	fmt.Printf("# mediabench: %d calls x 2 streams x 50 pps (G.711 20 ms), RTP (PBX side) <-> SRTP AES_CM_128_HMAC_SHA1_80 (Teams side)\n", o.calls)
	sched := "normal scheduling"
	if o.rt > 0 {
		sched = fmt.Sprintf("SCHED_FIFO priority %d", o.rt)
	}
	fmt.Printf("# %d runs per relay, %s warm-up + %s measured each; relay pinned to CPU %q under %s, generator GOMAXPROCS=%d, nice %s; %s\n",
		o.runs, o.warmup, o.duration, o.cpu, sched, runtime.GOMAXPROCS(0), orDefault(os.Getenv("BENCH_NICE"), "0"), machine())
	fmt.Printf("# load before the run: %s", loadavg())
	relays := []string{"pbx2teams", "rtpengine"}
	if o.only != "" {
		relays = []string{o.only}
	}
	haveEngine := true
	if _, err := ng.FindRtpengine(); err != nil {
		if os.Getenv("CI") != "" && o.only != "pbx2teams" {
			return fmt.Errorf("rtpengine is required under CI: %w", err)
		}
		fmt.Println("# rtpengine not installed: measuring pbx2teams only")
		haveEngine = false
	}
	results := map[string][]result{}
	for i := 1; i <= o.runs; i++ {
		for _, name := range relays {
			if name == "rtpengine" && !haveEngine {
				continue
			}
			res, err := runOnce(name, o)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", name, i, err)
			}
			results[name] = append(results[name], res)
			fmt.Printf("run %d/%d %-9s calls=%d %s loss_pct=%.4f setup=%s relay_cpu=%.2fs (%.2f cores) pps_per_core=%.0f latency_ms p50=%.2f p99=%.2f max=%.2f generator=%.2f cores%s\n",
				i, o.runs, name, o.calls, describeCounts(res), res.lossPct, res.setup.Round(time.Millisecond), res.cpuSec, res.util,
				res.pps, res.p50, res.p99, res.max, res.genUtil, res.extra)
		}
	}
	ours := results["pbx2teams"]
	theirs := results["rtpengine"]
	loss := 0.0
	for _, r := range ours {
		loss = max(loss, r.lossPct)
	}
	pps := median(ours, func(r result) float64 { return r.pps })
	p99 := median(ours, func(r result) float64 { return r.p99 })
	rte := median(theirs, func(r result) float64 { return r.pps })
	ratio := 0.0
	if rte > 0 {
		ratio = pps / rte
		fmt.Printf("# rtpengine: median p99 %.2f ms, max loss %.4f%%\n", median(theirs, func(r result) float64 { return r.p99 }),
			maxOf(theirs, func(r result) float64 { return r.lossPct }))
	}
	fmt.Printf("# medians over %d runs; loss_pct is the worst run of pbx2teams\n", o.runs)
	fmt.Printf("media calls=%d loss_pct=%s pps_per_core=%.0f rtpengine_pps_per_core=%.0f ratio=%.2f latency_p99_ms=%.2f\n",
		o.calls, strconv.FormatFloat(loss, 'f', -1, 64), pps, rte, ratio, p99)
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown\n"
	}
	return string(b)
}

func describeCounts(r result) string { return fmt.Sprintf("sent=%d received=%d", r.sent, r.recv) }

func median(rs []result, f func(result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func maxOf(rs []result, f func(result) float64) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

// relayProc is a relay under test in its own process.
type relayProc struct {
	pid  int
	ng   string
	stop func()
}

func startOurs(o options) (*relayProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{"relay", "-ng", addr, "-port-min", "20000", "-port-max", strconv.Itoa(20000 + 4*o.calls + 199),
		"-workers", strconv.Itoa(o.workers), "-engine", o.engine}
	if o.relayProfile != "" {
		args = append(args, "-cpuprofile", o.relayProfile)
	}
	name := exe
	if o.cpu != "" {
		args = append([]string{"-c", o.cpu, name}, args...)
		name = "taskset"
	}
	if o.rt > 0 {
		args = append([]string{"-f", strconv.Itoa(o.rt), name}, args...)
		name = "chrt"
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		for sc.Scan() {
		}
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	select {
	case ok := <-ready:
		if !ok {
			stop()
			return nil, errors.New("relay process did not start")
		}
	case <-time.After(10 * time.Second):
		stop()
		return nil, errors.New("relay process did not become ready")
	}
	return &relayProc{pid: cmd.Process.Pid, ng: addr, stop: stop}, nil
}

func startEngine(o options) (*relayProc, error) {
	dir, err := os.MkdirTemp("", "mediabench-rtpengine-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := ng.StartRtpengine(ctx, ng.RtpengineOptions{Dir: dir, PortMin: 30000, PortMax: 30000 + 4*o.calls + 199,
		CPU: o.cpu, Threads: o.rteThreads, RTPriority: o.rt})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &relayProc{pid: e.PID(), ng: e.NG, stop: func() { e.Stop(); os.RemoveAll(dir) }}, nil
}

func runOnce(name string, o options) (result, error) {
	res := result{relay: name}
	var p *relayProc
	var err error
	fl := relayFlavour{name: name}
	if name == "pbx2teams" {
		p, err = startOurs(o)
	} else {
		p, err = startEngine(o)
		fl.offerExt = ng.Dict{"transport-protocol": "RTP/SAVP", "replace": []string{"origin", "session-connection"},
			"SDES": []string{"only-AES_CM_128_HMAC_SHA1_80"}}
	}
	if err != nil {
		return res, err
	}
	defer p.stop()
	l, err := newLoad(o.calls, o.tick)
	if err != nil {
		return res, err
	}
	defer l.close()
	cl, err := ng.Dial(p.ng)
	if err != nil {
		return res, err
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := l.setup(ctx, cl, fl, name); err != nil {
		return res, fmt.Errorf("call setup: %w", err)
	}
	res.setup = time.Since(t0)

	sendErr := make(chan error, 1)
	go func() { sendErr <- l.run() }()

	time.Sleep(o.warmup)
	cpu0, err := procCPU(p.pid)
	if err != nil {
		return res, err
	}
	gen0, _ := procCPU(os.Getpid())
	l.winStart.Store(l.now())
	w0 := time.Now()
	select {
	case err := <-sendErr:
		return res, fmt.Errorf("sender: %v", err)
	case <-time.After(o.duration):
	}
	l.winEnd.Store(l.now())
	cpu1, _ := procCPU(p.pid)
	gen1, _ := procCPU(os.Getpid())
	elapsed := time.Since(w0).Seconds()
	l.stop.Store(true)
	if err := <-sendErr; err != nil {
		return res, fmt.Errorf("sender: %v", err)
	}
	time.Sleep(time.Second) // let the last packets arrive
	l.drainAll()
	if name == "pbx2teams" {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if st, err := cl.Command(sctx, ng.Dict{"command": "statistics"}); err == nil {
			res.extra = fmt.Sprintf(" engine=%v relay_counters(in=%v out=%v lost=%v dropped=%v)", st["engine"], st["packets-in"], st["packets-out"], st["lost"], st["dropped"])
		}
		scancel()
	}
	l.close()

	sent, recv, corrupt, authFail, stray, inWindow, noStamp, noTx := l.totals()
	res.sent, res.recv = sent, recv
	if corrupt+authFail+stray > 0 {
		res.extra += fmt.Sprintf(" corrupt=%d auth_fail=%d stray=%d", corrupt, authFail, stray)
	}
	if noStamp > 0 {
		res.extra += fmt.Sprintf(" without_kernel_timestamp=%d", noStamp)
	}
	if noTx > 0 {
		res.extra += fmt.Sprintf(" without_transmit_timestamp=%d", noTx)
	}
	for d, st := range l.rx {
		if st.negative+st.over > 0 {
			res.extra += fmt.Sprintf(" dir%d_latency_below_0=%d_above_2s=%d", d, st.negative, st.over)
		}
	}
	if sent > 0 {
		lost := int64(sent) - int64(recv)
		res.lossPct = 100 * float64(lost+int64(corrupt+authFail)) / float64(sent)
		if res.lossPct < 0 {
			res.lossPct = 0
		}
	}
	res.cpuSec = cpu1 - cpu0
	res.util = res.cpuSec / elapsed
	res.genUtil = (gen1 - gen0) / elapsed
	if res.cpuSec > 0 {
		res.pps = float64(inWindow) / res.cpuSec
	}
	res.p50, res.p99, res.max = l.percentile(0.50), l.percentile(0.99), l.percentile(1)
	if os.Getenv("MEDIABENCH_DEBUG") != "" {
		for _, q := range []float64{0.9, 0.95, 0.97, 0.98, 0.985, 0.99} {
			fmt.Printf("#   q%.3f=%.2fms", q, l.percentile(q))
		}
		fmt.Println()
	}
	return res, nil
}

// procCPU is the user+system CPU time of a process (all its threads) in
// seconds, from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func freePort() (int, error) {
	c, err := netListenUDP()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return port(c), nil
}

// onlineCPUs counts the machine's CPUs, not just those this process may
// run on (runtime.NumCPU).
func onlineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	return strings.Count(string(b), "\nprocessor") + map[bool]int{true: 1}[strings.HasPrefix(string(b), "processor")]
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, model, _ = strings.Cut(line, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	rel := make([]byte, 0, 65)
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", onlineCPUs(), model, rel, runtime.Version())
}
