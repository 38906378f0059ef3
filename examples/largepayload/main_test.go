package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sqsconsumer/sqsconsumer/internal/emulator"
)

var want = []string{
	"sent 3 messages, 2 of them through S3\n",
	"order 0: 1033 bytes in the message, intact: true\n",
	"order 1: 614409 bytes through S3 (SQS carried a 144-byte pointer), intact: true\n",
	"order 2: 3145737 bytes through S3 (SQS carried a 144-byte pointer), intact: true\n",
	"objects left in the bucket: 0\n",
}

func check(t *testing.T, out string) {
	t.Helper()
	if out != strings.Join(want, "") {
		t.Fatalf("output:\n%s\nwant:\n%s", out, strings.Join(want, ""))
	}
}

func TestInMemory(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, ""); err != nil {
		t.Fatal(err)
	}
	check(t, out.String())
}

// The same program against the emulator's SQS and S3 through the AWS SDK clients.
func TestOnTheEmulator(t *testing.T) {
	emu, err := emulator.Start(context.Background())
	if err != nil {
		if emulator.Required() {
			t.Fatalf("CI=true and the emulator is required: %v", err)
		}
		t.Skipf("emulator not available: %v", err)
	}
	defer emu.Stop()
	var out bytes.Buffer
	if err := run(context.Background(), &out, emu.URL); err != nil {
		t.Fatal(err)
	}
	check(t, out.String())
}
