// Command bench-sync measures the Microsoft 365 directory sync: a full sync
// of a generated tenant into a fresh SQLite store through dirsync, then a
// delta after 1,000 changes. The simulator runs in its own process (this
// binary with -role sim), so the sync process's peak RSS is the engine's
// and the store's alone; the driver (-role drive) starts it per run.
//
// Last line: sync users=N full_s=X delta_changes=1000 delta_s=Y peak_rss_mb=Z
// (medians over -runs; peak RSS is the largest).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pbx2teams/pbx2teams"
	"github.com/pbx2teams/pbx2teams/dirsync"
	"github.com/pbx2teams/pbx2teams/m365"
	"github.com/pbx2teams/pbx2teams/msim"
	"github.com/pbx2teams/pbx2teams/secrets"
	"github.com/pbx2teams/pbx2teams/sqlite"
)

func main() {
	role := flag.String("role", "drive", "drive, sim or sync")
	users := flag.Int("users", 100000, "generated users")
	changes := flag.Int("changes", 1000, "changes before the delta")
	runs := flag.Int("runs", 3, "runs (medians reported)")
	sizes := flag.String("sizes", "10000,100000", "tenant sizes to compare memory at (drive)")
	simURL := flag.String("sim", "", "simulator base URL (sync)")
	tenant := flag.String("tenant", "", "tenant id (sync)")
	flag.Parse()
	var err error
	switch *role {
	case "sim":
		err = runSim(*users)
	case "sync":
		err = runSync(*simURL, *tenant, *changes)
	default:
		err = drive(*sizes, *runs, *changes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-sync:", err)
		os.Exit(1)
	}
}

// runSim serves a simulator with a generated tenant on a free loopback
// port and prints "READY <url> <tenant>".
func runSim(users int) error {
	ctx := context.Background()
	return msim.Serve(ctx, msim.ServeOptions{Addr: "127.0.0.1:0", Generate: 0, Logger: slog.New(slog.DiscardHandler),
		Ready: func(base string, s *msim.Sim) {
			tid, err := s.Generate("Bench Tenant", "bench.example", msim.GenerateSpec{Users: users, Seed: 7})
			if err == nil {
				err = s.GrantConsent(tid, msim.SandboxSyncClientID)
			}
			if err != nil {
				fmt.Println("ERROR", err)
				os.Exit(1)
			}
			fmt.Println("READY", base, tid)
		}})
}

type result struct {
	Users    int     `json:"users"`
	FullS    float64 `json:"full_s"`
	DeltaS   float64 `json:"delta_s"`
	Changed  int     `json:"changed"`
	PeakRSS  float64 `json:"peak_rss_mb"`
	Seen     int     `json:"seen"`
	DeltaMsg string  `json:"delta_counts"`
}

// runSync does one full sync and one delta in this process.
func runSync(simURL, tenant string, changes int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-sync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(filepath.Join(dir, "p2t.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	quiet := slog.New(slog.DiscardHandler)
	svc := pbx2teams.NewService(st, box, quiet)
	if _, _, err := svc.Bootstrap(ctx, "Operator", "op@bench.example"); err != nil {
		return err
	}
	adm, err := st.AdminByEmail(ctx, "op@bench.example")
	if err != nil {
		return err
	}
	acc, err := svc.CreateAccount(ctx, pbx2teams.System, adm.AccountID, pbx2teams.KindCustomer, "Bench")
	if err != nil {
		return err
	}
	if _, err := svc.ConnectTenant(ctx, pbx2teams.System, acc.ID, tenant, "Bench Tenant"); err != nil {
		return err
	}
	eng := dirsync.New(dirsync.Config{Service: svc, Log: quiet, PublicURL: "http://127.0.0.1",
		Sync: m365.New(m365.Config{ClientID: msim.SandboxSyncClientID, ClientSecret: msim.SandboxSyncClientSecret,
			LoginURL: simURL, GraphURL: simURL, Logger: quiet})})
	if p := os.Getenv("BENCH_SYNC_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	t0 := time.Now()
	j, err := eng.SyncNow(ctx, pbx2teams.System, acc.ID, dirsync.StartOptions{Full: true})
	if err != nil {
		return err
	}
	full := time.Since(t0)
	if j.Status != pbx2teams.SyncSucceeded {
		return fmt.Errorf("full sync %s: %s", j.Status, j.Error)
	}
	seen := j.Counts.Seen
	// Changes in the simulator through its admin API.
	body, _ := json.Marshal(map[string]any{"count": changes, "seed": 11})
	resp, err := http.Post(simURL+"/_sim/tenants/"+tenant+"/changes", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	var sum msim.ChangeSummary
	err = json.NewDecoder(resp.Body).Decode(&sum)
	resp.Body.Close()
	if err != nil {
		return err
	}
	t0 = time.Now()
	j, err = eng.SyncNow(ctx, pbx2teams.System, acc.ID, dirsync.StartOptions{})
	if err != nil {
		return err
	}
	delta := time.Since(t0)
	if j.Status != pbx2teams.SyncSucceeded || j.Mode != pbx2teams.SyncModeDelta {
		return fmt.Errorf("delta sync %s (%s): %s", j.Status, j.Mode, j.Error)
	}
	c := j.Counts
	out, _ := json.Marshal(result{FullS: full.Seconds(), DeltaS: delta.Seconds(), Changed: sum.DistinctChanged, PeakRSS: peakRSS(),
		Seen: seen, DeltaMsg: fmt.Sprintf("seen=%d added=%d updated=%d removed=%d suspended=%d", c.Seen, c.Added, c.Updated, c.Removed, c.Suspended)})
	fmt.Println("RESULT", string(out))
	return nil
}

// peakRSS is this process's high-water resident set (VmHWM), in MB.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// one starts a simulator process of n users and a sync process against it.
func one(n, changes int) (*result, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sim := exec.Command(self, "-role", "sim", "-users", strconv.Itoa(n))
	sim.Stderr = os.Stderr
	out, err := sim.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := sim.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = sim.Process.Kill(); _ = sim.Wait() }()
	sc := bufio.NewScanner(out)
	var base, tid string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "READY" {
			base, tid = f[1], f[2]
			break
		}
		if len(f) > 0 && f[0] == "ERROR" {
			return nil, fmt.Errorf("simulator: %s", sc.Text())
		}
	}
	if base == "" {
		return nil, fmt.Errorf("simulator did not start")
	}
	syncCmd := exec.Command(self, "-role", "sync", "-sim", base, "-tenant", tid, "-changes", strconv.Itoa(changes))
	syncCmd.Stderr = os.Stderr
	res, err := syncCmd.Output()
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(res), "\n") {
		if rest, ok := strings.CutPrefix(l, "RESULT "); ok {
			var r result
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return nil, err
			}
			r.Users = n
			return &r, nil
		}
	}
	return nil, fmt.Errorf("sync process gave no result: %s", res)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func drive(sizes string, runs, changes int) error {
	var last []*result
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		var rs []*result
		for i := 0; i < runs; i++ {
			r, err := one(n, changes)
			if err != nil {
				return err
			}
			fmt.Printf("users=%d run=%d full_s=%.2f delta_s=%.3f delta_distinct_users=%d peak_rss_mb=%.1f full_seen=%d delta: %s\n",
				n, i+1, r.FullS, r.DeltaS, r.Changed, r.PeakRSS, r.Seen, r.DeltaMsg)
			rs = append(rs, r)
		}
		last = rs
	}
	var full, delta, rss []float64
	for _, r := range last {
		full, delta, rss = append(full, r.FullS), append(delta, r.DeltaS), append(rss, r.PeakRSS)
	}
	sort.Float64s(rss)
	fmt.Printf("memory: peak RSS per tenant size is printed above per run; compare the smallest and largest size\n")
	fmt.Printf("sync users=%d full_s=%.2f delta_changes=%d delta_s=%.3f peak_rss_mb=%.0f\n",
		last[0].Users, median(full), changes, median(delta), rss[len(rss)-1])
	return nil
}
