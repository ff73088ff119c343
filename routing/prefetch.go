package routing

import (
	"context"
	"fmt"
	"strings"

	"github.com/ctftp/ctftp"
)

// macPlaceholder stands for the phone's MAC in routing.prefetch patterns.
const macPlaceholder = "{MAC}"

// sampleMAC checks that a pattern names a per-device file.
const sampleMAC = "0011215A1AE3"

// Prefetcher is the optional capability of a forwarder's next Source to
// fetch files before a phone asks for them; the cache has it. Prefetch
// must return at once: the fetch runs in the background, owned by the
// Prefetcher.
type Prefetcher interface {
	Prefetch(ctx context.Context, req ctftp.Request)
}

// bootPattern is one routing.prefetch entry split around {MAC}.
type bootPattern struct {
	prefix, suffix string
}

func (p bootPattern) expand(mac string) string { return p.prefix + mac + p.suffix }

// matches is strings.EqualFold(name, p.expand(mac)) without building the
// name: every request with a MAC asks, and most match nothing.
func (p bootPattern) matches(name, mac string) bool {
	if len(name) != len(p.prefix)+len(mac)+len(p.suffix) {
		return false
	}
	m := len(p.prefix)
	return strings.EqualFold(name[:m], p.prefix) && strings.EqualFold(name[m:m+len(mac)], mac) &&
		strings.EqualFold(name[m+len(mac):], p.suffix)
}

// compilePrefetch parses routing.prefetch. Each pattern must hold {MAC}
// once and name a per-device file (ctftp.DeviceMAC reads the MAC back),
// so that nothing shared is ever prefetched, and patterns must differ.
func compilePrefetch(patterns []string) ([]bootPattern, []error) {
	var out []bootPattern
	var errs []error
	seen := map[string]bool{}
	for i, p := range patterns {
		key := fmt.Sprintf("prefetch[%d]", i)
		if strings.Count(p, macPlaceholder) != 1 {
			errs = append(errs, fmt.Errorf("%s: %q: must contain %s exactly once", key, p, macPlaceholder))
			continue
		}
		before, after, _ := strings.Cut(p, macPlaceholder)
		bp := bootPattern{prefix: before, suffix: after}
		name := bp.expand(sampleMAC)
		if mac, ok := ctftp.DeviceMAC(name); !ok || mac != sampleMAC || strings.Contains(before, "/") {
			errs = append(errs, fmt.Errorf("%s: %q: not a per-device file name (CTLSEP{MAC}.tlv, ITLSEP{MAC}.tlv, SEP{MAC}.cnf.xml[.sgn|.enc.sgn], SEP{MAC}.cnf, SIP{MAC}.cnf, ...)", key, p))
			continue
		}
		if up := strings.ToUpper(name); seen[up] {
			errs = append(errs, fmt.Errorf("%s: %q: listed twice", key, p))
			continue
		} else {
			seen[up] = true
		}
		out = append(out, bp)
	}
	return out, errs
}

// prefetchAfter returns the boot-set names that follow name for the phone
// with MAC mac: the files it asks for next. nil when name is not in the
// boot set (or is its last file), so a name that is not per-device never
// starts a prefetch. Names compare ASCII case-insensitively, as the MAC
// in them does.
func (r *Router) prefetchAfter(name, mac string) []string {
	if mac == "" {
		return nil
	}
	for i, p := range r.prefetch {
		if !p.matches(name, mac) {
			continue
		}
		var next []string
		for _, q := range r.prefetch[i+1:] {
			next = append(next, q.expand(mac))
		}
		return next
	}
	return nil
}

// prefetch asks f's Prefetcher for names of sub-cluster sc, on ctx's
// values but not its cancellation: the phone's transfer may end before
// the prefetch does, which is the point.
func (f *forwarder) prefetch(ctx context.Context, req ctftp.Request, names []string, sc, mac, why string) {
	if f.pre == nil || len(names) == 0 {
		return
	}
	f.log.Debug("routing: prefetch", "mac", mac, "file", req.Name, "subcluster", sc, "prefetch", names, "why", why)
	ctx = context.WithoutCancel(ctx)
	for _, n := range names {
		f.pre.Prefetch(ctx, ctftp.Request{Name: n, Client: req.Client, Mode: "octet", Subcluster: sc})
	}
}
