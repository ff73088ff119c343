package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ctftp/ctftp/proxy"
)

// statusCmd is `ctftp status [--admin HOST:PORT] [--json]`: a running
// gateway's state, from its admin endpoint. Exit 0 when it is ready,
// exitVerified (3) when it answers but is not ready (what /readyz calls
// 503: the check ran and failed), exitFailure (1) when it cannot be
// reached.
func statusCmd(a *cli) *cobra.Command {
	var admin string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [--admin HOST:PORT] [--json]",
		Short: "a running gateway's state as tables; exit 0 ready, 3 not ready, 1 unreachable",
		Long: `Show a running gateway's state as tables, the same as its status page (the
admin endpoint's /): configuration and its sha256, each sub-cluster's backends,
the trust verdict, the cache, learned routes. Exit 0 when the gateway is ready,
3 when it answers but is not ready (the reasons come first), 1 when it cannot
be reached.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return exit(runStatus(c.Context(), admin, asJSON, a.stdout, a.stderr))
		},
	}
	adminFlag(c, &admin)
	c.Flags().BoolVar(&asJSON, "json", false, "print /status as the gateway sends it")
	return c
}

func runStatus(ctx context.Context, admin string, asJSON bool, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	path := "/status/tables"
	if asJSON {
		path = "/status"
	}
	body, err := adminGet(ctx, admin, path)
	if err != nil {
		fmt.Fprintf(stderr, "ctftp status: is the gateway running with admin_listen %s? %v\n", admin, err)
		return exitFailure
	}
	if asJSON {
		var st struct {
			NotReady []string `json:"not_ready"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			fmt.Fprintf(stderr, "ctftp status: unexpected answer from %s: %v\n", admin, err)
			return exitFailure
		}
		stdout.Write(body)
		if len(st.NotReady) > 0 {
			return exitVerified
		}
		return exitOK
	}
	var v proxy.StatusView
	if err := json.Unmarshal(body, &v); err != nil {
		fmt.Fprintf(stderr, "ctftp status: unexpected answer from %s: %v\n", admin, err)
		return exitFailure
	}
	writeStatusView(stdout, v)
	if !v.Ready {
		return exitVerified
	}
	return exitOK
}

// adminGet fetches path from the admin endpoint; anything but 200 is an
// error.
func adminGet(ctx context.Context, admin, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// writeStatusView prints v as a terminal reads it: a headline with the
// readiness, then each section's facts and table. A cell in a warning or
// bad state is marked with "!" or "!!" so the marks survive a pipe.
func writeStatusView(w io.Writer, v proxy.StatusView) {
	ready := "ready"
	if !v.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "%s: %s (%s)\n", v.Title, ready, v.At.UTC().Format("2006-01-02 15:04:05Z"))
	for _, r := range v.NotReady {
		fmt.Fprintf(w, "  !! %s\n", r)
	}
	for _, s := range v.Sections {
		fmt.Fprintf(w, "\n== %s\n", s.Title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range s.Facts {
			fmt.Fprintf(tw, "  %s:\t%s\n", f.Label, marked(f.Value))
		}
		tw.Flush()
		if len(s.Columns) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "  %s\n", strings.Join(s.Columns, "\t"))
			for _, row := range s.Rows {
				cells := make([]string, len(row))
				for i, c := range row {
					cells[i] = marked(c)
				}
				fmt.Fprintf(tw, "  %s\n", strings.Join(cells, "\t"))
			}
			tw.Flush()
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  - %s\n", marked(n))
		}
	}
}

func marked(c proxy.StatusCell) string {
	text := strings.ReplaceAll(c.Text, "\t", " ")
	if text == "" {
		text = "-"
	}
	switch c.State {
	case proxy.StateWarn:
		return "! " + text
	case proxy.StateBad:
		return "!! " + text
	}
	return text
}
