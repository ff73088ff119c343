package trust

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/itl"
)

// metricMigrationRejected counts files served to a phone of a cut-over
// wave from its new sub-cluster that the phone would reject (or, with
// trust: check, could only take on its old TVS's word), by wave.
const metricMigrationRejected = "ctftp_migration_rejected_total"

// WaveGuard is the Source between routing and the cache that watches
// what the phones of checked waves are served from their new sub-cluster
// (B): each ITLSEP<MAC>.tlv and signed config is judged, as CheckWave
// did, against the ITL the phone holds, so a file B changed after the
// check is seen the first time a phone gets it. It counts and logs; it
// never refuses (the phone decides, and refusing would not help it).
// Safe for concurrent use.
type WaveGuard struct {
	next   ctftp.Source
	log    *slog.Logger
	byName map[string]waveFile         // upper-case file name -> device step
	counts map[string]*metrics.Counter // by wave
}

type waveFile struct {
	wave     string
	to       string
	imported bool
	mac      string
	config   bool // a config, judged against the ITL after B's
	dev      *DeviceVerdict
	rejected *metrics.Counter
}

// NewWaveGuard watches the devices of verdicts (checks of waves whose
// phones are, or will be, served from To) in front of next.
func NewWaveGuard(next ctftp.Source, verdicts []WaveVerdict, log *slog.Logger, set *metrics.Set) *WaveGuard {
	g := &WaveGuard{next: next, log: log, byName: map[string]waveFile{}, counts: map[string]*metrics.Counter{}}
	for _, v := range verdicts {
		c := set.GetOrCreateCounter(fmt.Sprintf(`%s{wave=%q}`, metricMigrationRejected, v.Name))
		g.counts[v.Name] = c
		for i := range v.Devices {
			d := &v.Devices[i]
			base := waveFile{wave: v.Name, to: v.To, imported: v.Wave.Imported, mac: d.MAC, dev: d, rejected: c}
			g.byName["ITLSEP"+d.MAC+".TLV"] = base
			base.config = true
			g.byName["SEP"+d.MAC+".CNF.XML.SGN"] = base
			g.byName["SEP"+d.MAC+".CNF.XML.ENC.SGN"] = base
		}
	}
	return g
}

// Open serves req from next and judges what a watched phone gets from
// its new sub-cluster.
func (g *WaveGuard) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	f, err := g.next.Open(ctx, req)
	if err != nil {
		return f, err
	}
	wf, ok := g.byName[strings.ToUpper(req.Name)]
	if !ok || req.Subcluster != wf.to {
		return f, nil
	}
	data, err := readBack(f)
	if err != nil {
		f.Body.Close()
		return nil, fmt.Errorf("trust: wave %q: %q: reading for the check: %w", wf.wave, req.Name, err)
	}
	state := itl.PhoneState{ITL: wf.dev.held}
	if wf.config {
		state.ITL = wf.dev.after
	}
	st := judge(state, req.Name, data)
	if st.Decision == itl.Reject || st.Decision == itl.NeedsTVS && !wf.imported {
		wf.rejected.Inc()
		g.log.Warn("migration: a phone of the wave is served a file it would reject (Trust List Verification Failed)",
			"wave", wf.wave, "mac", wf.mac, "file", req.Name, "subcluster", req.Subcluster, "decision", st.Verdict, "reason", st.Reason)
	}
	return f, nil
}

// Rejected returns the files served to the phones of wave that they
// would reject, counted since the gateway started (0 for a wave not
// watched).
func (g *WaveGuard) Rejected(wave string) uint64 {
	if c := g.counts[wave]; c != nil {
		return c.Get()
	}
	return 0
}

// Prefetch passes a prefetch on to next when next takes them (the
// cache), so that watching the waves does not turn prefetching off for
// every phone. Prefetched files are judged when a phone is served them.
func (g *WaveGuard) Prefetch(ctx context.Context, req ctftp.Request) {
	if p, ok := g.next.(interface {
		Prefetch(context.Context, ctftp.Request)
	}); ok {
		p.Prefetch(ctx, req)
	}
}
