package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/google/pprof/profile"
)

// The pprof label that says which side of a benchmark a goroutine works
// for. Run's workers carry SideGenerator, the Ceiling's responders
// SideServer, and a caller running a server in this process starts it
// under ServerLabels: its goroutines inherit the label, so a CPU profile
// of the run splits the process's time between the two (SplitCPU).
const (
	SideLabel     = "bench_side"
	SideServer    = "server"
	SideGenerator = "generator"
)

// ServerLabels runs f with the server side's label; goroutines f starts
// inherit it.
func ServerLabels(ctx context.Context, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(SideLabel, SideServer), f)
}

// CPUSplit is a run's sampled CPU time by side. Other is what carries
// no label: the Go scheduler finding work and polling the network, the
// garbage collector, timers, and goroutines a server starts from
// callbacks. Samples come at 100 Hz, so a run of a second or more is
// needed for the split to mean anything.
type CPUSplit struct {
	Server    time.Duration `json:"server_ns"`
	Generator time.Duration `json:"generator_ns"`
	Other     time.Duration `json:"other_ns"`
}

// ProfileCPU runs f under this process's CPU profiler and returns the
// profile (pprof's format, for `go tool pprof`) and its split by side.
// It fails if another CPU profile is running.
func ProfileCPU(f func() error) (CPUSplit, []byte, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return CPUSplit{}, nil, fmt.Errorf("loadgen: cpu profile: %w", err)
	}
	ferr := f()
	pprof.StopCPUProfile()
	if ferr != nil {
		return CPUSplit{}, nil, ferr
	}
	split, err := SplitCPU(buf.Bytes())
	return split, buf.Bytes(), err
}

// SplitCPU sums a CPU profile's samples by SideLabel.
func SplitCPU(data []byte) (CPUSplit, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return CPUSplit{}, fmt.Errorf("loadgen: cpu profile: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		return CPUSplit{}, fmt.Errorf("loadgen: cpu profile: no cpu/nanoseconds sample type")
	}
	var s CPUSplit
	for _, smp := range p.Sample {
		d := time.Duration(smp.Value[idx])
		switch side := smp.Label[SideLabel]; {
		case len(side) == 1 && side[0] == SideServer:
			s.Server += d
		case len(side) == 1 && side[0] == SideGenerator:
			s.Generator += d
		default:
			s.Other += d
		}
	}
	return s, nil
}

// StartCPUProfile profiles this process into path until stop is called
// (`ctftp bench --cpuprofile`).
func StartCPUProfile(path string) (stop func(), err error) {
	pf, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}, nil
}
