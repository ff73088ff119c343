package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
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

const rootLong = `ctftp is a centralized TFTP gateway for Cisco IP-phone fleets: it answers
every phone, serves its own files and forwards the rest to the CUCM TFTP
servers of the sub-cluster each phone belongs to.

Exit codes: 0 ok, 1 operational failure (I/O, network), 2 invalid
configuration or usage, 3 a verification that ran and failed (itl verify,
migrate check with a phone that would break or strand, validate with a
sub-cluster ITL that does not verify, status of a gateway that is not ready).`

// cli is what every command writes to; run makes one per call, so tests
// run commands in process without sharing anything.
type cli struct {
	stdout, stderr io.Writer
}

// exitError carries a command's exit code out of cobra, whose RunE can
// only fail or succeed. The command has already said why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit turns a command's exit code into RunE's result.
func exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitError(code)
}

// newRoot builds the command tree. cobra parses flags (before or after
// the arguments, `--` ending them), prints --help for every command and
// completes in shells; each command's logic stays in its own file.
func newRoot(a *cli) *cobra.Command {
	root := &cobra.Command{
		Use:           "ctftp",
		Short:         "centralized TFTP gateway for Cisco IP-phone fleets",
		Long:          rootLong,
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a command there is nothing to do: say how, exit 2.
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(a.stderr)
			c.Help()
			return exitError(exitUsage)
		},
	}
	root.Version = versionString()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.AddCommand(
		serveCmd(a), validateCmd(a), demoCmd(a), getCmd(a), routeCmd(a), cacheCmd(a),
		statusCmd(a), migrateCmd(a), benchCmd(a), itlCmd(a), versionCmd(a),
	)
	// cobra's own completion and help commands: alone, or with a shell or
	// topic they do not know, they print help and succeed; here, as for
	// every other command, a usage error is exit 2.
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "completion":
			c.RunE = func(c *cobra.Command, _ []string) error {
				fmt.Fprintf(a.stderr, "%s: want a shell: bash, zsh, fish or powershell\n", c.CommandPath())
				return exitError(exitUsage)
			}
		case "help":
			help := c.Run
			c.Run = nil
			c.RunE = func(c *cobra.Command, args []string) error {
				if t, rest, err := root.Find(args); err != nil || t == nil || len(rest) > 0 || (len(args) > 0 && t == root) {
					fmt.Fprintf(a.stderr, "ctftp help: unknown command %q; see ctftp --help\n", strings.Join(args, " "))
					return exitError(exitUsage)
				}
				help(c, args)
				return nil
			}
		}
	}
	// Each Use line already shows the flags that matter.
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

// group is a command that only holds subcommands: alone it is a usage
// error, as a mistyped subcommand is.
func group(a *cli, use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			fmt.Fprintf(a.stderr, "%s: missing command\n", c.CommandPath())
			c.SetOut(a.stderr)
			c.Usage()
			return exitError(exitUsage)
		},
	}
	c.AddCommand(subs...)
	return c
}

func versionCmd(a *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version, the Go version and the VCS revision",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(a.stdout, versionString()) },
	}
}

// run is the whole program behind main; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &cli{stdout: stdout, stderr: stderr}
	root := newRoot(a)
	root.SetArgs(args)
	c, err := root.ExecuteContextC(ctx)
	var code exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	}
	// cobra's own: an unknown command or flag, a bad flag value, an
	// argument a command takes none of.
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", c.CommandPath(), err, c.CommandPath())
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
