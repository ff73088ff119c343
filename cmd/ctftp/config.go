package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/proxy"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// fileConfig is the shape of config.yaml. It is the only place that knows
// the file's key names; each section decodes into its package's own Config.
type fileConfig struct {
	Listen      []string                   `mapstructure:"listen"`
	HTTPListen  []string                   `mapstructure:"http_listen"`
	AdminListen string                     `mapstructure:"admin_listen"`
	Root        string                     `mapstructure:"root"`
	TFTP        proxy.Config               `mapstructure:"tftp"`
	Subclusters []cluster.SubclusterConfig `mapstructure:"subclusters"`
	DNS         cluster.DNSConfig          `mapstructure:"dns"`
	Backend     cluster.BackendConfig      `mapstructure:"backend"`
	Routing     routing.Config             `mapstructure:"routing"`
	Cache       cache.Config               `mapstructure:"cache"`
	Trust       trust.Config               `mapstructure:"trust"`
	Migrations  []routing.Wave             `mapstructure:"migrations"`
	Reload      reloadConfig               `mapstructure:"reload"`
	Log         logConfig                  `mapstructure:"log"`

	// sum is the SHA-256 of the bytes the config was decoded from (read
	// once, so the hash is of exactly what was loaded).
	sum [sha256.Size]byte

	// envWarnings names CTFTP_* environment variables that set no key
	// (a typo would otherwise be ignored in silence).
	envWarnings []string
}

// deviceFiles lists the device files the configuration reads (routing
// rules, migration waves), each once, in order.
func (c fileConfig) deviceFiles() []string {
	var out []string
	add := func(p string) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, r := range c.Routing.Rules {
		add(r.DeviceFile)
	}
	for _, wv := range c.Migrations {
		add(wv.DeviceFile)
	}
	return out
}

// reloadConfig says when `ctftp serve` reloads its config file (it
// always does on SIGHUP).
type reloadConfig struct {
	// PollInterval is how often the file is checked for a change (size,
	// modification time, then a hash of the content); 0 = SIGHUP only.
	PollInterval time.Duration `mapstructure:"poll_interval"`
}

// minPollInterval keeps a typo ("poll_interval: 5ms") from hashing the
// file in a loop.
const minPollInterval = 100 * time.Millisecond

// logConfig says how the gateway logs.
type logConfig struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is text (for people) or json (for log pipelines).
	Format string `mapstructure:"format"`
}

// configProblems is every problem found in a config, reported together so
// an admin fixes them in one pass instead of one per restart.
type configProblems []string

func (p configProblems) Error() string { return strings.Join(p, "\n") }

func defaultFileConfig() fileConfig {
	cc := cluster.DefaultConfig()
	tftp := proxy.DefaultConfig()
	// The TFTP addresses live in the top-level listen key; an empty
	// tftp.listen lets validate spot the misplaced one.
	tftp.Listen = nil
	return fileConfig{
		Listen:      []string{"0.0.0.0:69", "[::]:69"},
		HTTPListen:  []string{},
		AdminListen: "127.0.0.1:9069",
		Root:        "/var/lib/ctftp",
		TFTP:        tftp,
		DNS:         cc.DNS,
		Backend:     cc.Backend,
		Routing:     routing.DefaultConfig(),
		Cache:       cache.DefaultConfig(),
		Trust:       trust.DefaultConfig(),
		Reload:      reloadConfig{PollInterval: 5 * time.Second},
		Log:         logConfig{Level: "info", Format: "text"},
	}
}

// loadConfig reads path (YAML) with CTFTP_* environment overrides
// (CTFTP_CACHE_MAX_BYTES overrides cache.max_bytes; lists take commas) and
// returns the decoded config or configProblems listing everything wrong.
func loadConfig(path string) (fileConfig, error) {
	cfg := defaultFileConfig()
	v := viper.New()
	v.SetConfigType("yaml")
	v.SetEnvPrefix("CTFTP")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	keys := configKeys(reflect.TypeOf(cfg), "")
	for _, k := range keys {
		if err := v.BindEnv(k); err != nil {
			return cfg, fmt.Errorf("bind env for %s: %w", k, err)
		}
	}
	cfg.envWarnings = unknownEnv(os.Environ(), keys)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, configProblems{fmt.Sprintf("%s: config file not found (use --config FILE)", path)}
	} else if err != nil {
		return cfg, configProblems{fmt.Sprintf("%s: %v", path, err)}
	}
	cfg.sum = sha256.Sum256(raw)
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return cfg, configProblems{fmt.Sprintf("%s: %s", path, strings.TrimPrefix(err.Error(), "While parsing config: "))}
	}

	// Every problem is reported in one pass: a misspelt key does not hide a
	// bad value elsewhere (the misspelt key itself is simply not decoded).
	problems := configProblems(unknownKeys(v.AllSettings(), reflect.TypeOf(cfg), "", keys))
	sort.Strings(problems)
	unmarshal := v.UnmarshalExact
	if len(problems) > 0 {
		unmarshal = v.Unmarshal
	}
	hook := mapstructure.ComposeDecodeHookFunc(
		wholeNumberHook,
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.TextUnmarshallerHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)
	if err := unmarshal(&cfg, viper.DecodeHook(hook)); err != nil {
		// A value that did not decode leaves its field as it was, so
		// validating the rest would report problems the file does not have.
		return cfg, append(problems, decodeProblems(v, path, err)...)
	}
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		return cfg, problems
	}
	return cfg, nil
}

// unknownEnv names the CTFTP_ variables of env that are no key's, with
// the nearest one when it looks like a typo. Not an error: a variable may
// be meant for something else, but it is never silently a no-op.
func unknownEnv(env, keys []string) []string {
	known := map[string]reflect.Type{}
	for _, k := range keys {
		known["CTFTP_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = nil
	}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := known[name]; ok || !strings.HasPrefix(name, "CTFTP_") {
			continue
		}
		msg := fmt.Sprintf("environment %s is not a configuration key; it is ignored", name)
		if s := closest(name, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// wholeNumberHook refuses a YAML number with a fraction, or too large for
// its key, where a whole number is wanted: mapstructure's weak decoding
// would truncate "retries: 2.7" to 2 and wrap 1e20 to a negative number.
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if to == reflect.TypeOf(time.Duration(0)) {
		// YAML reads "timeout: 2" as a number, which would be 2ns: a
		// duration needs its unit (0, off for several keys, needs none).
		v := reflect.ValueOf(data)
		switch {
		case !v.IsValid() || v.Kind() == reflect.String || v.Type() == to || v.IsZero():
			return data, nil
		case v.CanInt() || v.CanUint() || v.CanFloat():
			return nil, fmt.Errorf("%v: want a duration with its unit, such as 500ms, 2s or 5m (a bare number would be nanoseconds)", data)
		}
		return nil, fmt.Errorf("%v: want a duration such as 500ms, 2s or 5m", data)
	}
	f, ok := data.(float64)
	if !ok {
		return data, nil
	}
	var lo, hi float64
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		lo, hi = math.MinInt64, math.MaxInt64
	case reflect.Int32:
		lo, hi = math.MinInt32, math.MaxInt32
	case reflect.Uint, reflect.Uint64:
		lo, hi = 0, math.MaxUint64
	case reflect.Uint32:
		lo, hi = 0, math.MaxUint32
	default:
		return data, nil
	}
	if f != math.Trunc(f) {
		return nil, fmt.Errorf("%v: want a whole number", f)
	}
	if f < lo || f >= hi {
		return nil, fmt.Errorf("%v: out of range", f)
	}
	return data, nil
}

// decodeProblems turns mapstructure's joined error into one line per
// problem, each naming the key as the file spells it and the value found,
// in the words of the rest of the config's problems (not Go's types).
func decodeProblems(v *viper.Viper, path string, err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed due to") {
			continue
		}
		out = append(out, decodeProblem(v, line))
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("%s: %v", path, err))
	}
	return out
}

// decodeLineRE matches mapstructure's "'key' what went wrong".
var decodeLineRE = regexp.MustCompile(`^'([^']*)' (.*)$`)

func decodeProblem(v *viper.Viper, line string) string {
	m := decodeLineRE.FindStringSubmatch(line)
	if m == nil {
		return line
	}
	key, what := m[1], m[2]
	// The value as written; keys inside lists (subclusters[0].x) are not
	// addressable through viper and go without it.
	val := ""
	if !strings.Contains(key, "[") {
		if x := v.Get(key); x != nil {
			val = fmt.Sprintf("%q: ", fmt.Sprint(x))
		}
	}
	switch {
	case strings.HasPrefix(what, "time: "):
		return fmt.Sprintf("%s: %swant a duration such as 500ms, 2s or 5m", key, val)
	case strings.Contains(what, "as 'bool'"):
		return fmt.Sprintf("%s: %swant true or false", key, val)
	case strings.Contains(what, "as 'int"), strings.Contains(what, "as 'uint"):
		return fmt.Sprintf("%s: %swant a whole number", key, val)
	case strings.Contains(what, "as 'float"):
		return fmt.Sprintf("%s: %swant a number", key, val)
	case strings.HasPrefix(what, "size "):
		// cache sizes name their value themselves: size "lots": want ...
		return fmt.Sprintf("%s: %s", key, strings.TrimPrefix(what, "size "))
	case strings.HasPrefix(what, "expected a map or struct, got "):
		return fmt.Sprintf("%s: want keys and values (key: value), got a %s", key,
			strings.Trim(strings.TrimPrefix(what, "expected a map or struct, got "), `"`))
	}
	return fmt.Sprintf("%s: %s", key, what)
}

func (c *fileConfig) validate() []string {
	var problems []string
	add := func(prefix string, err error) {
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				problems = append(problems, prefix+line)
			}
		}
	}
	for i, a := range c.HTTPListen {
		if _, err := netip.ParseAddrPort(a); err != nil {
			problems = append(problems, fmt.Sprintf("http_listen[%d]: %q: want IP:PORT", i, a))
		}
	}
	if c.AdminListen != "" {
		if _, err := netip.ParseAddrPort(c.AdminListen); err != nil {
			problems = append(problems, fmt.Sprintf("admin_listen: %q: want IP:PORT or \"\" for off", c.AdminListen))
		}
	}
	if c.Root == "" {
		problems = append(problems, "root: required (the directory with the gateway's own files)")
	} else if st, err := os.Stat(c.Root); err != nil {
		problems = append(problems, fmt.Sprintf("root: %v", err))
	} else if !st.IsDir() {
		problems = append(problems, fmt.Sprintf("root: %s is not a directory", c.Root))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, fmt.Sprintf("log.level: %q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		problems = append(problems, fmt.Sprintf("log.format: %q: want text or json", c.Log.Format))
	}
	if len(c.TFTP.Listen) > 0 {
		problems = append(problems, "tftp.listen: TFTP addresses go in the top-level listen key")
	}
	// The TFTP engine checks the top-level listen addresses too (empty,
	// not IP:PORT, listed twice): its listen problems name the top-level key.
	t := c.TFTP
	t.Listen = c.Listen
	if err := t.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "listen") {
				problems = append(problems, line)
			} else if line != "" {
				problems = append(problems, "tftp."+line)
			}
		}
	}
	cc := c.clusterConfig()
	ccErr := cc.Validate()
	add("", ccErr)
	add("routing.", c.Routing.Validate())
	add("cache.", c.Cache.Validate())
	add("trust.", c.Trust.Validate())
	if p := c.Reload.PollInterval; p < 0 || (p > 0 && p < minPollInterval) {
		problems = append(problems, fmt.Sprintf("reload.poll_interval: want 0 (SIGHUP only) or at least %s, got %s", minPollInterval, p))
	}
	if err := c.Routing.Validate(); err == nil && (len(cc.Subclusters) > 0 || len(c.Routing.Rules) > 0) {
		if _, err := routing.New(c.Routing, cc.Names(), routing.Options{}); err != nil {
			// Its problems name rules[i]...: under the routing key, as
			// every other problem names its key.
			for _, line := range strings.Split(err.Error(), "\n") {
				line = strings.TrimSpace(line)
				switch {
				case strings.HasPrefix(line, "rules["), strings.HasPrefix(line, "learn_file:"):
					problems = append(problems, "routing."+line)
				case strings.HasPrefix(line, "subclusters:") && ccErr != nil:
					// The sub-cluster names' own problem, reported above
					// under subclusters[i].name.
				case line != "":
					problems = append(problems, "routing: "+line)
				}
			}
		}
	}
	if len(c.Migrations) > 0 {
		_, err := c.migrations()
		add("", err)
	}
	return problems
}

// migrations compiles the migration waves against the sub-clusters
// (reading their device files), each problem naming its key.
func (c *fileConfig) migrations() (*routing.Migrations, error) {
	return routing.NewMigrations(c.Migrations, c.clusterConfig().Names(), routing.Options{})
}

func (c *fileConfig) clusterConfig() cluster.Config {
	return cluster.Config{Subclusters: c.Subclusters, DNS: c.DNS, Backend: c.Backend}
}

// configKeys lists every dotted key path of a config struct (not inside
// lists), for environment binding and unknown-key checks.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Struct && !isLeafStruct(ft) {
			keys = append(keys, configKeys(ft, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func isLeafStruct(t reflect.Type) bool {
	return t.Implements(reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem()) ||
		reflect.PointerTo(t).Implements(reflect.TypeOf((*interface{ UnmarshalText([]byte) error })(nil)).Elem())
}

// unknownKeys walks the settings map against the struct and names every
// key the struct does not have, with a suggestion for likely typos.
func unknownKeys(settings map[string]any, t reflect.Type, prefix string, all []string) []string {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag != "" && tag != "-" && f.IsExported() {
			fields[tag] = f.Type
		}
	}
	var out []string
	for k, val := range settings {
		ft, ok := fields[k]
		if !ok {
			msg := fmt.Sprintf("%s%s: unknown key", prefix, k)
			if s := closest(k, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s%s?)", prefix, s)
			}
			out = append(out, msg)
			continue
		}
		switch ft.Kind() {
		case reflect.Struct:
			if m, ok := val.(map[string]any); ok && !isLeafStruct(ft) {
				out = append(out, unknownKeys(m, ft, prefix+k+".", all)...)
			}
		case reflect.Slice:
			et := ft.Elem()
			if et.Kind() != reflect.Struct {
				continue
			}
			if list, ok := val.([]any); ok {
				for i, item := range list {
					if m, ok := item.(map[string]any); ok {
						out = append(out, unknownKeys(m, et, fmt.Sprintf("%s%s[%d].", prefix, k, i), all)...)
					}
				}
			}
		}
	}
	return out
}

// closest suggests the known key nearest to k by edit distance, if it is
// close enough to be a typo.
func closest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(k, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
