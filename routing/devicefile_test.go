package routing

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestReadDeviceFile(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		format  string
		macs    []string
		skipped int
	}{
		{"plain list", "testdata/devices.txt", DeviceFormatList,
			[]string{"00AABBCCDD01", "00AABBCCDD02", "00AABBCCDD03", "00AABBCCDD04"}, 0},
		// BOM, CRLF, a quoted description with a comma, rows of varying
		// length, Jabber (CSF, BOT), an ATA 191 and a BAT dummy device.
		{"BAT export, title case", "testdata/bat-export-phones.csv", DeviceFormatCSV,
			[]string{"00AABBCC0101", "00AABBCC0102", "00AABBCC0103"}, 4},
		{"BAT export, upper case, trailing space", "testdata/bat-export-upper.csv", DeviceFormatCSV,
			[]string{"00AABBCC0201", "00AABBCC0202"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl, err := ReadDeviceFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(dl.MACs)); !slices.Equal(got, tt.macs) {
				t.Errorf("MACs = %v, want %v", got, tt.macs)
			}
			if dl.Format != tt.format || dl.Skipped != tt.skipped {
				t.Errorf("Format, Skipped = %s, %d; want %s, %d", dl.Format, dl.Skipped, tt.format, tt.skipped)
			}
		})
	}
}

func TestParseDeviceFile(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		format  string
		macs    []string
		skipped int
		errs    []string // substrings, one per reported line, in order
	}{
		{"empty", "", DeviceFormatList, nil, 0, nil},
		{"comments only", "# nothing yet\n\n", DeviceFormatList, nil, 0, nil},
		{"list after comments", "# east\n\n00aabbccdd01\n", DeviceFormatList, []string{"00AABBCCDD01"}, 0, nil},
		{"list line numbers", "# c\n00AABBCCDD01\nSEP00AABBCCDD02\n", DeviceFormatList, []string{"00AABBCCDD01"}, 0,
			[]string{"f:3: "}},
		{"csv after a comment", "# exported 2026-11-30\nDevice Name,Description\nSEP00AABBCCDD01,a\n",
			DeviceFormatCSV, []string{"00AABBCCDD01"}, 0, nil},
		{"one-column csv", "Device Name\nSEP00AABBCCDD01\nCSFJDOE\n", DeviceFormatCSV, []string{"00AABBCCDD01"}, 1, nil},
		{"quoted lone header", "\"DEVICE NAME\"\nATA00AABBCCDD01\n", DeviceFormatCSV, []string{"00AABBCCDD01"}, 0, nil},
		{"column not first", "Description,Device  Name\n\"x, y\",SEP00AABBCCDD01\nz,UDP_jdoe\n", DeviceFormatCSV,
			[]string{"00AABBCCDD01"}, 1, nil},
		{"bare MAC in device name", "Device Name\n00aabbccdd01\n", DeviceFormatCSV, []string{"00AABBCCDD01"}, 0, nil},
		{"device name wins over mac address", "MAC Address,Device Name\n00AABBCCDD09,SEP00AABBCCDD01\n", DeviceFormatCSV,
			[]string{"00AABBCCDD01"}, 0, nil},
		{"BAT insert file by MAC address", "MAC ADDRESS,DESCRIPTION\n00:AA:BB:CC:DD:01,a\n,blank\n", DeviceFormatCSV,
			[]string{"00AABBCCDD01"}, 1, nil},
		{"bad MAC address", "MAC ADDRESS,DESCRIPTION\n00AABBCC,a\n", DeviceFormatCSV, nil, 0,
			[]string{`f:2: "00AABBCC": fewer than 12 hex digits`}},
		{"no device column", "Name,Description,Pool\nSEP00AABBCCDD01,a,b\n", DeviceFormatCSV, nil, 0,
			[]string{`f:1: CSV header has no "Device Name" or "MAC Address" column (it has "Name", "Description", "Pool")`}},
		{"short row", "Description,Pool,Device Name\nSEP00AABBCCDD01\n", DeviceFormatCSV, nil, 0,
			[]string{"f:2: 1 fields, no column 3 (Device Name)"}},
		{"SEP without a MAC", "Device Name\nSEP00AABBCC\nSEPXXAABBCCDD01\nSEP00AABBCCDD02\n", DeviceFormatCSV,
			[]string{"00AABBCCDD02"}, 0,
			[]string{`f:2: device name "SEP00AABBCC": want SEP and 12 hex digits`, `f:3: device name "SEPXXAABBCCDD01"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl, err := parseDeviceFile(strings.NewReader(tt.text), "f")
			var lines []string
			if err != nil {
				lines = strings.Split(err.Error(), "\n")
			}
			if len(lines) != len(tt.errs) {
				t.Fatalf("errors = %q, want %d matching %q", lines, len(tt.errs), tt.errs)
			}
			for i, w := range tt.errs {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
			if got := slices.Sorted(maps.Keys(dl.MACs)); !slices.Equal(got, tt.macs) {
				t.Errorf("MACs = %v, want %v", got, tt.macs)
			}
			if dl.Format != tt.format || dl.Skipped != tt.skipped {
				t.Errorf("Format, Skipped = %s, %d; want %s, %d", dl.Format, dl.Skipped, tt.format, tt.skipped)
			}
		})
	}
}

// TestReadDeviceFileBadExport: every bad row is named by its line in the
// file, the good rows before it are kept, and a broken quote ends the
// reading with its line.
func TestReadDeviceFileBadExport(t *testing.T) {
	dl, err := ReadDeviceFile("testdata/bad-export.csv")
	want := []string{
		`testdata/bad-export.csv:3: device name "SEP00AABBCC03"`,
		`testdata/bad-export.csv:4: device name "SEPNOTAMAC00X1"`,
		`testdata/bad-export.csv:5: extraneous or missing " in quoted-field`,
	}
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("errors = %q, want %q", lines, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	if _, ok := dl.MACs["00AABBCC0301"]; !ok || len(dl.MACs) != 1 {
		t.Errorf("MACs = %v, want the one good row", dl.MACs)
	}
	if _, err := ReadDeviceFile("testdata/nonexistent.csv"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestDeviceFileErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("Device Name\n")
	for i := range 50 {
		fmt.Fprintf(&b, "SEP%d\n", i)
	}
	_, err := parseDeviceFile(strings.NewReader(b.String()), "f")
	if n := len(strings.Split(err.Error(), "\n")); n != maxDeviceFileErrors {
		t.Errorf("%d errors reported, want %d", n, maxDeviceFileErrors)
	}
}

// FuzzDeviceFile: a device file never panics the reader, reports at most
// maxDeviceFileErrors+1 problems, each naming a line, and every MAC it
// yields is one Route can match.
func FuzzDeviceFile(f *testing.F) {
	f.Add("# south\n00AABBCCDD01\n00:aa:bb:cc:dd:02 # lower\n\n")
	f.Add("00AABBCCDD0\nzz\n")
	f.Add("\ufeffDevice Name,Description\r\nSEP00AABBCCDD01,\"a, b\"\r\nCSFJDOE,x\r\n")
	f.Add("MAC ADDRESS\n00AABBCCDD01\n\"broken\n")
	f.Add("Description,DEVICE NAME\nx\nATA00AABBCCDD01,y\n")
	f.Fuzz(func(t *testing.T, text string) {
		dl, err := parseDeviceFile(strings.NewReader(text), "f")
		if err != nil {
			lines := strings.Split(err.Error(), "\n")
			if len(lines) > maxDeviceFileErrors+1 {
				t.Fatalf("%d errors reported, want at most %d", len(lines), maxDeviceFileErrors+1)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "f:") {
					t.Fatalf("error %q names no line", l)
				}
			}
		}
		if dl.Format != DeviceFormatList && dl.Format != DeviceFormatCSV {
			t.Fatalf("Format = %q", dl.Format)
		}
		for m := range dl.MACs {
			if len(m) != macLen || !isHex(m) || strings.ToUpper(m) != m {
				t.Fatalf("parseDeviceFile yielded %q", m)
			}
		}
	})
}
