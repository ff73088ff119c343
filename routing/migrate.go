package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The states of a migration wave (Wave.State).
const (
	// WaveStaged: the wave's phones keep being served from From.
	WaveStaged = "staged"
	// WaveCutover: the wave's phones are served from To.
	WaveCutover = "cutover"
	// WaveRolledBack: the wave's phones are served from From again.
	WaveRolledBack = "rolled_back"
)

// The values of Wave.Trust.
const (
	// WaveTrustCheck: a device whose new files only From's TVS could
	// vouch for blocks the cutover, like a device with no trust path.
	WaveTrustCheck = "check"
	// WaveTrustImported: the admin bulk-imported To's certificates into
	// From, so From's TVS vouches for To's signers.
	WaveTrustImported = "imported"
)

// maxRangeDevices bounds one MAC range of a wave: a wave is a batch of
// phones moved together (hundreds, a few thousand), and a range much
// larger than any wave is a typo that would have the check fetch files
// for millions of devices.
const maxRangeDevices = 65536

// Wave is one entry of the top-level `migrations:` list: a batch of
// phones moving from one sub-cluster to another. Plain data; the CLI
// decodes it with mapstructure and NewMigrations reads it once.
type Wave struct {
	// Name names the wave in logs, metrics ({wave}) and `ctftp migrate
	// check --wave`.
	Name string `mapstructure:"name"`
	// From is the sub-cluster the phones are registered on now; To the
	// one they move to.
	From string `mapstructure:"from"`
	To   string `mapstructure:"to"`
	// Devices lists MACs (any format routing's rules accept) and MAC
	// ranges "LO-HI" (two 12-digit MACs written without '-' separators,
	// LO <= HI, at most 65536 devices).
	Devices []string `mapstructure:"devices"`
	// DeviceFile is a file of MACs read as routing rules read theirs.
	// Devices and DeviceFile may both be set; the wave is their union.
	DeviceFile string `mapstructure:"device_file"`
	// State is WaveStaged, WaveCutover or WaveRolledBack.
	State string `mapstructure:"state"`
	// CutoverAt, an RFC 3339 time, cuts a staged wave over when it
	// passes; "" for none. It has no effect in the other states.
	CutoverAt string `mapstructure:"cutover_at"`
	// Trust is WaveTrustCheck (the default when empty) or
	// WaveTrustImported.
	Trust string `mapstructure:"trust"`
}

// Migrations is the compiled `migrations:` list: which wave each device
// belongs to, and where its requests go now. It is immutable but for its
// counters; a reload builds a new one. Safe for concurrent use.
type Migrations struct {
	waves []*MigrationWave
	byMAC map[string]*MigrationWave
	log   *slog.Logger
	now   func() time.Time
	set   *metrics.Set
}

// MigrationWave is one compiled wave. Its configuration fields are read
// only; the counters are safe for concurrent use.
type MigrationWave struct {
	// Index is the wave's position in `migrations:`, for config keys.
	Index int
	Name  string
	From  string
	To    string
	// State is the configured state; InForce is the one in force.
	State string
	// CutoverAt is the parsed cutover_at, zero when unset.
	CutoverAt time.Time
	// Imported is trust: imported.
	Imported bool
	// Devices are the wave's MACs, twelve upper-case hex digits, sorted.
	Devices []string

	files map[string]*metrics.Counter // by side: "from", "to"
	// cut: a staged wave's cutover_at has come and its check passed (or
	// it had passed when the configuration was compiled).
	cut atomic.Bool
	// held is why a staged wave did not cut over when its cutover_at
	// came; nil when it did not happen.
	held atomic.Pointer[string]

	seenMu sync.Mutex
	seen   *seenSet // phones that asked To since cutover; shared across reloads
}

// seenSet is the phones of a cut-over wave that have asked since the
// cutover. A reload that keeps the wave cut over keeps the set.
type seenSet struct {
	mu   sync.Mutex
	macs map[string]struct{}
}

// NewMigrations compiles waves against the configured sub-cluster names:
// it reads every device file and reports every problem at once, each
// naming its key ("migrations[1].devices[3]: ..."): a missing or
// duplicate name, an unknown sub-cluster, from = to, a bad MAC or range,
// a device in two waves, a bad state, trust or cutover_at. opts.Metrics
// receives the migration series; opts.Now is the clock of cutover_at.
func NewMigrations(waves []Wave, subclusters []string, opts Options) (*Migrations, error) {
	opts = opts.withDefaults()
	known := make(map[string]bool, len(subclusters))
	for _, sc := range subclusters {
		known[sc] = true
	}
	m := &Migrations{byMAC: map[string]*MigrationWave{}, log: opts.Logger, now: opts.Now, set: opts.Metrics}
	var errs []error
	names := map[string]int{}
	for i, wc := range waves {
		key := fmt.Sprintf("migrations[%d]", i)
		w, werrs := compileWave(wc, i, key, known, subclusters)
		errs = append(errs, werrs...)
		if w.Name != "" {
			if j, dup := names[w.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: %q is also the name of migrations[%d]", key, w.Name, j))
			}
			names[w.Name] = i
		}
		dups := 0
		for _, mac := range w.Devices {
			if other, ok := m.byMAC[mac]; ok {
				if dups < maxDeviceFileErrors {
					errs = append(errs, fmt.Errorf("%s.devices: %s is also in migrations[%d] (%s): a device moves in one wave", key, mac, other.Index, other.Name))
				}
				dups++
				continue
			}
			m.byMAC[mac] = w
		}
		if dups > maxDeviceFileErrors {
			errs = append(errs, fmt.Errorf("%s.devices: %d more devices also in other waves", key, dups-maxDeviceFileErrors))
		}
		w.files = map[string]*metrics.Counter{
			"from": m.set.GetOrCreateCounter(fmt.Sprintf(`%s{wave=%q,side="from"}`, metricMigrationFiles, w.Name)),
			"to":   m.set.GetOrCreateCounter(fmt.Sprintf(`%s{wave=%q,side="to"}`, metricMigrationFiles, w.Name)),
		}
		w.seen = &seenSet{macs: map[string]struct{}{}}
		if w.State == WaveStaged && !w.CutoverAt.IsZero() && !opts.Now().Before(w.CutoverAt) {
			// Already due: the configuration's own check (the gateway
			// runs it for every wave that CutsOver) is the one that
			// counts.
			w.cut.Store(true)
		}
		m.waves = append(m.waves, w)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func compileWave(wc Wave, index int, key string, known map[string]bool, subclusters []string) (*MigrationWave, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+"."+field+": "+format, args...))
	}
	w := &MigrationWave{Index: index, Name: wc.Name, From: wc.From, To: wc.To, State: wc.State}
	switch {
	case wc.Name == "":
		bad("name", "missing")
	case !waveNameOK(wc.Name):
		bad("name", "%q: use letters, digits, '.', '_' and '-'", wc.Name)
	}
	for _, f := range []struct{ field, sc string }{{"from", wc.From}, {"to", wc.To}} {
		switch {
		case f.sc == "":
			bad(f.field, "missing")
		case !known[f.sc]:
			bad(f.field, "%q: %v (configured: %s)", f.sc, ErrUnknownSubcluster, strings.Join(subclusters, ", "))
		}
	}
	if wc.From != "" && wc.From == wc.To {
		bad("to", "%q is also from: a wave moves phones to another sub-cluster", wc.To)
	}
	switch wc.State {
	case WaveStaged, WaveCutover, WaveRolledBack:
	case "":
		bad("state", "missing: want %s, %s or %s", WaveStaged, WaveCutover, WaveRolledBack)
	default:
		bad("state", "%q: want %s, %s or %s", wc.State, WaveStaged, WaveCutover, WaveRolledBack)
	}
	switch wc.Trust {
	case "", WaveTrustCheck:
	case WaveTrustImported:
		w.Imported = true
	default:
		bad("trust", "%q: want %s or %s", wc.Trust, WaveTrustCheck, WaveTrustImported)
	}
	if wc.CutoverAt != "" {
		t, err := time.Parse(time.RFC3339, wc.CutoverAt)
		if err != nil {
			bad("cutover_at", "%q: want an RFC 3339 time such as 2026-12-05T22:00:00Z", wc.CutoverAt)
		}
		w.CutoverAt = t
	}
	macs := map[string]struct{}{}
	for j, d := range wc.Devices {
		if err := addDevices(macs, d); err != nil {
			bad(fmt.Sprintf("devices[%d]", j), "%v", err)
		}
	}
	if wc.DeviceFile != "" {
		fm, ferrs := readDeviceFile(wc.DeviceFile)
		for _, err := range ferrs {
			bad("device_file", "%v", err)
		}
		for mac := range fm {
			macs[mac] = struct{}{}
		}
	}
	if len(macs) == 0 && len(errs) == 0 {
		bad("devices", "the wave has no devices: list MACs or ranges in devices, or set device_file")
	}
	w.Devices = make([]string, 0, len(macs))
	for mac := range macs {
		w.Devices = append(w.Devices, mac)
	}
	slices.Sort(w.Devices)
	return w, errs
}

func waveNameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// addDevices adds one devices entry, a MAC or a range, to macs.
func addDevices(macs map[string]struct{}, s string) error {
	lo, hi, err := ParseMACRange(s)
	if err != nil {
		return err
	}
	for v := lo; ; v++ {
		macs[fmt.Sprintf("%012X", v)] = struct{}{}
		if v == hi {
			return nil
		}
	}
}

// ParseMACRange reads a devices entry of a wave: a MAC in any format
// rules accept ("0011215A1AE3", "00:11:21:5a:1a:e3", "00-11-21-5A-1A-E3"),
// giving lo = hi, or a range "LO-HI" of two MACs written without '-'
// (a single '-' in the entry makes it a range). The range is inclusive,
// LO <= HI, and at most 65536 devices long.
func ParseMACRange(s string) (lo, hi uint64, err error) {
	if strings.Count(s, "-") != 1 {
		m, err := parseMAC(s)
		if err != nil {
			return 0, 0, err
		}
		v, _ := strconv.ParseUint(m, 16, 64)
		return v, v, nil
	}
	a, b, _ := strings.Cut(s, "-")
	ma, err := parseMAC(a)
	if err != nil {
		return 0, 0, fmt.Errorf("range %q: first MAC: %w", s, err)
	}
	mb, err := parseMAC(b)
	if err != nil {
		return 0, 0, fmt.Errorf("range %q: last MAC: %w", s, err)
	}
	lo, _ = strconv.ParseUint(ma, 16, 64)
	hi, _ = strconv.ParseUint(mb, 16, 64)
	switch {
	case lo > hi:
		return 0, 0, fmt.Errorf("range %q: %s comes after %s", s, ma, mb)
	case hi-lo >= maxRangeDevices:
		return 0, 0, fmt.Errorf("range %q: %d devices; a range holds at most %d (split the wave)", s, hi-lo+1, maxRangeDevices)
	}
	return lo, hi, nil
}

// Waves returns the compiled waves in configured order.
func (m *Migrations) Waves() []*MigrationWave {
	if m == nil {
		return nil
	}
	return slices.Clone(m.waves)
}

// Wave returns the wave named name, or nil.
func (m *Migrations) Wave(name string) *MigrationWave {
	for _, w := range m.Waves() {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// Lookup returns the wave of the device mac (twelve upper-case hex
// digits), or nil.
func (m *Migrations) Lookup(mac string) *MigrationWave {
	if m == nil {
		return nil
	}
	return m.byMAC[mac]
}

// InForce returns the state in force: the configured one, except that a
// staged wave is cut over once its cutover_at has come and Run found it
// safe (or it had come when the configuration was compiled).
func (w *MigrationWave) InForce() string {
	if w.State == WaveStaged && w.cut.Load() {
		return WaveCutover
	}
	return w.State
}

// Held says why a staged wave did not cut over when its cutover_at came
// ("" when that did not happen).
func (w *MigrationWave) Held() string {
	if r := w.held.Load(); r != nil {
		return *r
	}
	return ""
}

// CutsOver reports whether the wave's phones are, or are scheduled to
// be, served from To: cut over, or staged with a cutover_at. These are
// the waves a configuration may only carry when their check passes.
func (w *MigrationWave) CutsOver() bool {
	return w.State == WaveCutover || w.State == WaveStaged && !w.CutoverAt.IsZero()
}

// Side returns the sub-cluster that serves the wave's phones now and its
// side, "from" or "to".
func (w *MigrationWave) Side() (subcluster, side string) {
	if w.InForce() == WaveCutover {
		return w.To, "to"
	}
	return w.From, "from"
}

// Key is the wave's config key, "migrations[2]".
func (w *MigrationWave) Key() string { return fmt.Sprintf("migrations[%d]", w.Index) }

// served records a file served to a phone of the wave from side, and
// logs the phone's first request after the cutover.
func (m *Migrations) served(w *MigrationWave, mac, side, name string) {
	w.files[side].Inc()
	if side != "to" {
		return
	}
	w.seenMu.Lock()
	s := w.seen
	w.seenMu.Unlock()
	s.mu.Lock()
	_, old := s.macs[mac]
	if !old {
		s.macs[mac] = struct{}{}
	}
	n := len(s.macs)
	s.mu.Unlock()
	if !old {
		m.set.GetOrCreateGauge(fmt.Sprintf(`%s{wave=%q}`, metricMigrationSeen, w.Name), nil).Set(float64(n))
		m.log.Info("migration: phone's first request after cutover", "wave", w.Name, "mac", mac, "file", name, "from", w.From, "to", w.To)
	}
}

// Seen returns the number of the wave's phones that asked since the
// cutover.
func (w *MigrationWave) Seen() int {
	w.seenMu.Lock()
	s := w.seen
	w.seenMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.macs)
}

// Files returns the number of files served to the wave's phones from
// side ("from" or "to") since the gateway started.
func (w *MigrationWave) Files(side string) uint64 { return w.files[side].Get() }

// Inherit carries the phones seen since cutover over from prev, the
// Migrations of the configuration this one replaces, for every wave that
// keeps its name, sub-clusters and cutover; other waves start afresh.
// Call it before m serves.
func (m *Migrations) Inherit(prev *Migrations) {
	if m == nil || prev == nil {
		return
	}
	for _, w := range m.waves {
		p := prev.Wave(w.Name)
		if p == nil || p.From != w.From || p.To != w.To || p.InForce() != WaveCutover || w.InForce() != WaveCutover {
			continue
		}
		p.seenMu.Lock()
		s := p.seen
		p.seenMu.Unlock()
		w.seenMu.Lock()
		w.seen = s
		w.seenMu.Unlock()
	}
}

// CutoverCheck says whether a wave may cut over now: nil, or why not.
type CutoverCheck func(ctx context.Context, w *MigrationWave) error

// Run publishes ctftp_migration_devices and ctftp_migration_phones_seen
// for these waves (dropping the series of waves no longer configured),
// and when a staged wave's cutover_at comes, asks check (nil: no check)
// and cuts the wave over only if it passes; a wave that fails stays
// staged, held, until the next configuration. Each event is logged and
// published. Run returns when ctx is done; the gateway runs it for the
// configuration serving.
func (m *Migrations) Run(ctx context.Context, check CutoverCheck) {
	if m == nil {
		return
	}
	m.unpublishOthers()
	for {
		now := m.now()
		m.cutDue(ctx, now, check)
		m.publish()
		var next time.Time
		for _, w := range m.waves {
			if m.pending(w) && (next.IsZero() || w.CutoverAt.Before(next)) {
				next = w.CutoverAt
			}
		}
		if next.IsZero() || ctx.Err() != nil {
			<-ctx.Done()
			return
		}
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// pending: a staged wave waiting for its cutover_at.
func (m *Migrations) pending(w *MigrationWave) bool {
	return w.State == WaveStaged && !w.CutoverAt.IsZero() && !w.cut.Load() && w.held.Load() == nil
}

// cutDue cuts over (or holds) every pending wave whose cutover_at has
// come by now.
func (m *Migrations) cutDue(ctx context.Context, now time.Time, check CutoverCheck) {
	for _, w := range m.waves {
		if !m.pending(w) || now.Before(w.CutoverAt) {
			continue
		}
		if check != nil {
			if err := check(ctx, w); err != nil {
				if ctx.Err() != nil {
					return
				}
				reason := err.Error()
				w.held.Store(&reason)
				m.log.Error("migration: cutover_at reached, but the wave would break phones now: it stays staged until the configuration is reloaded",
					"wave", w.Name, "from", w.From, "to", w.To, "cutover_at", w.CutoverAt, "err", reason)
				continue
			}
		}
		w.cut.Store(true)
		m.log.Info("migration: cutover_at passed: the wave's phones are now served from its new sub-cluster",
			"wave", w.Name, "from", w.From, "to", w.To, "devices", len(w.Devices), "cutover_at", w.CutoverAt)
	}
}

func (m *Migrations) publish() {
	for _, w := range m.waves {
		st := w.InForce()
		for _, s := range []string{WaveStaged, WaveCutover, WaveRolledBack} {
			v := 0.0
			if s == st {
				v = float64(len(w.Devices))
			}
			m.set.GetOrCreateGauge(fmt.Sprintf(`%s{wave=%q,state=%q}`, metricMigrationDevices, w.Name, s), nil).Set(v)
		}
		m.set.GetOrCreateGauge(fmt.Sprintf(`%s{wave=%q}`, metricMigrationSeen, w.Name), nil).Set(float64(w.Seen()))
	}
}

// unpublishOthers drops the gauges of waves this configuration does not
// have, so a removed wave does not keep reporting its last state.
func (m *Migrations) unpublishOthers() {
	keep := map[string]bool{}
	for _, w := range m.waves {
		keep[w.Name] = true
	}
	for _, name := range m.set.ListMetricNames() {
		if !strings.HasPrefix(name, metricMigrationDevices+"{") && !strings.HasPrefix(name, metricMigrationSeen+"{") {
			continue
		}
		_, rest, _ := strings.Cut(name, `wave="`)
		wave, _, _ := strings.Cut(rest, `"`)
		if !keep[wave] {
			m.set.UnregisterMetric(name)
		}
	}
}

// override is the decision for a device of a wave, explaining what it
// overrides (base, the decision rules and learned routes would make).
func (m *Migrations) override(w *MigrationWave, mac string, base Decision) Decision {
	sc, side := w.Side()
	state := w.InForce()
	why := state
	switch {
	case state == WaveCutover && w.State == WaveStaged:
		why = fmt.Sprintf("cutover (cutover_at %s passed)", w.CutoverAt.Format(time.RFC3339))
	case w.Held() != "":
		why = fmt.Sprintf("staged, held at cutover_at %s: %s", w.CutoverAt.Format(time.RFC3339), w.Held())
	case state == WaveStaged && !w.CutoverAt.IsZero():
		why = fmt.Sprintf("staged until cutover_at %s", w.CutoverAt.Format(time.RFC3339))
	}
	reason := fmt.Sprintf("%s wave %s (%s, %s -> %s): mac %s -> %s (%s side); overrides %s",
		w.Key(), w.Name, why, w.From, w.To, mac, sc, side, base.Reason)
	return Decision{
		MAC:         mac,
		Kind:        Migration,
		Rule:        -1,
		Wave:        w.Name,
		Subclusters: []string{sc},
		Strategy:    base.Strategy,
		Prefetch:    base.Prefetch,
		Reason:      reason,
	}
}
