package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBashCompletion: the script `ctftp completion bash` writes, sourced
// in a real bash, completes subcommands and flags by asking the binary,
// as a user's shell would.
func TestBashCompletion(t *testing.T) {
	needTool(t, "bash")
	// The script relies on the bash-completion package's helpers, as on
	// any desktop or server where completion works at all.
	const helpers = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(helpers); err != nil {
		fwdSkipOrFail(t, "bash-completion is not installed; ./test.sh installs it")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "ctftp.bash")
	out, err := exec.Command(ctftpBin, "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, out, 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		// words[0] is the binary under test; the last word is the one
		// being completed, as bash sets them for TAB.
		line := strings.Join(append([]string{ctftpBin}, words...), " ")
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", `source `+helpers+`; source "$1"
COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
__start_ctftp
printf '%s\n' "${COMPREPLY[@]}"`, "bash", script, line)
		// compopt complains on stderr outside a real TAB; only the
		// replies on stdout matter.
		var errOut strings.Builder
		cmd.Stderr = &errOut
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", line, err, errOut.String())
		}
		return string(got)
	}
	if got := complete("sta"); strings.TrimSpace(got) != "status" {
		t.Errorf("ctftp sta<TAB> = %q, want status", got)
	}
	if got := complete("itl", ""); !strings.Contains(got, "build") || !strings.Contains(got, "verify") {
		t.Errorf("ctftp itl <TAB> = %q", got)
	}
	if got := complete("status", "--"); !strings.Contains(got, "--admin") || !strings.Contains(got, "--json") {
		t.Errorf("ctftp status --<TAB> = %q", got)
	}
}
