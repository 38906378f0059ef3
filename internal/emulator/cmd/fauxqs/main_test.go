package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

// TestBackgroundLifecycle: -background starts a detached emulator and prints the export
// lines; a second start finds it and prints them again; -stop stops it, and a second -stop is
// harmless. Without the emulator it fails under CI=true and is skipped otherwise.
func TestBackgroundLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := emulator.Install(ctx); err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available (CI=true makes this a failure): %v", err)
	}
	pidfile := filepath.Join(t.TempDir(), "fauxqs.pid")
	port, err := emulator.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	emu := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(append([]string{"-pidfile", pidfile}, args...), &out, &errOut); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	t.Cleanup(func() { emu("-stop") })

	out, _ := emu("-background", "-port", fmt.Sprint(port))
	want := fmt.Sprintf("export AWS_ENDPOINT_URL=http://127.0.0.1:%d\n", port)
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "AWS_REGION=") || !strings.Contains(out, "AWS_ACCESS_KEY_ID=") {
		t.Fatalf("-background printed %q", out)
	}
	if !healthy(port) {
		t.Fatal("not answering after -background returned")
	}
	pid, _, ok := readPidfile(pidfile)
	if !ok || !isLauncher(pid) {
		t.Fatalf("PID file: %d %v", pid, ok)
	}
	again, errOut := emu("-background", "-port", "0")
	if again != out || !strings.Contains(errOut, "already running") {
		t.Fatalf("second start printed %q, %q", again, errOut)
	}
	if _, errOut := emu("-stop"); !strings.Contains(errOut, "stopped") || alive(pid) && isLauncher(pid) || healthy(port) {
		t.Fatalf("-stop: %q", errOut)
	}
	if _, errOut := emu("-stop"); !strings.Contains(errOut, "not running") {
		t.Fatalf("second -stop: %q", errOut)
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"-port", "-1"}, {"-port", "70000"}, {"-stop", "-background"}, {"-bogus"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil || out.Len() > 0 {
			t.Errorf("%q: err %v, stdout %q", args, err, out.String())
		}
	}
}
