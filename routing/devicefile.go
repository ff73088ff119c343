package routing

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The formats of a device file, as DeviceList.Format names them.
const (
	// DeviceFormatList is one MAC per line, '#' starting a comment.
	DeviceFormatList = "list"
	// DeviceFormatCSV is a CSV file with a header line, such as CUCM Bulk
	// Administration's "Export Phones", read by its Device Name column
	// (or, in a BAT insert file, its MAC Address column).
	DeviceFormatCSV = "csv"
)

// maxDeviceFileErrors caps the bad lines reported from one device file,
// so that pointing device_file at the wrong file does not print it all.
const maxDeviceFileErrors = 10

// DeviceList is what a device file names. The caller owns it.
type DeviceList struct {
	// MACs holds each device's MAC as twelve upper-case hex digits.
	MACs map[string]struct{}
	// Format is DeviceFormatList or DeviceFormatCSV.
	Format string
	// Skipped counts CSV rows whose device is not one a MAC names:
	// Jabber and other soft clients (CSF…, BOT…, TCT…, TAB…), BAT's
	// dummy-MAC placeholders (BAT…), gateway ports, rows with no device
	// name. Always 0 for a list, where every line must be a MAC.
	Skipped int
}

// deviceNamePrefixes are the CUCM device-name prefixes followed by the
// device's MAC: phones (SEP, also IP Communicator) and the ATA 190/191
// ports (ATA). CUCM refuses any other text after them, so a row with one
// of these and no MAC is a damaged file, not a device to skip.
var deviceNamePrefixes = []string{"SEP", "ATA"}

// The header names a CSV device file is read by, compared after
// normalizeHeader: CUCM's exports write "Device Name" or "DEVICE NAME",
// and hand-edited files gain spaces.
const (
	headerDeviceName = "device name"
	headerMACAddress = "mac address" // BAT insert files: the MAC alone
)

// ReadDeviceFile reads a device file: either a list of MACs, one per
// line ('#' starts a comment, blank lines are skipped, separators ':',
// '-', '.' and either case accepted), or a CSV export whose first line
// is a header. A file whose first line that is neither blank nor a
// comment holds a comma is read as CSV: by its Device Name column, with
// "SEP"/"ATA" stripped to the MAC and other devices skipped and counted;
// or, without one, by a MAC Address column.
//
// Every bad line is an error naming the file and line, joined (at most
// 10): a typo silently dropped would send that phone to the fan-out
// without anyone noticing. The MACs of the good lines are returned too.
//
// It is the one reader of device files: routing rules and migration
// waves use it alike.
func ReadDeviceFile(path string) (DeviceList, error) {
	f, err := os.Open(path)
	if err != nil {
		return DeviceList{MACs: map[string]struct{}{}}, err
	}
	defer f.Close()
	return parseDeviceFile(f, path)
}

// readDeviceFile is ReadDeviceFile for a caller that prefixes each bad
// line with its own key (a rule's, a migration wave's): the MACs, and
// the problems one per line.
func readDeviceFile(path string) (map[string]struct{}, []error) {
	dl, err := ReadDeviceFile(path)
	return dl.MACs, unjoin(err)
}

// utf8BOM starts files saved by Windows editors, Excel among them.
const utf8BOM = "\ufeff"

func parseDeviceFile(rd io.Reader, path string) (DeviceList, error) {
	dl := DeviceList{MACs: make(map[string]struct{}), Format: DeviceFormatList}
	br := bufio.NewReader(rd)
	// Find the first line that says anything, to tell the formats apart.
	var consumed []string
	for {
		line, err := br.ReadString('\n')
		if len(consumed) == 0 {
			line = strings.TrimPrefix(line, utf8BOM)
		}
		if line != "" {
			consumed = append(consumed, line)
		}
		text, _, _ := strings.Cut(line, "#")
		if strings.TrimSpace(text) != "" {
			break
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return dl, fmt.Errorf("%s: %w", path, err)
			}
			return dl, nil // only comments and blank lines
		}
	}
	first := consumed[len(consumed)-1]
	rest := io.MultiReader(strings.NewReader(first), br)
	if strings.Contains(first, ",") || isHeaderName(first) {
		dl.Format = DeviceFormatCSV
		return dl, dl.readCSV(rest, path, len(consumed)-1)
	}
	return dl, dl.readList(rest, path, len(consumed))
}

// readList reads one MAC per line; n is the number of the first line.
func (dl *DeviceList) readList(rd io.Reader, path string, n int) error {
	var errs []error
	sc := bufio.NewScanner(rd)
	for ; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m, err := parseMAC(line)
		if err != nil {
			if len(errs) < maxDeviceFileErrors {
				errs = append(errs, fmt.Errorf("%s:%d: %w", path, n, err))
			}
			continue
		}
		dl.MACs[m] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", path, n, err))
	}
	return errors.Join(errs...)
}

// readCSV reads a CSV file whose first record is its header; skip is the
// number of lines before that record, for line numbers in errors.
func (dl *DeviceList) readCSV(rd io.Reader, path string, skip int) error {
	cr := csv.NewReader(rd)
	// BAT exports write as many fields as each phone has lines and
	// speed dials, so record lengths vary.
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s:%d: header: %w", path, skip+1, csvErr(err))
	}
	col, byName := -1, false
	for i, h := range header {
		switch normalizeHeader(h) {
		case headerDeviceName:
			col, byName = i, true
		case headerMACAddress:
			if !byName {
				col = i
			}
		}
		if byName {
			break
		}
	}
	if col < 0 {
		names := make([]string, 0, min(len(header), 8))
		for _, h := range header[:min(len(header), 8)] {
			names = append(names, fmt.Sprintf("%q", strings.TrimSpace(h)))
		}
		return fmt.Errorf("%s:%d: CSV header has no \"Device Name\" or \"MAC Address\" column (it has %s%s)",
			path, skip+1, strings.Join(names, ", "), map[bool]string{true: ", ...", false: ""}[len(header) > 8])
	}
	var errs []error
	bad := func(line int, format string, args ...any) {
		if len(errs) < maxDeviceFileErrors {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...)))
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A broken quote leaves the rest of the file unreadable as
			// records: report it and stop.
			var pe *csv.ParseError
			line := skip
			if errors.As(err, &pe) {
				line += pe.StartLine
			}
			bad(line, "%v", csvErr(err))
			break
		}
		line, _ := cr.FieldPos(0)
		line += skip
		if col >= len(rec) {
			bad(line, "%d fields, no column %d (%s)", len(rec), col+1, header[col])
			continue
		}
		v := strings.TrimSpace(rec[col])
		if byName {
			m, ok, err := deviceNameMAC(v)
			switch {
			case err != nil:
				bad(line, "%v", err)
			case ok:
				dl.MACs[m] = struct{}{}
			default:
				dl.Skipped++
			}
			continue
		}
		if v == "" {
			dl.Skipped++
			continue
		}
		m, err := parseMAC(v)
		if err != nil {
			bad(line, "%v", err)
			continue
		}
		dl.MACs[m] = struct{}{}
	}
	return errors.Join(errs...)
}

// csvErr drops encoding/csv's own position ("record on line 3: ..."),
// which counts from the header this reader was handed, not the file.
func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// normalizeHeader lower-cases h and collapses its white space, so that
// "Device Name", "DEVICE NAME" and " device  name" are one column.
func normalizeHeader(h string) string {
	return strings.ToLower(strings.Join(strings.Fields(h), " "))
}

// isHeaderName reports whether line is a lone header of a one-column
// CSV file, which has no comma to tell it from a list.
func isHeaderName(line string) bool {
	h := normalizeHeader(strings.Trim(strings.TrimSpace(line), `"`))
	return h == headerDeviceName || h == headerMACAddress
}

// deviceNameMAC reads a CUCM device name: SEP or ATA and a MAC give the
// MAC; a bare MAC is taken as it is; anything else is a device no MAC
// names (ok false). A SEP or ATA name without twelve hex digits after it
// is an error: CUCM would not have written it.
func deviceNameMAC(name string) (mac string, ok bool, err error) {
	for _, p := range deviceNamePrefixes {
		// EqualFold on as many bytes as the ASCII prefix has: a non-ASCII
		// rune takes two bytes or more, so it can never fold to one of its
		// letters (as deviceNameHint relies on too).
		if len(name) < len(p) || !strings.EqualFold(name[:len(p)], p) {
			continue
		}
		digits := name[len(p):]
		if len(digits) != macLen || !isHex(digits) {
			return "", false, fmt.Errorf("device name %q: want %s and 12 hex digits", name, p)
		}
		return strings.ToUpper(digits), true, nil
	}
	if len(name) == macLen && isHex(name) {
		return strings.ToUpper(name), true, nil
	}
	return "", false, nil
}
