package ctftp

import "testing"

// The grammar's table lives with routing's ParseMAC tests and fuzz target
// (routing/mac_test.go), which call DeviceMAC; these rows pin what the
// cache's device class relies on.
func TestDeviceMAC(t *testing.T) {
	tests := []struct {
		name, mac string
	}{
		{"CTLSEP0011215A1AE3.tlv", "0011215A1AE3"},
		{"ITLSEP0011215a1ae3.tlv", "0011215A1AE3"},
		{"SEP0011215A1AE3.cnf.xml.sgn", "0011215A1AE3"},
		{"SEP0011215A1AE3.cnf.xml.enc.sgn", "0011215A1AE3"},
		{"SIP0011215A1AE3.cnf", "0011215A1AE3"},
		{"dir/SEP0011215A1AE3.cnf.xml", "0011215A1AE3"},
		{"SEPDEFAULT.cnf.xml", ""},
		{"XMLDefault.cnf.xml", ""},
		{"ITLFile.tlv", ""},
		{"SEP0011215A1AE3.cnf.xml.bak", ""},
		{"SEP0011215A1AE.cnf.xml", ""},
		{"", ""},
	}
	for _, tc := range tests {
		mac, ok := DeviceMAC(tc.name)
		if mac != tc.mac || ok != (tc.mac != "") {
			t.Errorf("DeviceMAC(%q) = %q, %v; want %q", tc.name, mac, ok, tc.mac)
		}
	}
}
