package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ctftp/ctftp/itl"
)

// Tree names besides the sub-clusters' own.
const (
	// Root is the gateway's own files: the central ITLFile.tlv (a
	// central server has one; phones holding an ITLSEP<MAC>.tlv never
	// ask for it) and a README.txt, so every phone request is a miss.
	Root = "root"
	// Direct is one server serving every phone's files itself.
	Direct = "direct"
	// Devices holds <sub-cluster>.txt, its phones' MACs one per line.
	Devices = "devices"
	// Central names the gateway's PKI and ITL.
	Central = "central"
)

// Phone is one phone of the fleet.
type Phone struct {
	MAC        string // 12 upper-case hex digits
	Subcluster string
	Model      string
}

// Options say what to generate.
type Options struct {
	// Subclusters are the sub-clusters' names in priority order
	// (default DefaultSubclusters()).
	Subclusters []string
	// Phones are the phones; each one's Subcluster must be one of
	// Subclusters. Spread makes them from a list of MACs.
	Phones []Phone
	// KeyBits is the RSA key size (default 2048, what CUCM uses; tests
	// take 1024 to stay quick under the race detector).
	KeyBits int
}

// DefaultSubclusters returns the world's sub-clusters, in priority
// order. A function, so no caller can change what the others see.
func DefaultSubclusters() []string { return []string{"east", "west"} }

// Spread puts phone i in sub-cluster i mod len(subclusters), with models
// taken in turn from a few common ones.
func Spread(macs, subclusters []string) []Phone {
	models := []string{"Cisco 8845", "Cisco 7841", "Cisco 8865", "Cisco 7821"}
	out := make([]Phone, len(macs))
	for i, mac := range macs {
		out[i] = Phone{MAC: mac, Subcluster: subclusters[i%len(subclusters)], Model: models[i%len(models)]}
	}
	return out
}

// PKI is one cluster's keys: the SAST (ITLRecovery) that signs its
// trust lists, the CallManager (CCM+TFTP) key that signs its configs,
// and its TVS.
type PKI struct {
	SAST, CCM, TVS *itl.Signer
}

// NewPKI makes a cluster's three keys, named as CUCM names them.
func NewPKI(name string, bits int) (*PKI, error) {
	var p PKI
	var err error
	if p.SAST, err = itl.NewSigner("ITLRecovery_"+name, bits); err != nil {
		return nil, fmt.Errorf("pki %s: SAST: %w", name, err)
	}
	if p.CCM, err = itl.NewSigner("cucm-"+name+".example.com", bits); err != nil {
		return nil, fmt.Errorf("pki %s: CallManager: %w", name, err)
	}
	if p.TVS, err = itl.NewSigner("tvs-"+name+".example.com", bits); err != nil {
		return nil, fmt.Errorf("pki %s: TVS: %w", name, err)
	}
	return &p, nil
}

// World is a generated fleet. Read-only once Generate returns.
type World struct {
	subclusters []string
	phones      []Phone
	pki         map[string]*PKI   // Central and each sub-cluster
	itls        map[string][]byte // Central and each sub-cluster
	ctl         []byte
	// trees maps a tree (Root, Direct, a sub-cluster) to its files.
	trees map[string]map[string][]byte
	// phoneFiles maps every name a phone may receive through the
	// gateway to its bytes.
	phoneFiles map[string][]byte
}

// Generate makes the world: fresh keys, lists and signed configs.
//
// No phone has a CTLSEP<MAC>.tlv (the common case, so every phone's first
// request is a miss everywhere); CTLFile.tlv is the same on every
// sub-cluster, so which one answers it does not matter. Each phone's
// ITLSEP<MAC>.tlv (its cluster's ITL) and configuration live on its own
// sub-cluster only. Sizes are near the phone logs of the project's domain
// notes (CTL 4.7 KB, ITL 5.4 KB, signed config 7.6 KB): with 2048-bit
// keys the CTL is about 6.7 KB, the ITLs 5.9 KB, the signed configs
// 7.2 KB.
func Generate(ctx context.Context, o Options) (*World, error) {
	if o.Subclusters == nil {
		o.Subclusters = DefaultSubclusters()
	}
	if o.KeyBits == 0 {
		o.KeyBits = 2048
	}
	if len(o.Subclusters) == 0 {
		return nil, fmt.Errorf("fleet: no sub-clusters")
	}
	for _, sc := range o.Subclusters {
		if sc == "" || sc == Root || sc == Direct || sc == Devices || sc == Central || strings.ContainsAny(sc, `/\`) {
			return nil, fmt.Errorf("fleet: %q cannot name a sub-cluster (it names a tree of its own or is not a directory name)", sc)
		}
	}
	seen := map[string]bool{}
	for _, p := range o.Phones {
		if !slices.Contains(o.Subclusters, p.Subcluster) {
			return nil, fmt.Errorf("fleet: phone %s: no sub-cluster %q", p.MAC, p.Subcluster)
		}
		if len(p.MAC) != 12 || strings.ToUpper(p.MAC) != p.MAC {
			return nil, fmt.Errorf("fleet: phone %q: want 12 upper-case hex digits", p.MAC)
		}
		if seen[p.MAC] {
			return nil, fmt.Errorf("fleet: phone %s listed twice", p.MAC)
		}
		seen[p.MAC] = true
	}
	w := &World{
		subclusters: slices.Clone(o.Subclusters),
		phones:      slices.Clone(o.Phones),
		pki:         map[string]*PKI{},
		itls:        map[string][]byte{},
		trees:       map[string]map[string][]byte{Root: {}, Direct: {}},
		phoneFiles:  map[string][]byte{},
	}
	clusters := append([]string{Central}, w.subclusters...)
	for _, name := range clusters {
		p, err := NewPKI(name, o.KeyBits)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		w.pki[name] = p
	}
	first := w.pki[w.subclusters[0]]
	ctlRecords := []itl.RecordSpec{{Role: itl.RoleSAST, Cert: first.SAST.Cert}}
	for _, sc := range w.subclusters {
		ctlRecords = append(ctlRecords, itl.RecordSpec{Role: itl.RoleCCMTFTP, Cert: w.pki[sc].CCM.Cert, DNSName: "cucm-" + sc + ".example.com"})
	}
	ctlRecords = append(ctlRecords, itl.RecordSpec{Role: itl.RoleCAPF, Cert: w.pki[Central].TVS.Cert, HashOnly: true})
	var err error
	if w.ctl, err = itl.Build(itl.BuildOptions{Kind: itl.KindCTL, Signer: w.pki[Central].SAST, Records: ctlRecords}); err != nil {
		return nil, fmt.Errorf("fleet: CTLFile.tlv: %w", err)
	}
	for _, name := range clusters {
		p := w.pki[name]
		w.itls[name], err = itl.Build(itl.BuildOptions{
			Signer: p.SAST,
			Records: []itl.RecordSpec{
				{Role: itl.RoleCCMTFTP, Cert: p.CCM.Cert, DNSName: "cucm-" + name + ".example.com"},
				{Role: itl.RoleTVS, Cert: p.TVS.Cert, DNSName: "tvs-" + name + ".example.com"},
				{Role: itl.RoleCAPF, Cert: p.CCM.Cert, HashOnly: true},
				{Role: itl.RoleTVS, Cert: w.pki[Central].TVS.Cert, HashOnly: true},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("fleet: ITLFile.tlv of %s: %w", name, err)
		}
	}

	w.trees[Root]["ITLFile.tlv"] = w.itls[Central]
	w.trees[Root]["README.txt"] = []byte("The ctftp gateway's own files (generated by internal/fleet).\n")
	w.trees[Direct]["CTLFile.tlv"] = w.ctl
	w.trees[Direct]["ITLFile.tlv"] = w.itls[Central]
	w.phoneFiles["CTLFile.tlv"] = w.ctl
	for _, sc := range w.subclusters {
		w.trees[sc] = map[string][]byte{"CTLFile.tlv": w.ctl, "ITLFile.tlv": w.itls[sc]}
	}

	plain := make([][]byte, len(w.phones))
	signed := make([][]byte, len(w.phones))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(runtime.GOMAXPROCS(0))
	for i, ph := range w.phones {
		eg.Go(func() error {
			if err := ectx.Err(); err != nil {
				return err
			}
			// FILENAME is the name the file is published under, as CUCM
			// and `ctftp itl sign` write it (itl-format.md §2.3).
			name := "SEP" + ph.MAC + ".cnf.xml.sgn"
			plain[i] = ConfigXML(ph)
			sgn, err := itl.Sign(name, plain[i], w.pki[ph.Subcluster].CCM, itl.SHA1)
			if err != nil {
				return fmt.Errorf("fleet: sign %s: %w", name, err)
			}
			signed[i] = sgn
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	for i, ph := range w.phones {
		itlName, cnf := "ITLSEP"+ph.MAC+".tlv", "SEP"+ph.MAC+".cnf.xml"
		for _, tree := range []string{Direct, ph.Subcluster} {
			w.trees[tree][itlName] = w.itls[ph.Subcluster]
			w.trees[tree][cnf] = plain[i]
			w.trees[tree][cnf+".sgn"] = signed[i]
		}
		w.phoneFiles[itlName], w.phoneFiles[cnf], w.phoneFiles[cnf+".sgn"] = w.itls[ph.Subcluster], plain[i], signed[i]
	}
	return w, nil
}

// Subclusters returns the sub-clusters in priority order.
func (w *World) Subclusters() []string { return slices.Clone(w.subclusters) }

// Phones returns the phones.
func (w *World) Phones() []Phone { return slices.Clone(w.phones) }

// MACs returns the phones' MACs in order.
func (w *World) MACs() []string {
	out := make([]string, len(w.phones))
	for i, p := range w.phones {
		out[i] = p.MAC
	}
	return out
}

// DeviceList returns the MACs of the phones of sub-cluster sc.
func (w *World) DeviceList(sc string) []string {
	var out []string
	for _, p := range w.phones {
		if p.Subcluster == sc {
			out = append(out, p.MAC)
		}
	}
	return out
}

// PKI returns a cluster's keys (Central or a sub-cluster), nil if none.
func (w *World) PKI(name string) *PKI { return w.pki[name] }

// ITL returns a cluster's ITLFile.tlv (Central or a sub-cluster).
func (w *World) ITL(name string) []byte { return w.itls[name] }

// Files returns the files of a tree (Root, Direct or a sub-cluster) by
// name. The map and its slices are the world's own: do not modify them.
func (w *World) Files(tree string) map[string][]byte { return w.trees[tree] }

// PhoneFile returns what a phone gets for name through the gateway.
func (w *World) PhoneFile(name string) ([]byte, bool) {
	b, ok := w.phoneFiles[name]
	return b, ok
}

// Check is a boot storm's content check (loadgen.Options.Check): every
// file a phone receives must be exactly what was generated under that
// name.
func (w *World) Check(name string, body []byte) error {
	want, ok := w.phoneFiles[name]
	if !ok {
		return fmt.Errorf("not a generated file")
	}
	if !bytes.Equal(body, want) {
		return fmt.Errorf("got %d bytes, generated %d (content differs)", len(body), len(want))
	}
	return nil
}

// Write lays the world out under dir: dir/<tree>/<file> for every tree
// and dir/devices/<sub-cluster>.txt. Directories are 0755 and files 0644:
// tftpd-hpa serves only world-readable files.
func (w *World) Write(dir string) error {
	mkdir := func(d string) error {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// MkdirAll leaves an existing directory (a t.TempDir is 0700)
		// as it is; in.tftpd's chroot must be traversable.
		return os.Chmod(d, 0o755)
	}
	if err := mkdir(dir); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	for tree, files := range w.trees {
		d := filepath.Join(dir, tree)
		if err := mkdir(d); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o644); err != nil {
				return fmt.Errorf("fleet: %w", err)
			}
		}
	}
	if err := mkdir(filepath.Join(dir, Devices)); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	for _, sc := range w.subclusters {
		var b strings.Builder
		fmt.Fprintf(&b, "# phones of sub-cluster %s (generated by internal/fleet)\n", sc)
		for _, mac := range w.DeviceList(sc) {
			b.WriteString(mac + "\n")
		}
		if err := os.WriteFile(DeviceFile(dir, sc), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
	}
	return nil
}

// DeviceFile is where Write puts sub-cluster sc's device list under dir.
func DeviceFile(dir, sc string) string { return filepath.Join(dir, Devices, sc+".txt") }
