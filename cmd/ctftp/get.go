package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/internal/progress"
	"github.com/ctftp/ctftp/internal/tftpclient"
)

// getOpts are `ctftp get`'s flags.
type getOpts struct {
	server, out, mode   string
	blksize, windowsize int
	timeout             time.Duration
	retries             int
}

func getCmd(a *cli) *cobra.Command {
	var o getOpts
	c := &cobra.Command{
		Use:   "get [--server HOST:PORT] [--blksize N] [--windowsize N] [--mode netascii] [-o OUT] FILE",
		Short: "TFTP client; prints size, MD5, SHA-1, SHA-256",
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runGet(c.Context(), o, args, a.stdout, a.stderr))
		},
	}
	f := c.Flags()
	f.StringVar(&o.server, "server", "127.0.0.1:69", "TFTP server `HOST:PORT`")
	f.IntVar(&o.blksize, "blksize", 512, "block size to negotiate (RFC 2348, 8..65464)")
	f.StringVarP(&o.out, "output", "o", "", "write the file to `OUT` (\"-\" = stdout); default: only print the summary")
	f.StringVar(&o.mode, "mode", "octet", "transfer mode: octet or netascii")
	f.DurationVar(&o.timeout, "timeout", 2*time.Second, "retransmit timeout")
	f.IntVar(&o.retries, "retries", 5, "retransmissions before giving up")
	f.IntVar(&o.windowsize, "windowsize", 1, "RFC 7440 window size to ask for (1 = lock-step)")
	c.MarkFlagFilename("output")
	return c
}

// runGet is a TFTP client for admins: fetch a file the way a phone would
// and print the hashes they compare with the phone's Trust List screen.
func runGet(ctx context.Context, o getOpts, pos []string, stdout, stderr io.Writer) int {
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, "want exactly one FILE")
	}
	if o.blksize < 8 || o.blksize > 65464 {
		problems = append(problems, fmt.Sprintf("--blksize: %d is outside 8..65464", o.blksize))
	}
	if o.mode != "octet" && o.mode != "netascii" {
		problems = append(problems, fmt.Sprintf("--mode: %q is not octet or netascii", o.mode))
	}
	if _, _, err := net.SplitHostPort(o.server); err != nil {
		problems = append(problems, fmt.Sprintf("--server: %q: want HOST:PORT", o.server))
	}
	if o.windowsize < 1 || o.windowsize > 65535 {
		problems = append(problems, fmt.Sprintf("--windowsize: %d is outside 1..65535", o.windowsize))
	}
	if o.timeout <= 0 || o.retries < 0 {
		problems = append(problems, "--timeout must be positive and --retries not negative")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "ctftp get: "+p)
		}
		return exitUsage
	}
	name := pos[0]

	start := time.Now()
	p := newGetProgress(stderr, name, start)
	stop := p.run(progressEvery)
	data, res, err := tftpGet(ctx, o.server, name, tftpclient.Options{
		Mode: o.mode, BlockSize: o.blksize, WindowSize: o.windowsize, TransferSize: true,
		Timeout: o.timeout, Retries: o.retries, Announced: p.announced,
	}, p)
	stop()
	tsize := res.TransferSize
	if err != nil {
		fmt.Fprintf(stderr, "ctftp get: %s from %s: %v\n", name, o.server, err)
		return exitFailure
	}
	elapsed := time.Since(start)

	if o.out != "" {
		if err := writeOut(o.out, data, stdout); err != nil {
			fmt.Fprintf(stderr, "ctftp get: %v\n", err)
			return exitFailure
		}
	}
	summary := stdout
	if o.out == "-" {
		summary = stderr // keep the file's bytes clean on stdout
	}
	fmt.Fprintf(summary, "file    %s\nserver  %s\nsize    %d bytes\nblocks  blksize %d, windowsize %d, %d retransmits\n",
		name, o.server, len(data), res.BlockSize, res.WindowSize, res.Retransmits)
	if tsize >= 0 && tsize != int64(len(data)) {
		fmt.Fprintf(summary, "tsize   %d (announced; differs from bytes received)\n", tsize)
	}
	for _, h := range []struct {
		name string
		h    hash.Hash
	}{{"md5", md5.New()}, {"sha1", sha1.New()}, {"sha256", sha256.New()}} {
		h.h.Write(data)
		fmt.Fprintf(summary, "%-7s %s\n", h.name, hex.EncodeToString(h.h.Sum(nil)))
	}
	rate := float64(len(data)) / elapsed.Seconds() / 1024
	fmt.Fprintf(summary, "time    %s (%.1f KiB/s)\n", elapsed.Round(time.Microsecond), rate)
	return exitOK
}

// tftpGet fetches name with the project's own client (context-aware,
// RFC 7440 windowsize, typed server errors); p, when set, counts the
// bytes as they arrive.
func tftpGet(ctx context.Context, server, name string, o tftpclient.Options, p *getProgress) ([]byte, tftpclient.Result, error) {
	ap, err := resolveServer(ctx, server)
	if err != nil {
		return nil, tftpclient.Result{}, err
	}
	var buf bytes.Buffer
	var w io.Writer = &buf
	if p != nil {
		w = io.MultiWriter(&buf, p)
	}
	res, err := tftpclient.Get(ctx, ap, name, w, o)
	return buf.Bytes(), res, err
}

// progressEvery is how often a transfer still running says how far it
// got: a load fetched across a WAN takes tens of seconds.
var progressEvery = 2 * time.Second

// getProgress counts a transfer's bytes and reports them on stderr while
// it runs.
type getProgress struct {
	w     io.Writer
	name  string
	start time.Time
	got   atomic.Int64
	size  atomic.Int64 // announced tsize + 1; 0 while unknown
}

func newGetProgress(w io.Writer, name string, start time.Time) *getProgress {
	return &getProgress{w: w, name: name, start: start}
}

func (p *getProgress) Write(b []byte) (int, error) {
	p.got.Add(int64(len(b)))
	return len(b), nil
}

// announced is the client's tsize hook.
func (p *getProgress) announced(tsize int64) error {
	p.size.Store(tsize + 1)
	return nil
}

// run reports every interval until the returned func is called (the
// summary follows; no last progress line).
func (p *getProgress) run(every time.Duration) (stop func()) {
	return progress.Every(every, false, func(bool) { fmt.Fprintln(p.w, p.line(time.Now())) })
}

// line says how far the transfer got: "ctftp get: kern88xx.sbn: 312.0 KiB
// of 1.0 MiB (30%), 71.2 KiB/s, 4s".
func (p *getProgress) line(now time.Time) string {
	got := p.got.Load()
	elapsed := now.Sub(p.start)
	of := ""
	if size := p.size.Load() - 1; size > 0 {
		of = fmt.Sprintf(" of %s (%.0f%%)", humanBytes(float64(size)), 100*float64(got)/float64(size))
	}
	return fmt.Sprintf("ctftp get: %s: %s%s, %s/s, %s", p.name, humanBytes(float64(got)), of,
		humanBytes(float64(got)/max(elapsed.Seconds(), 0.001)), elapsed.Round(time.Second))
}

// resolveServer accepts HOST:PORT with a literal IP or a name.
func resolveServer(ctx context.Context, server string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(server); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("server %q: %w", server, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("server %q: bad port", server)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("server %q: cannot resolve %s: %v", server, host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)), nil
}

func writeOut(path string, data []byte, stdout io.Writer) error {
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
