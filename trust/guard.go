package trust

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ctftp/ctftp"
	"github.com/ctftp/ctftp/itl"
)

// The values of Config.OnChange.
const (
	// PolicyWarn logs, counts and reports (/readyz) an alarmed
	// sub-cluster and keeps forwarding to it: phones decide.
	PolicyWarn = "warn"
	// PolicyRefuse also stops forwarding to it (requests fail as
	// unavailable, its cached files are dropped) until it agrees again
	// or, after a signer change, until the next reload.
	PolicyRefuse = "refuse"
)

// The values of Config.ForwardedPolicy.
const (
	// ForwardServe serves a forwarded file a phone would reject (it is
	// logged and counted): the phone decides, and refusing it changes
	// nothing for a phone that would reject it anyway.
	ForwardServe = "serve"
	// ForwardRefuse answers such a file with TFTP error 2 (access
	// violation) instead, and nothing of it is cached.
	ForwardRefuse = "refuse"
)

// Errors of the trust guard; both are refusals by policy.
var (
	// ErrUntrusted: a forwarded file a phone would reject, refused under
	// forwarded_policy "refuse". It is ctftp.ErrDenied: the gateway,
	// not the backend, refuses it, and a phone must not take it for an
	// outage and retry.
	ErrUntrusted = fmt.Errorf("trust: a phone would reject this file: %w", ctftp.ErrDenied)
	// ErrAlarmed: a sub-cluster whose ITL signer changed or that turned
	// heterogeneous, not forwarded to under on_change "refuse". It is
	// ctftp.ErrUnavailable: for the phone its cluster is unreachable.
	ErrAlarmed = fmt.Errorf("trust: sub-cluster not trusted now: %w", ctftp.ErrUnavailable)
)

// Config is the `trust:` section of config.yaml: the ITL trust
// guard. Plain data, safe to copy; the zero value stands for
// DefaultConfig in GatewayConfig.
type Config struct {
	// ProbeInterval is how often every sub-cluster's ITLFile.tlv (and the
	// root's) is probed again after start-up. 0 probes only at start and
	// at each reload.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// ProbeTimeout bounds one sub-cluster's probe (all its backends, in
	// order). A start-up or reload takes at most about this long for the
	// probes.
	ProbeTimeout time.Duration `mapstructure:"probe_timeout"`
	// OnChange is PolicyWarn or PolicyRefuse: what happens to a
	// sub-cluster whose ITL signer changes or that turns heterogeneous.
	// Either way it is logged, counted, reported by /readyz, and (signer
	// change) its cached files are purged.
	OnChange string `mapstructure:"on_change"`
	// CheckForwarded checks each .tlv and .sgn fetched from a sub-cluster
	// against that sub-cluster's ITL the way a phone holding it would.
	CheckForwarded bool `mapstructure:"check_forwarded"`
	// ForwardedPolicy is ForwardServe or ForwardRefuse: what happens to
	// a forwarded file a phone would reject.
	ForwardedPolicy string `mapstructure:"forwarded_policy"`
}

// DefaultConfig returns the defaults documented in config.yaml:
// refusing is opt-in, because a gateway that stops serving on a
// certificate change can strand phones that would have coped.
func DefaultConfig() Config {
	return Config{
		ProbeInterval:   5 * time.Minute,
		ProbeTimeout:    10 * time.Second,
		OnChange:        PolicyWarn,
		CheckForwarded:  true,
		ForwardedPolicy: ForwardServe,
	}
}

// Validate reports every problem in c at once, each starting with its
// key relative to the `trust:` section.
func (c Config) Validate() error {
	var errs []error
	if c.ProbeInterval < 0 {
		errs = append(errs, fmt.Errorf("probe_interval: must not be negative (0 probes only at start and reload), got %s", c.ProbeInterval))
	} else if c.ProbeInterval > 0 && c.ProbeInterval < time.Second {
		errs = append(errs, fmt.Errorf("probe_interval: %s would probe the backends continuously; use at least 1s, or 0", c.ProbeInterval))
	}
	if c.ProbeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("probe_timeout: must be positive, got %s", c.ProbeTimeout))
	}
	switch c.OnChange {
	case PolicyWarn, PolicyRefuse:
	default:
		errs = append(errs, fmt.Errorf("on_change: %q: want %q or %q", c.OnChange, PolicyWarn, PolicyRefuse))
	}
	switch c.ForwardedPolicy {
	case ForwardServe, ForwardRefuse:
	default:
		errs = append(errs, fmt.Errorf("forwarded_policy: %q: want %q or %q", c.ForwardedPolicy, ForwardServe, ForwardRefuse))
	}
	return errors.Join(errs...)
}

// State is what the guard needs of the watcher (a fake in tests).
type State interface {
	Sub(name string) SubTrust
}

var _ State = (*Watcher)(nil)

// Guard is the Source between the cache and the cluster Set: it
// stops requests to alarmed sub-clusters under PolicyRefuse and checks
// each fetched trust list and signed file with itl.Evaluate. Sitting
// below the cache, it checks each file once per fill, not per phone. It
// is safe for concurrent use.
type Guard struct {
	next  ctftp.Source
	cfg   Config
	state State
	log   *slog.Logger
	m     map[string]*trustMetrics // by sub-cluster; read-only after construction
}

// trustMetrics are one sub-cluster's series:
//
//	ctftp_trust_forwarded_checked_total{subcluster}   forwarded .tlv/.sgn files checked
//	ctftp_trust_forwarded_rejected_total{subcluster}  of those, files a phone would reject
//	ctftp_trust_refused_total{subcluster}             requests not forwarded: on_change refuse
type trustMetrics struct {
	checked, rejected, refused *metrics.Counter
}

func NewGuard(next ctftp.Source, cfg Config, state State, subclusters []string, log *slog.Logger, set *metrics.Set) *Guard {
	g := &Guard{next: next, cfg: cfg, state: state, log: log, m: map[string]*trustMetrics{}}
	for _, sc := range subclusters {
		g.m[sc] = &trustMetrics{
			checked:  set.GetOrCreateCounter(fmt.Sprintf(`ctftp_trust_forwarded_checked_total{subcluster=%q}`, sc)),
			rejected: set.GetOrCreateCounter(fmt.Sprintf(`ctftp_trust_forwarded_rejected_total{subcluster=%q}`, sc)),
			refused:  set.GetOrCreateCounter(fmt.Sprintf(`ctftp_trust_refused_total{subcluster=%q}`, sc)),
		}
	}
	return g
}

// Open refuses alarmed sub-clusters (PolicyRefuse), fetches, and checks
// what it fetched.
func (g *Guard) Open(ctx context.Context, req ctftp.Request) (*ctftp.File, error) {
	st := g.state.Sub(req.Subcluster)
	m := g.m[req.Subcluster]
	if st.Alarm != "" && g.cfg.OnChange == PolicyRefuse && m != nil {
		m.refused.Inc()
		return nil, fmt.Errorf("trust: subcluster %q: %s: %w", req.Subcluster, st.Alarm, ErrAlarmed)
	}
	f, err := g.next.Open(ctx, req)
	if err != nil || !g.cfg.CheckForwarded || m == nil || !signedName(req.Name) {
		return f, err
	}
	if !st.Known {
		// Which ITL its phones hold is not known yet: a guess would
		// only make noise.
		g.log.Debug("trust: forwarded file not checked: sub-cluster not classified yet", "subcluster", req.Subcluster, "file", req.Name)
		return f, nil
	}
	data, err := readBack(f)
	if err != nil {
		f.Body.Close()
		return nil, fmt.Errorf("trust: subcluster %q: %q: reading for the check: %w", req.Subcluster, req.Name, err)
	}
	v := evaluate(st, req.Name, data)
	m.checked.Inc()
	switch v.Decision {
	case itl.Reject:
		m.rejected.Inc()
		g.log.Warn("trust: forwarded file a phone would reject (Trust List Verification Failed)",
			"subcluster", req.Subcluster, "file", req.Name, "backend", f.Backend, "reason", v.Reason, "policy", g.cfg.ForwardedPolicy)
		if g.cfg.ForwardedPolicy == ForwardRefuse {
			f.Body.Close()
			return nil, fmt.Errorf("trust: subcluster %q: %q: %s: %w", req.Subcluster, req.Name, v.Reason, ErrUntrusted)
		}
	case itl.NeedsTVS:
		g.log.Info("trust: forwarded file needs the phone's TVS", "subcluster", req.Subcluster, "file", req.Name, "reason", v.Reason)
	default:
		g.log.Debug("trust: forwarded file checked", "subcluster", req.Subcluster, "file", req.Name, "reason", v.Reason)
	}
	return f, nil
}

// evaluate predicts what a phone of the sub-cluster, holding its current
// ITL (none for pre-8.0), does with data. A file that does not even parse
// is rejected by any phone.
func evaluate(st SubTrust, name string, data []byte) itl.Verdict {
	f, err := itl.ParseNamed(name, data)
	if err != nil {
		return itl.Verdict{Decision: itl.Reject, Reason: fmt.Sprintf("the file does not parse: %v", err)}
	}
	return itl.Evaluate(itl.PhoneState{ITL: st.ITL}, name, f)
}

// readBack reads f's body whole and leaves f readable from the start:
// rewound when the body can seek (the cluster Set's always can), else
// replaced by a reader over the bytes read.
func readBack(f *ctftp.File) ([]byte, error) {
	data, err := io.ReadAll(f.Body)
	if err != nil {
		return nil, err
	}
	if s, ok := f.Body.(io.Seeker); ok {
		if _, err := s.Seek(0, io.SeekStart); err == nil {
			return data, nil
		}
	}
	f.Body.Close()
	f.Body = memBody{bytes.NewReader(data)}
	f.Size = int64(len(data))
	return data, nil
}

// memBody is a seekable in-memory Body.
type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// signedName says whether a file name is one phones check signatures on:
// trust lists (ITL*/CTL*.tlv) and signed files (.sgn, .enc.sgn, and the
// .sha512 variant of signed loads).
func signedName(name string) bool {
	base := strings.ToUpper(path.Base(name))
	switch {
	case strings.HasSuffix(base, ".TLV"):
		return strings.HasPrefix(base, "ITL") || strings.HasPrefix(base, "CTL")
	case strings.HasSuffix(base, ".SGN"), strings.HasSuffix(base, ".SHA512"):
		return true
	}
	return false
}
