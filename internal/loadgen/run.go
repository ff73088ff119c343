package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ctftp/ctftp/internal/tftpclient"
)

// GetFunc reads one file, as tftpclient.Get does. Tests substitute fakes
// to drive Run without sockets; it must be safe for concurrent use.
type GetFunc func(ctx context.Context, server netip.AddrPort, name string, w io.Writer, o tftpclient.Options) (tftpclient.Result, error)

// Options are the parts of a run that are not the storm's shape. Run
// only reads them; the functions in them are called concurrently.
type Options struct {
	// Label names the run in the report and the progress output
	// ("direct tftpd-hpa", "gateway warm").
	Label string
	// MACs are the phones' MACs, one phone each; nil generates
	// Config.Phones of them from Config.MACPrefix.
	MACs []string
	// Check, when set, is given every file received and may reject its
	// bytes (KindMismatch). It is called from many goroutines at once and
	// must not keep body.
	Check func(name string, body []byte) error
	// Sequence gives a phone's requests; nil means BootSequence.
	Sequence func(mac string) []Step
	// Progress receives progress reports while the run lasts; nil means
	// none. Terminal redraws one line (a bar) instead of printing lines.
	Progress io.Writer
	Terminal bool
	// ProgressInterval is the time between reports; 0 means 200ms on a
	// terminal and 1s otherwise.
	ProgressInterval time.Duration
	// Logger gets one debug line per failed transfer; nil discards.
	Logger *slog.Logger
	// PhoneAddr gives phone i (its index in MACs) the local address its
	// requests leave from. nil means: against an IPv4 loopback server,
	// phone i uses 127.1.0.0 + i, an address of its own as a real phone
	// has, so that phones do not share one address's ports (a late
	// answer to one phone's retransmitted request could otherwise reach
	// another phone's socket on a reused port); otherwise the OS picks.
	PhoneAddr func(i int) netip.Addr
	// Get reads a file; nil means tftpclient.Get.
	Get GetFunc
	// Now is the clock latencies are measured with; nil means time.Now.
	Now func() time.Time
}

// maxExamples is how many error messages a report keeps verbatim.
const maxExamples = 5

// Run boots the phones against server, Concurrency at a time, and
// reports. It returns an error only for an invalid Config or MAC list, or
// when ctx ended before every phone finished; the report then covers the
// phones that did.
//
// Goroutines: Concurrency workers and, with Options.Progress, one
// reporter; all have ended when Run returns.
func Run(ctx context.Context, cfg Config, server netip.AddrPort, opts Options) (*Report, error) {
	macs := opts.MACs
	if macs != nil {
		cfg.Phones = len(macs)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if macs == nil {
		var err error
		if macs, err = MACs(cfg.MACPrefix, 0, cfg.Phones); err != nil {
			return nil, fmt.Errorf("loadgen: mac_prefix: %w", err)
		}
	}
	r := &runner{
		cfg:    cfg,
		server: server,
		opts:   opts,
		macs:   macs,
		topts: tftpclient.Options{
			BlockSize:  cfg.BlockSize,
			WindowSize: cfg.WindowSize,
			Timeout:    cfg.Timeout,
			Retries:    cfg.Retries,
			MaxSize:    int64(cfg.MaxFileSize),
		},
	}
	if r.opts.Get == nil {
		r.opts.Get = tftpclient.Get
	}
	if r.opts.PhoneAddr == nil {
		r.opts.PhoneAddr = func(int) netip.Addr { return netip.Addr{} }
		if a := server.Addr().Unmap(); a.Is4() && a.IsLoopback() {
			r.opts.PhoneAddr = loopbackPhone
		}
	}
	if r.opts.Sequence == nil {
		r.opts.Sequence = BootSequence
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	if r.opts.Logger == nil {
		r.opts.Logger = slog.New(slog.DiscardHandler)
	}

	cpu0 := processCPU()
	times0 := readCPUTimes()
	start := r.opts.Now()
	stopProgress := r.startProgress(start)
	workers := make([]*worker, min(cfg.Concurrency, len(macs)))
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, errors: map[Kind]int{}}
		workers[i] = w
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels(SideLabel, SideGenerator), func(ctx context.Context) { w.loop(ctx) })
		})
	}
	wg.Wait()
	elapsed := r.opts.Now().Sub(start)
	stopProgress()

	rep := r.report(workers, elapsed)
	if cpu0 > 0 {
		rep.ProcessCPU = processCPU() - cpu0
	}
	rep.Steal = stealFraction(times0, readCPUTimes())
	if err := ctx.Err(); err != nil && rep.Phones < len(macs) {
		return rep, fmt.Errorf("loadgen: stopped after %d of %d phones: %w", rep.Phones, len(macs), err)
	}
	return rep, nil
}

// runner is one Run's shared, read-only state plus the counters the
// progress reporter reads.
type runner struct {
	cfg    Config
	server netip.AddrPort
	opts   Options
	macs   []string
	topts  tftpclient.Options

	next      atomic.Int64 // index of the next phone to boot
	booted    atomic.Int64
	failed    atomic.Int64
	transfers atomic.Int64
}

// worker boots phones one after another. Only its own goroutine touches
// it until Run merges the workers.
type worker struct {
	r         *runner
	topts     tftpclient.Options // the current phone's
	buf       bytes.Buffer
	transfers []time.Duration // answered transfers (file or not found)
	boots     []time.Duration // booted phones
	phones    int
	booted    int
	files     int
	misses    int
	answered  int
	bytes     int64
	resends   int
	errors    map[Kind]int
	examples  []string
}

func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		i := w.r.next.Add(1) - 1
		if i >= int64(len(w.r.macs)) {
			return
		}
		w.boot(ctx, int(i), w.r.macs[i])
	}
}

// loopbackPhone is phone i's own address in 127.0.0.0/8 (Linux routes
// the whole block to lo): 127.1.0.0 + i, room for MaxPhones and more.
func loopbackPhone(i int) netip.Addr {
	n := 1<<16 + uint32(i)
	return netip.AddrFrom4([4]byte{127, byte(n >> 16), byte(n >> 8), byte(n)})
}

// boot runs one phone's sequence. A phone stops at its first failure, as
// a real one would go back to the start of its boot.
func (w *worker) boot(parent context.Context, i int, mac string) {
	w.phones++
	w.topts = w.r.topts
	w.topts.LocalAddr = w.r.opts.PhoneAddr(i)
	// One socket for the phone's whole boot, as in every run of a
	// side-by-side comparison, the ceiling's included: a socket opened
	// and closed per file was most of the generator's system calls, CPU
	// the server under test then lacked on a small machine.
	// When it cannot be opened, each file's Get opens its own and
	// reports the reason as that file's failure.
	w.topts.Conn, _ = tftpclient.Listen(w.r.server, w.topts.LocalAddr)
	defer func() {
		if w.topts.Conn != nil {
			w.topts.Conn.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(parent, w.r.cfg.BootTimeout)
	defer cancel()
	start := w.r.opts.Now()
	for _, st := range w.r.opts.Sequence(mac) {
		err := w.get(ctx, st.Name)
		if isNotFound(err) && st.Fallback != "" {
			w.misses++
			err = w.get(ctx, st.Fallback)
		}
		if isNotFound(err) && !st.Required {
			w.misses++
			continue
		}
		if err != nil {
			w.fail(parent, mac, err)
			return
		}
	}
	w.boots = append(w.boots, w.r.opts.Now().Sub(start))
	w.booted++
	w.r.booted.Add(1)
}

// get reads one file and records its transfer. A "not found" answer is a
// transfer like any other (the server answered); the caller decides
// whether it is a miss or a failure.
func (w *worker) get(ctx context.Context, name string) error {
	w.buf.Reset()
	var dst io.Writer = counter{&w.bytes}
	if w.r.opts.Check != nil {
		dst = &w.buf
	}
	start := w.r.opts.Now()
	res, err := w.r.opts.Get(ctx, w.r.server, name, dst, w.topts)
	d := w.r.opts.Now().Sub(start)
	w.resends += res.Retransmits
	if c := w.topts.Conn; c != nil && (res.Retransmits > 0 || (err != nil && !isNotFound(err))) {
		// A request sent twice may be served twice (a queueing server
		// answers the late copy after the first transfer ended): that
		// second transfer's DATA 1 would reach the phone's next request
		// on this socket and pass for its answer. The next file gets a
		// fresh socket, as phones take a new port per file.
		c.Close()
		w.topts.Conn, _ = tftpclient.Listen(w.r.server, w.topts.LocalAddr)
	}
	if err == nil && w.r.opts.Check != nil {
		w.bytes += int64(w.buf.Len())
		if cerr := w.r.opts.Check(name, w.buf.Bytes()); cerr != nil {
			err = fmt.Errorf("%w: %s: %w", errMismatch, name, cerr)
		}
	}
	if err == nil || isNotFound(err) {
		w.transfers = append(w.transfers, d)
		w.answered++
		w.r.transfers.Add(1)
		if err == nil {
			w.files++
		}
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return err
}

func (w *worker) fail(parent context.Context, mac string, err error) {
	k := Classify(parent, err)
	w.errors[k]++
	w.r.failed.Add(1)
	if len(w.examples) < maxExamples {
		w.examples = append(w.examples, fmt.Sprintf("phone %s: %v", mac, err))
	}
	w.r.opts.Logger.Debug("phone failed to boot", "mac", mac, "kind", k, "err", err)
}

// counter is an io.Writer that only counts, for runs without Check.
type counter struct{ n *int64 }

func (c counter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return len(p), nil
}

func (r *runner) report(workers []*worker, elapsed time.Duration) *Report {
	rep := &Report{
		Label:       r.opts.Label,
		Server:      r.server.String(),
		Concurrency: r.cfg.Concurrency,
		BlockSize:   r.cfg.BlockSize,
		WindowSize:  r.cfg.WindowSize,
		Errors:      map[Kind]int{},
		Elapsed:     elapsed,
	}
	var transfers, boots []time.Duration
	for _, w := range workers {
		rep.Phones += w.phones
		rep.Booted += w.booted
		rep.Transfers += w.answered
		rep.Files += w.files
		rep.Misses += w.misses
		rep.Bytes += w.bytes
		rep.Retransmits += w.resends
		for k, n := range w.errors {
			rep.Errors[k] += n
			rep.Failed += n
		}
		for _, e := range w.examples {
			if len(rep.Examples) < maxExamples {
				rep.Examples = append(rep.Examples, e)
			}
		}
		transfers = append(transfers, w.transfers...)
		boots = append(boots, w.boots...)
	}
	rep.Transfer = Summarize(transfers)
	rep.Boot = Summarize(boots)
	if s := elapsed.Seconds(); s > 0 {
		rep.PhonesPerSecond = float64(rep.Booted) / s
		rep.TransfersPerSecond = float64(rep.Transfers) / s
	}
	return rep
}

// processCPU is the user and system time this process has used so far,
// 0 where the system cannot say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
