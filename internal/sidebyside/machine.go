package sidebyside

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// heapLive is the live heap after a full collection.
func heapLive() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// procSample is this process's footprint at one moment.
type procSample struct {
	rss, heapInuse, stackInuse uint64
	goroutines, fds            int
}

func sampleProcess() procSample {
	// Collect and hand free pages back first, so RSS is what is live
	// (plus the runtime's own), not garbage of the storm before.
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := procSample{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			s.rss = pages * uint64(os.Getpagesize())
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(ents)
	}
	return s
}

// holdInFlight has a child process (Options.Holder: `ctftp bench --hold`) open
// --in-flight transfers of a cached file on the warm gateway and leave
// them unacknowledged, and measures what this process grew by meanwhile.
// The holder is another process so that its own sockets are not counted.
func (r *runner) holdInFlight(gw *benchGateway) *InFlightMemory {
	const file = "CTLFile.tlv"
	m := &InFlightMemory{File: file}
	fail := func(err error) *InFlightMemory {
		m.Error = err.Error()
		r.f.warn("memory in flight: %v", err)
		return m
	}
	if r.f.Holder == nil {
		return fail(errors.New("no holder command to hold transfers with"))
	}
	before := sampleProcess()
	baseActive, baseIdle := gw.series("ctftp_active_transfers"), gw.series("ctftp_transfer_sockets_idle")
	var childOut bytes.Buffer
	cmd := r.f.Holder(gw.addr, r.f.InFlight, file, 10*time.Minute)
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	want := baseActive + float64(r.f.InFlight)
	for deadline := time.Now().Add(2 * time.Minute); gw.series("ctftp_active_transfers") < want; {
		select {
		case err := <-exited:
			exited <- err
			return fail(fmt.Errorf("holder exited (%v): %s", err, strings.TrimSpace(childOut.String())))
		case <-r.ctx.Done():
			return fail(r.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("only %.0f of %d transfers open after 2 minutes", gw.series("ctftp_active_transfers")-baseActive, r.f.InFlight))
		}
	}
	during := sampleProcess()
	// Sockets idle before (kept for reuse) that held transfers took are
	// theirs too.
	reused := baseIdle - gw.series("ctftp_transfer_sockets_idle")
	n := float64(r.f.InFlight)
	m.Transfers = r.f.InFlight
	m.RSSPerTransfer = (float64(during.rss) - float64(before.rss)) / n
	m.HeapPerTransfer = (float64(during.heapInuse) - float64(before.heapInuse)) / n
	m.StackPerTransfer = (float64(during.stackInuse) - float64(before.stackInuse)) / n
	m.GoroutinesPerTransfer = float64(during.goroutines-before.goroutines) / n
	m.FDsPerTransfer = (float64(during.fds-before.fds) + reused) / n
	return m
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
