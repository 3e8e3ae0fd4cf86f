// Command registrations benchmarks the registration engine against
// Kamailio, and SIPp's REGISTER-with-auth scenario against the same
// Kamailio, in one run.
//
//	registrations run -users 10000 -runs 3     # the benchmark (run.sh)
//	registrations engine -kamailio ADDR ...     # one engine burst (child)
//
// For each run Kamailio is restarted (empty location table), the engine
// registers all users in a burst in its own process and the bindings are
// checked in Kamailio; Kamailio is restarted again and SIPp registers the
// same users. The figures are medians over the runs; the last line is
//
//	registrations users=N ok=N burst_per_s=X sipp_per_s=Y ratio=R bytes_per_reg=B
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	pbx2teams "github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/kamailio"
	"github.com/pbx2teams/pbx2teams/internal/testpeer/sipp"
	"github.com/pbx2teams/pbx2teams/sip/registration"
	"github.com/pbx2teams/pbx2teams/sip/sipx"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: registrations run|engine [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runBench(os.Args[2:])
	case "engine":
		err = runEngine(os.Args[2:])
	case "kamailio":
		err = runKamailio(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "registrations:", err)
		os.Exit(1)
	}
}

func user(i int) (name, pass string) {
	return "u" + strconv.Itoa(100000+i), "pw" + strconv.Itoa(i*7919%100003) + "x"
}

// engineResult is what the engine child reports.
type engineResult struct {
	Users       int     `json:"users"`
	Registered  int     `json:"registered"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	BytesPerReg float64 `json:"bytes_per_reg"`
	Sent        uint64  `json:"registers_sent"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	Failures    any     `json:"failures,omitempty"`
}

// runEngine registers -users users with Kamailio as fast as the limits
// allow and reports the burst rate and the heap cost per registration.
func runEngine(args []string) error {
	fs := flag.NewFlagSet("engine", flag.ExitOnError)
	kam := fs.String("kamailio", "", "Kamailio host:port")
	domain := fs.String("domain", "127.0.0.1", "SIP domain of the subscribers")
	users := fs.Int("users", 10000, "users to register")
	inflight := fs.Int("inflight", 500, "concurrent registrations")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	shared := fs.Bool("shared-nonce", true, "answer the nonce another user got (engine default)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the burst")
	fs.Parse(args)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := sipx.NewStack(sipx.StackConfig{Listen: []sipx.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}}, Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	st.Start()
	e, err := registration.New(registration.Config{Stack: st, Logger: log,
		RateLimit: 1e9, RateBurst: 1e9, MaxInFlight: *inflight, MaxInFlightPerPBX: *inflight,
		StartJitter: -1, KeepAlive: -1, NoSharedNonce: !*shared})
	if err != nil {
		return err
	}

	accs := make([]registration.Account, *users)
	for i := range accs {
		name, pass := user(i)
		accs[i] = registration.Account{UserID: fmt.Sprintf("user-%08d", i), AccountID: "bench", Domain: *domain,
			OutboundProxy: *kam, Transport: "udp", Username: name, Password: pass,
			ContactUser: fmt.Sprintf("c%08x%06d", uint32(i)*2654435761, i)}
	}
	heapBefore := heapInuse()
	for _, a := range accs {
		if err := e.Set(a); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime()
	start := time.Now()
	go e.Run(ctx)
	var s registration.Stats
	for {
		s = e.Stats()
		if s.ByState[pbx2teams.RegRegistered] >= *users || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	cpu := cpuTime() - cpu0
	// Steady state: let the last transactions end, then measure what the
	// registrations keep on the heap.
	time.Sleep(500 * time.Millisecond)
	heapAfter := heapInuse()
	res := engineResult{Users: *users, Registered: s.ByState[pbx2teams.RegRegistered], Seconds: elapsed,
		PerSecond:   float64(s.ByState[pbx2teams.RegRegistered]) / elapsed,
		BytesPerReg: float64(int64(heapAfter)-int64(heapBefore)) / float64(*users), Sent: s.RegistersSent,
		CPUSeconds: cpu}
	if len(s.Failures) > 0 {
		res.Failures = s.Failures
	}
	runtime.KeepAlive(accs)
	cancel()
	e.Close()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// cpuTime is the process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// runKamailio starts Kamailio with -users subscribers and waits for
// SIGINT: for looking at the engine by hand.
func runKamailio(args []string) error {
	fs := flag.NewFlagSet("kamailio", flag.ExitOnError)
	users := fs.Int("users", 10000, "subscribers")
	children := fs.Int("children", 2, "UDP workers")
	cpus := fs.String("cpus", "", "taskset CPU list")
	fs.Parse(args)
	k, err := kamailio.Start(context.Background(), kamailio.Options{Transports: []string{"udp"}, Children: *children,
		ShmMB: 128 + *users/200, PkgMB: 32 + *users/800, CPUs: *cpus})
	if err != nil {
		return err
	}
	defer k.Stop()
	subs := make([]kamailio.Subscriber, *users)
	for i := range subs {
		name, pass := user(i)
		subs[i] = kamailio.Subscriber{Username: name, Password: pass}
	}
	if err := k.AddSubscribers(subs...); err != nil {
		return err
	}
	fmt.Println(k.Addr(), k.Dir())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// runBench is the whole benchmark.
func runBench(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	users := fs.Int("users", 10000, "users")
	runs := fs.Int("runs", 3, "runs (medians are reported)")
	inflight := fs.Int("inflight", 200, "concurrent registrations, ours and SIPp's (-l)")
	children := fs.Int("children", 2, "Kamailio UDP workers")
	kamCPUs := fs.String("kamailio-cpus", "", "taskset CPU list for Kamailio (empty: no pinning)")
	clientCPUs := fs.String("client-cpus", "", "taskset CPU list for the engine and SIPp")
	scenario := fs.String("scenario", "", "SIPp REGISTER-with-auth scenario (default: next to this program's source)")
	shared := fs.Bool("shared-nonce", true, "let the engine answer the nonce another user got")
	compare := fs.Bool("compare", true, "also run the engine with the other shared-nonce setting")
	fs.Parse(args)
	if *scenario == "" {
		*scenario = "bench/registrations/sipp_register.xml"
	}
	if !kamailio.Available() || !sipp.Available() {
		return fmt.Errorf("needs kamailio, kamcmd and sipp installed")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "regbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Printf("# %d users, %d runs, %d in flight, Kamailio %d UDP workers, %d CPUs; kamailio cpus %q, client cpus %q, shared nonce %v\n",
		*users, *runs, *inflight, *children, runtime.NumCPU(), *kamCPUs, *clientCPUs, *shared)
	ctx := context.Background()
	k, err := kamailio.Start(ctx, kamailio.Options{Transports: []string{"udp"}, Children: *children,
		ShmMB: 128 + *users/200, PkgMB: 32 + *users/800, Dir: filepath.Join(dir, "k"), CPUs: *kamCPUs})
	if err != nil {
		return err
	}
	defer k.Stop()
	subs := make([]kamailio.Subscriber, *users)
	csv := make([]string, 0, *users+1)
	csv = append(csv, "SEQUENTIAL")
	for i := range subs {
		name, pass := user(i)
		subs[i] = kamailio.Subscriber{Username: name, Password: pass}
		csv = append(csv, name+";[authentication username="+name+" password="+pass+"]")
	}
	if err := k.AddSubscribers(subs...); err != nil {
		return err
	}
	csvPath := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(csvPath, []byte(strings.Join(csv, "\n")+"\n"), 0o644); err != nil {
		return err
	}

	var ours, other, theirs, bytes []float64
	variants := []bool{*shared}
	if *compare {
		variants = append(variants, !*shared)
	}
	okMin := *users
	for run := 1; run <= *runs; run++ {
		// Our engine, in its own process; with the default settings, and
		// (for comparison) without sharing nonces between users.
		for _, sh := range variants {
			er, ok, err := engineRun(ctx, k, self, *users, *inflight, sh, *clientCPUs, run == 1 && sh == *shared)
			if err != nil {
				return err
			}
			tag := "engine"
			if sh != *shared {
				tag = "engine (shared nonce " + strconv.FormatBool(sh) + ")"
			}
			fmt.Printf("run %d %s: %d/%d registered in %.3f s = %.0f/s, %d REGISTERs sent, %.0f µs CPU/registration, %.0f bytes/registration, %d bindings in Kamailio%s\n",
				run, tag, er.Registered, er.Users, er.Seconds, er.PerSecond, er.Sent, er.CPUSeconds/float64(er.Users)*1e6, er.BytesPerReg, ok,
				map[bool]string{true: " (each looked up)", false: ""}[run == 1 && sh == *shared])
			if er.Failures != nil {
				fmt.Printf("run %d %s failures: %v\n", run, tag, er.Failures)
			}
			if sh == *shared {
				okMin = min(okMin, ok)
				ours = append(ours, er.PerSecond)
				bytes = append(bytes, er.BytesPerReg)
			} else {
				other = append(other, er.PerSecond)
			}
		}

		// SIPp against a fresh Kamailio, same users, same concurrency.
		if err := restart(ctx, k); err != nil {
			return err
		}
		p, err := sipp.Start(sipp.Options{Scenario: *scenario, Remote: k.Addr(), Calls: *users,
			Rate: 1e6, Limit: *inflight, CSVFile: csvPath, Timeout: 10 * time.Minute,
			Dir: filepath.Join(dir, fmt.Sprintf("sipp%d", run)), CPUs: *clientCPUs,
			Keys: map[string]string{"domain": k.Domain()}})
		if err != nil {
			return err
		}
		res, err := p.Wait(ctx)
		if err != nil || res.Successful == 0 {
			return fmt.Errorf("sipp run: %d of %d successful, exit %d, %v\n%s", res.Successful, *users, res.ExitCode, err, tailLines(res.Output, 25))
		}
		sippOK, _ := countBindings(ctx, k, *users, false, "sip:u")
		failed := ""
		if res.Failed > 0 {
			failed = fmt.Sprintf(" (%d calls failed: SIPp gives up after its retransmissions)", res.Failed)
		}
		fmt.Printf("run %d sipp:   %d/%d registered in %.3f s = %.0f/s, %.0f µs CPU/registration, %d bindings in Kamailio%s\n",
			run, res.Successful, *users, res.Elapsed.Seconds(), res.Rate, res.CPU.Seconds()/float64(*users)*1e6, sippOK, failed)
		theirs = append(theirs, res.Rate)
	}
	mo, mt, mb := median(ours), median(theirs), median(bytes)
	if len(other) > 0 {
		fmt.Printf("# engine with shared nonce %v: burst_per_s=%.0f ratio=%.2f (median)\n", !*shared, median(other), median(other)/mt)
	}
	fmt.Printf("registrations users=%d ok=%d burst_per_s=%.0f sipp_per_s=%.0f ratio=%.2f bytes_per_reg=%.0f\n",
		*users, okMin, mo, mt, mo/mt, mb)
	return nil
}

// engineRun restarts Kamailio and runs one engine burst in a child process,
// then counts the bindings (each looked up when full).
func engineRun(ctx context.Context, k *kamailio.Server, self string, users, inflight int, shared bool, cpus string, full bool) (engineResult, int, error) {
	var er engineResult
	if err := restart(ctx, k); err != nil {
		return er, 0, err
	}
	args := []string{"engine", "-kamailio", k.Addr(), "-users", strconv.Itoa(users), "-inflight", strconv.Itoa(inflight),
		"-shared-nonce=" + strconv.FormatBool(shared)}
	name := self
	if cpus != "" {
		args = append([]string{"-c", cpus, self}, args...)
		name = "taskset"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return er, 0, fmt.Errorf("engine run: %w", err)
	}
	if err := json.Unmarshal(out, &er); err != nil {
		return er, 0, fmt.Errorf("engine output %q: %w", out, err)
	}
	ok, err := countBindings(ctx, k, users, full, "sip:c")
	return er, ok, err
}

func restart(ctx context.Context, k *kamailio.Server) error {
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return k.Restart(rctx)
}

// countBindings returns how many users Kamailio holds a binding for:
// from its usrloc statistics (Kamailio starts empty for every run), and
// with full, when every user's binding is looked up and must be a Contact
// starting with prefix (ours are sip:c..., SIPp's sip:u...).
func countBindings(ctx context.Context, k *kamailio.Server, users int, full bool, prefix string) (int, error) {
	bctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	n, err := k.Stat(bctx, "usrloc:registered_users")
	if err != nil || !full {
		return int(n), err
	}
	aors := make([]string, users)
	for i := range aors {
		aors[i], _ = user(i)
	}
	m, err := k.LookupAll(bctx, aors)
	if err != nil {
		return 0, err
	}
	ok := 0
	for _, a := range aors {
		if bs := m[a]; len(bs) == 1 && strings.HasPrefix(bs[0].Contact, prefix) {
			ok++
		}
	}
	if ok != int(n) {
		fmt.Printf("# Kamailio counts %d users but %d hold exactly our binding\n", n, ok)
	}
	return min(ok, int(n)), nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
