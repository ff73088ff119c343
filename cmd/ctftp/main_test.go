package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// runAsMain, set in the environment, makes the test binary behave as
// ctftp itself: a side-by-side bench runs `ctftp bench --hold` as a
// child process (os.Executable), which under `go test` is this binary.
const runAsMain = "CTFTP_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
