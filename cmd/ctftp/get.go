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
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// runGet is a TFTP client for admins: fetch a file the way a phone would
// and print the hashes they compare with the phone's Trust List screen.
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("get", stderr)
	server := fs.String("server", "127.0.0.1:69", "TFTP server `HOST:PORT`")
	blksize := fs.Int("blksize", 512, "block size to negotiate (RFC 2348, 8..65464)")
	out := fs.String("o", "", "write the file to `OUT` (\"-\" = stdout); default: only print the summary")
	mode := fs.String("mode", "octet", "transfer mode: octet or netascii")
	timeout := fs.Duration("timeout", 2*time.Second, "retransmit timeout")
	retries := fs.Int("retries", 5, "retransmissions before giving up")
	windowsize := fs.Int("windowsize", 1, "RFC 7440 window size to ask for (1 = lock-step)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	var problems []string
	if len(pos) != 1 {
		problems = append(problems, "get: want exactly one FILE")
	}
	if *blksize < 8 || *blksize > 65464 {
		problems = append(problems, fmt.Sprintf("--blksize: %d is outside 8..65464", *blksize))
	}
	if *mode != "octet" && *mode != "netascii" {
		problems = append(problems, fmt.Sprintf("--mode: %q is not octet or netascii", *mode))
	}
	if _, _, err := net.SplitHostPort(*server); err != nil {
		problems = append(problems, fmt.Sprintf("--server: %q: want HOST:PORT", *server))
	}
	if *windowsize < 1 || *windowsize > 65535 {
		problems = append(problems, fmt.Sprintf("--windowsize: %d is outside 1..65535", *windowsize))
	}
	if *timeout <= 0 || *retries < 0 {
		problems = append(problems, "--timeout must be positive and --retries not negative")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "ctftp "+p)
		}
		return exitUsage
	}
	name := pos[0]

	start := time.Now()
	data, res, err := tftpGet(ctx, *server, name, tftpclient.Options{
		Mode: *mode, BlockSize: *blksize, WindowSize: *windowsize, TransferSize: true,
		Timeout: *timeout, Retries: *retries,
	})
	tsize := res.TransferSize
	if err != nil {
		fmt.Fprintf(stderr, "ctftp get: %s from %s: %v\n", name, *server, err)
		return exitFailure
	}
	elapsed := time.Since(start)

	if *out != "" {
		if err := writeOut(*out, data, stdout); err != nil {
			fmt.Fprintf(stderr, "ctftp get: %v\n", err)
			return exitFailure
		}
	}
	summary := stdout
	if *out == "-" {
		summary = stderr // keep the file's bytes clean on stdout
	}
	fmt.Fprintf(summary, "file    %s\nserver  %s\nsize    %d bytes\nblocks  blksize %d, windowsize %d, %d retransmits\n",
		name, *server, len(data), res.BlockSize, res.WindowSize, res.Retransmits)
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
// RFC 7440 windowsize, typed server errors).
func tftpGet(ctx context.Context, server, name string, o tftpclient.Options) ([]byte, tftpclient.Result, error) {
	ap, err := resolveServer(ctx, server)
	if err != nil {
		return nil, tftpclient.Result{}, err
	}
	var buf bytes.Buffer
	res, err := tftpclient.Get(ctx, ap, name, &buf, o)
	return buf.Bytes(), res, err
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
