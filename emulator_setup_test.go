package sqsconsumer_test

import (
	"os"
	"testing"
)

var goleakIgnores = commonGoleakIgnores()

func runEmulatorTests(m *testing.M) int { return m.Run() }

func exitWith(code int) { os.Exit(code) }
