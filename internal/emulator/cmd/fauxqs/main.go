// Command fauxqs runs the fauxqs SQS emulator for development on a fixed loopback port (4566 by
// default), and prints the environment that points the AWS SDKs, sqsc and the examples at it.
// It installs the emulator with npm ci when needed and picks the Node it runs on (>= 22.5: the
// system's, else the one npm installed) the way the test harness does (internal/emulator).
// scripts/emulator runs it:
//
//	scripts/emulator                        # foreground; Ctrl-C stops it
//	eval "$(scripts/emulator -background)"  # detached; sets the environment in this shell
//	scripts/emulator -stop                  # stops the detached one
//
// The port comes from -port or SQS_EMULATOR_PORT (0: a free port); the detached emulator's PID
// file from -pidfile or SQS_EMULATOR_PIDFILE. Starting while an emulator already answers on
// the port prints its environment and succeeds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", envInt("SQS_EMULATOR_PORT", 4566), "loopback port (0: a free one); env SQS_EMULATOR_PORT")
	background := fs.Bool("background", false, "start detached, print the environment once it answers, and return")
	stop := fs.Bool("stop", false, "stop the emulator -background started")
	pidfile := fs.String("pidfile", envString("SQS_EMULATOR_PIDFILE", filepath.Join(os.TempDir(), "sqsconsumer-fauxqs.pid")),
		"where -background records the PID and port; env SQS_EMULATOR_PIDFILE")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: scripts/emulator [-port N] [-background | -stop] [-pidfile F]\n\nRuns the fauxqs SQS emulator and prints the environment pointing AWS SDKs at it.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *port < 0 || *port > 65535 || (*stop && *background) {
		fs.Usage()
		return errors.New("bad arguments")
	}
	if *stop {
		return stopDetached(*pidfile, stderr)
	}
	if pid, p, ok := readPidfile(*pidfile); ok && alive(pid) && isLauncher(pid) && healthy(p) {
		fmt.Fprintf(stderr, "emulator already running (PID %d, %s)\n", pid, *pidfile)
		printEnv(stdout, p)
		return nil
	}
	if *port != 0 && healthy(*port) {
		fmt.Fprintf(stderr, "an emulator already answers on port %d\n", *port)
		printEnv(stdout, *port)
		return nil
	}
	if *port == 0 {
		p, err := emulator.FreePort()
		if err != nil {
			return err
		}
		*port = p
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintln(stderr, "emulator: installing fauxqs if needed (npm ci in internal/emulator)")
	if err := emulator.Install(ctx); err != nil {
		return err
	}
	node, err := emulator.Node()
	if err != nil {
		return err
	}
	cmd := exec.Command(node, "--no-warnings", "launch.mjs", strconv.Itoa(*port))
	cmd.Dir = emulator.Dir()
	if *background {
		return startDetached(cmd, *port, *pidfile, stdout, stderr)
	}
	return runForeground(ctx, cmd, *port, stdout, stderr)
}

// runForeground runs the emulator until ctx is cancelled (Ctrl-C, SIGTERM) or it exits.
func runForeground(ctx context.Context, cmd *exec.Cmd, port int, stdout, stderr io.Writer) error {
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with this process
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitHealthy(ctx, port, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	printEnv(stdout, port)
	fmt.Fprintln(stderr, "emulator: running in the foreground; Ctrl-C stops it")
	select {
	case err := <-exited:
		return fmt.Errorf("fauxqs exited: %v", err)
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		return nil
	}
}

// startDetached starts the emulator in its own session, waits until it answers, records its
// PID and port in pidfile and prints the environment. The log goes next to the PID file.
func startDetached(cmd *exec.Cmd, port int, pidfile string, stdout, stderr io.Writer) error {
	logPath := strings.TrimSuffix(pidfile, ".pid") + ".log"
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process and its terminal
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitHealthy(context.Background(), port, exited); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, b)
	}
	if err := os.WriteFile(pidfile, fmt.Appendf(nil, "%d %d\n", cmd.Process.Pid, port), 0o644); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return err
	}
	fmt.Fprintf(stderr, "emulator: PID %d, log %s; stop it with scripts/emulator -stop\n", cmd.Process.Pid, logPath)
	printEnv(stdout, port)
	return nil
}

// stopDetached stops the emulator recorded in pidfile, if it is still the emulator.
func stopDetached(pidfile string, stderr io.Writer) error {
	pid, _, ok := readPidfile(pidfile)
	if !ok || !alive(pid) || !isLauncher(pid) {
		os.Remove(pidfile)
		fmt.Fprintln(stderr, "emulator: not running")
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM) // its session's process group
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			break
		}
		<-tick.C
	}
	os.Remove(pidfile)
	fmt.Fprintf(stderr, "emulator: stopped PID %d\n", pid)
	return nil
}

// waitHealthy waits up to a minute for the emulator's health check, its exit, or ctx.
func waitHealthy(ctx context.Context, port int, exited chan error) error {
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !healthy(port) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("fauxqs exited before answering: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("fauxqs not answering on port %d after a minute", port)
		case <-tick.C:
		}
	}
	return nil
}

func printEnv(w io.Writer, port int) {
	fmt.Fprintf(w, "export AWS_ENDPOINT_URL=http://127.0.0.1:%d\n", port)
	fmt.Fprintln(w, "export AWS_REGION=us-east-1")
	fmt.Fprintln(w, "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test # any value: the emulator does not check them")
}

func healthy(port int) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func readPidfile(path string) (pid, port int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscan(string(b), &pid, &port); err != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, port, true
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// isLauncher reports whether pid runs launch.mjs, so a PID reused since is never signalled.
func isLauncher(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "launch.mjs")
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envString(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
