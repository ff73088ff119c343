package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"time"

	"github.com/spf13/cobra"
)

func cacheCmd(a *cli) *cobra.Command {
	var admin string
	purge := &cobra.Command{
		Use:   "purge [--admin HOST:PORT] [GLOB]",
		Short: "drop cached files (all, or those matching GLOB) in the running gateway",
		RunE: func(c *cobra.Command, args []string) error {
			return exit(runCachePurge(c.Context(), admin, args, a.stdout, a.stderr))
		},
	}
	adminFlag(purge, &admin)
	return group(a, "cache", "the running gateway's cache", purge)
}

// runCachePurge handles `ctftp cache purge [--admin HOST:PORT] [GLOB]`:
// the running gateway owns the cache, so the CLI asks its admin endpoint.
func runCachePurge(ctx context.Context, admin string, pos []string, stdout, stderr io.Writer) int {
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "ctftp cache purge: at most one GLOB (quote it: 'SEP*.cnf.xml.sgn')")
		return exitUsage
	}
	glob := ""
	if len(pos) == 1 {
		glob = pos[0]
	}
	if _, err := path.Match(glob, ""); err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: GLOB %q: %v (path.Match syntax: * ? [a-z] \\)\n", glob, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := "http://" + admin + "/cache/purge?glob=" + url.QueryEscape(glob)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: %v\n", err)
		return exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp cache purge: is the gateway running with admin_listen %s? %v\n", admin, err)
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
