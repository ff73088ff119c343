package tftptest

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// tftpdPaths are where tftpd-hpa's daemon is looked for, before $PATH.
var tftpdPaths = []string{"/usr/sbin/in.tftpd"}

// StartTFTPD starts a real tftpd-hpa (in.tftpd) serving the directory root
// read-only on 127.0.0.1 and a free port, waits until it answers, and
// kills it (and any transfer it forked) at cleanup. It returns the
// address as "127.0.0.1:port".
//
// tftpd-hpa serves only world-readable files; others get ERROR 2 "File
// must have global read permissions", which tests use as a real refusal.
// It must start as root, because it chroots into root (-s) before it
// drops privileges; as root it is told to stay root (-u root), since the
// test's files need not be readable by "nobody".
//
// When in.tftpd is missing, or the test does not run as root, the test is
// skipped with the reason, unless the CI environment variable is set: CI
// must run these tests, so there it fails instead.
func StartTFTPD(t testing.TB, root string) string {
	t.Helper()
	bin := ""
	for _, p := range tftpdPaths {
		if _, err := os.Stat(p); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if p, err := exec.LookPath("in.tftpd"); err == nil {
			bin = p
		}
	}
	if bin == "" {
		skipOrFail(t, "in.tftpd (tftpd-hpa) is not installed; apt-get install tftpd-hpa to run this test")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "in.tftpd must start as root (it chroots into the served directory); run the tests as root to include it")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("tftptest: %v", err)
	}
	var lastOut string
	for range 5 {
		port := freeUDPPort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var out bytes.Buffer
		cmd := exec.Command(bin, "-L", "-s", "-u", "root", "-a", addr, abs)
		cmd.Stdout, cmd.Stderr = &out, &out
		// Its own process group, so cleanup also kills the children it
		// forks per transfer.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("tftptest: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		stop := func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if waitAnswer(addr, exited) {
			t.Cleanup(stop)
			return addr
		}
		stop()
		lastOut = out.String()
		// Most likely the port was taken between choosing and binding it.
	}
	t.Fatalf("tftptest: in.tftpd did not answer on 127.0.0.1 after 5 tries; its output: %q", lastOut)
	return ""
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("tftptest: %s (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skip("tftptest: " + why)
}

// freeUDPPort asks the OS for a free UDP port on 127.0.0.1. Someone else
// may take it before it is used; StartTFTPD retries.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("tftptest: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitAnswer sends read requests to addr until any TFTP packet comes back
// (an ERROR for the made-up name is the expected answer), the process
// exits, or 10 s pass.
func waitAnswer(addr string, exited <-chan struct{}) bool {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return false
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer c.Close()
	rrq := binary.BigEndian.AppendUint16(nil, 1)
	rrq = append(append(rrq, "tftptest-readiness-check\x00"...), "octet\x00"...)
	buf := make([]byte, 600)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c.WriteToUDP(rrq, raddr)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil && n >= 4 {
			return true
		}
	}
	return false
}
