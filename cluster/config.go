package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ctftp/ctftp"
)

// The values of BackendConfig.AllDown: what a phone's fetch does when
// every backend of its sub-cluster is marked down. Either way a backend
// marked down is never waited on while a sibling is up, and the
// background probes (half-open, with backoff) bring it back.
const (
	// AllDownTry lets one fetch at a time through to the down backends,
	// in configured order, as a half-open trial that can bring the
	// sub-cluster back with real traffic; every other fetch fails at
	// once (ErrSubclusterDown). The phone whose fetch is the trial waits
	// for it. For a gateway with one sub-cluster, where a health check
	// that is wrong would otherwise cost every phone.
	AllDownTry = "try"
	// AllDownFail (the default) fails every fetch at once
	// (ErrSubclusterDown) and leaves the trials to the background
	// probes: one sub-cluster's outage costs the phones of the others
	// nothing, since fan-outs skip it without waiting.
	AllDownFail = "fail"
)

// DefaultTFTPPort is the port a backend written without one is asked on.
const DefaultTFTPPort = 69

// srvPrefix starts the only SRV names a backend may be written as.
const srvPrefix = "_tftp._udp."

// Limits enforced by Validate.
const (
	minBlockSize = 512   // RFC 1350's block; asking for less is meaningless
	maxBlockSize = 65464 // RFC 2348's ceiling
	maxRetries   = 10    // more only stacks timeouts past any phone's patience
	maxWindow    = 64    // RFC 7440 allows 65535; more than this only floods a lossy link
)

// Config is the `subclusters`, `dns` and `backend` sections of
// config.yaml. The CLI decodes it with mapstructure over DefaultConfig();
// New reads it once and never changes it. It is plain data: safe to share
// once nobody writes it.
type Config struct {
	// Subclusters are the CUCM clusters behind the gateway, in priority
	// order (Set.Names keeps it). None means the gateway only serves its
	// own files.
	Subclusters []SubclusterConfig `mapstructure:"subclusters"`
	// DNS says how backend names are resolved.
	DNS DNSConfig `mapstructure:"dns"`
	// Backend holds the defaults every backend is fetched with.
	Backend BackendConfig `mapstructure:"backend"`
}

// SubclusterConfig is one entry of `subclusters:`; plain data like Config.
type SubclusterConfig struct {
	// Name identifies the sub-cluster in routing rules, cache keys,
	// metrics and logs. Letters, digits, '.', '_' and '-', starting with
	// a letter or digit.
	Name string `mapstructure:"name"`
	// Version is the CUCM release ("12.5", "7.1", "14") or "auto" to
	// have it probed. It decides ITL homogeneity, so it is required.
	Version string `mapstructure:"version"`
	// Backends are the sub-cluster's TFTP servers, tried in this order
	// (healthy ones first). Each is an address ("10.1.0.10:69",
	// "[2001:db8::10]:69"; the port defaults to 69), a host name with an
	// optional port ("tftp.east.example.com", A and AAAA records) or an
	// SRV name ("_tftp._udp.east.example.com"). See ParseBackend.
	Backends []string `mapstructure:"backends"`
	// Timeout overrides backend.timeout for this sub-cluster (a WAN
	// cluster may need more). 0 means backend.timeout.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries overrides backend.retries for this sub-cluster. 0 means
	// backend.retries (so "no retries" can only be set globally).
	Retries int `mapstructure:"retries"`
	// MaxInFlight overrides backend.max_in_flight for this sub-cluster's
	// backends. 0 means backend.max_in_flight.
	MaxInFlight int `mapstructure:"max_in_flight"`
}

// DNSConfig is the `dns:` section; plain data like Config.
type DNSConfig struct {
	// Servers are the resolvers asked for backend names, in order, as
	// "ip:port" (the port defaults to 53). Empty means the nameservers
	// of /etc/resolv.conf. Names are always looked up as absolute names:
	// no search list is applied.
	Servers []string `mapstructure:"servers"`
	// Timeout bounds one query to one server.
	Timeout time.Duration `mapstructure:"timeout"`
	// MinTTL is the shortest time an answer is used before asking again,
	// and how soon a failed lookup is retried. It protects the resolvers
	// from records with TTL 0.
	MinTTL time.Duration `mapstructure:"min_ttl"`
	// MaxTTL is the longest time an answer is used, whatever its TTL, so
	// a moved backend is noticed even behind a day-long TTL.
	MaxTTL time.Duration `mapstructure:"max_ttl"`
}

// BackendConfig is the `backend:` section: how every backend is fetched
// from and health-checked. Plain data like Config.
type BackendConfig struct {
	// Timeout is how long one attempt (one packet round trip) may take
	// before it is retransmitted. A silent backend gives up after
	// Timeout × (Retries+1); its sibling is asked long before, after the
	// hedge delay (HedgeMin..HedgeMax), unless hedging is off.
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is how many times an unanswered packet is retransmitted.
	Retries int `mapstructure:"retries"`
	// MaxInFlight caps the fetches in flight to one backend; further
	// fetches wait for a slot (or try a sibling with a free one). CUCM
	// serves 5 files at a time since 11.5 and queues the rest, so more
	// only moves the queue onto CUCM.
	MaxInFlight int `mapstructure:"max_in_flight"`
	// BlockSize is the RFC 2348 blksize asked of backends: 1428 fits a
	// 1500-byte MTU with room for tunnels. Backends that ignore the
	// option are read at 512.
	BlockSize int `mapstructure:"block_size"`
	// MaxFileSize bounds a fetched file, which is held in memory whole.
	MaxFileSize ctftp.Size `mapstructure:"max_file_size"`
	// StreamOver: a file whose announced tsize (RFC 2349) is larger, and
	// that is not a signed trust list or config (checked whole before it
	// is served), is passed to the phone while it arrives instead of
	// after the last byte: a firmware load fetched lock-step across a WAN
	// takes longer than a phone waits for its first block. A backend that
	// breaks off half-way hands the rest to a sibling announcing the same
	// length (Set.carryOn). 0 never streams.
	StreamOver ctftp.Size `mapstructure:"stream_over"`
	// ProbeFile is the file an active health probe asks for. Any TFTP
	// answer, even "file not found", proves the backend alive.
	ProbeFile string `mapstructure:"probe_file"`
	// ProbeInterval is how often every backend that is up is probed. 0
	// turns active probing off (passive health still works). A backend
	// that stops answering is marked down by the first probe it leaves
	// unanswered, so it is seen within ProbeInterval + ProbeTimeout ×
	// (Retries+1): 5 s by default, with no traffic at all.
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// ProbeTimeout is a probe's per-packet timeout (Retries
	// retransmissions follow). A probe asks for one packet, so it can be
	// much shorter than Timeout.
	ProbeTimeout time.Duration `mapstructure:"probe_timeout"`
	// DownRetryMax caps the backoff of the probes of a backend marked
	// down: the first comes ProbeInterval after it went down, each
	// failure doubles the wait, up to DownRetryMax. One at a time.
	DownRetryMax time.Duration `mapstructure:"down_retry_max"`
	// MaxFails is how many consecutive failed fetches mark a backend
	// down. A probe left unanswered marks it down at once. Any answer
	// marks it up again.
	MaxFails int `mapstructure:"max_fails"`
	// AllDown is AllDownFail or AllDownTry.
	AllDown string `mapstructure:"all_down"`
	// HedgeMin and HedgeMax bound the hedge delay: when a backend has
	// not started answering a fetch within it, the next backend is asked
	// too, and the first whole answer wins (the other is cancelled). The
	// delay follows the sub-cluster's answer times (smoothed time to the
	// first block + 4 deviations, as TCP's retransmission timer), within
	// these bounds; HedgeMax is used until answers have been seen.
	// HedgeMax 0 turns hedging off.
	HedgeMin time.Duration `mapstructure:"hedge_min"`
	HedgeMax time.Duration `mapstructure:"hedge_max"`
	// SlotWait bounds the wait for a free slot when every backend of a
	// sub-cluster has max_in_flight fetches running: after it the fetch
	// fails (ErrBusy) rather than outlast a phone's patience in a queue.
	SlotWait time.Duration `mapstructure:"slot_wait"`
	// WindowSize is the RFC 7440 windowsize asked of backends (1 asks
	// for none). A backend that does not know the option ignores it and
	// is read one block per round trip; one that agrees sends WindowSize
	// blocks per ACK, which matters across a WAN.
	WindowSize int `mapstructure:"window_size"`
}

// DefaultConfig returns the configuration used for keys config.yaml
// leaves out. It has no sub-clusters.
func DefaultConfig() Config {
	return Config{
		DNS: DNSConfig{
			Timeout: 2 * time.Second,
			MinTTL:  5 * time.Second,
			MaxTTL:  5 * time.Minute,
		},
		Backend: BackendConfig{
			Timeout:       2 * time.Second,
			Retries:       2,
			MaxInFlight:   5,
			BlockSize:     1428,
			MaxFileSize:   64 << 20,
			StreamOver:    64 << 10,
			ProbeFile:     "ITLFile.tlv",
			ProbeInterval: 2 * time.Second,
			ProbeTimeout:  time.Second,
			DownRetryMax:  30 * time.Second,
			MaxFails:      2,
			AllDown:       AllDownFail,
			HedgeMin:      50 * time.Millisecond,
			HedgeMax:      time.Second,
			SlotWait:      3 * time.Second,
			WindowSize:    8,
		},
	}
}

// Names lists the sub-cluster names in configured (priority) order.
func (c Config) Names() []string {
	names := make([]string, len(c.Subclusters))
	for i, sc := range c.Subclusters {
		names[i] = sc.Name
	}
	return names
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
)

// ValidRelease reports whether v is written as a dotted release number
// ("12.5", "7.1.5"), the form of SubclusterConfig.Version besides "auto".
// The trust package reads the era from it.
func ValidRelease(v string) bool { return versionRE.MatchString(v) }

// Validate reports every problem in c at once, each message starting with
// its key path ("subclusters[1].backends[0]: ..."). It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, args...))
	}
	firstName := map[string]int{}
	for i, sc := range c.Subclusters {
		key := fmt.Sprintf("subclusters[%d]", i)
		switch {
		case sc.Name == "":
			bad(key+".name", "missing")
		case !nameRE.MatchString(sc.Name):
			bad(key+".name", "%q: use letters, digits, '.', '_' and '-', starting with a letter or digit", sc.Name)
		default:
			if j, dup := firstName[sc.Name]; dup {
				bad(key+".name", "%q is already the name of subclusters[%d]", sc.Name, j)
			} else {
				firstName[sc.Name] = i
			}
		}
		if sc.Version != "auto" && !versionRE.MatchString(sc.Version) {
			bad(key+".version", "%q: want \"auto\" or a dotted release number such as \"12.5\"", sc.Version)
		}
		if len(sc.Backends) == 0 {
			bad(key+".backends", "at least one backend is needed")
		}
		seen := map[string]int{}
		for j, s := range sc.Backends {
			bkey := fmt.Sprintf("%s.backends[%d]", key, j)
			spec, err := ParseBackend(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", bkey, err))
				continue
			}
			if k, dup := seen[spec.String()]; dup {
				bad(bkey, "%q is the same backend as backends[%d]", s, k)
				continue
			}
			seen[spec.String()] = j
		}
		if sc.Timeout < 0 {
			bad(key+".timeout", "must not be negative, got %s", sc.Timeout)
		}
		if sc.Retries < 0 || sc.Retries > maxRetries {
			bad(key+".retries", "must be between 0 and %d, got %d", maxRetries, sc.Retries)
		}
		if sc.MaxInFlight < 0 {
			bad(key+".max_in_flight", "must not be negative, got %d", sc.MaxInFlight)
		}
	}

	d := c.DNS
	for i, s := range d.Servers {
		if _, err := parseDNSServer(s); err != nil {
			bad(fmt.Sprintf("dns.servers[%d]", i), "%v", err)
		}
	}
	if d.Timeout <= 0 {
		bad("dns.timeout", "must be positive, got %s", d.Timeout)
	}
	if d.MinTTL <= 0 {
		bad("dns.min_ttl", "must be positive, got %s", d.MinTTL)
	}
	if d.MaxTTL < d.MinTTL {
		bad("dns.max_ttl", "must be at least dns.min_ttl (%s), got %s", d.MinTTL, d.MaxTTL)
	}

	b := c.Backend
	if b.Timeout <= 0 {
		bad("backend.timeout", "must be positive, got %s", b.Timeout)
	}
	if b.Retries < 0 || b.Retries > maxRetries {
		bad("backend.retries", "must be between 0 and %d, got %d", maxRetries, b.Retries)
	}
	if b.MaxInFlight < 1 {
		bad("backend.max_in_flight", "must be at least 1, got %d", b.MaxInFlight)
	}
	if b.BlockSize < minBlockSize || b.BlockSize > maxBlockSize {
		bad("backend.block_size", "must be between %d and %d, got %d", minBlockSize, maxBlockSize, b.BlockSize)
	}
	if b.MaxFileSize <= 0 {
		bad("backend.max_file_size", "must be positive, got %s", b.MaxFileSize)
	}
	if b.StreamOver < 0 {
		bad("backend.stream_over", "must not be negative (0 never streams), got %s", b.StreamOver)
	}
	if err := checkProbeFile(b.ProbeFile); err != nil {
		bad("backend.probe_file", "%v", err)
	}
	if b.ProbeInterval < 0 {
		bad("backend.probe_interval", "must not be negative (0 turns probing off), got %s", b.ProbeInterval)
	}
	if b.ProbeTimeout <= 0 {
		bad("backend.probe_timeout", "must be positive, got %s", b.ProbeTimeout)
	}
	if b.DownRetryMax < b.ProbeInterval {
		bad("backend.down_retry_max", "must be at least backend.probe_interval (%s), got %s", b.ProbeInterval, b.DownRetryMax)
	}
	if b.HedgeMin < 0 {
		bad("backend.hedge_min", "must not be negative, got %s", b.HedgeMin)
	}
	if b.HedgeMax != 0 && b.HedgeMax < b.HedgeMin {
		bad("backend.hedge_max", "must be 0 (no hedging) or at least backend.hedge_min (%s), got %s", b.HedgeMin, b.HedgeMax)
	}
	if b.SlotWait <= 0 {
		bad("backend.slot_wait", "must be positive, got %s", b.SlotWait)
	}
	if b.WindowSize < 1 || b.WindowSize > maxWindow {
		bad("backend.window_size", "must be between 1 and %d, got %d", maxWindow, b.WindowSize)
	}
	if b.MaxFails < 1 {
		bad("backend.max_fails", "must be at least 1, got %d", b.MaxFails)
	}
	switch b.AllDown {
	case AllDownTry, AllDownFail:
	default:
		bad("backend.all_down", "%q: want %q or %q", b.AllDown, AllDownTry, AllDownFail)
	}
	return errors.Join(errs...)
}

// checkProbeFile accepts a name a TFTP RRQ can carry and a backend's
// cleaned-name rules would accept: relative, no NUL, not too long.
func checkProbeFile(s string) error {
	switch {
	case s == "":
		return errors.New("missing")
	case strings.ContainsRune(s, 0):
		return errors.New("contains a NUL byte")
	case len(s) > 255:
		return fmt.Errorf("%d bytes long; at most 255", len(s))
	}
	return nil
}

// parseDNSServer reads "ip[:port]" (IPv6 in brackets when a port is
// given); the port defaults to 53. Resolvers are addresses: a resolver
// named by a name would need a resolver first.
func parseDNSServer(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return "", fmt.Errorf("%q: port 0", s)
		}
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("%q: want an IP address with an optional port, such as 10.0.0.53:53", s)
}

// BackendKind says how a backend string is turned into addresses.
type BackendKind int

// The kinds of backend string ParseBackend recognises.
const (
	// BackendAddr is an IP address and port; it never changes.
	BackendAddr BackendKind = iota + 1
	// BackendHost is a host name resolved with A and AAAA queries.
	BackendHost
	// BackendSRV is a _tftp._udp SRV name; each target is resolved with
	// A and AAAA queries and asked on the port its record gives.
	BackendSRV
)

func (k BackendKind) String() string {
	switch k {
	case BackendAddr:
		return "address"
	case BackendHost:
		return "host"
	case BackendSRV:
		return "srv"
	}
	return "BackendKind(" + strconv.Itoa(int(k)) + ")"
}

// BackendSpec is a parsed backend string. It is a value: copy and share
// it freely.
type BackendSpec struct {
	Kind BackendKind
	// Addr is the address of a BackendAddr (IPv4 unmapped, port set).
	Addr netip.AddrPort
	// Host is the lower-case name without trailing dot of a BackendHost,
	// or the whole SRV name of a BackendSRV.
	Host string
	// Port is the port of a BackendHost (DefaultTFTPPort when omitted).
	Port uint16
}

// String writes the spec in canonical form; ParseBackend reads it back to
// the same spec.
func (b BackendSpec) String() string {
	switch b.Kind {
	case BackendAddr:
		return b.Addr.String()
	case BackendHost:
		return net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	case BackendSRV:
		return b.Host
	}
	return ""
}

// ParseBackend reads one entry of a sub-cluster's backends:
//
//	10.1.0.10:69, 10.1.0.10          IPv4 address, port 69 when omitted
//	[2001:db8::10]:69, 2001:db8::10  IPv6 address, port 69 when omitted
//	tftp.east.example.com[:port]     host name: A and AAAA records
//	_tftp._udp.east.example.com      SRV name: targets and ports from DNS
//
// Unspecified, multicast and broadcast addresses, port 0, a port on an SRV
// name and names that are not valid DNS host names are errors.
func ParseBackend(s string) (BackendSpec, error) {
	if s == "" {
		return BackendSpec{}, errors.New("empty backend")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return BackendSpec{}, fmt.Errorf("%q: contains a space, control or non-ASCII character", s)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return addrSpec(s, ap.Addr(), ap.Port())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return addrSpec(s, a, DefaultTFTPPort)
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return addrSpec(s, a, DefaultTFTPPort)
		}
	}
	host, port := s, uint16(DefaultTFTPPort)
	hasPort := false
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return BackendSpec{}, fmt.Errorf("%q: not an address, host name or host:port", s)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return BackendSpec{}, fmt.Errorf("%q: port %q: want 1 to 65535", s, p)
		}
		host, port, hasPort = h, uint16(n), true
	}
	if _, err := netip.ParseAddr(host); err == nil || strings.HasPrefix(host, "[") {
		// "[::1]x" and friends: an address that did not parse above.
		return BackendSpec{}, fmt.Errorf("%q: not an address, host name or host:port", s)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkHostName(host); err != nil {
		return BackendSpec{}, fmt.Errorf("%q: %w", s, err)
	}
	if host == strings.TrimSuffix(srvPrefix, ".") {
		return BackendSpec{}, fmt.Errorf("%q: SRV name without a domain", s)
	}
	if strings.HasPrefix(host, srvPrefix) {
		if hasPort {
			return BackendSpec{}, fmt.Errorf("%q: an SRV name takes its ports from DNS; remove the port", s)
		}
		return BackendSpec{Kind: BackendSRV, Host: host}, nil
	}
	if strings.HasPrefix(host, "_") {
		return BackendSpec{}, fmt.Errorf("%q: the only SRV names supported start with %q", s, srvPrefix)
	}
	return BackendSpec{Kind: BackendHost, Host: host, Port: port}, nil
}

func addrSpec(s string, a netip.Addr, port uint16) (BackendSpec, error) {
	a = a.Unmap()
	switch {
	case port == 0:
		return BackendSpec{}, fmt.Errorf("%q: port 0", s)
	case a.IsUnspecified():
		return BackendSpec{}, fmt.Errorf("%q: unspecified address", s)
	case a.IsMulticast():
		return BackendSpec{}, fmt.Errorf("%q: multicast address", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return BackendSpec{}, fmt.Errorf("%q: broadcast address", s)
	}
	return BackendSpec{Kind: BackendAddr, Addr: netip.AddrPortFrom(a, port)}, nil
}

// checkHostName applies RFC 1123 host name rules, letting '_' through in
// labels (SRV owner names need it, and some internal zones use it). A
// name whose last label is all digits is refused: it is a mistyped IPv4
// address ("10.1.0.300") far more often than a host.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if len(h) > 253 {
		return fmt.Errorf("host name is %d bytes long; at most 253", len(h))
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label in host name")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is longer than 63 bytes", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q: %q is not allowed in a host name", l, c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return errors.New("not a valid IP address, and a host name cannot end in a numeric label")
	}
	return nil
}
