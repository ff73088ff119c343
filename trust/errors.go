package trust

import "errors"

// ErrBadITL: a sub-cluster (or the gateway's root) serves an ITLFile.tlv
// that does not parse, is not an ITL, or does not verify against its own
// SAST record. Phones reject such a file, and the sub-cluster's ITL era
// cannot be read from it.
var ErrBadITL = errors.New("ITLFile.tlv does not parse or verify")
