// Package tftpwire is the TFTP packet codec shared by ctftp's front-end
// server (package proxy) and its TFTP client: it parses and builds the
// packets of RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR), the option extension
// of RFC 2347 (OACK) and negotiates the blksize (RFC 2348), tsize and
// timeout (RFC 2349) and windowsize (RFC 7440) options. It sits below
// every network layer and imports only the standard library; it does no
// I/O except NetASCIIReader wrapping a caller's reader.
//
// Parsers never panic and do work bounded by the packet length (options
// past MaxOptions are not read); they were fuzzed with random input.
// Parsed strings are copies, except ParseData's payload, which aliases
// the packet. Encoders are Append functions so a caller can build packets
// into a reused buffer without allocating.
//
// The package starts no goroutines, has no package-level mutable state,
// exports no metrics and has no Config: the few limits it applies come
// from the caller (Limits). Its functions are safe for concurrent use;
// a NetASCIIReader, like any reader, is not.
//
// Option rules (see Negotiate for each case): unknown or non-numeric
// options are ignored, values below an option's RFC minimum (blksize < 8,
// windowsize 0, timeout 0) or a timeout above 255 refuse the request with
// error 8, blksize and windowsize above the server's caps are lowered to
// them, the first occurrence of a repeated option wins, and tsize is only
// acknowledged in octet mode.
package tftpwire
