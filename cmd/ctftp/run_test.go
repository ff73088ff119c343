package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func runTest(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpEverywhere: every command, group and leaf, answers --help and
// -h with its usage on stdout and exit 0, and runs nothing.
func TestHelpEverywhere(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	root := newRoot(&cli{})
	root.InitDefaultCompletionCmd() // cobra adds it when executing
	walk(root, nil)
	if len(paths) < 16 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, path := range paths {
		for _, h := range []string{"--help", "-h"} {
			code, out, errOut := runTest(append(append([]string{}, path...), h)...)
			want := "ctftp " + strings.Join(path, " ")
			if code != exitOK || !strings.Contains(out, "Usage:\n  "+strings.TrimSpace(want)) || errOut != "" {
				t.Errorf("%v %s: exit %d\nstdout %q\nstderr %q", path, h, code, out, errOut)
			}
		}
	}
}

func TestCommandTreeUsage(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: [\"127.0.0.1:0\"]\nroot: %q\n", t.TempDir())), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{nil, exitUsage, "", "Available Commands:"},
		{[]string{"frobnicate"}, exitUsage, "", `ctftp: unknown command "frobnicate" for "ctftp"`},
		{[]string{"serve", "extra"}, exitUsage, "", `ctftp serve: unknown command "extra" for "ctftp serve"`},
		{[]string{"status", "--bogus"}, exitUsage, "", "ctftp status: unknown flag: --bogus\nRun 'ctftp status --help' for usage."},
		{[]string{"get", "--blksize", "many", "x"}, exitUsage, "", `invalid argument "many" for "--blksize"`},
		{[]string{"get", "--server", "nohostport", "x"}, exitUsage, "", `ctftp get: --server: "nohostport": want HOST:PORT`},
		{[]string{"cache"}, exitUsage, "", "ctftp cache: missing command"},
		// Checked before asking any gateway (none listens on port 1).
		{[]string{"cache", "purge", "--admin", "127.0.0.1:1", "SEP["}, exitUsage, "", `ctftp cache purge: GLOB "SEP[": syntax error in pattern`},
		{[]string{"version"}, exitOK, "ctftp ", ""},
		{[]string{"--version"}, exitOK, "ctftp ", ""},
		{[]string{"help", "itl"}, exitOK, "ctftp itl [command]", ""},
		// cobra's own commands follow the same rule: a usage error is exit 2.
		{[]string{"help", "frobnicate"}, exitUsage, "", `ctftp help: unknown command "frobnicate"`},
		{[]string{"help", "itl", "frobnicate"}, exitUsage, "", `ctftp help: unknown command "itl frobnicate"`},
		{[]string{"completion"}, exitUsage, "", "ctftp completion: want a shell"},
		{[]string{"completion", "tcsh"}, exitUsage, "", `unknown command "tcsh"`},
		// Flags go before or after the arguments.
		{[]string{"route", "--config", cfg, "SEP0011215A1AE3.cnf.xml"}, exitOK, "SEP0011215A1AE3.cnf.xml", ""},
		{[]string{"route", "SEP0011215A1AE3.cnf.xml", "--config", cfg}, exitOK, "SEP0011215A1AE3.cnf.xml", ""},
		{[]string{"route", "--config", cfg, "--", "--odd-name"}, exitOK, "--odd-name", ""},
	}
	for _, tc := range tests {
		code, out, errOut := runTest(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("%q: exit %d (want %d)\nstdout %q\nstderr %q", tc.args, code, tc.code, out, errOut)
		}
	}
}

// TestCompletion: `ctftp completion bash|zsh|fish` writes each shell's
// script, and the completion cobra answers from knows commands and flags.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_ctftp", "zsh": "#compdef ctftp", "fish": "complete -c ctftp"} {
		code, out, errOut := runTest("completion", shell)
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), errOut)
		}
	}
	if _, out, _ := runTest("__complete", "sta"); !strings.Contains(out, "status\t") {
		t.Errorf("completing sta: %q", out)
	}
	if _, out, _ := runTest("__complete", "status", "--"); !strings.Contains(out, "--admin\t") || !strings.Contains(out, "--json\t") {
		t.Errorf("completing status flags: %q", out)
	}
	if _, out, _ := runTest("__complete", "itl", "b"); !strings.Contains(out, "build\t") {
		t.Errorf("completing itl b: %q", out)
	}
}

// TestREADMECommandTable: the README's command table and the command
// tree name the same commands, so neither drifts from the other.
func TestREADMECommandTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "\n## Commands\n")
	table, _, _ = strings.Cut(table, "\n## ")
	inTable := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cell, ok := strings.CutPrefix(line, "| `ctftp ")
		if !ok {
			continue
		}
		cell, _, _ = strings.Cut(cell, "`")
		var path []string
		for _, w := range strings.Fields(cell) {
			if !('a' <= w[0] && w[0] <= 'z') || strings.ContainsAny(w, `|\`) {
				break // the first flag, argument or alternative ends the command path
			}
			path = append(path, w)
		}
		inTable[strings.Join(path, " ")] = true
	}
	inTree := map[string]bool{}
	var walk func(c *cobra.Command, path string)
	walk = func(c *cobra.Command, path string) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if len(c.Commands()) == 0 || c.Name() == "completion" {
			inTree[strings.TrimSpace(path)] = true
			return
		}
		for _, sub := range c.Commands() {
			walk(sub, path+" "+sub.Name())
		}
	}
	root := newRoot(&cli{})
	root.InitDefaultCompletionCmd() // cobra adds it when executing
	walk(root, "")
	for p := range inTree {
		if !inTable[p] {
			t.Errorf("ctftp %s is a command but not in the README's command table", p)
		}
	}
	for p := range inTable {
		if !inTree[p] {
			t.Errorf("the README's command table lists ctftp %s, which is not a command", p)
		}
	}
}

// TestREADMEFuzzTargets: the README's list of fuzz targets names each
// package's targets as they are in the tree (merges of several authors'
// lists once left it naming targets that no longer exist).
func TestREADMEFuzzTargets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(readme), "- **Fuzzing**:")
	_, list, ok2 := strings.Cut(list, "The targets:")
	list, _, _ = strings.Cut(list, "Crashers found")
	if !ok || !ok2 {
		t.Fatal("the README has no Fuzzing bullet listing \"The targets:\"")
	}
	// "`pkg`: `FuzzA`, `FuzzB`; `pkg2`: ..." -> pkg -> targets
	inREADME := map[string]bool{}
	for _, part := range strings.Split(strings.Join(strings.Fields(list), " "), ";") {
		pkg, targets, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		f := strings.Fields(pkg)
		pkg = strings.Trim(f[len(f)-1], "`")
		for _, tg := range strings.Split(targets, ",") {
			tg = strings.Trim(strings.TrimSpace(tg), "`.")
			if strings.HasPrefix(tg, "Fuzz") {
				inREADME[pkg+" "+tg] = true
			}
		}
	}
	inTree := map[string]bool{}
	fuzzRE := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	err = filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return fs.SkipDir
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(p, "../../")))
		for _, m := range fuzzRE.FindAllStringSubmatch(string(b), -1) {
			inTree[pkg+" "+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range inTree {
		if !inREADME[k] {
			t.Errorf("fuzz target %s is not in the README's Fuzzing list", k)
		}
	}
	for k := range inREADME {
		if !inTree[k] {
			t.Errorf("the README's Fuzzing list names %s, which does not exist", k)
		}
	}
}
