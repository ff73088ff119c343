package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ctftp/ctftp"
)

// memoryNext is fakeNext with a memory in front, as the cache is: Peek
// answers what mem holds ("found" or "not found" per "sub-cluster name")
// and nothing else.
type memoryNext struct {
	*fakeNext
	mem map[string]string
}

func (m *memoryNext) Peek(req ctftp.Request) (*ctftp.File, bool, error) {
	switch m.mem[req.Subcluster+" "+req.Name] {
	case "found":
		b := &trackedBody{Reader: strings.NewReader(req.Subcluster + ":" + req.Name), subcluster: req.Subcluster}
		m.mu.Lock()
		m.bodies = append(m.bodies, b)
		m.mu.Unlock()
		return &ctftp.File{Body: b, Size: -1, Origin: ctftp.OriginCache}, true, nil
	case "not found":
		return nil, true, fmt.Errorf("remembered: %w", ctftp.ErrNotFound)
	}
	return nil, false, nil
}

// TestFanOutFromMemory: a fan-out whose answer is in memory (the cache)
// is decided there, in priority order, asking no backend and starting no
// goroutine; when memory knows only some answers, the fan-out runs as
// configured for the rest and asks nobody twice.
func TestFanOutFromMemory(t *testing.T) {
	const name = "SEP00FF00000001.cnf.xml.sgn" // no rule matches 00FF...
	tests := []struct {
		name     string
		strategy string
		mem      map[string]string
		want     string   // serving sub-cluster, "" for not found
		asked    []string // sub-clusters next.Open was called for
	}{
		{"decided in memory", StrategyParallel, map[string]string{"east": "not found", "west": "found"}, "west", nil},
		{"first positive wins without the rest", StrategyParallel, map[string]string{"east": "found"}, "east", nil},
		{"not found anywhere", StrategyParallel, map[string]string{"east": "not found", "west": "not found", "south": "not found"}, "", nil},
		{"partly in memory", StrategyParallel, map[string]string{"east": "not found"}, "west", []string{"south", "west"}},
		{"partly in memory, sequential", StrategySequential, map[string]string{"east": "not found"}, "west", []string{"west"}},
		{"nothing in memory", StrategyParallel, nil, "west", []string{"east", "south", "west"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Strategy = tc.strategy
			h := newHarness(t, cfg, map[string]answerSpec{"east": notFound(0), "west": found(0), "south": notFound(0)})
			mem := &memoryNext{fakeNext: h.next, mem: map[string]string{}}
			for sc, v := range tc.mem {
				mem.mem[sc+" "+name] = v
			}
			h.src = NewForwarder(h.r, mem, Options{Metrics: h.set})
			f, err, _ := h.open(t, name)
			if tc.want == "" {
				if !errors.Is(err, ctftp.ErrNotFound) {
					t.Fatalf("got %v, %v; want not found", f, err)
				}
			} else if err != nil || servedBy(t, f, name) != tc.want {
				t.Fatalf("got %v, %v; want %s's file", f, err, tc.want)
			}
			asked := h.next.takeCalls()
			slices.Sort(asked)
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("asked %v, want %v", asked, tc.asked)
			}
		})
	}
}
