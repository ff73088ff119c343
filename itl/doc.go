// Package itl reads, checks, builds and signs the files Cisco phones decide
// their trust with: ITL and CTL trust lists (.tlv), signed envelopes (.sgn)
// and signed encrypted configs (.enc.sgn). It is a codec with no I/O beyond
// the PEM loaders: the gateway uses it to serve its own ITLFile.tlv and
// CTLFile.tlv, to check files it forwards, and (through Evaluate) to
// predict whether a phone will accept a file; `ctftp itl` is its CLI. It
// imports only the root contract (for ctftp.Size) and the standard library.
//
// # Format
//
// The byte layout is itl-format.md. Parse reads by tag, not by position:
// unknown header tags (tag 28, the signer version) are skipped by length,
// container children may come in any order, every record tag but
// RECORDLENGTH is optional, and records may be full (certificate), hash-only
// (CUCM 8.x TVS/CAPF) or empty (non-secure CTL, rollback ITL). Malformed
// input gives a *FormatError with the byte offset (errors.Is ErrMalformed),
// never a panic; values are sub-slices of the input, so memory stays
// bounded by it.
//
// Signatures are RSA PKCS#1 v1.5 over the file with the SIGNATURE element
// cut out, with SHA-1 or SHA-512 (SHA-256, code 2, is verified but never
// written: no phone is known to take it). The signer is found by issuer and
// serial number (as integers): among SAST records for Verify, among the
// roles SignerRoles gives for VerifyWith.
//
// # Uncertain parts of the format
//
// What public sources do not settle, and what this package does about it:
//   - the bytes of a rollback ITL: Build writes blank entries as FUNCTION
//     (+DNSNAME/IPADDRESS), like the observed non-secure CTL; IsBlank needs
//     an empty TFTP/CCM+TFTP/TVS entry and no TFTP/CCM+TFTP certificate;
//   - the value of record tag 12 (hash algorithm): Build writes 1 (SHA-1);
//   - serials with the top bit set (with or without a 0x00): compared as
//     integers, so both forms match;
//   - whether phones check FILENAME: a mismatch is a warning;
//   - the .sgn / .enc.sgn VERSION CUCM writes: Build follows certutils (1.0,
//     2.0); Parse accepts any;
//   - the extent of the .enc.sgn ENCRYPTIONINFO container: Parse takes tags
//     26/27 wherever they are; SignEncrypted writes the current certutils
//     layout;
//   - moving the SIGNATURE element inside the header does not change the
//     signed bytes, so such a file still verifies (phones parse by tag too).
//
// # Concurrency, goroutines, metrics
//
// The package starts no goroutines and keeps no package-level state. A
// parsed *File is immutable and safe for concurrent use as long as the
// bytes it was parsed from are not changed. It exports no metrics and does
// not log: callers count and log what they check.
package itl
