package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ctftp/ctftp/proxy"
)

// The abuse-resistance keys of config.yaml: shipped with their defaults,
// decoded from YAML and the environment, and refused with the key named.
func TestAbuseResistanceKeys(t *testing.T) {
	t.Run("shipped defaults", func(t *testing.T) {
		wd, _ := os.Getwd()
		if err := os.Chdir("../.."); err != nil {
			t.Fatal(err)
		}
		defer os.Chdir(wd)
		cfg, err := loadConfig("config.yaml")
		if err != nil {
			t.Fatal(err)
		}
		got, want := cfg.TFTP, proxy.DefaultConfig()
		got.Listen, want.Listen = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("config.yaml tftp: %+v\nDefaultConfig:     %+v", got, want)
		}
	})
	t.Run("yaml and environment", func(t *testing.T) {
		p := writeConfig(t, `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp:
  allow: ["10.0.0.0/8", "2001:db8::/32"]
  client_rate: 2.5
  client_burst: 5
  max_transfers_per_client: 3
  max_clients: 1000
  single_port: true
`)
		t.Setenv("CTFTP_TFTP_DENY", "10.9.0.0/16,::1")
		cfg, err := loadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		tc := cfg.TFTP
		if !slices.Equal(tc.Allow, []string{"10.0.0.0/8", "2001:db8::/32"}) || !slices.Equal(tc.Deny, []string{"10.9.0.0/16", "::1"}) ||
			tc.ClientRate != 2.5 || tc.ClientBurst != 5 || tc.MaxTransfersPerClient != 3 || tc.MaxClients != 1000 || !tc.SinglePort {
			t.Errorf("decoded %+v", tc)
		}
	})
	t.Run("problems name their keys", func(t *testing.T) {
		p := writeConfig(t, `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp:
  allow: ["10.0.0.0/33"]
  deny: ["phones.example.com"]
  client_rate: -1
  max_transfers_per_client: -2
  max_clients: 0
  singleport: true
`)
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitUsage {
			t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
		}
		if !strings.Contains(errOut.String(), "tftp.singleport: unknown key (did you mean tftp.single_port?)") {
			t.Errorf("stderr lacks the misspelt key:\n%s", errOut.String())
		}
		p = writeConfig(t, strings.Replace(string(mustReadFile(t, p)), "  singleport: true\n", "", 1))
		errOut.Reset()
		if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitUsage {
			t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
		}
		for _, w := range []string{"tftp.allow[0]", "tftp.deny[0]", "tftp.client_rate", "tftp.max_transfers_per_client", "tftp.max_clients"} {
			if !strings.Contains(errOut.String(), w) {
				t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
			}
		}
	})
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
