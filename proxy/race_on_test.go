//go:build race

package proxy

// raceEnabled: the race detector drops a quarter of what goes back into
// a sync.Pool, so allocation counts are only exact without it.
const raceEnabled = true
