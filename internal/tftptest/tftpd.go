package tftptest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/ctftp/ctftp/internal/tftpd"
)

// StartTFTPD starts a real tftpd-hpa (in.tftpd) serving the directory root
// read-only on 127.0.0.1 and a free port (internal/tftpd, the launcher
// `ctftp bench` uses too), and kills it (and any transfer it forked) at
// cleanup. It returns the address as "127.0.0.1:port".
//
// tftpd-hpa serves only world-readable files; others get ERROR 2 "File
// must have global read permissions", which tests use as a real refusal.
//
// When in.tftpd is missing, or the test does not run as root, the test is
// skipped with the reason, unless the CI environment variable is set: CI
// must run these tests, so there it fails instead.
func StartTFTPD(t testing.TB, root string) string {
	t.Helper()
	p, err := tftpd.Start(context.Background(), root)
	switch {
	case errors.Is(err, tftpd.ErrNotInstalled) || errors.Is(err, tftpd.ErrNotRoot):
		skipOrFail(t, err.Error()+"; run the tests as root with tftpd-hpa installed to include this one")
	case err != nil:
		t.Fatalf("tftptest: %v", err)
	}
	t.Cleanup(p.Stop)
	return p.Addr().String()
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("tftptest: %s (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skip("tftptest: " + why)
}
