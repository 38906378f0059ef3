package sqsconsumer_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

var goleakIgnores = commonGoleakIgnores()

// emu is the fauxqs emulator shared by this package's integration tests, started by the first
// test that needs it and stopped by TestMain.
var emu struct {
	once sync.Once
	e    *emulator.Emulator
	err  error
}

func runEmulatorTests(m *testing.M) int {
	code := m.Run()
	emu.e.Stop()
	return code
}

func exitWith(code int) { os.Exit(code) }

// emulatorClient returns a client of the running emulator. When the emulator cannot be
// started the test fails under CI=true and is skipped otherwise.
func emulatorClient(t testing.TB) *sqs.Client { return sqs.New(emulatorOptions(t)) }

// emulatorOptions returns SDK options pointed at the running emulator; see emulatorClient.
func emulatorOptions(t testing.TB) sqs.Options {
	t.Helper()
	emu.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		emu.e, emu.err = emulator.Start(ctx)
	})
	if emu.err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", emu.err)
		}
		t.Skipf("emulator not available (CI=true makes this a failure): %v", emu.err)
	}
	return emu.e.Options()
}
