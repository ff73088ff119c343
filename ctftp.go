package ctftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Errors shared by every layer. Check them with errors.Is; layers wrap
// them with their own context.
var (
	// ErrNotFound: this source has no such file. The only error that
	// makes First try the next source. Sent to the client as TFTP error 1.
	ErrNotFound = errors.New("file not found")
	// ErrDenied: the request is refused (bad name, write request, policy).
	// Sent to the client as TFTP error 2 (access violation).
	ErrDenied = errors.New("access violation")
	// ErrUnavailable: the file may exist but no source could deliver it
	// now (every backend down or timed out). Sent as TFTP error 0 with a
	// generic text.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrNotAsked: the source is known to be down and was not asked at
	// all (no timeout was waited). It is ErrUnavailable, so it is sent
	// as error 0 like any outage; a fan-out over several sources may use
	// the distinction (see routing).
	ErrNotAsked = fmt.Errorf("known down, not asked: %w", ErrUnavailable)
	// ErrNoIdleSlot: a prefetch (Request.Prefetch) found no idle backend slot
	// and was not sent. It also wraps ErrUnavailable, but it is only ever
	// the answer to a prefetch, never to a phone's own request: a layer
	// that shares a prefetch's result with a phone must fetch for the
	// phone instead.
	ErrNoIdleSlot = fmt.Errorf("no idle backend slot for a prefetch: %w", ErrUnavailable)
)

// Request is one read request, after the front end cleaned its name.
// It is a value: a layer that needs to change it changes a copy.
type Request struct {
	// Name is the cleaned file name: slash-separated, no leading slash,
	// no "..", case preserved (phones ask for exact names).
	Name string
	// Client is the phone's address and port. The zero value means
	// "unknown" (e.g. `ctftp route` without --client).
	Client netip.AddrPort
	// Mode is the TFTP transfer mode, "octet" or "netascii".
	Mode string
	// Subcluster is the sub-cluster this request is being asked of; empty
	// until routing picks one. It is part of every cache key.
	Subcluster string
	// Prefetch marks a request no phone made yet: the gateway fetching a
	// file a phone is about to ask for. It is not part of the cache key.
	// The backends serve it only from a slot no phone is waiting for, and
	// answer ErrNoIdleSlot instead of queueing it.
	Prefetch bool
}

// Origin labels where a File came from, for logs and metrics. Its values
// are the `source` label of ctftp_transfers_total.
type Origin string

// The origins a File can have.
const (
	OriginLocal   Origin = "local"
	OriginCache   Origin = "cache"
	OriginBackend Origin = "backend"
)

// File is an open answer to a Request. The caller must Close Body.
type File struct {
	// Body yields the file's bytes. When it is also an io.Seeker the front
	// end can answer tsize without reading it.
	Body io.ReadCloser
	// Size is the length in bytes, or -1 when unknown.
	Size int64
	// Origin says which layer produced the bytes.
	Origin Origin
	// Subcluster names the sub-cluster that served it ("" for local files).
	Subcluster string
	// Backend is the backend address that served it, for logs only; it
	// must never reach a client.
	Backend string
}

// Source opens files. Implementations must be safe for concurrent use.
type Source interface {
	// Open returns the file named by req, or an error wrapping ErrNotFound
	// when this source does not have it. ctx bounds the whole open,
	// including any backend fetch.
	Open(ctx context.Context, req Request) (*File, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context, req Request) (*File, error)

// Open calls f(ctx, req).
func (f SourceFunc) Open(ctx context.Context, req Request) (*File, error) { return f(ctx, req) }

var _ Source = SourceFunc(nil)

// Middleware wraps a Source in another.
type Middleware func(next Source) Source

// First tries sources in order and returns the first answer that is not
// ErrNotFound. Any other error stops the chain: an outage must never read
// as "not found" and send the phone to its fallback file.
func First(sources ...Source) Source {
	return SourceFunc(func(ctx context.Context, req Request) (*File, error) {
		for _, s := range sources {
			f, err := s.Open(ctx, req)
			if err == nil {
				return f, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%q: %w", req.Name, ErrNotFound)
	})
}
