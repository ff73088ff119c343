package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Exit codes, as documented in the README and interface.md: scripts rely on them.
const (
	exitOK       = 0
	exitFailure  = 1 // operational failure: I/O, network
	exitUsage    = 2 // invalid configuration or usage
	exitVerified = 3 // a verification ran and failed
)

// version is set at link time (-ldflags "-X main.version=...") for releases;
// otherwise the module's build info says what was built.
var version = ""

const usage = `ctftp: centralized TFTP gateway for Cisco IP-phone fleets

usage:
  ctftp serve    [--config FILE]              run the gateway (default FILE: ./config.yaml)
  ctftp validate [--config FILE] [--offline]  check a config (and probe every backend)
  ctftp demo     [--listen ADDR]              self-contained run with generated PKI and two sub-clusters
  ctftp get      [--server HOST:PORT] [--blksize N] [-o OUT] FILE
                                              fetch a file over TFTP; print size, MD5, SHA-1, SHA-256
  ctftp route    [--config FILE] [--client IP] FILE
                                              explain where a request would go and why
  ctftp cache purge [--admin HOST:PORT] [GLOB]
                                              drop cached files through the admin endpoint
  ctftp itl show|verify|hash|build|sign ...   read, check and write ITL/CTL/.sgn files
  ctftp migrate check [--config FILE] [--wave NAME] [--json]
                                              will the phones of a wave trust their new cluster?
  ctftp bench    --server HOST:PORT | --side-by-side [--phones N] [--concurrency C] [--json]
                                              boot-storm load generator (ctftp bench -h)
  ctftp version

exit codes: 0 ok, 1 operational failure, 2 invalid configuration or usage,
3 a verification that ran and failed
`

// run is the whole program behind main; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "validate":
		return runValidate(ctx, rest, stdout, stderr)
	case "get":
		return runGet(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "cache":
		return runCache(ctx, rest, stdout, stderr)
	case "itl":
		return runITL(ctx, rest, stdout, stderr)
	case "route":
		return runRoute(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "ctftp: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	if v == "" {
		v = "devel"
	}
	goVer := "unknown"
	if ok {
		goVer = info.GoVersion
	}
	var rev []string
	if ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				rev = append(rev, s.Key+"="+s.Value)
			}
		}
	}
	out := fmt.Sprintf("ctftp %s (%s)", v, goVer)
	if len(rev) > 0 {
		out += " " + strings.Join(rev, " ")
	}
	return out
}
