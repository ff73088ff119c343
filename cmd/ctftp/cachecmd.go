package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runCache handles `ctftp cache purge [--admin HOST:PORT] [GLOB]`: the
// running gateway owns the cache, so the CLI asks its admin endpoint.
func runCache(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "purge" {
		fmt.Fprintln(stderr, "usage: ctftp cache purge [--admin HOST:PORT] [GLOB]")
		return exitUsage
	}
	fs := newFlagSet("cache purge", stderr)
	admin := fs.String("admin", "127.0.0.1:9069", "the gateway's admin endpoint `HOST:PORT` (admin_listen)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "ctftp cache purge: at most one GLOB (quote it: 'SEP*.cnf.xml.sgn')")
		return exitUsage
	}
	glob := ""
	if len(pos) == 1 {
		glob = pos[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := "http://" + *admin + "/cache/purge?glob=" + url.QueryEscape(glob)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: %v\n", err)
		return exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: is the gateway running with admin_listen %s? %v\n", *admin, err)
		return exitFailure
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "ctftp cache purge: %s: %s", resp.Status, body)
		return exitFailure
	}
	var out struct {
		Glob    string `json:"glob"`
		Removed int    `json:"removed"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: unexpected answer: %s\n", body)
		return exitFailure
	}
	what := out.Glob
	if what == "" {
		what = "everything"
	}
	fmt.Fprintf(stdout, "purged %d cache entries matching %s\n", out.Removed, what)
	return exitOK
}
