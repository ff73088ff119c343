package loadgen

// Step is one file a phone asks for while it boots. Plain data.
type Step struct {
	// Name is the file asked for first.
	Name string
	// Fallback is asked for when the server says Name is not found; ""
	// means none.
	Fallback string
	// Required makes "not found" (of Name and Fallback) a failed boot;
	// otherwise it is an expected miss, as CTLSEP<MAC>.tlv is on most
	// clusters.
	Required bool
}

// BootSequence is what a Cisco phone with Security By Default asks a
// TFTP server for, in order: its CTL (CTLSEP<MAC>.tlv, falling back to
// CTLFile.tlv), its ITL (ITLSEP<MAC>.tlv, falling back to ITLFile.tlv)
// and its signed configuration. Without the configuration the phone
// cannot register, so only that one is required. Firmware, ring lists and
// dial plans follow on a real phone; a storm of loads is a different
// benchmark (large files, few names).
func BootSequence(mac string) []Step {
	return []Step{
		{Name: "CTLSEP" + mac + ".tlv", Fallback: "CTLFile.tlv"},
		{Name: "ITLSEP" + mac + ".tlv", Fallback: "ITLFile.tlv"},
		{Name: "SEP" + mac + ".cnf.xml.sgn", Required: true},
	}
}
