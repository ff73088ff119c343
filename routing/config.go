package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The strategies for asking sub-clusters about a phone no rule or learned
// route places.
const (
	// StrategyParallel asks every sub-cluster at once and takes the first
	// positive answer, preferring higher priority within Config.Grace.
	StrategyParallel = "parallel"
	// StrategySequential asks one sub-cluster after another in priority
	// order, as CUCM's alternate file locations do. It exists so the two
	// can be compared on the same fleet.
	StrategySequential = "sequential"
)

// maxGrace bounds Config.Grace: a wait that long would spend most of a
// phone's per-packet TFTP timeout (pin/tftp's default is 5s) on
// determinism alone.
const maxGrace = time.Second

// Config is the `routing:` section of config.yaml. The CLI decodes it
// with mapstructure over DefaultConfig(); New reads it once.
type Config struct {
	// Strategy is StrategyParallel or StrategySequential; "" means
	// parallel.
	Strategy string `mapstructure:"strategy"`
	// Grace is how long a parallel fan-out that already has a positive
	// answer waits for higher-priority sub-clusters still pending, so
	// that a device present in two sub-clusters is served by the same one
	// every time. 0 takes the first positive answer as it comes.
	Grace time.Duration `mapstructure:"grace"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `mapstructure:"rules"`
	// LearnTTL is how long a MAC -> sub-cluster route learned from an
	// answer is trusted without being confirmed again. 0 turns learning
	// off: every unplaced phone is a fan-out.
	LearnTTL time.Duration `mapstructure:"learn_ttl"`
	// LearnMax bounds the learned routes held; the route confirmed
	// longest ago is dropped first. 0 turns learning off.
	LearnMax int `mapstructure:"learn_max"`
	// LearnFile, when set, is where the learned routes are kept across
	// restarts: New reads it when it replaces no Router (a start, not a
	// reload), and the gateway writes it every LearnSaveInterval while
	// the routes change, and at shutdown. Its directory must exist.
	LearnFile string `mapstructure:"learn_file"`
	// Prefetch is a phone's boot set, in the order phones ask for it:
	// per-device file names with {MAC} for the MAC. A request for one of
	// them starts fetching the ones after it from the phone's sub-cluster
	// into the cache, so that the phone's next requests are hits. Only
	// where the sub-cluster is known (a rule, a learned route, or the
	// answer of a fan-out), and only on idle backend slots. Empty: off.
	Prefetch []string `mapstructure:"prefetch"`
}

// Rule sends matching requests to one sub-cluster. Exactly one of
// Client, MAC, MACPrefix and DeviceFile is set.
type Rule struct {
	// Client is a CIDR ("10.1.0.0/16", "2001:db8::/32") or a bare address
	// (a /32 or /128) matched against the requesting phone's address.
	// IPv4-mapped IPv6 clients match IPv4 rules.
	Client string `mapstructure:"client"`
	// MAC lists whole MAC addresses (12 hex digits; ':', '-' and '.'
	// separators and either case are accepted) matched against the MAC in
	// the requested file name.
	MAC []string `mapstructure:"mac"`
	// MACPrefix is 1 to 12 leading hex digits of the MAC in the file
	// name, e.g. an OUI ("00AABB"); separators as for MAC.
	MACPrefix string `mapstructure:"mac_prefix"`
	// DeviceFile names a file of devices, read by ReadDeviceFile: MACs
	// one per line ('#' starting a comment), or a CSV export of CUCM's
	// Bulk Administration ("Export Phones") read by its Device Name
	// column. New reads it once (a reload reads it again). A relative
	// path is relative to the working directory.
	DeviceFile string `mapstructure:"device_file"`
	// Subcluster is the name of the sub-cluster that serves matching
	// requests; New checks it exists.
	Subcluster string `mapstructure:"subcluster"`
}

// DefaultConfig returns the configuration used for keys config.yaml
// leaves out.
func DefaultConfig() Config {
	return Config{
		Strategy: StrategyParallel,
		Grace:    20 * time.Millisecond,
		LearnTTL: 24 * time.Hour,
		LearnMax: 100000,
		// What a phone with an ITL (CUCM 8.0 and later, Security By
		// Default) asks for at every boot, in order; CTLFile.tlv between
		// the first two is the gateway's own.
		Prefetch: []string{"CTLSEP{MAC}.tlv", "ITLSEP{MAC}.tlv", "SEP{MAC}.cnf.xml.sgn"},
	}
}

// Validate reports every problem in c at once, each naming its key
// relative to the `routing:` section. It does no I/O: device files and
// sub-cluster names are checked by New.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, args...))
	}
	switch c.Strategy {
	case "", StrategyParallel, StrategySequential:
	default:
		bad("strategy", "%q: want %s or %s", c.Strategy, StrategyParallel, StrategySequential)
	}
	if c.Grace < 0 {
		bad("grace", "must not be negative, got %s", c.Grace)
	} else if c.Grace > maxGrace {
		bad("grace", "must be at most %s, got %s", maxGrace, c.Grace)
	}
	if c.LearnTTL < 0 {
		bad("learn_ttl", "must not be negative, got %s", c.LearnTTL)
	}
	if c.LearnMax < 0 {
		bad("learn_max", "must not be negative, got %d", c.LearnMax)
	}
	for i, r := range c.Rules {
		if _, err := r.compile(fmt.Sprintf("rules[%d]", i)); err != nil {
			errs = append(errs, err)
		}
	}
	_, perrs := compilePrefetch(c.Prefetch)
	errs = append(errs, perrs...)
	return errors.Join(errs...)
}

// matcher kinds, in the words config.yaml uses.
const (
	matchClient     = "client"
	matchMAC        = "mac"
	matchMACPrefix  = "mac_prefix"
	matchDeviceFile = "device_file"
)

// compiled is a Rule parsed once; device-file MACs are filled in by New.
type compiled struct {
	kind       string
	client     netip.Prefix
	macs       map[string]struct{}
	prefix     string
	deviceFile string
	subcluster string
}

// compile parses r, reporting every problem with its full key
// ("rules[2].mac[1]: ..."); key is the rule's own ("rules[2]").
func (r Rule) compile(key string) (compiled, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		if field != "" {
			field = "." + field
		}
		errs = append(errs, fmt.Errorf(key+field+": "+format, args...))
	}
	c := compiled{subcluster: r.Subcluster, deviceFile: r.DeviceFile}
	var set []string
	if r.Client != "" {
		set = append(set, matchClient)
		c.kind = matchClient
		p, err := ParseClient(r.Client)
		if err != nil {
			bad(matchClient, "%v", err)
		}
		c.client = p
	}
	if r.MAC != nil {
		set = append(set, matchMAC)
		c.kind = matchMAC
		if len(r.MAC) == 0 {
			bad(matchMAC, "empty list")
		}
		c.macs = make(map[string]struct{}, len(r.MAC))
		for j, s := range r.MAC {
			m, err := parseMAC(s)
			if err != nil {
				bad(fmt.Sprintf("%s[%d]", matchMAC, j), "%v", err)
				continue
			}
			c.macs[m] = struct{}{}
		}
	}
	if r.MACPrefix != "" {
		set = append(set, matchMACPrefix)
		c.kind = matchMACPrefix
		p, err := parseMACPrefix(r.MACPrefix)
		if err != nil {
			bad(matchMACPrefix, "%v", err)
		}
		c.prefix = p
	}
	if r.DeviceFile != "" {
		set = append(set, matchDeviceFile)
		c.kind = matchDeviceFile
	}
	switch len(set) {
	case 0:
		bad("", "needs exactly one of client, mac, mac_prefix or device_file; none is set")
	case 1:
	default:
		bad("", "needs exactly one of client, mac, mac_prefix or device_file; %s are set", strings.Join(set, " and "))
	}
	if r.Subcluster == "" {
		bad("subcluster", "missing")
	}
	return c, errors.Join(errs...)
}

// ParseClient reads a client CIDR or a bare address, as routing rules
// and the front ends' allow and deny lists write them. The prefix is
// masked so that "10.1.2.3/16" means 10.1.0.0/16, as an admin writing it
// means; an IPv4-mapped prefix becomes the IPv4 prefix it stands for.
func ParseClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: not a CIDR: %w", s, err)
		}
		// Clients are compared unmapped, so an IPv4-mapped prefix must
		// become the IPv4 prefix it stands for or it could never match.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: not an IP address or CIDR: %w", s, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
