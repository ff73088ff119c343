package loadgen

import (
	"strconv"
	"strings"
)

// SumSeries adds up every sample of the metric name in a Prometheus text
// exposition, whatever its labels: what a bench reads of a server's
// /metrics (or of an in-process gateway's metrics set) to say how many
// transfers it holds or how many fetches it made.
func SumSeries(exposition, name string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
