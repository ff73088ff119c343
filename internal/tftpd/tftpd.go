package tftpd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled and ErrNotRoot say why in.tftpd cannot run here; tests
// turn them into skips outside CI.
var (
	ErrNotInstalled = errors.New("in.tftpd (tftpd-hpa) is not installed; apt-get install tftpd-hpa")
	ErrNotRoot      = errors.New("in.tftpd must start as root (it chroots into the directory it serves)")
)

// Find returns the path of in.tftpd, or ErrNotInstalled or ErrNotRoot.
func Find() (string, error) {
	bin := "/usr/sbin/in.tftpd"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("in.tftpd")
		if lerr != nil {
			return "", ErrNotInstalled
		}
		bin = p
	}
	if os.Geteuid() != 0 {
		return "", ErrNotRoot
	}
	return bin, nil
}

// Proc is one in.tftpd serving a directory on a loopback port.
type Proc struct {
	cmd    *exec.Cmd
	addr   netip.AddrPort
	exited chan struct{}
	once   sync.Once
}

// Addr is where the daemon listens (127.0.0.1 and a free port).
func (p *Proc) Addr() netip.AddrPort { return p.addr }

// Start runs in.tftpd serving dir read-only on 127.0.0.1 and a free port,
// and returns once it answers a read request. The port is picked by
// binding and closing a socket, so another program may take it first;
// that is retried.
func Start(ctx context.Context, dir string) (*Proc, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var lastOut string
	for range 5 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
		c.Close()
		var out bytes.Buffer
		// -L: stay in the foreground; -s: chroot; -u root: see doc.go.
		cmd := exec.Command(bin, "-L", "-s", "-u", "root", "-a", addr.String(), abs)
		cmd.Stdout, cmd.Stderr = &out, &out
		// Its own process group, so Stop also kills the children it
		// forks per transfer.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		p := &Proc{cmd: cmd, addr: addr, exited: make(chan struct{})}
		go func() {
			cmd.Wait()
			close(p.exited)
		}()
		if answers(ctx, addr, p.exited) {
			return p, nil
		}
		p.Stop()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Most likely the port was taken between choosing and binding it.
		lastOut = out.String()
	}
	return nil, fmt.Errorf("in.tftpd did not answer on 127.0.0.1 after 5 tries; its output: %q", lastOut)
}

// Stop kills the daemon and every transfer it forked, and waits for it.
// It may be called more than once.
func (p *Proc) Stop() {
	p.once.Do(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
}

// answers sends read requests for a made-up file to addr until any TFTP
// packet comes back (the expected ERROR), the process exits, ctx ends or
// 10 s pass.
func answers(ctx context.Context, addr netip.AddrPort, exited <-chan struct{}) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer c.Close()
	rrq := binary.BigEndian.AppendUint16(nil, 1)
	rrq = append(append(rrq, "ctftp-readiness-check\x00"...), "octet\x00"...)
	buf := make([]byte, 600)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		select {
		case <-exited:
			return false
		default:
		}
		c.WriteToUDPAddrPort(rrq, addr)
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFromUDPAddrPort(buf); err == nil && n >= 4 {
			return true
		}
	}
	return false
}
