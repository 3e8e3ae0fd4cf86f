package ng

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// RtpengineOptions configures a loopback rtpengine for tests and
// benchmarks.
type RtpengineOptions struct {
	Binary           string // default: "rtpengine" from PATH
	Dir              string // where its log goes; required
	PortMin, PortMax int    // media port range
	Threads          int    // --num-threads; 0 keeps rtpengine's default
	CPU              string // when set, run under "taskset -c CPU"
	RTPriority       int    // when > 0, run under "chrt -f RTPriority" (SCHED_FIFO, every thread)
	LogLevel         int    // default 4 (warnings)
}

// Rtpengine is a running rtpengine daemon in userspace mode
// (--table=-1), listening for ng commands on loopback.
type Rtpengine struct {
	NG  string // ng address, e.g. "127.0.0.1:40123"
	Log string // path of its log
	cmd *exec.Cmd
	end chan error
}

// FindRtpengine returns the path of the rtpengine binary, or an error
// when it is not installed.
func FindRtpengine() (string, error) { return exec.LookPath("rtpengine") }

// StartRtpengine starts rtpengine on 127.0.0.1 with a free ng port and
// waits until it answers a ping. It never reads the system's
// /etc/rtpengine configuration and needs no kernel module.
func StartRtpengine(ctx context.Context, o RtpengineOptions) (*Rtpengine, error) {
	if o.Binary == "" {
		b, err := FindRtpengine()
		if err != nil {
			return nil, err
		}
		o.Binary = b
	}
	if o.LogLevel == 0 {
		o.LogLevel = 4
	}
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	ngAddr := "127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--config-file=none", "--foreground", "--table=-1", "--interface=127.0.0.1",
		"--listen-ng=" + ngAddr, "--port-min=" + strconv.Itoa(o.PortMin), "--port-max=" + strconv.Itoa(o.PortMax),
		"--log-stderr", "--log-level=" + strconv.Itoa(o.LogLevel), "--timeout=600", "--silent-timeout=600",
		"--delete-delay=0",
	}
	if o.Threads > 0 {
		args = append(args, "--num-threads="+strconv.Itoa(o.Threads))
	}
	name := o.Binary
	if o.CPU != "" {
		args = append([]string{"-c", o.CPU, name}, args...)
		name = "taskset"
	}
	if o.RTPriority > 0 {
		args = append([]string{"-f", strconv.Itoa(o.RTPriority), name}, args...)
		name = "chrt"
	}
	logPath := filepath.Join(o.Dir, "rtpengine.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	r := &Rtpengine{NG: ngAddr, Log: logPath, cmd: cmd, end: make(chan error, 1)}
	go func() {
		r.end <- cmd.Wait()
		logFile.Close()
	}()

	cl, err := Dial(ngAddr)
	if err != nil {
		r.Stop()
		return nil, err
	}
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		res, err := cl.Command(pctx, Dict{"command": "ping"})
		cancel()
		if err == nil && String(res, "result") == "pong" {
			return r, nil
		}
		select {
		case err := <-r.end:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("rtpengine exited (%v): %s", err, tail(log))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.Stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("rtpengine did not answer ng ping: %s", tail(log))
		}
	}
}

// PID is the daemon's process id.
func (r *Rtpengine) PID() int { return r.cmd.Process.Pid }

// Stop terminates the daemon and waits for it.
func (r *Rtpengine) Stop() error {
	if r.cmd.Process == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.end:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.end
	}
	r.cmd.Process = nil
	return nil
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(no log)"
	}
	return string(b)
}
