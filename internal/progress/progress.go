// Package progress owns the one way the project's long operations report
// how far they got: a report every interval from a goroutine of its own,
// and a stop that waits for it, so nothing is written after the
// operation's own last word. The load generator's phone counts and
// `ctftp get`'s bytes use it.
package progress

import "time"

// Every calls report(false) every interval until stop is called; stop
// then calls report(true) when final is set (a last line with the end
// state), waits for the reporter and returns.
func Every(interval time.Duration, final bool, report func(last bool)) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report(false)
			case <-done:
				if final {
					report(true)
				}
				return
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}
