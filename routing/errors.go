package routing

import "errors"

// Errors this package returns, wrapped; check them with errors.Is. The
// forwarder's answers otherwise wrap the root package's sentinels:
// ctftp.ErrNotFound when every sub-cluster asked said so, and
// ctftp.ErrUnavailable when none had the file and at least one could not
// answer.
var (
	// ErrUnknownSubcluster: New was given a rule naming a sub-cluster
	// that is not configured.
	ErrUnknownSubcluster = errors.New("unknown sub-cluster")
	// ErrNoSubclusters: New was given no sub-clusters to route to.
	ErrNoSubclusters = errors.New("no sub-clusters")
	// errNoFile: the next Source broke its contract by returning neither
	// a File with a Body nor an error. Treated as that sub-cluster
	// failing, never as a positive answer.
	errNoFile = errors.New("next source returned no file and no error")

	// Reasons a MAC or MAC prefix written in configuration is refused.
	errMACEmpty    = errors.New("no hex digits")
	errMACDigit    = errors.New("not a hex digit")
	errMACTooLong  = errors.New("more than 12 hex digits")
	errMACTooShort = errors.New("fewer than 12 hex digits")
)
