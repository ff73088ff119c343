package trust

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/itl"
)

// Fetcher reads a file from a sub-cluster's backends; *cluster.Set is
// one (its ProbeFetch counts the attempts as the gateway's own checks,
// not as phone traffic). An error wrapping ctftp.ErrNotFound means the
// sub-cluster does not have the file; any other error that it could not
// be asked.
type Fetcher interface {
	ProbeFetch(ctx context.Context, subcluster, name string) ([]byte, error)
}

// WaveSpec is what CheckWave needs of a migration wave: the phones, the
// sub-cluster they are on (From, "A") and the one they move to (To,
// "B"). A plain value.
type WaveSpec struct {
	Name     string
	From, To string
	// Devices are MACs, twelve upper-case hex digits.
	Devices []string
	// Imported says B's certificates were bulk-imported into A, so A's
	// TVS vouches for B's signers: a TVS-only path does not block.
	Imported bool
}

// Outcome is what moving one phone does to it.
type Outcome int

// The outcomes, from best to worst. The zero value is not an outcome.
const (
	// OutcomeOK: every new file is trusted through the phone's ITL chain.
	OutcomeOK Outcome = iota + 1
	// OutcomePre8: no ITL on either side: nothing to check.
	OutcomePre8
	// OutcomeTVS: only A's TVS can vouch for B's signer. Fine with
	// trust: imported, blocking with check.
	OutcomeTVS
	// OutcomeUnprovisioned: B has no files for the device.
	OutcomeUnprovisioned
	// OutcomeBroken: the phone would reject B's ITL or config: Trust List
	// Verification Failed, recoverable only by hand.
	OutcomeBroken
	// OutcomeError: a file could not be fetched or read; nothing can be
	// said.
	OutcomeError
)

var outcomeNames = map[Outcome]string{
	OutcomeOK: "ok", OutcomePre8: "pre8", OutcomeTVS: "tvs",
	OutcomeUnprovisioned: "unprovisioned", OutcomeBroken: "broken", OutcomeError: "error",
}

// Outcomes lists every outcome in table order.
var outcomeOrder = []Outcome{OutcomeOK, OutcomePre8, OutcomeTVS, OutcomeUnprovisioned, OutcomeBroken, OutcomeError}

// String returns the outcome's name as `ctftp migrate check` prints it.
func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// MarshalText writes String, for --json and /status.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Step is one file a moving phone downloads from B and what it does
// with it. A plain value.
type Step struct {
	File     string       `json:"file"`
	Decision itl.Decision `json:"-"`
	Verdict  string       `json:"verdict"` // Decision as text
	Reason   string       `json:"reason"`
}

// DeviceVerdict is the check of one phone of a wave. A plain value; the
// ITLs it keeps are shared and never modified.
type DeviceVerdict struct {
	MAC     string  `json:"mac"`
	Outcome Outcome `json:"outcome"`
	// Blocking: this device stops the wave's cutover.
	Blocking bool `json:"blocking"`
	// Holds says which ITL the phone holds now.
	Holds string `json:"holds"`
	// Steps are the files from B, in the phone's order.
	Steps []Step `json:"steps,omitempty"`
	// Reason says in one line why the outcome.
	Reason string `json:"reason"`
	// WaysOut are what unblocks a blocking device.
	WaysOut []string `json:"ways_out,omitempty"`

	// held is the ITL the phone holds now (nil: none); after the one it
	// holds once it took B's ITLSEP (held when it does not).
	held, after *itl.File
}

// WaveVerdict is CheckWave's answer for one wave. A plain value.
type WaveVerdict struct {
	Wave    WaveSpec        `json:"-"`
	Name    string          `json:"wave"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Trust   string          `json:"trust"`
	Counts  map[string]int  `json:"counts"`
	Devices []DeviceVerdict `json:"devices"`
}

// Blocking returns the number of devices that stop the cutover.
func (v WaveVerdict) Blocking() int {
	n := 0
	for _, d := range v.Devices {
		if d.Blocking {
			n++
		}
	}
	return n
}

// Errors returns the number of devices that could not be checked.
func (v WaveVerdict) Errors() int { return v.Counts[OutcomeError.String()] }

// Device returns the verdict of mac, if the wave has it.
func (v WaveVerdict) Device(mac string) (DeviceVerdict, bool) {
	i := sort.Search(len(v.Devices), func(i int) bool { return v.Devices[i].MAC >= mac })
	if i < len(v.Devices) && v.Devices[i].MAC == mac {
		return v.Devices[i], true
	}
	return DeviceVerdict{}, false
}

// CheckOptions tune CheckWave. The zero value works.
type CheckOptions struct {
	// Workers is the number of devices checked at once; 0 means 8. The
	// backends' own max_in_flight still bounds the fetches.
	Workers int
	// Progress, when set, is called after each device with the number
	// done and the total, from the checking goroutines, one at a time.
	Progress func(done, total int)
}

// CheckWave predicts, device by device and the way the phone decides,
// what moving the wave's phones from A (w.From) to B (w.To) does:
//
//  1. the ITL the phone holds now: A's ITLSEP<MAC>.tlv, else A's
//     ITLFile.tlv, else none;
//  2. B's ITLSEP<MAC>.tlv judged against it (itl.Evaluate);
//  3. B's SEP<MAC>.cnf.xml.sgn, and .enc.sgn when B has one, judged
//     against the ITL the phone holds after step 2.
//
// Files are fetched through f, every device's at once up to Workers.
// CheckWave waits for the goroutines it starts; ctx bounds the whole
// check.
func CheckWave(ctx context.Context, f Fetcher, w WaveSpec, opts CheckOptions) WaveVerdict {
	workers := opts.Workers
	if workers <= 0 {
		workers = 8
	}
	c := &waveCheck{f: f, w: w}
	out := make([]DeviceVerdict, len(w.Devices))
	var (
		next     int
		mu       sync.Mutex
		done     int
		progress sync.Mutex
		wg       sync.WaitGroup
	)
	for range min(workers, len(w.Devices)) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(w.Devices) {
					return
				}
				out[i] = c.device(ctx, w.Devices[i])
				if opts.Progress != nil {
					progress.Lock()
					done++
					opts.Progress(done, len(w.Devices))
					progress.Unlock()
				}
			}
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].MAC < out[j].MAC })
	v := WaveVerdict{Wave: w, Name: w.Name, From: w.From, To: w.To, Trust: "check", Counts: map[string]int{}, Devices: out}
	if w.Imported {
		v.Trust = "imported"
	}
	for _, d := range out {
		v.Counts[d.Outcome.String()]++
	}
	return v
}

// waveCheck is one CheckWave run: the wave and the files every device
// shares, fetched once.
type waveCheck struct {
	f Fetcher
	w WaveSpec

	onceA, onceB sync.Once
	itlA, itlB   shared
}

// shared is a side's ITLFile.tlv, fetched once for the wave.
type shared struct {
	file  *itl.File // nil: not found (or err)
	found bool
	err   error
}

func (c *waveCheck) fileITL(ctx context.Context, once *sync.Once, s *shared, sc string) shared {
	once.Do(func() {
		data, found, err := c.fetch(ctx, sc, ITLFileName)
		s.found, s.err = found, err
		if found && err == nil {
			s.file, s.err = parseITL(ITLFileName, data)
		}
	})
	return *s
}

// fetch returns a file's bytes, whether the sub-cluster has it, and any
// error other than "not found".
func (c *waveCheck) fetch(ctx context.Context, sc, name string) ([]byte, bool, error) {
	data, err := c.f.ProbeFetch(ctx, sc, name)
	switch {
	case err == nil:
		return data, true, nil
	case errors.Is(err, ctftp.ErrNotFound):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("subcluster %q: %s: %w", sc, name, err)
}

func parseITL(name string, data []byte) (*itl.File, error) {
	f, err := itl.ParseNamed(name, data)
	if err != nil {
		return nil, fmt.Errorf("%s does not parse: %w", name, err)
	}
	if f.Kind != itl.KindITL {
		return nil, fmt.Errorf("%s is a %s file, not an ITL", name, f.Kind)
	}
	return f, nil
}

// The ways out, in the words an admin acts on.
const (
	wayImport   = "bulk-export B's certificates (Cisco Unified OS Administration > Security > Bulk Certificate Management) and import them into A, so A's TVS vouches for B; then set trust: imported"
	wayRollback = `on A, set the enterprise parameter "Prepare Cluster for Rollback to pre 8.0" to True before the move and let the phones load A's blank ITL (they then trust B's ITL on first use); set it back afterwards`
	wayDelete   = "delete the ITL on each phone (Settings > Security > Trust List, or the phone's key sequence) just before it moves"
	wayProvide  = "add the device on B (Bulk Administration) so B builds its files, or take it out of the wave"
	wayRetry    = "make both sub-clusters answer, then run ctftp migrate check again"
)

func (c *waveCheck) device(ctx context.Context, mac string) DeviceVerdict {
	d := DeviceVerdict{MAC: mac}
	errOut := func(err error) DeviceVerdict {
		d.Outcome, d.Blocking, d.Reason, d.WaysOut = OutcomeError, true, err.Error(), []string{wayRetry}
		return d
	}
	w := c.w
	itlName := "ITLSEP" + mac + ".tlv"

	// 1. What the phone holds now.
	data, found, err := c.fetch(ctx, w.From, itlName)
	if err != nil {
		return errOut(err)
	}
	switch {
	case found:
		d.held, err = parseITL(itlName, data)
		if err != nil {
			return errOut(fmt.Errorf("subcluster %q: %w", w.From, err))
		}
		d.Holds = fmt.Sprintf("%s of %s", itlName, w.From)
	default:
		s := c.fileITL(ctx, &c.onceA, &c.itlA, w.From)
		switch {
		case s.err != nil:
			return errOut(fmt.Errorf("subcluster %q: %w", w.From, s.err))
		case s.found:
			d.held = s.file
			d.Holds = fmt.Sprintf("%s of %s", ITLFileName, w.From)
		default:
			d.Holds = "no ITL (" + w.From + " publishes none)"
		}
	}
	if d.held != nil && d.held.IsBlank() {
		d.Holds += ", blank (rollback)"
	}
	state := itl.PhoneState{ITL: d.held}

	// What B has for it.
	names := []string{itlName, "SEP" + mac + ".cnf.xml.sgn", "SEP" + mac + ".cnf.xml.enc.sgn", "SEP" + mac + ".cnf.xml"}
	files := make([][]byte, len(names))
	have := make([]bool, len(names))
	for i, n := range names {
		files[i], have[i], err = c.fetch(ctx, w.To, n)
		if err != nil {
			return errOut(err)
		}
	}
	if !have[0] && !have[1] && !have[2] && !have[3] {
		d.Outcome, d.Blocking, d.WaysOut = OutcomeUnprovisioned, true, []string{wayProvide}
		d.Reason = fmt.Sprintf("%s has no files for %s (no %s, no SEP%s.cnf.xml[.sgn|.enc.sgn]): the phone would find no configuration there", w.To, mac, itlName, mac)
		return d
	}

	// 2. B's ITL.
	d.after = d.held
	if have[0] {
		st := judge(state, itlName, files[0])
		d.Steps = append(d.Steps, st)
		if st.Decision == itl.Accept || st.Decision == itl.NeedsTVS {
			f, _ := itl.ParseNamed(itlName, files[0])
			d.after = f
		}
	} else {
		s := c.fileITL(ctx, &c.onceB, &c.itlB, w.To)
		if s.err != nil {
			return errOut(fmt.Errorf("subcluster %q: %w", w.To, s.err))
		}
		if d.held == nil && !s.found {
			d.Outcome, d.Reason = OutcomePre8, fmt.Sprintf("no ITL on either side (%s, %s): the phone checks no signatures", w.From, w.To)
			return d
		}
	}

	// 3. B's configuration, against the ITL the phone holds by then.
	after := itl.PhoneState{ITL: d.after}
	signed := false
	for i := 1; i <= 2; i++ {
		if have[i] {
			signed = true
			d.Steps = append(d.Steps, judge(after, names[i], files[i]))
		}
	}
	if !signed && d.after != nil && !d.after.IsBlank() {
		d.Steps = append(d.Steps, Step{File: names[3], Decision: itl.Reject, Verdict: itl.Reject.String(),
			Reason: "the phone holds an ITL, so it asks only for signed configuration files; " + w.To + " serves only the unsigned " + names[3]})
	}

	d.Outcome = OutcomeOK
	var why []string
	for _, st := range d.Steps {
		switch st.Decision {
		case itl.Reject:
			d.Outcome = OutcomeBroken
			why = append(why, st.File+": "+st.Reason)
		case itl.NeedsTVS:
			if d.Outcome == OutcomeOK {
				d.Outcome = OutcomeTVS
			}
			why = append(why, st.File+": "+st.Reason)
		}
	}
	switch d.Outcome {
	case OutcomeOK:
		d.Reason = "trusted through the phone's ITL chain"
		if d.held == nil || d.held.IsBlank() {
			d.Reason = "the phone holds no ITL, or a blank one: it trusts B's ITL on first use"
		}
	case OutcomeTVS:
		d.Reason = strings.Join(why, "; ")
		if w.Imported {
			d.Reason += " (trust: imported: A's TVS knows B's certificates)"
		} else {
			d.Blocking = true
			d.WaysOut = []string{wayImport, wayRollback, wayDelete}
		}
	case OutcomeBroken:
		d.Blocking = true
		d.Reason = strings.Join(why, "; ")
		d.WaysOut = []string{wayRollback, wayDelete}
	}
	return d
}

// judge is one step: what a phone in state does with data fetched as
// name. A file that does not parse is rejected by any phone.
func judge(state itl.PhoneState, name string, data []byte) Step {
	f, err := itl.ParseNamed(name, data)
	var v itl.Verdict
	if err != nil {
		v = itl.Verdict{Decision: itl.Reject, Reason: fmt.Sprintf("the file does not parse: %v", err)}
	} else {
		v = itl.Evaluate(state, name, f)
	}
	return Step{File: name, Decision: v.Decision, Verdict: v.Decision.String(), Reason: v.Reason}
}

// WriteSummary writes one row per wave: its sides, trust mode, and the
// devices by outcome, then whether the wave may cut over.
func WriteSummary(w io.Writer, verdicts []WaveVerdict) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "WAVE\tFROM\tTO\tTRUST\tDEVICES")
	for _, o := range outcomeOrder {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(o.String()))
	}
	fmt.Fprintln(tw, "\tBLOCKING")
	for _, v := range verdicts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d", v.Name, v.From, v.To, v.Trust, len(v.Devices))
		for _, o := range outcomeOrder {
			fmt.Fprintf(tw, "\t%d", v.Counts[o.String()])
		}
		fmt.Fprintf(tw, "\t%d\n", v.Blocking())
	}
	return tw.Flush()
}

// WriteDetail writes, for each blocking device of v, why and the ways
// out; the ways out are written once per outcome.
func (v WaveVerdict) WriteDetail(w io.Writer) {
	ways := map[Outcome][]string{}
	var order []Outcome
	for _, d := range v.Devices {
		if !d.Blocking {
			continue
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", d.MAC, d.Outcome, d.Reason)
		if d.Holds != "" && d.Outcome != OutcomeUnprovisioned && d.Outcome != OutcomeError {
			fmt.Fprintf(w, "                holds %s\n", d.Holds)
		}
		if _, ok := ways[d.Outcome]; !ok {
			order = append(order, d.Outcome)
		}
		ways[d.Outcome] = d.WaysOut
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, o := range order {
		fmt.Fprintf(w, "  ways out for %s devices:\n", o)
		for i, way := range ways[o] {
			fmt.Fprintf(w, "    %d. %s\n", i+1, way)
		}
	}
}

// MigrationError refuses a configuration that would cut a wave over
// while it would break phones (or could not be checked). Verdicts are
// the refused waves' checks. Not modified once returned.
type MigrationError struct {
	Verdicts []WaveVerdict
}

func (e *MigrationError) Error() string {
	var msgs []string
	for _, v := range e.Verdicts {
		msgs = append(msgs, v.Refusal())
	}
	return strings.Join(msgs, "\n")
}

// Refusal is the one-line reason a configuration cutting v over is
// refused, naming the blocking outcomes and a few devices.
func (v WaveVerdict) Refusal() string {
	by := map[Outcome][]string{}
	for _, d := range v.Devices {
		if d.Blocking {
			by[d.Outcome] = append(by[d.Outcome], d.MAC)
		}
	}
	var parts []string
	for _, o := range outcomeOrder {
		macs := by[o]
		if len(macs) == 0 {
			continue
		}
		shown := macs
		if len(shown) > 3 {
			shown = shown[:3]
		}
		p := fmt.Sprintf("%d %s (%s", len(macs), o, strings.Join(shown, ", "))
		if len(macs) > len(shown) {
			p += ", ..."
		}
		parts = append(parts, p+")")
	}
	return fmt.Sprintf("migrations: wave %q (%s -> %s, trust: %s) would cut over while %d of %d devices are blocked: %s; run ctftp migrate check --wave %s for each device and the ways out",
		v.Name, v.From, v.To, v.Trust, v.Blocking(), len(v.Devices), strings.Join(parts, ", "), v.Name)
}
