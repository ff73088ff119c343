package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/routing"
)

// The keys of issue 14 (cache.ttl.device, cache.classes,
// routing.prefetch): shipped with their defaults, decoded from YAML and
// the environment, and refused with the key named.
func TestFreshnessKeys(t *testing.T) {
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
		got, want := cfg.Cache, cache.DefaultConfig()
		if len(got.Classes) == 0 && len(want.Classes) == 0 {
			got.Classes, want.Classes = nil, nil // "classes: []" in the file
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("config.yaml cache: %+v\nDefaultConfig:      %+v", got, want)
		}
		if got, want := cfg.Routing.Prefetch, routing.DefaultConfig().Prefetch; !slices.Equal(got, want) {
			t.Errorf("config.yaml routing.prefetch %q, default %q", got, want)
		}
	})
	t.Run("yaml and environment", func(t *testing.T) {
		p := writeConfig(t, `
listen: ["127.0.0.1:6969"]
root: ROOT
cache:
  ttl: {device: 2s}
  classes: [{glob: "XMLDefault.cnf.xml", class: device}]
routing:
  prefetch: []
`)
		cfg, err := loadConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Cache.TTL.Device != 2*time.Second || !reflect.DeepEqual(cfg.Cache.Classes, []cache.ClassRule{{Glob: "XMLDefault.cnf.xml", Class: "device"}}) ||
			len(cfg.Routing.Prefetch) != 0 {
			t.Errorf("decoded cache %+v, prefetch %q", cfg.Cache, cfg.Routing.Prefetch)
		}
		t.Setenv("CTFTP_ROUTING_PREFETCH", "ITLSEP{MAC}.tlv,SEP{MAC}.cnf.xml")
		if cfg, err = loadConfig(p); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Routing.Prefetch, []string{"ITLSEP{MAC}.tlv", "SEP{MAC}.cnf.xml"}) {
			t.Errorf("from the environment: prefetch %q", cfg.Routing.Prefetch)
		}
	})
	t.Run("problems name their keys", func(t *testing.T) {
		p := writeConfig(t, `
listen: ["127.0.0.1:6969"]
root: ROOT
cache:
  ttl: {device: -1s}
  classes: [{glob: "[", class: phone}]
routing:
  prefetch: ["XMLDefault.cnf.xml"]
`)
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"validate", "--offline", "--config", p}, &out, &errOut); code != exitUsage {
			t.Fatalf("exit %d, want %d\n%s", code, exitUsage, errOut.String())
		}
		for _, want := range []string{"cache.ttl.device:", "cache.classes[0].glob:", "cache.classes[0].class:", "routing.prefetch[0]:"} {
			if !strings.Contains(errOut.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
			}
		}
	})
}
