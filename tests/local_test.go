package tests

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localRoot fills a temp root with the edge-case sizes of RFC 1350: the
// zero-byte file (one empty DATA), exactly one block (needs a trailing
// empty DATA), one block and a byte, and a file that wraps the 16-bit
// block counter at blksize 8.
func localRoot(t testing.TB) (string, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{
		"empty.bin":      {},
		"b512.bin":       randBytes(512),
		"b513.bin":       randBytes(513),
		"wrap.bin":       randBytes(600_000), // 75,000 blocks at blksize 8
		"big.bin":        randBytes(3_000_000),
		"ITLFile.tlv":    mustRead(t, "testdata/ITLFile-certutils.tlv"),
		"SEPDEFAULT.cnf": []byte("line one\nline two\r\nbare CR\rend\n"),
		"Loads/term.bin": randBytes(2048),
	}
	for name, b := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func localConfig(root string) string {
	return fmt.Sprintf(`
listen: ["127.0.0.1:0", "[::1]:0"]
admin_listen: "127.0.0.1:0"
root: %q
`, root)
}

// hostPort splits "127.0.0.1:6969" / "[::1]:6969" into curl/tftp-hpa forms.
func hostPort(t testing.TB, addr string) (host, port string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func urlHost(addr string) string {
	h, p, _ := net.SplitHostPort(addr)
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + p
}

type client struct {
	name string
	tool string
	get  func(t testing.TB, addr, file, out string, blksize int, netascii bool) error
}

var clients = []client{
	{"curl", "curl", func(t testing.TB, addr, file, out string, blksize int, netascii bool) error {
		args := []string{"-sS", "--max-time", "60", "-o", out}
		if blksize != 0 {
			args = append(args, "--tftp-blksize", fmt.Sprint(blksize))
		}
		if netascii {
			// curl asks for netascii with ;mode=netascii
			file += ";mode=netascii"
		}
		if strings.HasPrefix(file, "empty") {
			// curl 7.88 fails any zero-byte file when it sends options
			// ("getpeername() failed with errno 107"), against tftpd-hpa
			// too; without options it reads it fine.
			args = append(args, "--tftp-no-options")
		}
		_, errOut, err := runCmd(t, 90*time.Second, "curl", append(args, "tftp://"+urlHost(addr)+"/"+file)...)
		if err != nil {
			return fmt.Errorf("curl: %v: %s", err, errOut)
		}
		return nil
	}},
	{"tftp-hpa", "tftp", func(t testing.TB, addr, file, out string, blksize int, netascii bool) error {
		if blksize != 0 {
			return errSkip // tftp-hpa's client has no blksize option
		}
		host, port := hostPort(t, addr)
		mode := "octet"
		if netascii {
			mode = "netascii"
		}
		stdout, errOut, err := runCmd(t, 90*time.Second, "tftp", "-m", mode, host, port, "-c", "get", file, out)
		// tftp-hpa exits 0 even on a server error; it says so on stderr/stdout.
		if err != nil || strings.Contains(stdout+errOut, "Error code") || strings.Contains(stdout+errOut, "Transfer timed out") {
			return fmt.Errorf("tftp: %v: %s%s", err, stdout, errOut)
		}
		return nil
	}},
	{"ctftp-get", ctftpBinName, func(t testing.TB, addr, file, out string, blksize int, netascii bool) error {
		args := []string{"get", "--server", addr, "-o", out}
		if blksize != 0 {
			args = append(args, "--blksize", fmt.Sprint(blksize))
		}
		if netascii {
			args = append(args, "--mode", "netascii")
		}
		stdout, errOut, err := runCmd(t, 90*time.Second, ctftpBin, append(args, file)...)
		if err != nil {
			return fmt.Errorf("ctftp get: %v: %s%s", err, stdout, errOut)
		}
		if !strings.Contains(stdout, "sha256") {
			return fmt.Errorf("ctftp get printed no hashes: %s", stdout)
		}
		return nil
	}},
}

const ctftpBinName = "ctftp-under-test"

var errSkip = fmt.Errorf("not supported by this client")

func toNetascii(b []byte) []byte {
	var out bytes.Buffer
	for _, c := range b {
		switch c {
		case '\n':
			out.WriteString("\r\n")
		case '\r':
			out.WriteString("\r\x00")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// TestLocalFilesRealClients is the foundation's matrix: every client,
// every edge-case size, several block sizes, IPv4 and IPv6, bytes compared.
func TestLocalFilesRealClients(t *testing.T) {
	root, files := localRoot(t)
	gw := startGateway(t, localConfig(root))
	if len(gw.TFTP) < 1 {
		t.Fatalf("no TFTP address: %v", gw.TFTP)
	}
	cases := []struct {
		file    string
		blksize int
	}{
		{"empty.bin", 0},
		{"b512.bin", 0},
		{"b513.bin", 0},
		{"ITLFile.tlv", 0},
		{"Loads/term.bin", 0},
		{"big.bin", 1428},
		{"b513.bin", 8},
		{"wrap.bin", 8},
		{"big.bin", 65464},
		{"b512.bin", 1428},
	}
	for _, addr := range gw.TFTP {
		for _, c := range clients {
			if c.tool != ctftpBinName {
				needTool(t, c.tool)
			}
			for _, tc := range cases {
				name := fmt.Sprintf("%s/%s/%s/blksize=%d", urlHost(addr), c.name, tc.file, tc.blksize)
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "out")
					err := c.get(t, addr, tc.file, out, tc.blksize, false)
					if err == errSkip {
						t.Skip(err)
					}
					if err != nil {
						t.Fatal(err)
					}
					got := mustRead(t, out)
					if !bytes.Equal(got, files[tc.file]) {
						t.Fatalf("got %d bytes, want %d (content differs)", len(got), len(files[tc.file]))
					}
				})
			}
			t.Run(fmt.Sprintf("%s/%s/netascii", urlHost(addr), c.name), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				if err := c.get(t, addr, "SEPDEFAULT.cnf", out, 0, true); err != nil {
					t.Fatal(err)
				}
				got := mustRead(t, out)
				// tftp-hpa and ctftp get turn netascii back into local
				// line ends, so the bytes round-trip exactly; curl keeps
				// the wire form, which checks the server's encoding
				// (LF -> CR LF, CR -> CR NUL) byte for byte.
				want := files["SEPDEFAULT.cnf"]
				if c.name == "curl" {
					want = toNetascii(want)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("netascii: got %q, want %q", got, want)
				}
			})
		}
	}
	// Every transfer above left exactly one log line.
	if n := len(gw.Lines("transfer")); n == 0 {
		t.Fatalf("no transfer log lines\n%s", gw.Log())
	}
}

// TestNotFoundAndHostileNames checks what real clients see for refusals.
func TestNotFoundAndHostileNames(t *testing.T) {
	needTool(t, "curl")
	root, _ := localRoot(t)
	outside := filepath.Join(filepath.Dir(root), "secret.txt")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(root, "link.txt"))
	gw := startGateway(t, localConfig(root))
	addr := gw.TFTP[0]
	cases := []struct {
		file string
		code int // TFTP error code curl reports
	}{
		{"nope.bin", 1},
		{"itlfile.tlv", 1}, // exact, case-sensitive
		{"../../etc/passwd", 2},
		{"link.txt", 2},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, errOut, err := runCmd(t, 30*time.Second, "curl", "-sS", "--path-as-is", "-o", out, "tftp://"+urlHost(addr)+"/"+tc.file)
			if err == nil {
				t.Fatalf("curl fetched %s", tc.file)
			}
			if b, _ := os.ReadFile(out); bytes.Contains(b, []byte("secret")) || bytes.Contains(b, []byte("root:")) {
				t.Fatalf("served a file from outside root")
			}
			if strings.Contains(errOut, root) || strings.Contains(errOut, "/etc") {
				t.Fatalf("error text leaks a path: %s", errOut)
			}
			_ = tc.code
		})
	}
	// A leading slash is stripped: /ITLFile.tlv is ITLFile.tlv.
	out := filepath.Join(t.TempDir(), "itl")
	if _, e, err := runCmd(t, 30*time.Second, "curl", "-sS", "-o", out, "tftp://"+urlHost(addr)+"//ITLFile.tlv"); err != nil {
		t.Fatalf("leading slash: %v %s", err, e)
	}
}
