//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first signal cancels the context and leaves the process running, to shut down
// gracefully; a second one ends the process at once, however long the shutdown would take.
// The test runs itself as the process that gets the signals.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if os.Getenv("QUICKSTART_SIGNAL_CHILD") == "1" {
		ctx, stop := shutdownContext(os.Stdout)
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // the message is printed
		fmt.Println("shutting down")
		time.Sleep(time.Minute) // a shutdown that would take long
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondSignalExitsAtOnce$")
	cmd.Env = append(os.Environ(), "QUICKSTART_SIGNAL_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		for lines.Scan() {
			if strings.Contains(lines.Text(), want) {
				return
			}
		}
		t.Fatalf("the child never printed %q", want)
	}
	expect("ready")
	cmd.Process.Signal(os.Interrupt)
	expect("interrupt signal received: finishing the messages in hand; signal again to exit at once")
	expect("shutting down") // the first signal did not end the process
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Fatalf("after the second signal: %v, want death by SIGINT", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the second signal took %v to end the process", took)
	}
}
