package loadgen

import "testing"

func TestSumSeries(t *testing.T) {
	exp := `# HELP ignored
ctftp_backend_fetches_total{subcluster="east",result="ok"} 10
ctftp_backend_fetches_total{subcluster="west",result="not_found"} 5
ctftp_backend_fetches_total_extra 100
ctftp_backend_fetches_totalx{a="b"} 100
go_goroutines 42
process_resident_memory_bytes 1.5e+07
`
	tests := []struct {
		name string
		want float64
	}{
		{"ctftp_backend_fetches_total", 15},
		{"go_goroutines", 42},
		{"process_resident_memory_bytes", 1.5e7},
		{"absent", 0},
	}
	for _, tc := range tests {
		if got := SumSeries(exp, tc.name); got != tc.want {
			t.Errorf("SumSeries(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
