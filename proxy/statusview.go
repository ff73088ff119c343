package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/ctftp/ctftp/cache"
	"github.com/ctftp/ctftp/cluster"
	"github.com/ctftp/ctftp/trust"
)

// StatusView is GatewayStatus laid out as a person reads it: sections of
// facts and tables, each cell marked good, warning or bad. The status
// page at the admin root renders it as HTML and `ctftp status` as text
// (it gets it from /status/tables), so both show the same things from
// the one GatewayStatus that /status encodes. A plain value.
type StatusView struct {
	Title string `json:"title"`
	// At is when the view was taken.
	At time.Time `json:"at"`
	// Ready is what /readyz answers; NotReady says why not.
	Ready    bool            `json:"ready"`
	NotReady []string        `json:"not_ready,omitempty"`
	Sections []StatusSection `json:"sections"`
}

// StatusSection is one part of the view: facts (label: value), then a
// table, then notes. Any of them may be empty.
type StatusSection struct {
	// ID is stable for tests and links: "config", "subcluster-east",
	// "trust", "cache", "routing" (and "migrations" when there are any).
	ID      string         `json:"id"`
	Title   string         `json:"title"`
	Facts   []StatusFact   `json:"facts,omitempty"`
	Columns []string       `json:"columns,omitempty"`
	Rows    [][]StatusCell `json:"rows,omitempty"`
	Notes   []StatusCell   `json:"notes,omitempty"`
}

// StatusFact is one labelled value.
type StatusFact struct {
	Label string     `json:"label"`
	Value StatusCell `json:"value"`
}

// StatusCell is a value and how it reads: StateOK, StateWarn, StateBad
// or "" (neutral).
type StatusCell struct {
	Text  string `json:"text"`
	State string `json:"state,omitempty"`
}

// The states of a StatusCell.
const (
	StateOK   = "ok"
	StateWarn = "warn"
	StateBad  = "bad"
)

func cell(text string) StatusCell { return StatusCell{Text: text} }

func stateCell(text string, state string) StatusCell { return StatusCell{Text: text, State: state} }

// View lays st out; now is the time relative times are written against.
func View(st GatewayStatus, now time.Time) StatusView {
	v := StatusView{Title: "ctftp", At: now, Ready: len(st.Ready) == 0, NotReady: st.Ready}
	if st.Host != "" {
		v.Title += " on " + st.Host
	}
	v.Sections = append(v.Sections, configSection(st, now))
	for _, sc := range st.Subclusters {
		v.Sections = append(v.Sections, subclusterSection(sc, now))
	}
	v.Sections = append(v.Sections, trustSection(st.Trust))
	if len(st.Migrations) > 0 {
		v.Sections = append(v.Sections, migrationsSection(st.Migrations, now))
	}
	v.Sections = append(v.Sections, transfersSection(st.Transfers, now), cacheSection(st.Cache), routingSection(st, now))
	return v
}

// transfersSection shows how many transfers run, and the long ones with
// their progress: a load to a phone across a slow WAN.
func transfersSection(ts TransfersStatus, now time.Time) StatusSection {
	s := StatusSection{ID: "transfers", Title: "Transfers", Facts: []StatusFact{
		{"running", cell(fmt.Sprint(ts.Running))},
		{fmt.Sprintf("listed: running %s or more, the %d longest at most", statusLongTransfer, statusLongTransfers), cell(fmt.Sprint(len(ts.Long)))},
	}}
	if len(ts.Long) == 0 {
		return s
	}
	s.Columns = []string{"client", "file", "acknowledged", "running for", "time limit"}
	for _, t := range ts.Long {
		done := bytesIEC(t.Bytes)
		if t.Size > 0 {
			done = fmt.Sprintf("%s of %s (%.0f%%)", done, bytesIEC(t.Size), 100*float64(t.Bytes)/float64(t.Size))
		}
		s.Rows = append(s.Rows, []StatusCell{cell(t.Client), cell(t.File), cell(done),
			cell(now.Sub(t.Started).Round(time.Second).String()), cell(until(t.Ends, now))})
	}
	return s
}

func configSection(st GatewayStatus, now time.Time) StatusSection {
	c := st.Config
	sha := stateCell(c.SHA256, "")
	if c.SHA256 == "" {
		sha = stateCell("(not from a file)", StateWarn)
	}
	s := StatusSection{ID: "config", Title: "Configuration", Facts: []StatusFact{
		{"version", cell(st.Version)},
		{"generation", cell(fmt.Sprint(c.Generation))},
		{"sha256", sha},
		{"loaded", cell(ago(c.LoadedAt, now))},
		{"started", cell(ago(st.Started, now))},
		{"TFTP", cell(strings.Join(st.TFTP, " "))},
	}}
	r := c.LastReload
	if r == nil {
		s.Facts = append(s.Facts, StatusFact{"last reload", cell("none")})
		return s
	}
	res := stateCell("ok", StateOK)
	if !r.OK {
		res = stateCell("failed: the previous configuration keeps serving", StateBad)
	}
	res.Text = ago(r.At, now) + ", " + res.Text
	s.Facts = append(s.Facts, StatusFact{"last reload", res})
	if r.SHA256 != "" && r.SHA256 != c.SHA256 {
		s.Facts = append(s.Facts, StatusFact{"file tried", stateCell(r.SHA256, StateBad)})
	}
	for _, p := range r.Problems {
		state := StateWarn
		if !r.OK {
			state = StateBad
		}
		s.Notes = append(s.Notes, stateCell(p, state))
	}
	for _, k := range r.RestartNeeded {
		s.Notes = append(s.Notes, stateCell(k+" changed: restart needed, the old value stays", StateWarn))
	}
	return s
}

func subclusterSection(sc cluster.SubclusterStatus, now time.Time) StatusSection {
	s := StatusSection{ID: "subcluster-" + sc.Name, Title: "Sub-cluster " + sc.Name,
		Facts:   []StatusFact{{"version", cell(sc.Version)}},
		Columns: []string{"backend", "state", "last answer", "in flight", "last error"}}
	up := 0
	for _, b := range sc.Backends {
		name := b.Source
		if b.Address != "" && b.Address != b.Source {
			name += " (" + b.Address + ")"
		}
		state := stateCell("up", StateOK)
		if !b.Up {
			state = stateCell("down", StateBad)
		} else {
			up++
		}
		if b.Fails > 0 {
			state.Text += fmt.Sprintf(", %d failed", b.Fails)
			if b.Up {
				state.State = StateWarn
			}
		}
		if !b.NextTrial.IsZero() {
			state.Text += ", next trial " + until(b.NextTrial, now)
		}
		answer := cell("never")
		if !b.LastAnswer.IsZero() {
			answer = cell(fmt.Sprintf("%s, took %s", ago(b.LastAnswer, now), seconds(b.AnswerSeconds)))
		}
		last := b.LastError
		if b.LookupError != "" {
			last = strings.TrimPrefix(last+"; lookup: "+b.LookupError, "; ")
		}
		errCell := cell(last)
		if last != "" {
			errCell.State = StateWarn
		}
		s.Rows = append(s.Rows, []StatusCell{cell(name), state, answer, cell(fmt.Sprint(b.InFlight)), errCell})
	}
	health := stateCell(fmt.Sprintf("%d of %d backends up", up, len(sc.Backends)), StateOK)
	if up == 0 {
		health.State = StateBad
	} else if up < len(sc.Backends) {
		health.State = StateWarn
	}
	s.Facts = append(s.Facts, StatusFact{"health", health})
	hedge := "off"
	if sc.HedgeDelay > 0 {
		hedge = sc.HedgeDelay.Round(time.Millisecond).String()
	}
	s.Facts = append(s.Facts, StatusFact{"hedge delay", cell(hedge)})
	for _, st := range sc.Streams {
		pct := 100.0
		if st.Size > 0 {
			pct = 100 * float64(st.Arrived) / float64(st.Size)
		}
		s.Facts = append(s.Facts, StatusFact{"streaming", cell(fmt.Sprintf("%s from %s: %s of %s (%.0f%%), started %s",
			st.File, st.Backend, bytesIEC(st.Arrived), bytesIEC(st.Size), pct, ago(st.Started, now)))})
	}
	return s
}

func trustSection(t trust.TrustStatus) StatusSection {
	verdict := stateCell(t.Verdict.String(), StateOK)
	switch t.Verdict {
	case trust.VerdictMixed:
		verdict.State = StateBad
	case trust.VerdictMixedRollback, trust.VerdictUndecided:
		verdict.State = StateWarn
	}
	s := StatusSection{ID: "trust", Title: "Trust (ITL eras)",
		Facts: []StatusFact{
			{"verdict", verdict},
			{"at start", cell(t.Baseline.String())},
		},
		Columns: []string{"side", "declared", "probed", "ITL signer", "ITL MD5", "state"}}
	for _, side := range t.Sides {
		probed := "not probed"
		if side.Probed {
			probed = side.ProbedClass.String()
			if side.Stale {
				probed += " (stale)"
			}
		}
		declared := side.Declared
		if declared != "" && side.DeclaredClass != trust.ClassUnknown {
			declared += " (" + side.DeclaredClass.String() + ")"
		}
		var problems []string
		if side.Error != "" {
			problems = append(problems, side.Error)
		}
		if side.SignerChange != "" {
			problems = append(problems, "signer changed: "+side.SignerChange)
		}
		if side.Heterogeneous {
			problems = append(problems, "heterogeneous")
		}
		state := stateCell("ok", StateOK)
		if len(problems) > 0 {
			state = stateCell(strings.Join(problems, "; "), StateBad)
		} else if !side.Probed {
			state = stateCell("not classified", StateWarn)
		}
		s.Rows = append(s.Rows, []StatusCell{cell(side.Name), cell(declared), cell(probed),
			cell(side.Signer), cell(side.MD5), state})
	}
	for _, p := range t.Problems {
		s.Notes = append(s.Notes, stateCell(p, StateBad))
	}
	return s
}

func cacheSection(c *cache.Stats) StatusSection {
	s := StatusSection{ID: "cache", Title: "Cache"}
	if c == nil {
		s.Facts = []StatusFact{{"cache", cell("none: the gateway has no sub-clusters")}}
		return s
	}
	lookups := c.Hits + c.NegativeHits + c.Misses
	ratio := cell("no requests yet")
	if lookups > 0 {
		ratio = cell(fmt.Sprintf("%.1f%% (%d of %d)", 100*float64(c.Hits+c.NegativeHits)/float64(lookups), c.Hits+c.NegativeHits, lookups))
	}
	s.Facts = []StatusFact{
		{"files", cell(fmt.Sprintf("%d (%s)", c.Entries, bytesIEC(c.Bytes)))},
		{"hit ratio", ratio},
		{"not-found answers kept", cell(fmt.Sprint(c.NegEntries))},
		{"backend fetches", cell(fmt.Sprintf("%d (%d callers shared one)", c.Fills, c.FillShared))},
		{"stale served", cell(fmt.Sprint(c.StaleServed))},
		{"evictions", cell(fmt.Sprint(c.Evictions))},
	}
	return s
}

func routingSection(st GatewayStatus, now time.Time) StatusSection {
	s := StatusSection{ID: "routing", Title: "Routing", Facts: []StatusFact{
		{"learned routes", cell(fmt.Sprint(st.Learned))},
	}}
	if lf := st.LearnFile; lf != nil {
		saved := cell(fmt.Sprintf("not yet (every %s while routes change, and at the stop)", learnSaveInterval))
		switch {
		case lf.Error != "":
			saved = StatusCell{Text: "failing: " + lf.Error, State: StateWarn}
		case !lf.SavedAt.IsZero():
			unit := "routes"
			if lf.Routes == 1 {
				unit = "route"
			}
			saved = cell(fmt.Sprintf("%d %s, %s", lf.Routes, unit, ago(lf.SavedAt, now)))
		}
		s.Facts = append(s.Facts, StatusFact{"kept in", cell(lf.File)},
			StatusFact{"restored at start", cell(fmt.Sprint(lf.Restored))}, StatusFact{"last saved", saved})
	}
	if st.Routes == nil {
		return s
	}
	for _, sc := range st.Subclusters { // configured order
		if n := st.Routes.BySubcluster[sc.Name]; n > 0 {
			s.Facts = append(s.Facts, StatusFact{"to " + sc.Name, cell(fmt.Sprint(n))})
		}
	}
	if len(st.Routes.Recent) > 0 {
		s.Columns = []string{"MAC (most recent first)", "sub-cluster", "learned or confirmed"}
		for _, r := range st.Routes.Recent {
			s.Rows = append(s.Rows, []StatusCell{cell(r.MAC), cell(r.Subcluster), cell(ago(r.At, now))})
		}
	}
	return s
}

// ago writes t relative to now, to the second: "12s ago", "3h4m5s ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("%s ago (%s)", d, t.UTC().Format("2006-01-02 15:04:05Z"))
}

// until says how soon t comes ("in 3s", "now" once it has passed).
func until(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return "in " + d.String()
}

// seconds writes a duration in seconds to a precision a person reads.
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
