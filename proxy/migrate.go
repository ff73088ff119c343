package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/routing"
	"github.com/ctftp/ctftp/trust"
)

// MigrationError is the refusal of a configuration that would cut a
// wave over while it would break phones: Start returns it, a reload
// fails with it, and the old configuration keeps serving.
type MigrationError = trust.MigrationError

// The wave guard sits between the router and the cache: it must pass the
// router's prefetches on.
var _ routing.Prefetcher = (*trust.WaveGuard)(nil)

// buildMigrations compiles cfg's waves for gen and checks every wave
// whose phones are, or are scheduled to be, served from its new
// sub-cluster: one with a blocking device refuses the configuration.
func (g *Gateway) buildMigrations(ctx context.Context, gen *generation, prev *generation) error {
	m, err := routing.NewMigrations(gen.cfg.Migrations, gen.clusters.Names(), routing.Options{Logger: g.log, Metrics: g.metrics})
	if err != nil {
		return err
	}
	var checked, refused []trust.WaveVerdict
	for _, w := range m.Waves() {
		if !w.CutsOver() {
			continue
		}
		start := time.Now()
		v := trust.CheckWave(ctx, gen.clusters, WaveSpec(w), trust.CheckOptions{})
		g.log.Info("migration: wave checked", "wave", w.Name, "from", w.From, "to", w.To, "state", w.State,
			"devices", len(v.Devices), "blocking", v.Blocking(), "counts", v.Counts, "duration", time.Since(start))
		checked = append(checked, v)
		if v.Blocking() > 0 {
			refused = append(refused, v)
		}
	}
	if len(refused) > 0 {
		return &MigrationError{Verdicts: refused}
	}
	if prev != nil {
		m.Inherit(prev.migrations)
	}
	gen.migrations, gen.verdicts = m, checked
	gen.recheck = func(ctx context.Context, w *routing.MigrationWave) error {
		// The configuration was checked when it loaded; what counts is
		// whether the phones will trust B at the moment they move.
		v := trust.CheckWave(ctx, gen.clusters, WaveSpec(w), trust.CheckOptions{})
		g.log.Info("migration: wave checked at its cutover_at", "wave", w.Name, "devices", len(v.Devices), "blocking", v.Blocking(), "counts", v.Counts)
		if v.Blocking() > 0 {
			return errors.New(v.Refusal())
		}
		return nil
	}
	return nil
}

// waveSource is what the router forwards to: next (the cache), behind a
// trust.WaveGuard when some wave was checked.
func (g *Gateway) waveSource(gen *generation, next ctftp.Source) ctftp.Source {
	if len(gen.verdicts) == 0 {
		return next
	}
	gen.waveGuard = trust.NewWaveGuard(next, gen.verdicts, g.log, g.metrics)
	return gen.waveGuard
}

// WaveSpec is what trust checks of a compiled wave.
func WaveSpec(w *routing.MigrationWave) trust.WaveSpec {
	return trust.WaveSpec{Name: w.Name, From: w.From, To: w.To, Devices: w.Devices, Imported: w.Imported}
}

// MigrationStatus is one wave in /status. A plain value.
type MigrationStatus struct {
	Wave string `json:"wave"`
	From string `json:"from"`
	To   string `json:"to"`
	// State is the configured state; InForce the one in force now (a
	// staged wave whose cutover_at passed is cut over).
	State     string     `json:"state"`
	InForce   string     `json:"in_force"`
	CutoverAt *time.Time `json:"cutover_at,omitempty"`
	Trust     string     `json:"trust"`
	Devices   int        `json:"devices"`
	// PhonesSeen are the wave's phones that asked since the cutover.
	PhonesSeen int `json:"phones_seen"`
	// FilesFrom and FilesTo are the files served to the wave's phones
	// from each side since the gateway started.
	FilesFrom uint64 `json:"files_from"`
	FilesTo   uint64 `json:"files_to"`
	// Rejected are files served from To that a phone of the wave would
	// reject, seen since the check at load.
	Rejected uint64 `json:"rejected"`
	// Held says why a staged wave did not cut over at its cutover_at.
	Held string `json:"held,omitempty"`
	// Check is the verdict count by outcome of the check at load, for
	// waves that cut over (nil for the others: `ctftp migrate check`).
	Check map[string]int `json:"check,omitempty"`
}

func (gen *generation) migrationStatus() []MigrationStatus {
	var out []MigrationStatus
	for _, w := range gen.migrations.Waves() {
		s := MigrationStatus{Wave: w.Name, From: w.From, To: w.To, State: w.State, InForce: w.InForce(),
			Trust: routing.WaveTrustCheck, Devices: len(w.Devices), PhonesSeen: w.Seen(), FilesFrom: w.Files("from"), FilesTo: w.Files("to"), Held: w.Held()}
		if w.Imported {
			s.Trust = routing.WaveTrustImported
		}
		if !w.CutoverAt.IsZero() {
			t := w.CutoverAt
			s.CutoverAt = &t
		}
		for _, v := range gen.verdicts {
			if v.Name == w.Name {
				s.Check = v.Counts
			}
		}
		if gen.waveGuard != nil {
			s.Rejected = gen.waveGuard.Rejected(w.Name)
		}
		out = append(out, s)
	}
	return out
}

// migrationsSection is the status page's table of waves: where each
// wave's phones are served from now and what they have been served.
func migrationsSection(ms []MigrationStatus, now time.Time) StatusSection {
	s := StatusSection{ID: "migrations", Title: "Migration waves",
		Columns: []string{"wave", "from -> to", "in force", "trust", "devices", "phones seen", "files from", "files to", "would reject", "check at load"}}
	for _, m := range ms {
		state := cell(m.InForce)
		switch {
		case m.Held != "":
			state = stateCell(m.InForce+" (held at cutover_at)", StateWarn)
		case m.InForce == routing.WaveStaged && m.CutoverAt != nil:
			state = cell(fmt.Sprintf("staged, cutover_at in %s", m.CutoverAt.Sub(now).Round(time.Second)))
		case m.InForce == routing.WaveCutover:
			state = stateCell(m.InForce, StateOK)
		}
		rejected := cell(fmt.Sprint(m.Rejected))
		if m.Rejected > 0 {
			rejected.State = StateBad
		}
		check := cell("-")
		if m.Check != nil {
			// Outcomes best first, as ctftp migrate check lists them; the
			// worst one present colours the cell.
			var parts []string
			for _, o := range []struct{ name, state string }{
				{"ok", StateOK}, {"pre8", StateOK}, {"tvs", StateWarn}, {"unprovisioned", StateBad}, {"broken", StateBad}, {"error", StateBad},
			} {
				if n := m.Check[o.name]; n > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", n, o.name))
					if check.State != StateBad && (o.state != StateOK || check.State == "") {
						check.State = o.state
					}
				}
			}
			check.Text = strings.Join(parts, ", ")
		}
		s.Rows = append(s.Rows, []StatusCell{cell(m.Wave), cell(m.From + " -> " + m.To), state, cell(m.Trust),
			cell(fmt.Sprint(m.Devices)), cell(fmt.Sprint(m.PhonesSeen)), cell(fmt.Sprint(m.FilesFrom)), cell(fmt.Sprint(m.FilesTo)), rejected, check})
		if m.Held != "" {
			s.Notes = append(s.Notes, stateCell(fmt.Sprintf("wave %s did not cut over at its cutover_at: %s", m.Wave, m.Held), StateWarn))
		}
		if m.Rejected > 0 {
			s.Notes = append(s.Notes, stateCell(fmt.Sprintf("wave %s: %d files served from %s that its phones would reject (see the log)", m.Wave, m.Rejected, m.To), StateBad))
		}
	}
	return s
}
