package main

import (
	"github.com/spf13/cobra"
)

// configFlag adds --config FILE, completed with YAML files.
func configFlag(c *cobra.Command, path *string) {
	c.Flags().StringVar(path, "config", "config.yaml", "config `FILE`")
	c.MarkFlagFilename("config", "yaml", "yml")
}

// adminFlag adds --admin HOST:PORT, the running gateway's admin endpoint.
func adminFlag(c *cobra.Command, admin *string) {
	c.Flags().StringVar(admin, "admin", "127.0.0.1:9069", "the gateway's admin endpoint `HOST:PORT` (admin_listen)")
}
