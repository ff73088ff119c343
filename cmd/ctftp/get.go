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
	"os"
	"time"

	"github.com/pin/tftp/v3"
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
	data, tsize, err := tftpGet(ctx, *server, name, *mode, *blksize, *timeout, *retries)
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
	fmt.Fprintf(summary, "file    %s\nserver  %s\nsize    %d bytes\n", name, *server, len(data))
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

// tftpGet fetches name and returns its bytes and the announced tsize (-1
// when the server sent none). pin/tftp's client has no context, so a
// cancelled ctx abandons the transfer goroutine's result; its own timeout
// and retries bound how long that goroutine lives.
func tftpGet(ctx context.Context, server, name, mode string, blksize int, timeout time.Duration, retries int) ([]byte, int64, error) {
	c, err := tftp.NewClient(server)
	if err != nil {
		return nil, -1, err
	}
	c.SetTimeout(timeout)
	c.SetRetries(retries)
	if blksize != 512 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	type result struct {
		data  []byte
		tsize int64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		wt, err := c.Receive(name, mode)
		if err != nil {
			done <- result{nil, -1, err}
			return
		}
		tsize := int64(-1)
		if it, ok := wt.(tftp.IncomingTransfer); ok {
			if n, ok := it.Size(); ok {
				tsize = n
			}
		}
		var buf bytes.Buffer
		_, err = wt.WriteTo(&buf)
		done <- result{buf.Bytes(), tsize, err}
	}()
	select {
	case r := <-done:
		return r.data, r.tsize, r.err
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
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
