package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/cluster"
)

// The shipped example must load as shipped, from the repo root, where the
// README runs it.
func TestShippedConfigLoads(t *testing.T) {
	wd, _ := os.Getwd()
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	cfg, err := loadConfig("config.yaml")
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if len(cfg.Listen) == 0 || cfg.Root == "" {
		t.Fatalf("config.yaml decoded to %+v", cfg)
	}
	for _, l := range cfg.Listen {
		if !strings.Contains(l, "6969") {
			t.Errorf("listen %q: the example must use the unprivileged port 6969", l)
		}
	}
	// Every key is written out with its default: the file is where users
	// and the README read the defaults, so it must not drift from the code.
	if def := cluster.DefaultConfig().Backend; cfg.Backend != def {
		t.Errorf("config.yaml backend section %+v, defaults %+v", cfg.Backend, def)
	}
	def := defaultFileConfig()
	// Lists the file shows as [] decode empty, the defaults leave nil.
	cfg.DNS.Servers, cfg.Routing.Rules, cfg.Cache.Classes = nil, nil, nil
	if len(def.DNS.Servers)+len(def.Routing.Rules)+len(def.Cache.Classes) != 0 {
		t.Fatal("a default list is no longer empty: compare it here")
	}
	cfg.TFTP.Listen = nil // the top-level listen key, on port 6969 in the example
	for _, s := range []struct {
		key       string
		file, def any
	}{
		{"tftp", cfg.TFTP, def.TFTP}, {"dns", cfg.DNS, def.DNS}, {"routing", cfg.Routing, def.Routing},
		{"cache", cfg.Cache, def.Cache}, {"trust", cfg.Trust, def.Trust}, {"reload", cfg.Reload, def.Reload},
		{"log", cfg.Log, def.Log}, {"http_listen", cfg.HTTPListen, def.HTTPListen},
		{"admin_listen", cfg.AdminListen, def.AdminListen}, {"migrations", len(cfg.Migrations), 0},
	} {
		if !reflect.DeepEqual(s.file, s.def) {
			t.Errorf("config.yaml %s:\n  %+v\nthe default:\n  %+v", s.key, s.file, s.def)
		}
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	p := filepath.Join(dir, "config.yaml")
	body = strings.ReplaceAll(body, "ROOT", root)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigProblemsAllReported(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // each must appear on its own line
	}{
		{"misspelt keys with suggestions", `
listen: ["127.0.0.1:6969"]
root: ROOT
cache:
  max_byte: 1MiB
lisen: ["x"]
`, []string{"cache.max_byte: unknown key (did you mean cache.max_bytes?)", "lisen: unknown key (did you mean listen?)"}},
		{"unknown key inside a list item", `
listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - name: east
    version: "12.5"
    backend: ["127.0.0.1:69"]
`, []string{"subclusters[0].backend: unknown key (did you mean subclusters[0].backends?)"}},
		{"several value problems at once", `
listen: ["not-an-address"]
root: /nonexistent/ctftp-root
log: {level: loud, format: text}
tftp: {max_blksize: 7}
`, []string{"listen[0]", "root:", "log.level", "tftp.max_blksize"}},
		{"bad size and duration", `
listen: ["127.0.0.1:6969"]
root: ROOT
cache: {max_bytes: lots}
tftp: {timeout: soon}
`, []string{"max_bytes", "timeout"}},
		{"every bad migrations entry with its own message", `
listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - {name: east, version: "12.5", backends: ["127.0.0.1:69"]}
  - {name: west, version: "12.5", backends: ["127.0.0.2:69"]}
migrations:
  - {name: w1, from: east, to: north, devices: ["0011215A1AE3"], state: staged}
  - {name: w2, from: west, to: west, devices: ["0011215A1AE4"], state: cutover}
  - {name: w3, from: east, to: west, devices: ["00AABB0000FF-00AABB000000", "0011215A1AE3"], state: staged}
`, []string{
			`migrations[0].to: "north": unknown sub-cluster (configured: east, west)`,
			`migrations[1].to: "west" is also from: a wave moves phones to another sub-cluster`,
			`migrations[2].devices[0]: range "00AABB0000FF-00AABB000000": 00AABB0000FF comes after 00AABB000000`,
			`migrations[2].devices: 0011215A1AE3 is also in migrations[0] (w1): a device moves in one wave`,
		}},
		{"misspelt migrations key", `
listen: ["127.0.0.1:6969"]
root: ROOT
migrations:
  - {name: w1, from: east, to: west, devices: ["0011215A1AE3"], sate: staged}
`, []string{"migrations[0].sate: unknown key (did you mean migrations[0].state?)"}},
		{"bad migrations values", `
listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - {name: east, version: "12.5", backends: ["127.0.0.1:69"]}
  - {name: west, version: "12.5", backends: ["127.0.0.2:69"]}
migrations:
  - {name: w4, from: east, to: west, devices: ["0011215A1AE5"], state: moved, trust: maybe, cutover_at: "friday"}
`, []string{
			`migrations[0].state: "moved": want staged, cutover or rolled_back`,
			`migrations[0].trust: "maybe": want check or imported`,
			`migrations[0].cutover_at: "friday": want an RFC 3339 time such as 2026-12-05T22:00:00Z`,
		}},
		{"a misspelt key does not hide a bad value", `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp: {alow: ["10.0.0.0/8"], client_rate: -1}
`, []string{
			"tftp.alow: unknown key (did you mean tftp.allow?)",
			"tftp.client_rate: must be 0 (no limit) or more, got -1",
		}},
		{"values of the wrong type, in the file's words", `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp: {client_rate: fast, single_port: maybe, max_transfers: many}
backend: {hedge_max: soon}
cache: {ttl: 5s, max_bytes: lots}
routing: {rules: [east]}
`, []string{
			`tftp.client_rate: "fast": want a number`,
			`tftp.single_port: "maybe": want true or false`,
			`tftp.max_transfers: "many": want a whole number`,
			`backend.hedge_max: "soon": want a duration such as 500ms, 2s or 5m`,
			`cache.ttl: want keys and values (key: value), got a string`,
			`cache.max_bytes: "lots": want a non-negative whole number`,
			`routing.rules[0]: want keys and values (key: value), got a string`,
		}},
		{"a duration without its unit is not nanoseconds", `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp: {timeout: 2, transfer_timeout: true}
backend: {probe_interval: 0, hedge_max: 0}
cache: {ttl: {device: 5}}
`, []string{
			"tftp.timeout: 2: want a duration with its unit, such as 500ms, 2s or 5m (a bare number would be nanoseconds)",
			"tftp.transfer_timeout: true: want a duration such as 500ms, 2s or 5m",
			"cache.ttl.device: 5: want a duration with its unit",
		}},
		{"learned routes and transfer time: this session's keys", `
listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - {name: east, version: "12.5", backends: ["127.0.0.1:69"]}
routing: {learn_file: /nonexistent/ctftp/routes.txt}
tftp: {transfer_min_rate: -5, transfer_timeout: 5m}
`, []string{
			`routing.learn_file: "/nonexistent/ctftp/routes.txt": its directory "/nonexistent/ctftp" must exist`,
			"tftp.transfer_min_rate: must be 0 (transfer_timeout bounds every transfer) or more, got -5",
		}},
		{"fractions and overflows are not truncated or wrapped", `
listen: ["127.0.0.1:6969"]
root: ROOT
tftp: {retries: 2.7, max_transfers: 99999999999999999999}
backend: {max_in_flight: 3.0}
`, []string{
			"tftp.retries: 2.7: want a whole number",
			"tftp.max_transfers: 1e+20: out of range",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.yaml)
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
		})
	}
}

// A bad listen address is one problem, named by the key the file has
// (the TFTP engine's own check of the same list must not add a second line
// under tftp.listen, a key users are told not to write).
func TestListenProblemOnce(t *testing.T) {
	p := writeConfig(t, "listen: [\"69\", \"127.0.0.1:6969\", \"127.0.0.1:6969\"]\nroot: ROOT\n")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
	}
	got := errOut.String()
	if strings.Count(got, "listen[0]") != 1 || strings.Count(got, "listen[2]") != 1 || strings.Contains(got, "tftp.listen") {
		t.Errorf("want listen[0] and listen[2] once each, no tftp.listen:\n%s", got)
	}
}

// A duplicate sub-cluster name is one problem, under subclusters[i].name:
// routing's own check of the names must not add a second line.
func TestDuplicateSubclusterOnce(t *testing.T) {
	p := writeConfig(t, `listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - {name: east, version: "14", backends: ["127.0.0.1:10069"]}
  - {name: east, version: "14", backends: ["127.0.0.1:10169"]}
`)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
	}
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		if !strings.HasPrefix(l, "config: warning:") { // a CTFTP_ variable of the test's environment
			problems = append(problems, l)
		}
	}
	if len(problems) != 1 || problems[0] != `config: subclusters[1].name: "east" is already the name of subclusters[0]` {
		t.Errorf("stderr:\n%s", errOut.String())
	}
}

func TestEnvOverride(t *testing.T) {
	p := writeConfig(t, "listen: [\"127.0.0.1:6969\"]\nroot: ROOT\n")
	t.Setenv("CTFTP_CACHE_MAX_BYTES", "1GiB")
	t.Setenv("CTFTP_LISTEN", "127.0.0.1:7000,[::1]:7000")
	t.Setenv("CTFTP_LOG_FORMAT", "json")
	cfg, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.MaxBytes != 1<<30 {
		t.Errorf("cache.max_bytes = %d, want 1GiB from CTFTP_CACHE_MAX_BYTES", cfg.Cache.MaxBytes)
	}
	if len(cfg.Listen) != 2 || cfg.Listen[1] != "[::1]:7000" {
		t.Errorf("listen = %v, want the two addresses of CTFTP_LISTEN", cfg.Listen)
	}
	if cfg.Log.Format != "json" {
		t.Errorf("log.format = %q", cfg.Log.Format)
	}
	for _, w := range cfg.envWarnings {
		if strings.Contains(w, "CTFTP_CACHE_MAX_BYTES") || strings.Contains(w, "CTFTP_LISTEN") || strings.Contains(w, "CTFTP_LOG_FORMAT") {
			t.Errorf("warning for a variable that sets a key: %q", w)
		}
	}
	t.Setenv("CTFTP_CACHE_MAX_BYTES", "huge")
	if _, err := loadConfig(p); err == nil || !strings.Contains(err.Error(), "max_bytes") {
		t.Errorf("bad env value: %v, want a problem naming max_bytes", err)
	}
}

// A CTFTP_ variable that sets no key is named on stderr, with the nearest
// key's variable: a typo in a systemd drop-in would otherwise do nothing
// in silence. It is not an error.
func TestEnvTypoWarned(t *testing.T) {
	p := writeConfig(t, "listen: [\"127.0.0.1:6969\"]\nroot: ROOT\n")
	t.Setenv("CTFTP_TFTP_ALOW", "10.0.0.0/8")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, want 0\n%s", code, errOut.String())
	}
	want := "config: warning: environment CTFTP_TFTP_ALOW is not a configuration key; it is ignored (did you mean CTFTP_TFTP_ALLOW?)"
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
	}
}

func TestUsageExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"version"}, exitOK},
		{[]string{"serve", "--config", "/nonexistent/config.yaml"}, exitUsage},
		{[]string{"get"}, exitUsage},
		{[]string{"get", "--blksize", "7", "x"}, exitUsage},
		{[]string{"route", "--client", "not-an-ip", "x"}, exitUsage},
		{[]string{"migrate"}, exitUsage},
		{[]string{"migrate", "frob"}, exitUsage},
		{[]string{"migrate", "check", "--config", "/nonexistent/config.yaml"}, exitUsage},
		{[]string{"migrate", "check", "extra"}, exitUsage},
		{[]string{"migrate", "--help"}, exitOK},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errOut); code != tc.code {
			t.Errorf("ctftp %v: exit %d, want %d\n%s", tc.args, code, tc.code, errOut.String())
		}
	}
}

func TestRouteExplains(t *testing.T) {
	p := writeConfig(t, `
listen: ["127.0.0.1:6969"]
root: ROOT
subclusters:
  - {name: east, version: "12.5", backends: ["127.0.0.1:10069"]}
  - {name: west, version: "12.5", backends: ["127.0.0.1:10169"]}
routing:
  learn_file: ROUTES
  rules:
    - {client: "10.1.0.0/16", subcluster: east}
    - {mac_prefix: "00AABB", subcluster: west}
`)
	os.WriteFile(filepath.Join(filepath.Dir(p), "root", "ITLFile.tlv"), []byte("x"), 0o644)
	// The gateway's saved learned routes: route explains them too.
	routes := filepath.Join(filepath.Dir(p), "routes.txt")
	cfg, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(cfg, []byte("ROUTES"), []byte(routes), 1), 0o644)
	os.WriteFile(routes, []byte("0011215A1AE9 west "+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)+"\n"), 0o644)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"ITLFile.tlv"}, []string{"served locally"}},
		{[]string{"--client", "10.1.2.3", "SEP0011215A1AE3.cnf.xml.sgn"}, []string{"mac       0011215A1AE3", "rules[0]", "ask       east\n"}},
		{[]string{"ITLSEP00AABB000001.tlv"}, []string{"rules[1]", "west", "127.0.0.1:10169",
			"prefetch  SEP00AABB000001.cnf.xml.sgn (at once, on idle backend slots)"}},
		{[]string{"SEP001122334455.cnf.xml.sgn"}, []string{"east, west (parallel)"}},
		{[]string{"CTLSEP001122334455.tlv"}, []string{"prefetch  ITLSEP001122334455.tlv, SEP001122334455.cnf.xml.sgn (once a sub-cluster has answered"}},
		{[]string{"../../etc/passwd"}, []string{"access violation"}},
		{[]string{"ITLSEP0011215A1AE9.tlv"}, []string{"learned route 0011215A1AE9 -> west (confirmed 1h0m", "ask       west\n"}},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"route", "--config", p}, tc.args...), &out, &errOut)
		if code != exitOK {
			t.Fatalf("route %v: exit %d\n%s", tc.args, code, errOut.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("route %v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}
